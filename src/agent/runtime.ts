/**
 * The seam between the pod manager and whatever runs containers: the `fake` runtime (marks pods running,
 * runs nothing) and CRI (containerd, CRI-O) behind the same interface. Designed like the kubelet's view of
 * a runtime: the pod manager owns desired state and calls sync/stop; the runtime brings a pod to its spec
 * (sandbox, init containers, containers, restarts, probes) and reports what actually runs, keyed by pod
 * uid. Both calls are idempotent (sync of a running pod changes nothing; stop of an unknown uid is a
 * no-op), because the pod manager retries after crashes and restarts.
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
        readonly message?: string;
        readonly startedAt?: string;
        readonly finishedAt: string;
        readonly containerID?: string;
      };
    };

/** One container as the runtime sees it (the shape of core/v1 ContainerStatus). */
export interface RuntimeContainer {
  readonly name: string;
  readonly image: string;
  readonly imageID: string;
  /** `containerd://ID`; '' while no container was created yet. */
  readonly containerID: string;
  readonly ready: boolean;
  readonly started: boolean;
  readonly restartCount: number;
  readonly state: ContainerState;
  /** The previous run of this container (the terminated state before the last restart). */
  readonly lastState?: ContainerState;
}

/** A pod sandbox and its containers as the runtime sees them. */
export interface RuntimePod {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly podIP: string | undefined;
  /** RFC 3339 time the sandbox started. */
  readonly startedAt: string;
  /** App containers in spec order. */
  readonly containers: readonly RuntimeContainer[];
  /** Init containers in spec order (absent: the runtime does not run them; fake). */
  readonly initContainers?: readonly RuntimeContainer[];
  /** Every init container finished successfully (absent: true). */
  readonly initialized?: boolean;
  /** The sandbox runs and has its network (absent: true). */
  readonly sandboxReady?: boolean;
}

/** Which pod: enough to stop it even when the object is gone. */
export interface PodRef {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
}

/** What a runtime needs from the node to start a pod: the objects it references, from the local store. */
export interface PodContext {
  readonly nodeName: string;
  readonly hostIP: string;
  /** A ConfigMap or Secret of the pod's namespace, or undefined when the node does not hold it. */
  lookup(plural: 'configmaps' | 'secrets', namespace: string, name: string): KubeObject | undefined;
}

export interface PodRuntime {
  /** Short name, e.g. 'fake' or 'cri'. */
  readonly name: string;
  /** What Node.status.nodeInfo.containerRuntimeVersion shows, e.g. 'fake://0.1' or 'containerd://1.6.20'. */
  readonly version: string;
  /** Brings the pod to its spec (sandbox, containers, restarts) and returns what runs; idempotent per uid. */
  sync(pod: KubeObject, context: PodContext): Promise<RuntimePod>;
  /** Stops and removes the pod; no-op for an unknown uid. */
  stop(pod: PodRef, gracePeriodSeconds: number): Promise<void>;
  status(uid: string): Promise<RuntimePod | undefined>;
  list(): Promise<RuntimePod[]>;
  /**
   * Hears pods whose state changed inside the runtime (a container exited, a probe flipped, a back-off
   * ended): the pod manager syncs them again. Returns the unsubscribe function. Optional: fake has none.
   */
  watch?(listener: (pod: PodRef) => void): () => void;
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
