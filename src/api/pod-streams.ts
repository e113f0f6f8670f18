/**
 * What `kubectl logs` and `kubectl exec` ask of a pod's node, as plain types shared by the API server (which
 * parses the request), the hub (which carries it over the node's tunnel) and the agent's runtime (which
 * serves it). No I/O here: the stream types are only named.
 */

/** What `kubectl logs` asks for (the query of GET pods/NAME/log). */
export interface LogOptions {
  readonly container: string;
  readonly follow: boolean;
  readonly previous: boolean;
  readonly timestamps: boolean;
  /** Only the last N lines. */
  readonly tailLines?: number;
  /** Only lines written at or after this time (from sinceSeconds or sinceTime). */
  readonly since?: Date;
  /** Stop after this many bytes. */
  readonly limitBytes?: number;
}

/** What `kubectl exec` asks for (the query of pods/NAME/exec). */
export interface ExecOptions {
  readonly container: string;
  readonly command: readonly string[];
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly tty: boolean;
}

/** The streams of one exec session; absent ones were not asked for. stdout carries the merged output with a tty. */
export interface ExecIO {
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
  /** Terminal size changes (tty only). */
  readonly resize?: AsyncIterable<{ readonly width: number; readonly height: number }>;
}

/** Which pod, on which node: what the API server resolved from the pod object. */
export interface PodStreamTarget {
  readonly node: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

/**
 * Logs and exec of a pod on whichever node runs it (the hub's tunnel on the server). Failures are ApiErrors
 * (a node that is not connected, a runtime that runs no containers, a container that does not exist).
 */
export interface PodStreamer {
  logs(
    target: PodStreamTarget,
    options: LogOptions,
    out: NodeJS.WritableStream,
    signal: AbortSignal,
  ): Promise<void>;
  exec(
    target: PodStreamTarget,
    options: ExecOptions,
    io: ExecIO,
    signal: AbortSignal,
  ): Promise<{ readonly exitCode: number }>;
}
