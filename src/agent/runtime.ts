/**
 * The seam between the pod manager and whatever runs containers. Today: the `fake` runtime (marks pods
 * running, runs nothing). Later: CRI (containerd) behind the same interface. Designed like the kubelet's
 * view of a runtime: the pod manager owns desired state and calls start/stop; the runtime reports what
 * actually runs, keyed by pod uid, and must be idempotent (start of a running uid returns its state; stop
 * of an unknown uid is a no-op), because the pod manager retries after crashes and restarts.
 */
import type { KubeObject } from '../api/meta.ts';
import type { ExecIO, ExecOptions, LogOptions } from '../api/pod-streams.ts';

export type ContainerState =
  | { readonly running: { readonly startedAt: string } }
  | { readonly waiting: { readonly reason: string; readonly message?: string } }
  | {
      readonly terminated: {
        readonly exitCode: number;
        readonly reason: string;
        readonly startedAt?: string;
        readonly finishedAt: string;
      };
    };

/** One container as the runtime sees it (the shape of core/v1 ContainerStatus). */
export interface RuntimeContainer {
  readonly name: string;
  readonly image: string;
  readonly imageID: string;
  readonly containerID: string;
  readonly ready: boolean;
  readonly started: boolean;
  readonly restartCount: number;
  readonly state: ContainerState;
}

/** A pod sandbox and its containers as the runtime sees them. */
export interface RuntimePod {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly podIP: string | undefined;
  /** RFC 3339 time the sandbox started. */
  readonly startedAt: string;
  /** Containers in spec order (init containers are not listed once done). */
  readonly containers: readonly RuntimeContainer[];
}

/** Which pod: enough to stop it even when the object is gone. */
export interface PodRef {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
}

export interface PodRuntime {
  /** Short name, e.g. 'fake' or 'cri'. */
  readonly name: string;
  /** What Node.status.nodeInfo.containerRuntimeVersion shows, e.g. 'fake://0.1'. */
  readonly version: string;
  /** Starts the pod (sandbox and containers); idempotent per uid. */
  start(pod: KubeObject): Promise<RuntimePod>;
  /** Stops and removes the pod; no-op for an unknown uid. */
  stop(pod: PodRef, gracePeriodSeconds: number): Promise<void>;
  status(uid: string): Promise<RuntimePod | undefined>;
  list(): Promise<RuntimePod[]>;
  close(): Promise<void>;
}

export type { ExecIO, ExecOptions, LogOptions } from '../api/pod-streams.ts';

/**
 * The streaming half of a runtime, carried from kubectl over the hub's tunnel to the node: logs and exec
 * (`kubectl cp` is exec of tar). A runtime that runs nothing (fake) does not implement it, and the API
 * answers such requests with a clear error instead.
 */
export interface StreamingRuntime {
  /** Writes the container's log to `out` (following until `signal` aborts when asked to). */
  logs(pod: PodRef, options: LogOptions, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void>;
  /** Runs a command in the container; resolves with its exit code once it ends. */
  exec(
    pod: PodRef,
    options: ExecOptions,
    io: ExecIO,
    signal: AbortSignal,
  ): Promise<{ readonly exitCode: number }>;
}

export function isStreamingRuntime(runtime: PodRuntime): runtime is PodRuntime & StreamingRuntime {
  const r = runtime as Partial<StreamingRuntime>;
  return typeof r.logs === 'function' && typeof r.exec === 'function';
}
