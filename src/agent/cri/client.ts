/**
 * A typed client for the Container Runtime Interface (runtime.v1) over gRPC on a unix socket, as the
 * kubelet speaks it to containerd or CRI-O. Messages are loaded from ./api.proto (written for kedge) with
 * camelCase fields, enums as their names and int64 as decimal strings (nanosecond times do not fit a
 * double). Every call has a deadline; failures become CriError with the gRPC status code.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { KedgeError } from '../../lib/errors.ts';

const PROTO = fileURLToPath(new URL('./api.proto', import.meta.url));

export type KV = Record<string, string>;

export interface ImageSpec {
  image: string;
  annotations?: KV;
}
export interface Int64Value {
  value: string | number;
}
export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}
export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly?: boolean;
  selinuxRelabel?: boolean;
  propagation?: 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';
}
export interface LinuxContainerResources {
  cpuPeriod?: string | number;
  cpuQuota?: string | number;
  cpuShares?: string | number;
  memoryLimitInBytes?: string | number;
  oomScoreAdj?: string | number;
  cpusetCpus?: string;
  cpusetMems?: string;
}
export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}
export interface PortMapping {
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  containerPort: number;
  hostPort?: number;
  hostIp?: string;
}
export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  dnsConfig?: { servers?: string[]; searches?: string[]; options?: string[] };
  portMappings?: PortMapping[];
  labels?: KV;
  annotations?: KV;
  linux?: {
    cgroupParent?: string;
    securityContext?: {
      namespaceOptions?: NamespaceOption;
      runAsUser?: Int64Value;
      runAsGroup?: Int64Value;
      readonlyRootfs?: boolean;
      supplementalGroups?: Array<string | number>;
      privileged?: boolean;
    };
    sysctls?: KV;
  };
}
export type SandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: SandboxState;
  /** Nanoseconds since the epoch, as a decimal string. */
  createdAt: string;
  labels: KV;
  annotations: KV;
  runtimeHandler: string;
}
export interface PodSandboxStatus extends Omit<PodSandbox, 'labels' | 'annotations'> {
  network: { ip: string; additionalIps: Array<{ ip: string }> } | null;
  labels: KV;
  annotations: KV;
}
export interface ContainerConfig {
  metadata: { name: string; attempt: number };
  image: ImageSpec;
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: Array<{ key: string; value: string }>;
  mounts?: Mount[];
  labels?: KV;
  annotations?: KV;
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  linux?: {
    resources?: LinuxContainerResources;
    securityContext?: {
      capabilities?: { addCapabilities?: string[]; dropCapabilities?: string[] };
      privileged?: boolean;
      namespaceOptions?: NamespaceOption;
      runAsUser?: Int64Value;
      runAsGroup?: Int64Value;
      runAsUsername?: string;
      readonlyRootfs?: boolean;
      supplementalGroups?: Array<string | number>;
      noNewPrivs?: boolean;
      maskedPaths?: string[];
      readonlyPaths?: string[];
    };
  };
}
export type ContainerStateName =
  | 'CONTAINER_CREATED'
  | 'CONTAINER_RUNNING'
  | 'CONTAINER_EXITED'
  | 'CONTAINER_UNKNOWN';
export interface Container {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number } | null;
  image: ImageSpec | null;
  imageRef: string;
  state: ContainerStateName;
  createdAt: string;
  labels: KV;
  annotations: KV;
}
export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number } | null;
  state: ContainerStateName;
  createdAt: string;
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  image: ImageSpec | null;
  imageRef: string;
  reason: string;
  message: string;
  labels: KV;
  annotations: KV;
  mounts: Mount[];
  /** Absolute path of the container's log file on the host. */
  logPath: string;
}
export interface Image {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: string;
  uid: Int64Value | null;
  username: string;
}
export interface VersionInfo {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}
export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

export interface CriClientOptions {
  /** `unix:///run/containerd/containerd.sock` or a bare socket path. */
  readonly endpoint: string;
  /** Deadline of each call; default 30,000 ms (image pulls: `pullTimeoutMs`). */
  readonly timeoutMs?: number;
  /** Deadline of PullImage; default 10 minutes. */
  readonly pullTimeoutMs?: number;
}

/** A failed CRI call: `grpcCode` is the gRPC status (5 NOT_FOUND, 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, ...). */
export class CriError extends KedgeError {
  readonly grpcCode: number;
  readonly method: string;
  constructor(method: string, grpcCode: number, details: string, cause: unknown) {
    super(
      'KEDGE_CRI_CALL_FAILED',
      `CRI ${method} failed (${grpc.status[grpcCode] ?? grpcCode}): ${details}`,
      {
        cause,
        context: { method, grpcCode },
      },
    );
    this.name = 'CriError';
    this.grpcCode = grpcCode;
    this.method = method;
  }
}

/** Whether a CRI error means the object does not exist (the runtime already removed it). */
export function isNotFound(err: unknown): boolean {
  return (
    err instanceof CriError && (err.grpcCode === grpc.status.NOT_FOUND || /not found/i.test(err.message))
  );
}

type Unary = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response: unknown) => void,
) => grpc.ClientUnaryCall;

let definition: grpc.GrpcObject | undefined;
function loadDefinition(): grpc.GrpcObject {
  definition ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(PROTO, {
      keepCase: false,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    }),
  );
  return definition;
}

/** `unix:///path`, `unix:/path` or `/path` → the gRPC target. */
export function criTarget(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint;
  if (endpoint.startsWith('unix:')) return `unix://${endpoint.slice('unix:'.length)}`;
  if (endpoint.startsWith('/')) return `unix://${endpoint}`;
  throw new KedgeError(
    'KEDGE_CONFIG_INVALID',
    `CRI endpoint ${JSON.stringify(endpoint)} is not a unix socket`,
    {
      context: { endpoint },
    },
  );
}

/** The CRI client: one channel shared by the runtime and image services. */
export class CriClient {
  readonly endpoint: string;
  readonly #runtime: grpc.Client;
  readonly #images: grpc.Client;
  readonly #timeoutMs: number;
  readonly #pullTimeoutMs: number;

  constructor(options: CriClientOptions) {
    this.endpoint = options.endpoint;
    const target = criTarget(options.endpoint);
    const pkg = loadDefinition()['runtime'] as grpc.GrpcObject;
    const v1 = pkg['v1'] as grpc.GrpcObject;
    const RuntimeService = v1['RuntimeService'] as grpc.ServiceClientConstructor;
    const ImageService = v1['ImageService'] as grpc.ServiceClientConstructor;
    const channelOptions = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };
    this.#runtime = new RuntimeService(target, grpc.credentials.createInsecure(), channelOptions);
    this.#images = new ImageService(target, grpc.credentials.createInsecure(), {
      ...channelOptions,
      channelOverride: this.#runtime.getChannel(),
    });
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#pullTimeoutMs = options.pullTimeoutMs ?? 600_000;
  }

  #call<T>(client: grpc.Client, method: string, request: unknown, timeoutMs = this.#timeoutMs): Promise<T> {
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (fn === undefined) throw new Error(`CRI method ${method} is not in api.proto`);
    return new Promise<T>((resolve, reject) => {
      fn.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err !== null) reject(new CriError(method, err.code, err.details || err.message, err));
        else resolve(response as T);
      });
    });
  }

  // ---- runtime service ----

  version(): Promise<VersionInfo> {
    return this.#call(this.#runtime, 'Version', { version: 'v1' });
  }

  /** RuntimeReady / NetworkReady conditions. */
  async status(): Promise<RuntimeCondition[]> {
    return (await this.statusInfo(false)).conditions;
  }

  /** The conditions and, with `verbose`, the runtime's own info (containerd: its CRI config as JSON under `config`). */
  async statusInfo(verbose = true): Promise<{ conditions: RuntimeCondition[]; info: KV }> {
    const r = await this.#call<{ status: { conditions: RuntimeCondition[] } | null; info: KV }>(
      this.#runtime,
      'Status',
      { verbose },
    );
    return { conditions: r.status?.conditions ?? [], info: r.info };
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = ''): Promise<string> {
    const r = await this.#call<{ podSandboxId: string }>(
      this.#runtime,
      'RunPodSandbox',
      { config, runtimeHandler },
      // The first sandbox may unpack the pause image and set up CNI.
      Math.max(this.#timeoutMs, 120_000),
    );
    return r.podSandboxId;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.#call(this.#runtime, 'StopPodSandbox', { podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.#call(this.#runtime, 'RemovePodSandbox', { podSandboxId });
  }

  async podSandboxStatus(podSandboxId: string): Promise<PodSandboxStatus> {
    const r = await this.#call<{ status: PodSandboxStatus | null }>(this.#runtime, 'PodSandboxStatus', {
      podSandboxId,
    });
    if (r.status === null)
      throw new CriError('PodSandboxStatus', grpc.status.NOT_FOUND, 'no status', undefined);
    return r.status;
  }

  async listPodSandbox(
    filter: { id?: string; state?: SandboxState; labelSelector?: KV } = {},
  ): Promise<PodSandbox[]> {
    const r = await this.#call<{ items: PodSandbox[] }>(this.#runtime, 'ListPodSandbox', {
      filter: {
        id: filter.id ?? '',
        ...(filter.state === undefined ? {} : { state: { state: filter.state } }),
        labelSelector: filter.labelSelector ?? {},
      },
    });
    return r.items;
  }

  async createContainer(
    podSandboxId: string,
    config: ContainerConfig,
    sandboxConfig: PodSandboxConfig,
  ): Promise<string> {
    const r = await this.#call<{ containerId: string }>(this.#runtime, 'CreateContainer', {
      podSandboxId,
      config,
      sandboxConfig,
    });
    return r.containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.#call(this.#runtime, 'StartContainer', { containerId });
  }

  /** Stops with SIGTERM (or the image's stop signal), then SIGKILL after `timeoutSeconds`. */
  async stopContainer(containerId: string, timeoutSeconds: number): Promise<void> {
    await this.#call(
      this.#runtime,
      'StopContainer',
      { containerId, timeout: String(Math.max(0, Math.floor(timeoutSeconds))) },
      this.#timeoutMs + timeoutSeconds * 1000,
    );
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.#call(this.#runtime, 'RemoveContainer', { containerId });
  }

  async listContainers(
    filter: { id?: string; podSandboxId?: string; state?: ContainerStateName; labelSelector?: KV } = {},
  ): Promise<Container[]> {
    const r = await this.#call<{ containers: Container[] }>(this.#runtime, 'ListContainers', {
      filter: {
        id: filter.id ?? '',
        podSandboxId: filter.podSandboxId ?? '',
        ...(filter.state === undefined ? {} : { state: { state: filter.state } }),
        labelSelector: filter.labelSelector ?? {},
      },
    });
    return r.containers;
  }

  async containerStatus(containerId: string): Promise<ContainerStatus> {
    const r = await this.#call<{ status: ContainerStatus | null }>(this.#runtime, 'ContainerStatus', {
      containerId,
    });
    if (r.status === null)
      throw new CriError('ContainerStatus', grpc.status.NOT_FOUND, 'no status', undefined);
    return r.status;
  }

  /** Runs a command in a running container and waits for it (timeout 0: no limit but the call deadline). */
  async execSync(
    containerId: string,
    cmd: readonly string[],
    timeoutSeconds: number,
  ): Promise<{ stdout: Buffer; stderr: Buffer; exitCode: number }> {
    return this.#call(
      this.#runtime,
      'ExecSync',
      { containerId, cmd, timeout: String(Math.max(0, Math.floor(timeoutSeconds))) },
      (timeoutSeconds > 0 ? timeoutSeconds * 1000 : this.#timeoutMs) + 5_000,
    );
  }

  /** Prepares a streaming exec; returns the runtime's streaming server URL. */
  async exec(
    containerId: string,
    cmd: readonly string[],
    streams: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean },
  ): Promise<string> {
    const r = await this.#call<{ url: string }>(this.#runtime, 'Exec', { containerId, cmd, ...streams });
    return r.url;
  }

  /** Prepares a streaming attach; returns the runtime's streaming server URL. */
  async attach(
    containerId: string,
    streams: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean },
  ): Promise<string> {
    const r = await this.#call<{ url: string }>(this.#runtime, 'Attach', { containerId, ...streams });
    return r.url;
  }

  // ---- image service ----

  async listImages(): Promise<Image[]> {
    const r = await this.#call<{ images: Image[] }>(this.#images, 'ListImages', {});
    return r.images;
  }

  /** The image, or undefined when the runtime does not have it. */
  async imageStatus(image: string): Promise<Image | undefined> {
    const r = await this.#call<{ image: Image | null }>(this.#images, 'ImageStatus', { image: { image } });
    return r.image ?? undefined;
  }

  /** Pulls an image; resolves with its image ref (the digest-qualified id). */
  async pullImage(image: string, sandboxConfig?: PodSandboxConfig): Promise<string> {
    const r = await this.#call<{ imageRef: string }>(
      this.#images,
      'PullImage',
      { image: { image }, ...(sandboxConfig === undefined ? {} : { sandboxConfig }) },
      this.#pullTimeoutMs,
    );
    return r.imageRef;
  }

  async removeImage(image: string): Promise<void> {
    await this.#call(this.#images, 'RemoveImage', { image: { image } });
  }

  close(): void {
    this.#images.close();
    this.#runtime.close();
  }
}

/** CRI nanosecond timestamps (decimal strings) → RFC 3339 seconds, or undefined for 0. */
export function nanosToRfc3339(nanos: string | number): string | undefined {
  const n = BigInt(nanos || 0);
  if (n <= 0n) return undefined;
  return new Date(Number(n / 1_000_000n)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
