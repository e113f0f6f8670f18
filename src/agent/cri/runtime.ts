/**
 * The CRI runtime: runs pods through containerd or CRI-O the way the kubelet does. State lives in the
 * runtime, not in the agent: sandboxes and containers carry the pod's uid/namespace/name and the
 * container name as labels, the restart count as the CRI attempt number and a spec hash as an
 * annotation, so after an agent restart (online or offline) the agent adopts what runs instead of
 * restarting it. A relist every second (the kubelet's PLEG) notices exits and wakes the pod manager;
 * restarts follow restartPolicy with the kubelet's CrashLoopBackOff (10 s doubling to 5 min); probes run
 * per container; stop runs preStop hooks and gives each container the grace period.
 */
import { mkdir, rm } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import type { KubeObject } from '../../api/meta.ts';
import { KedgeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type {
  ContainerState,
  ExecIO,
  ExecOptions,
  LogOptions,
  PodContext,
  PodRef,
  PodRuntime,
  RuntimeContainer,
  RuntimePod,
} from '../runtime.ts';
import {
  type Container,
  type ContainerStatus,
  CriClient,
  CriError,
  isNotFound,
  nanosToRfc3339,
  type PodSandbox,
  type PodSandboxConfig,
} from './client.ts';
import { ensureDefaultCniConfig } from './cni.ts';
import { ContainerProber, type ProbeTarget, runAction } from './probes.ts';
import {
  ANNOTATION_HASH,
  arr,
  containerConfig,
  containerHash,
  effectiveSecurity,
  isHostNetwork,
  LABEL_CONTAINER_NAME,
  LABEL_MANAGED,
  LABEL_POD_NAME,
  LABEL_POD_NAMESPACE,
  LABEL_POD_UID,
  obj,
  PodConfigError,
  podLogDirName,
  podRefOf,
  pullPolicy,
  resolveEnv,
  sandboxConfig,
} from './spec.ts';
import { CriStreaming } from './streaming.ts';
import { containerMounts, type PreparedVolume, prepareVolumes } from './volumes.ts';

export type EventType = 'Normal' | 'Warning';

export interface CriRuntimeOptions {
  /** The runtime's socket, e.g. unix:///run/containerd/containerd.sock. */
  readonly endpoint: string;
  /** Agent data dir: pod logs go to `pods/<ns>_<name>_<uid>/`, volumes to `pod-volumes/<uid>/`. */
  readonly dataDir: string;
  readonly logger: Logger;
  /** Records a core/v1 Event about a pod (pull failures, back-offs, probe failures, kills). */
  readonly recordEvent?: (
    pod: PodRef,
    type: EventType,
    reason: string,
    message: string,
    fieldPath?: string,
  ) => void;
  /** How often the runtime is relisted to notice exits; default 1,000 ms. */
  readonly relistMs?: number;
  /** First restart back-off after the first restart; default 10,000 ms, doubling up to `backoffMaxMs`. */
  readonly backoffBaseMs?: number;
  /** Default 300,000 ms. */
  readonly backoffMaxMs?: number;
  /** CNI config dir for the default bridge network; default: the one the runtime reports, else /etc/cni/net.d. */
  readonly cniConfDir?: string;
  /** Deadline of each CRI call; default 30,000 ms. */
  readonly timeoutMs?: number;
}

interface ContainerError {
  readonly reason: string;
  readonly message: string;
}

interface Backoff {
  failures: number;
  nextAt: number;
}

type SpecContainer = Record<string, unknown>;

/** The containers of one name in a sandbox, newest attempt first. */
type Attempts = ContainerStatus[];

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function nanosToMs(nanos: string): number {
  return Number(BigInt(nanos || '0') / 1_000_000n);
}

function isRunning(s: ContainerStatus | undefined): boolean {
  return s?.state === 'CONTAINER_RUNNING';
}

function isExited(s: ContainerStatus | undefined): s is ContainerStatus {
  return s?.state === 'CONTAINER_EXITED' || s?.state === 'CONTAINER_UNKNOWN';
}

function terminatedOf(s: ContainerStatus): ContainerState {
  const finishedAt = nanosToRfc3339(s.finishedAt) ?? nanosToRfc3339(s.createdAt) ?? rfc3339(Date.now());
  const startedAt = nanosToRfc3339(s.startedAt);
  return {
    terminated: {
      exitCode: s.exitCode,
      reason: s.reason !== '' ? s.reason : s.exitCode === 0 ? 'Completed' : 'Error',
      ...(s.message === '' ? {} : { message: s.message }),
      ...(startedAt === undefined ? {} : { startedAt }),
      finishedAt,
      containerID: `containerd://${s.id}`,
    },
  };
}

/** The pod has volumes whose files the agent writes (and rewrites when their objects change). */
function hasFileVolumes(pod: KubeObject): boolean {
  return arr(obj(pod['spec'])['volumes']).some(
    (v) =>
      v['configMap'] !== undefined ||
      v['secret'] !== undefined ||
      v['projected'] !== undefined ||
      v['downwardAPI'] !== undefined,
  );
}

function errorMessage(err: unknown): string {
  if (err instanceof CriError) {
    const cause = err.cause as { details?: string } | undefined;
    return cause?.details ?? err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

export class CriRuntime implements PodRuntime {
  readonly name = 'cri';
  readonly version: string;
  readonly client: CriClient;
  readonly #o: CriRuntimeOptions;
  readonly #log: Logger;
  readonly #listeners = new Set<(pod: PodRef) => void>();
  /** The last spec synced per uid (what status() and stop() know about a pod in this agent run). */
  readonly #pods = new Map<string, KubeObject>();
  readonly #locks = new Map<string, Promise<unknown>>();
  /** Container status by id: a container's status only changes with its state, which relist watches. */
  readonly #statusCache = new Map<string, ContainerStatus>();
  readonly #sandboxIPs = new Map<string, string>();
  readonly #probers = new Map<string, { uid: string; prober: ContainerProber }>();
  /** `uid/container` → why the container could not be created (pull, config). */
  readonly #errors = new Map<string, ContainerError>();
  readonly #pullBackoff = new Map<string, Backoff>();
  readonly #wakes = new Map<string, NodeJS.Timeout>();
  readonly #eventsSent = new Map<string, number>();
  /** Container id → state at the last relist. */
  #seen = new Map<string, string>();
  /**
   * Pods whose last sync found everything as wanted, by uid, with the pod's resourceVersion: a resync
   * of such a pod costs no runtime call until something changes (relist, probe, back-off, new spec).
   */
  readonly #clean = new Map<string, { readonly rv: string | undefined; readonly result: RuntimePod }>();
  #relistTimer: NodeJS.Timeout | undefined;
  #relisting = false;
  #network: Promise<void> | undefined;
  #closed = false;
  readonly #streaming: CriStreaming;

  private constructor(options: CriRuntimeOptions, client: CriClient, version: string) {
    this.#o = options;
    this.#log = options.logger;
    this.client = client;
    this.version = version;
    this.#streaming = new CriStreaming({ client, dataDir: options.dataDir, logger: options.logger });
  }

  /** `kubectl logs` of a container, from its CRI log files (streaming.ts). */
  logs(pod: PodRef, options: LogOptions, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
    return this.#streaming.logs(pod, options, out, signal);
  }

  /** `kubectl exec` in a container, through CRI Exec and the runtime's streaming server (streaming.ts). */
  exec(
    pod: PodRef,
    options: ExecOptions,
    io: ExecIO,
    signal: AbortSignal,
  ): Promise<{ readonly exitCode: number }> {
    return this.#streaming.exec(pod, options, io, signal);
  }

  /** Connects to the runtime (Version) and starts relisting. Throws a clear error when it is not there. */
  static async connect(options: CriRuntimeOptions): Promise<CriRuntime> {
    const client = new CriClient({
      endpoint: options.endpoint,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    });
    let v: Awaited<ReturnType<CriClient['version']>>;
    try {
      v = await client.version();
    } catch (err) {
      client.close();
      throw new CriError(
        'Version',
        err instanceof CriError ? err.grpcCode : 14,
        `no container runtime answers at ${options.endpoint} (is containerd running?): ${errorMessage(err)}`,
        err,
      );
    }
    const runtime = new CriRuntime(options, client, `${v.runtimeName}://${v.runtimeVersion}`);
    options.logger.info(
      {
        endpoint: options.endpoint,
        runtime: v.runtimeName,
        version: v.runtimeVersion,
        api: v.runtimeApiVersion,
      },
      'connected to the container runtime',
    );
    runtime.#relistTimer = setInterval(() => void runtime.#relist(), options.relistMs ?? 1000);
    runtime.#relistTimer.unref();
    return runtime;
  }

  watch(listener: (pod: PodRef) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(ref: PodRef): void {
    this.#clean.delete(ref.uid);
    if (this.#closed) return;
    for (const l of this.#listeners) l(ref);
  }

  /** Wakes the pod manager for this pod at `atMs` (end of a back-off). */
  #wakeAt(ref: PodRef, atMs: number): void {
    const prev = this.#wakes.get(ref.uid);
    if (prev !== undefined) clearTimeout(prev);
    const t = setTimeout(
      () => {
        this.#wakes.delete(ref.uid);
        this.#emit(ref);
      },
      Math.max(0, atMs - Date.now()) + 50,
    );
    t.unref();
    this.#wakes.set(ref.uid, t);
  }

  #event(ref: PodRef, type: EventType, reason: string, message: string, container?: string): void {
    // The same event at most every 30 s per pod, so a loop does not flood the outbox.
    const key = `${ref.uid}\n${reason}\n${message}`;
    const now = Date.now();
    if ((this.#eventsSent.get(key) ?? 0) > now - 30_000) return;
    this.#eventsSent.set(key, now);
    if (this.#eventsSent.size > 10_000) this.#eventsSent.clear();
    this.#o.recordEvent?.(
      ref,
      type,
      reason,
      message,
      container === undefined ? undefined : `spec.containers{${container}}`,
    );
  }

  /** One operation per pod at a time (sync, stop, probe kills). */
  #locked<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(uid) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.#locks.set(uid, settled);
    void settled.then(() => {
      if (this.#locks.get(uid) === settled) this.#locks.delete(uid);
    });
    return next;
  }

  #logDir(ref: PodRef): string {
    return join(this.#o.dataDir, 'pods', podLogDirName(ref));
  }

  #volumeDir(uid: string): string {
    return join(this.#o.dataDir, 'pod-volumes', uid);
  }

  // ---- network ----

  /** Makes sure pods off the host network can get an IP: writes the default bridge config if none exists. */
  #ensureNetwork(): Promise<void> {
    this.#network ??= (async () => {
      let confDir = this.#o.cniConfDir;
      const before = await this.client.statusInfo(true);
      if (confDir === undefined) {
        try {
          const config = JSON.parse(before.info['config'] ?? '{}') as { cni?: { confDir?: string } };
          confDir = config.cni?.confDir;
        } catch {}
      }
      confDir ??= '/etc/cni/net.d';
      const ready = (conditions: typeof before.conditions) =>
        conditions.find((c) => c.type === 'NetworkReady')?.status === true;
      if (ready(before.conditions)) return;
      const written = await ensureDefaultCniConfig(confDir);
      if (written !== undefined)
        this.#log.info({ file: written }, 'wrote the default bridge pod network (CNI)');
      for (let i = 0; i < 100; i++) {
        if (ready(await this.client.status())) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      this.#log.warn(
        { confDir },
        'the runtime reports its pod network not ready; pods off the host network may fail',
      );
    })().catch((err: unknown) => {
      this.#network = undefined;
      throw err;
    });
    return this.#network;
  }

  // ---- observing ----

  async #sandboxesOf(uid: string): Promise<PodSandbox[]> {
    const list = await this.client.listPodSandbox({ labelSelector: { [LABEL_POD_UID]: uid } });
    return list.sort((a, b) => (BigInt(b.createdAt) > BigInt(a.createdAt) ? 1 : -1));
  }

  async #status(id: string, listed: string): Promise<ContainerStatus | undefined> {
    const cached = this.#statusCache.get(id);
    if (cached !== undefined && cached.state === listed) return cached;
    try {
      const s = await this.client.containerStatus(id);
      this.#statusCache.set(id, s);
      return s;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The containers of a sandbox by name, newest attempt first. */
  async #attempts(sandboxId: string): Promise<Map<string, Attempts>> {
    const listed: Container[] = await this.client.listContainers({ podSandboxId: sandboxId });
    const out = new Map<string, Attempts>();
    const statuses = await Promise.all(listed.map((c) => this.#status(c.id, c.state)));
    for (const s of statuses) {
      if (s === undefined) continue;
      const name = s.metadata?.name ?? s.labels[LABEL_CONTAINER_NAME] ?? '';
      const list = out.get(name) ?? [];
      list.push(s);
      out.set(name, list);
    }
    for (const list of out.values())
      list.sort((a, b) => (b.metadata?.attempt ?? 0) - (a.metadata?.attempt ?? 0));
    return out;
  }

  async #podIP(
    pod: KubeObject | undefined,
    sandboxId: string,
    hostIP: string | undefined,
  ): Promise<string | undefined> {
    if (pod !== undefined && isHostNetwork(pod)) return hostIP;
    const cached = this.#sandboxIPs.get(sandboxId);
    if (cached !== undefined) return cached;
    const s = await this.client.podSandboxStatus(sandboxId);
    const ip = s.network?.ip ?? '';
    if (ip !== '') this.#sandboxIPs.set(sandboxId, ip);
    return ip === '' ? undefined : ip;
  }

  #backoffDelay(s: ContainerStatus): number {
    const restarts = s.metadata?.attempt ?? 0;
    if (restarts === 0) return 0;
    const base = this.#o.backoffBaseMs ?? 10_000;
    const max = this.#o.backoffMaxMs ?? 300_000;
    // A container that ran for twice the longest back-off without trouble starts over (as the kubelet).
    const ran = nanosToMs(s.finishedAt) - nanosToMs(s.startedAt);
    if (ran > 2 * max) return 0;
    return Math.min(max, base * 2 ** (restarts - 1));
  }

  /** When an exited container may be restarted: now, later (back-off) or never (policy). */
  #restartAt(s: ContainerStatus, restartPolicy: string, init: boolean): number | undefined {
    const policy = init && restartPolicy === 'Always' ? 'OnFailure' : restartPolicy;
    if (policy === 'Never') return undefined;
    if (policy === 'OnFailure' && s.exitCode === 0) return undefined;
    return nanosToMs(s.finishedAt) + this.#backoffDelay(s);
  }

  #runtimeContainer(
    pod: KubeObject,
    spec: SpecContainer,
    attempts: Attempts | undefined,
    init: boolean,
    waitingReason: string,
  ): RuntimeContainer {
    const ref = podRefOf(pod);
    const name = String(spec['name'] ?? '');
    const image = String(spec['image'] ?? '');
    const latest = attempts?.[0];
    const previous = attempts?.[1];
    const err = this.#errors.get(`${ref.uid}/${name}`);
    const base = {
      name,
      image,
      imageID: latest?.imageRef ?? '',
      containerID: latest === undefined ? '' : `containerd://${latest.id}`,
      restartCount: latest?.metadata?.attempt ?? 0,
    };
    if (latest === undefined) {
      return {
        ...base,
        ready: false,
        started: false,
        state: {
          waiting: {
            reason: err?.reason ?? waitingReason,
            ...(err === undefined ? {} : { message: err.message }),
          },
        },
      };
    }
    const lastState = previous !== undefined && isExited(previous) ? terminatedOf(previous) : undefined;
    if (isRunning(latest)) {
      const prober = this.#probers.get(latest.id)?.prober;
      const hasProbes = spec['startupProbe'] !== undefined || spec['readinessProbe'] !== undefined;
      return {
        ...base,
        ready: init ? false : prober === undefined ? !hasProbes : prober.ready,
        started: prober === undefined ? spec['startupProbe'] === undefined : prober.started,
        state: { running: { startedAt: nanosToRfc3339(latest.startedAt) ?? rfc3339(Date.now()) } },
        ...(lastState === undefined ? {} : { lastState }),
      };
    }
    if (isExited(latest)) {
      const restartPolicy = String(obj(pod['spec'])['restartPolicy'] ?? 'Always');
      const at = this.#restartAt(latest, restartPolicy, init);
      if (at !== undefined && !(init && latest.exitCode === 0)) {
        // It will run again: waiting, with what happened last time as lastState.
        const waiting =
          err !== undefined
            ? { reason: err.reason, message: err.message }
            : at > Date.now()
              ? {
                  reason: 'CrashLoopBackOff',
                  message: `back-off ${Math.round((at - nanosToMs(latest.finishedAt)) / 1000)}s restarting failed container=${name} pod=${ref.name}_${ref.namespace}(${ref.uid})`,
                }
              : { reason: 'ContainerCreating' };
        return { ...base, ready: false, started: false, state: { waiting }, lastState: terminatedOf(latest) };
      }
      return {
        ...base,
        ready: false,
        started: false,
        state: terminatedOf(latest),
        ...(lastState === undefined ? {} : { lastState }),
      };
    }
    return { ...base, ready: false, started: false, state: { waiting: { reason: 'ContainerCreating' } } };
  }

  /** What runs for the pod now (no changes made). */
  async #observe(
    pod: KubeObject,
    sandbox: PodSandbox | undefined,
    hostIP: string | undefined,
    attempts?: Map<string, Attempts>,
  ): Promise<RuntimePod> {
    const ref = podRefOf(pod);
    const spec = obj(pod['spec']);
    const byName =
      attempts ?? (sandbox === undefined ? new Map<string, Attempts>() : await this.#attempts(sandbox.id));
    const initSpecs = arr(spec['initContainers']);
    let initialized = true;
    const initContainers: RuntimeContainer[] = [];
    for (const c of initSpecs) {
      const a = byName.get(String(c['name']));
      const done = isExited(a?.[0]) && a?.[0]?.exitCode === 0;
      initContainers.push(
        this.#runtimeContainer(pod, c, a, true, initialized ? 'PodInitializing' : 'PodInitializing'),
      );
      if (!done) initialized = false;
    }
    const containers = arr(spec['containers']).map((c) =>
      this.#runtimeContainer(
        pod,
        c,
        byName.get(String(c['name'])),
        false,
        initialized ? 'ContainerCreating' : 'PodInitializing',
      ),
    );
    const sandboxReady = sandbox?.state === 'SANDBOX_READY';
    return {
      ...ref,
      podIP: sandbox === undefined || !sandboxReady ? undefined : await this.#podIP(pod, sandbox.id, hostIP),
      startedAt:
        (sandbox === undefined ? undefined : nanosToRfc3339(sandbox.createdAt)) ?? rfc3339(Date.now()),
      containers,
      initContainers,
      initialized,
      sandboxReady,
    };
  }

  // ---- sync ----

  sync(pod: KubeObject, context: PodContext): Promise<RuntimePod> {
    const uid = pod.metadata.uid ?? '';
    return this.#locked(uid, async () => {
      const clean = this.#clean.get(uid);
      if (clean !== undefined && clean.rv === pod.metadata.resourceVersion) {
        if (!hasFileVolumes(pod)) return clean.result;
        try {
          // ConfigMap and Secret files follow their objects even when nothing else changed.
          await prepareVolumes(pod, this.#volumeDir(uid), context, {
            podIP: clean.result.podIP ?? '',
            hostIP: context.hostIP,
            nodeName: context.nodeName,
          });
          return clean.result;
        } catch {
          this.#clean.delete(uid);
        }
      }
      return this.#sync(pod, context);
    });
  }

  async #sync(pod: KubeObject, context: PodContext): Promise<RuntimePod> {
    const ref = podRefOf(pod);
    const spec = obj(pod['spec']);
    this.#pods.set(ref.uid, pod);
    const logDirectory = this.#logDir(ref);

    // 1. The sandbox: keep a ready one, else replace whatever is left with a new attempt.
    const sandboxes = await this.#sandboxesOf(ref.uid);
    let sandbox = sandboxes.find((s) => s.state === 'SANDBOX_READY');
    if (sandbox === undefined) {
      const attempt = sandboxes.reduce((n, s) => Math.max(n, (s.metadata?.attempt ?? -1) + 1), 0);
      for (const s of sandboxes) await this.#removeSandbox(s.id);
      try {
        if (!isHostNetwork(pod)) await this.#ensureNetwork();
        await mkdir(logDirectory, { recursive: true, mode: 0o755 });
        const id = await this.client.runPodSandbox(sandboxConfig(pod, { logDirectory, attempt }));
        sandbox = (await this.client.listPodSandbox({ id }))[0];
        this.#log.info(
          { pod: `${ref.namespace}/${ref.name}`, sandbox: id.slice(0, 12), attempt },
          'pod sandbox started',
        );
      } catch (err) {
        const message = `Failed to create pod sandbox: ${errorMessage(err)}`;
        this.#log.warn({ pod: `${ref.namespace}/${ref.name}`, err }, 'pod sandbox failed');
        this.#event(ref, 'Warning', 'FailedCreatePodSandBox', message);
        this.#wakeAt(ref, Date.now() + (this.#o.backoffBaseMs ?? 10_000));
        return this.#observe(pod, undefined, context.hostIP);
      }
      if (sandbox === undefined) return this.#observe(pod, undefined, context.hostIP);
    }
    const sbConfig = sandboxConfig(pod, { logDirectory, attempt: sandbox.metadata?.attempt ?? 0 });
    const podIP = (await this.#podIP(pod, sandbox.id, context.hostIP)) ?? '';
    const values = { podIP, hostIP: context.hostIP, nodeName: context.nodeName };

    // 2. Volumes (rewritten when their ConfigMap or Secret changed).
    let volumes: Map<string, PreparedVolume> | undefined;
    try {
      volumes = await prepareVolumes(pod, this.#volumeDir(ref.uid), context, values);
      for (const c of [...arr(spec['initContainers']), ...arr(spec['containers'])]) {
        const key = `${ref.uid}/${String(c['name'])}`;
        if (this.#errors.get(key)?.reason === 'ContainerCreating') this.#errors.delete(key);
      }
    } catch (err) {
      if (!(err instanceof PodConfigError)) throw err;
      this.#event(ref, 'Warning', 'FailedMount', err.message);
      for (const c of [...arr(spec['initContainers']), ...arr(spec['containers'])]) {
        this.#errors.set(`${ref.uid}/${String(c['name'])}`, {
          reason: 'ContainerCreating',
          message: err.message,
        });
      }
    }

    // 3. Init containers one after the other, then the app containers.
    let byName = await this.#attempts(sandbox.id);
    let changed = false;
    const restartPolicy = String(spec['restartPolicy'] ?? 'Always');
    const target = { sandbox, sbConfig, volumes, context, values };
    let initialized = true;
    for (const c of arr(spec['initContainers'])) {
      const latest = byName.get(String(c['name']))?.[0];
      if (isExited(latest) && latest.exitCode === 0) continue;
      initialized = false;
      if (volumes === undefined || isRunning(latest) || latest?.state === 'CONTAINER_CREATED') {
        if (latest?.state === 'CONTAINER_CREATED')
          changed = (await this.#startCreated(ref, latest)) || changed;
        break;
      }
      if (latest === undefined) {
        changed = (await this.#runContainer(pod, c, 0, true, target)) || changed;
      } else {
        const at = this.#restartAt(latest, restartPolicy, true);
        if (at !== undefined && at <= Date.now())
          changed =
            (await this.#runContainer(
              pod,
              c,
              (latest.metadata?.attempt ?? 0) + 1,
              true,
              target,
              byName.get(String(c['name'])),
            )) || changed;
        else if (at !== undefined) {
          this.#event(
            ref,
            'Warning',
            'BackOff',
            `Back-off restarting failed container ${String(c['name'])} in pod ${ref.name}_${ref.namespace}(${ref.uid})`,
            String(c['name']),
          );
          this.#wakeAt(ref, at);
        }
      }
      break;
    }
    if (initialized && volumes !== undefined) {
      for (const c of arr(spec['containers'])) {
        const name = String(c['name']);
        const attempts = byName.get(name);
        const latest = attempts?.[0];
        if (latest === undefined) {
          changed = (await this.#runContainer(pod, c, 0, false, target)) || changed;
        } else if (latest.state === 'CONTAINER_CREATED') {
          changed = (await this.#startCreated(ref, latest)) || changed;
        } else if (isRunning(latest)) {
          if (
            latest.annotations[ANNOTATION_HASH] !== undefined &&
            latest.annotations[ANNOTATION_HASH] !== containerHash(c)
          ) {
            this.#log.info(
              { pod: `${ref.namespace}/${ref.name}`, container: name },
              'container spec changed; restarting it',
            );
            this.#event(
              ref,
              'Normal',
              'Killing',
              `Container ${name} definition changed, will be restarted`,
              name,
            );
            await this.#stopContainer(pod, c, latest.id, this.#grace(pod), podIP);
            changed = true;
          } else this.#ensureProber(pod, c, latest, podIP);
        } else if (isExited(latest)) {
          const at = this.#restartAt(latest, restartPolicy, false);
          if (at === undefined) continue;
          if (at <= Date.now()) {
            changed =
              (await this.#runContainer(
                pod,
                c,
                (latest.metadata?.attempt ?? 0) + 1,
                false,
                target,
                attempts,
              )) || changed;
          } else {
            this.#event(
              ref,
              'Warning',
              'BackOff',
              `Back-off restarting failed container ${name} in pod ${ref.name}_${ref.namespace}(${ref.uid})`,
              name,
            );
            this.#wakeAt(ref, at);
          }
        }
      }
    }
    if (changed) byName = await this.#attempts(sandbox.id);
    const result = await this.#observe(pod, sandbox, context.hostIP, byName);
    if (!changed && volumes !== undefined && this.#settled(pod, byName)) {
      this.#clean.set(ref.uid, { rv: pod.metadata.resourceVersion, result });
    } else this.#clean.delete(ref.uid);
    return result;
  }

  /** Every container runs, or finished for good: nothing to do until the runtime or the spec changes. */
  #settled(pod: KubeObject, byName: Map<string, Attempts>): boolean {
    const spec = obj(pod['spec']);
    const restartPolicy = String(spec['restartPolicy'] ?? 'Always');
    const uid = pod.metadata.uid ?? '';
    for (const [list, init] of [
      [arr(spec['initContainers']), true],
      [arr(spec['containers']), false],
    ] as const) {
      for (const c of list) {
        if (this.#errors.has(`${uid}/${String(c['name'])}`)) return false;
        const latest = byName.get(String(c['name']))?.[0];
        if (latest === undefined) return false;
        if (isRunning(latest)) {
          if (init) return false;
          continue;
        }
        if (!isExited(latest)) return false;
        if (init ? latest.exitCode !== 0 : this.#restartAt(latest, restartPolicy, false) !== undefined)
          return false;
      }
    }
    return true;
  }

  #grace(pod: KubeObject): number {
    const g = pod.metadata.deletionGracePeriodSeconds ?? obj(pod['spec'])['terminationGracePeriodSeconds'];
    return typeof g === 'number' && g >= 0 ? g : 30;
  }

  async #startCreated(ref: PodRef, s: ContainerStatus): Promise<boolean> {
    try {
      await this.client.startContainer(s.id);
    } catch (err) {
      this.#log.warn({ pod: `${ref.namespace}/${ref.name}`, err }, 'starting a created container failed');
    }
    return true;
  }

  /** Pulls the image as its policy says; returns the error that keeps the container waiting, if any. */
  async #pull(
    ref: PodRef,
    c: SpecContainer,
    sbConfig: PodSandboxConfig,
  ): Promise<ContainerError | undefined> {
    const name = String(c['name']);
    const image = String(c['image'] ?? '');
    const key = `${ref.uid}/${name}`;
    const policy = pullPolicy(c);
    const present = await this.client.imageStatus(image);
    if (policy === 'Never' && present === undefined) {
      const message = `Container image "${image}" is not present with pull policy of Never`;
      this.#event(ref, 'Warning', 'ErrImageNeverPull', message, name);
      return { reason: 'ErrImageNeverPull', message };
    }
    if (present !== undefined && policy !== 'Always') return undefined;
    const backoff = this.#pullBackoff.get(key);
    if (backoff !== undefined && backoff.nextAt > Date.now()) {
      this.#event(ref, 'Normal', 'BackOff', `Back-off pulling image "${image}"`, name);
      return { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` };
    }
    try {
      this.#event(ref, 'Normal', 'Pulling', `Pulling image "${image}"`, name);
      await this.client.pullImage(image, sbConfig);
      this.#pullBackoff.delete(key);
      this.#event(ref, 'Normal', 'Pulled', `Successfully pulled image "${image}"`, name);
      return undefined;
    } catch (err) {
      const failures = (backoff?.failures ?? 0) + 1;
      const delay = Math.min(
        this.#o.backoffMaxMs ?? 300_000,
        (this.#o.backoffBaseMs ?? 10_000) * 2 ** (failures - 1),
      );
      this.#pullBackoff.set(key, { failures, nextAt: Date.now() + delay });
      this.#wakeAt(ref, Date.now() + delay);
      const message = `Failed to pull image "${image}": ${errorMessage(err)}`;
      this.#log.warn(
        { pod: `${ref.namespace}/${ref.name}`, container: name, image, err: errorMessage(err) },
        'image pull failed',
      );
      this.#event(ref, 'Warning', 'Failed', message, name);
      return { reason: 'ErrImagePull', message };
    }
  }

  /** Creates and starts one container (a new attempt); returns whether anything changed. */
  async #runContainer(
    pod: KubeObject,
    c: SpecContainer,
    attempt: number,
    init: boolean,
    t: {
      sandbox: PodSandbox;
      sbConfig: PodSandboxConfig;
      volumes: Map<string, PreparedVolume> | undefined;
      context: PodContext;
      values: { podIP: string; hostIP: string; nodeName: string };
    },
    older?: Attempts,
  ): Promise<boolean> {
    const ref = podRefOf(pod);
    const name = String(c['name']);
    const key = `${ref.uid}/${name}`;
    const fail = (reason: string, message: string): boolean => {
      this.#errors.set(key, { reason, message });
      this.#event(ref, 'Warning', 'Failed', `Error: ${message}`, name);
      return false;
    };
    const pullError = await this.#pull(ref, c, t.sbConfig);
    if (pullError !== undefined) {
      this.#errors.set(key, pullError);
      return false;
    }
    let env: Map<string, string>;
    let mounts: ReturnType<typeof containerMounts>;
    try {
      env = resolveEnv(pod, c, t.context, t.values, { cpu: 1, memory: totalmem() });
      mounts = containerMounts(c, t.volumes ?? new Map());
      const sec = effectiveSecurity(pod, c);
      if (sec.runAsNonRoot) {
        const img = await this.client.imageStatus(String(c['image']));
        const uid =
          sec.runAsUser ?? (img?.uid === null || img?.uid === undefined ? undefined : Number(img.uid.value));
        const user = img?.username ?? '';
        if (uid === undefined && user !== '' && user !== 'root')
          return fail(
            'CreateContainerConfigError',
            `image has non-numeric user (${user}), cannot verify user is non-root`,
          );
        if (uid === undefined || uid === 0)
          return fail('CreateContainerConfigError', 'container has runAsNonRoot and image will run as root');
      }
    } catch (err) {
      if (err instanceof PodConfigError) return fail(err.reason, err.message);
      // Any other value the spec holds that cannot be used (a quantity that does not parse, ...).
      if (err instanceof KedgeError) return fail('CreateContainerConfigError', err.message);
      throw err;
    }
    // Keep the newest earlier attempt (it is lastState and `kubectl logs --previous`); older ones go.
    for (const old of (older ?? []).slice(1)) await this.#removeContainer(ref, old);
    let config: ReturnType<typeof containerConfig>;
    try {
      config = containerConfig(pod, c, {
        attempt,
        env,
        mounts,
        image: String(c['image'] ?? ''),
        init,
        memoryCapacity: totalmem(),
      });
    } catch (err) {
      if (err instanceof KedgeError) return fail('CreateContainerConfigError', err.message);
      throw err;
    }
    let id: string;
    try {
      await mkdir(join(this.#logDir(ref), name), { recursive: true, mode: 0o755 });
      id = await this.client.createContainer(t.sandbox.id, config, t.sbConfig);
    } catch (err) {
      return fail('CreateContainerError', errorMessage(err));
    }
    this.#errors.delete(key);
    try {
      await this.client.startContainer(id);
      this.#event(ref, 'Normal', 'Started', `Started container ${name}`, name);
      this.#log.info(
        { pod: `${ref.namespace}/${ref.name}`, container: name, attempt, id: id.slice(0, 12) },
        'container started',
      );
    } catch (err) {
      // The container stays, exited with the runtime's reason (StartError): restarts follow the policy.
      this.#event(ref, 'Warning', 'Failed', `Error: ${errorMessage(err)}`, name);
      this.#log.warn(
        { pod: `${ref.namespace}/${ref.name}`, container: name, err: errorMessage(err) },
        'container start failed',
      );
    }
    return true;
  }

  async #removeContainer(ref: PodRef, s: ContainerStatus): Promise<void> {
    this.#stopProber(s.id);
    try {
      await this.client.removeContainer(s.id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.#statusCache.delete(s.id);
    if (s.logPath !== '') await rm(s.logPath, { force: true });
    void ref;
  }

  // ---- probes ----

  #probeTarget(containerId: string, c: SpecContainer, podIP: string): ProbeTarget {
    return {
      containerId,
      podIP,
      ports: arr(c['ports']),
      execSync: (id, cmd, timeout) => this.client.execSync(id, cmd, timeout),
    };
  }

  #ensureProber(pod: KubeObject, c: SpecContainer, s: ContainerStatus, podIP: string): void {
    if (this.#probers.has(s.id)) return;
    if (
      c['startupProbe'] === undefined &&
      c['livenessProbe'] === undefined &&
      c['readinessProbe'] === undefined
    )
      return;
    const ref = podRefOf(pod);
    const name = String(c['name']);
    const id = s.id;
    const prober = new ContainerProber(c, this.#probeTarget(id, c, podIP), nanosToMs(s.startedAt), {
      changed: () => this.#emit(ref),
      failed: (kind, message, fatal) => {
        const what = kind === 'startup' ? 'Startup' : kind === 'liveness' ? 'Liveness' : 'Readiness';
        this.#event(ref, 'Warning', 'Unhealthy', `${what} probe failed: ${message}`, name);
        if (!fatal) return;
        this.#stopProber(id);
        this.#log.info(
          { pod: `${ref.namespace}/${ref.name}`, container: name, probe: kind },
          'probe failed; killing the container',
        );
        this.#event(
          ref,
          'Normal',
          'Killing',
          `Container ${name} failed ${kind} probe, will be restarted`,
          name,
        );
        const probe = obj(c[kind === 'startup' ? 'startupProbe' : 'livenessProbe']);
        const grace =
          typeof probe['terminationGracePeriodSeconds'] === 'number'
            ? probe['terminationGracePeriodSeconds']
            : this.#grace(pod);
        void this.#locked(ref.uid, () => this.#stopContainer(pod, c, id, grace, podIP))
          .catch((err: unknown) =>
            this.#log.warn({ err, container: name }, 'killing an unhealthy container failed'),
          )
          .finally(() => this.#emit(ref));
      },
    });
    this.#probers.set(id, { uid: ref.uid, prober });
  }

  #stopProber(containerId: string): void {
    this.#probers.get(containerId)?.prober.stop();
    this.#probers.delete(containerId);
  }

  // ---- stopping ----

  /** Runs the preStop hook (within the grace period), then stops the container with what is left of it. */
  async #stopContainer(
    pod: KubeObject | undefined,
    c: SpecContainer | undefined,
    id: string,
    graceSeconds: number,
    podIP: string,
  ): Promise<void> {
    this.#stopProber(id);
    const deadline = Date.now() + graceSeconds * 1000;
    const preStop = obj(obj(c?.['lifecycle'])['preStop']);
    if (c !== undefined && Object.keys(preStop).length > 0 && graceSeconds > 0) {
      const r = await runAction(preStop, this.#probeTarget(id, c, podIP), graceSeconds);
      if (!r.ok && pod !== undefined) {
        this.#event(
          podRefOf(pod),
          'Warning',
          'FailedPreStopHook',
          `PreStopHook failed: ${r.message}`,
          String(c['name']),
        );
      }
    }
    // The kubelet gives a container at least 2 s after its preStop hook.
    const left = graceSeconds === 0 ? 0 : Math.max(2, Math.ceil((deadline - Date.now()) / 1000));
    try {
      await this.client.stopContainer(id, left);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.#statusCache.delete(id);
  }

  async #removeSandbox(id: string): Promise<void> {
    for (const c of await this.client.listContainers({ podSandboxId: id })) this.#stopProber(c.id);
    try {
      await this.client.stopPodSandbox(id);
      await this.client.removePodSandbox(id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.#sandboxIPs.delete(id);
  }

  stop(ref: PodRef, gracePeriodSeconds: number): Promise<void> {
    return this.#locked(ref.uid, async () => {
      const pod = this.#pods.get(ref.uid);
      const sandboxes = await this.#sandboxesOf(ref.uid);
      if (sandboxes.length > 0) {
        const specs = [
          ...arr(obj(pod?.['spec'])['containers']),
          ...arr(obj(pod?.['spec'])['initContainers']),
        ];
        const stops: Promise<void>[] = [];
        for (const s of sandboxes) {
          const podIP = s.state === 'SANDBOX_READY' ? ((await this.#podIP(pod, s.id, undefined)) ?? '') : '';
          for (const c of await this.client.listContainers({ podSandboxId: s.id })) {
            if (c.state !== 'CONTAINER_RUNNING') continue;
            const spec = specs.find((x) => x['name'] === c.metadata?.name);
            stops.push(this.#stopContainer(pod, spec, c.id, gracePeriodSeconds, podIP));
          }
        }
        await Promise.all(stops);
        for (const s of sandboxes) await this.#removeSandbox(s.id);
        this.#log.info({ pod: `${ref.namespace}/${ref.name}`, uid: ref.uid }, 'pod stopped and removed');
      }
      await rm(this.#volumeDir(ref.uid), { recursive: true, force: true });
      await rm(this.#logDir(ref), { recursive: true, force: true });
      this.#forget(ref.uid);
    });
  }

  #forget(uid: string): void {
    this.#pods.delete(uid);
    this.#clean.delete(uid);
    for (const [id, p] of this.#probers) if (p.uid === uid) this.#stopProber(id);
    for (const key of [...this.#errors.keys(), ...this.#pullBackoff.keys()]) {
      if (key.startsWith(`${uid}/`)) {
        this.#errors.delete(key);
        this.#pullBackoff.delete(key);
      }
    }
    const wake = this.#wakes.get(uid);
    if (wake !== undefined) clearTimeout(wake);
    this.#wakes.delete(uid);
  }

  // ---- for logs and exec ----

  /**
   * A container of a pod by name: the current run, or with `previous` the run before it (what
   * `kubectl logs --previous` reads). `logPath` is the absolute path of its CRI log file.
   */
  async findContainer(
    pod: PodRef,
    container: string,
    previous = false,
  ): Promise<
    | { readonly id: string; readonly logPath: string; readonly running: boolean; readonly attempt: number }
    | undefined
  > {
    const sandboxes = await this.#sandboxesOf(pod.uid);
    for (const s of sandboxes) {
      const attempts = (await this.#attempts(s.id)).get(container);
      const found = attempts?.[previous ? 1 : 0];
      if (found !== undefined) {
        return {
          id: found.id,
          logPath: found.logPath,
          running: isRunning(found),
          attempt: found.metadata?.attempt ?? 0,
        };
      }
    }
    return undefined;
  }

  // ---- status and list ----

  async status(uid: string): Promise<RuntimePod | undefined> {
    const sandboxes = await this.#sandboxesOf(uid);
    const sandbox = sandboxes.find((s) => s.state === 'SANDBOX_READY') ?? sandboxes[0];
    if (sandbox === undefined) return undefined;
    const pod = this.#pods.get(uid);
    if (pod !== undefined) return this.#observe(pod, sandbox, undefined);
    return (
      await this.#listFrom([sandbox], await this.client.listContainers({ podSandboxId: sandbox.id }))
    )[0];
  }

  async list(): Promise<RuntimePod[]> {
    const [sandboxes, containers] = await Promise.all([
      this.client.listPodSandbox({ labelSelector: { [LABEL_MANAGED]: 'true' } }),
      this.client.listContainers({ labelSelector: { [LABEL_MANAGED]: 'true' } }),
    ]);
    return this.#listFrom(sandboxes, containers);
  }

  /** Pods from list calls alone (no per-container status): enough to find and stop them. */
  async #listFrom(sandboxes: PodSandbox[], containers: Container[]): Promise<RuntimePod[]> {
    const pods = new Map<string, RuntimePod>();
    for (const s of sandboxes) {
      const uid = s.labels[LABEL_POD_UID] ?? s.metadata?.uid ?? '';
      if (pods.has(uid) && s.state !== 'SANDBOX_READY') continue;
      const own = containers.filter((c) => c.podSandboxId === s.id);
      pods.set(uid, {
        uid,
        namespace: s.labels[LABEL_POD_NAMESPACE] ?? s.metadata?.namespace ?? '',
        name: s.labels[LABEL_POD_NAME] ?? s.metadata?.name ?? '',
        podIP: this.#sandboxIPs.get(s.id),
        startedAt: nanosToRfc3339(s.createdAt) ?? rfc3339(Date.now()),
        sandboxReady: s.state === 'SANDBOX_READY',
        containers: own.map((c) => ({
          name: c.metadata?.name ?? '',
          image: c.image?.image ?? '',
          imageID: c.imageRef,
          containerID: `containerd://${c.id}`,
          ready: c.state === 'CONTAINER_RUNNING',
          started: c.state === 'CONTAINER_RUNNING',
          restartCount: c.metadata?.attempt ?? 0,
          state:
            c.state === 'CONTAINER_RUNNING'
              ? { running: { startedAt: nanosToRfc3339(c.createdAt) ?? rfc3339(Date.now()) } }
              : c.state === 'CONTAINER_CREATED'
                ? { waiting: { reason: 'ContainerCreating' } }
                : { terminated: { exitCode: 0, reason: 'Unknown', finishedAt: rfc3339(Date.now()) } },
        })),
      });
    }
    return [...pods.values()];
  }

  /** The kubelet's PLEG: notices containers that changed state and wakes their pods. */
  async #relist(): Promise<void> {
    if (this.#relisting || this.#closed) return;
    this.#relisting = true;
    try {
      const containers = await this.client.listContainers({ labelSelector: { [LABEL_MANAGED]: 'true' } });
      const seen = new Map<string, string>();
      const changed = new Map<string, PodRef>();
      for (const c of containers) {
        seen.set(c.id, c.state);
        if (this.#seen.get(c.id) !== c.state) {
          const uid = c.labels[LABEL_POD_UID] ?? '';
          changed.set(uid, {
            uid,
            namespace: c.labels[LABEL_POD_NAMESPACE] ?? '',
            name: c.labels[LABEL_POD_NAME] ?? '',
          });
          if (c.state !== 'CONTAINER_RUNNING') this.#stopProber(c.id);
        }
      }
      for (const id of this.#seen.keys()) {
        if (!seen.has(id)) {
          this.#stopProber(id);
          this.#statusCache.delete(id);
        }
      }
      this.#seen = seen;
      for (const ref of changed.values()) if (ref.uid !== '') this.#emit(ref);
    } catch (err) {
      this.#log.warn({ err: errorMessage(err) }, 'relisting the container runtime failed');
    } finally {
      this.#relisting = false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#relistTimer);
    for (const t of this.#wakes.values()) clearTimeout(t);
    this.#wakes.clear();
    for (const id of [...this.#probers.keys()]) this.#stopProber(id);
    // Containers keep running: a restarted agent adopts them.
    await Promise.allSettled([...this.#locks.values()]);
    this.client.close();
  }
}
