/**
 * The cloud↔edge protocol: one WebSocket per node (path HUB_PATH on the server's TLS port, mTLS with the
 * node's client certificate), one JSON message per text frame. Defined here once; the hub (server) and the
 * agent both import it. Every frame is parsed with `decodeMessage` (never trust a peer).
 *
 * Session:
 *   agent → hello {node, revision, inventory}     (inventory: every object the agent holds, [key, revision])
 *   hub   → welcome {serverRevision}
 *   hub   → batch {seq, revision, items}          (first the diff against the inventory, then live changes)
 *   agent → ack {seq, revision}                   (cumulative: every batch up to seq is applied and durable)
 *   agent → status {seq, items}                   (from the durable outbox, in order)
 *   hub   → status-ack {seq, written?}            (every status up to seq is written to the API; written:
 *                                                  [key, from, to] for each pod or node status the API now
 *                                                  holds at revision `to`, the object otherwise being the
 *                                                  `from` the agent has: the agent applies its own status
 *                                                  at `to` instead of the hub sending the object back down)
 *   agent → heartbeat {}                          (tiny; the hub renews the node's Lease)
 *   either → error {code, message}                (then close; except `forbidden`: an item was refused,
 *                                                  the session goes on)
 *
 * Streams (kubectl logs / exec / cp), multiplexed over the same WebSocket:
 *   hub   → stream-open {id, pod, request}         (id: per session, from 1, increasing; request: logs|exec)
 *   agent → binary data frames (stdout, stderr)    (layout below; at most the window the hub granted)
 *   hub   → binary data frames (stdin), eof        (at most the window the agent granted)
 *   either → stream-window {id, bytes}             (credit: the peer may send that many more data bytes)
 *   hub   → stream-resize {id, width, height}      (exec with a tty)
 *   hub   → stream-cancel {id}                     (kubectl went away: stop, then answer stream-close)
 *   agent → stream-close {id, exitCode?, error?}   (the end: after every data frame of the stream)
 * Each side starts every stream with STREAM_WINDOW_BYTES of credit for the other, and grants more only
 * after it handed the bytes on (to kubectl, to the process): memory per stream is bounded by the window,
 * whatever the speed of either end. Frames of a stream that already ended are dropped (they may cross a
 * cancel); a frame for an id never opened, or beyond the credit, is a protocol violation.
 */

export const PROTOCOL_VERSION = 1;
export const HUB_PATH = '/kedge/hub/v1';
/** Node bootstrap endpoints on the same port: the CA (public) and the CSR signing (join token as bearer). */
export const JOIN_CA_PATH = '/kedge/join/v1/ca';
export const JOIN_CSR_PATH = '/kedge/join/v1/csr';
/** Certificate renewal with the current client certificate (no token). */
export const RENEW_CSR_PATH = '/kedge/join/v1/renew';

/**
 * Body of POST JOIN_CSR_PATH (JSON, with `Authorization: Bearer <join token>`) and of POST RENEW_CSR_PATH
 * (JSON, authenticated by the node's current client certificate). The CSR's subject must be
 * CN=system:node:<nodeName>, O=system:nodes. GET JOIN_CA_PATH answers the CA certificate as PEM text.
 */
export interface JoinRequest {
  readonly nodeName: string;
  readonly csrPem: string;
  /** Labels for the Node object the server creates on first join (`--node-labels`). */
  readonly labels?: Readonly<Record<string, string>>;
}

/** Answer (JSON, 200) to JOIN_CSR_PATH and RENEW_CSR_PATH. Errors are JSON `{ message }` with 400/401/403/409. */
export interface JoinResponse {
  /** The node's client certificate (about one year). */
  readonly certPem: string;
  readonly caPem: string;
}
/** Largest frame either side accepts (bytes). */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;

/** Key of an object in the sync: `<group or core>/<plural>/<namespace>/<name>` (namespace '' for cluster scope). */
export type SyncKey = string;

export function syncKey(group: string, plural: string, namespace: string | undefined, name: string): SyncKey {
  return `${group === '' ? 'core' : group}/${plural}/${namespace ?? ''}/${name}`;
}

export function parseSyncKey(
  key: SyncKey,
): { group: string; plural: string; namespace: string | undefined; name: string } | undefined {
  const parts = key.split('/');
  if (parts.length !== 4 || parts.some((p, i) => p === '' && i !== 2)) return undefined;
  const [group, plural, namespace, name] = parts as [string, string, string, string];
  return {
    group: group === 'core' ? '' : group,
    plural,
    namespace: namespace === '' ? undefined : namespace,
    name,
  };
}

export interface Hello {
  readonly type: 'hello';
  readonly v: number;
  readonly node: string;
  /** Highest revision of any batch the agent applied (0 on first contact). */
  readonly revision: number;
  /** Everything the agent holds: [key, revision]. The hub sends only what differs (deletes included). */
  readonly inventory: ReadonlyArray<readonly [SyncKey, number]>;
  readonly agentVersion?: string;
  /** What the agent understands beyond version 1 (unknown names are ignored). */
  readonly features?: readonly AgentFeature[];
}

/** Optional parts of the protocol an agent announces in its hello. */
export const AgentFeatures = {
  /** The agent applies `written` of a status-ack to its local copies (see StatusAck). */
  statusWriteBack: 'status-write-back',
} as const;
export type AgentFeature = (typeof AgentFeatures)[keyof typeof AgentFeatures];

export interface Welcome {
  readonly type: 'welcome';
  readonly v: number;
  readonly serverRevision: number;
  /** Heartbeat interval the hub expects, in seconds. */
  readonly heartbeatSeconds: number;
}

export type SyncItem =
  | { readonly key: SyncKey; readonly revision: number; readonly object: Record<string, unknown> }
  | { readonly key: SyncKey; readonly revision: number; readonly deleted: true };

export interface Batch {
  readonly type: 'batch';
  /** Per-session sequence number, from 1. */
  readonly seq: number;
  /** Highest object revision in this batch. */
  readonly revision: number;
  /** At most one item per key; apply all in one transaction. */
  readonly items: readonly SyncItem[];
}

export interface Ack {
  readonly type: 'ack';
  readonly seq: number;
  readonly revision: number;
}

/** One upstream record: a status (or event) the agent produced. */
export type StatusItem =
  | { readonly kind: 'NodeStatus'; readonly name: string; readonly status: Record<string, unknown> }
  | {
      readonly kind: 'PodStatus';
      readonly namespace: string;
      readonly name: string;
      readonly uid: string;
      readonly status: Record<string, unknown>;
    }
  | { readonly kind: 'Event'; readonly namespace: string; readonly event: Record<string, unknown> }
  | {
      readonly kind: 'DeviceStatus';
      readonly namespace: string;
      readonly name: string;
      readonly status: Record<string, unknown>;
    }
  | { readonly kind: 'PodDeleted'; readonly namespace: string; readonly name: string; readonly uid: string };

export interface StatusBatch {
  readonly type: 'status';
  /** Outbox sequence number of the last item (durable: survives agent restarts, only grows). */
  readonly seq: number;
  readonly items: readonly StatusItem[];
}

/**
 * A status the hub wrote and need not send back: the object at `from` (what the agent holds) with the
 * status the agent sent is the API's object at revision `to`.
 */
export type WrittenStatus = readonly [key: SyncKey, from: number, to: number];

export interface StatusAck {
  readonly type: 'status-ack';
  readonly seq: number;
  /** Only to agents that announced status-write-back; absent when empty. */
  readonly written?: readonly WrittenStatus[];
}

export interface Heartbeat {
  readonly type: 'heartbeat';
}

export const ProtocolErrorCodes = [
  'bad-frame',
  'too-large',
  'unauthorized',
  'forbidden',
  'version',
  'internal',
  'replaced',
] as const;
export type ProtocolErrorCode = (typeof ProtocolErrorCodes)[number];

export interface ErrorMessage {
  readonly type: 'error';
  readonly code: ProtocolErrorCode;
  readonly message: string;
}

// ---- streams ----

/** Data bytes either side may send on one stream before the peer grants more. */
export const STREAM_WINDOW_BYTES = 256 * 1024;
/** Largest payload of one binary data frame. */
export const STREAM_CHUNK_BYTES = 32 * 1024;
/** Streams open at once on one session (more are refused with TooManyStreams). */
export const MAX_STREAMS_PER_SESSION = 64;

/** The pod a stream is about; the agent checks it holds this pod (same uid), bound to itself. */
export interface StreamPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export type StreamRequest =
  | {
      readonly kind: 'logs';
      readonly container: string;
      readonly follow: boolean;
      readonly previous: boolean;
      readonly timestamps: boolean;
      readonly tailLines?: number;
      /** RFC 3339 time: only lines written at or after it. */
      readonly sinceTime?: string;
      readonly limitBytes?: number;
    }
  | {
      readonly kind: 'exec';
      readonly container: string;
      readonly command: readonly string[];
      readonly stdin: boolean;
      readonly stdout: boolean;
      readonly stderr: boolean;
      readonly tty: boolean;
    };

export interface StreamOpen {
  readonly type: 'stream-open';
  readonly id: number;
  readonly pod: StreamPod;
  readonly request: StreamRequest;
}

export interface StreamWindow {
  readonly type: 'stream-window';
  readonly id: number;
  readonly bytes: number;
}

export interface StreamResize {
  readonly type: 'stream-resize';
  readonly id: number;
  readonly width: number;
  readonly height: number;
}

export interface StreamCancel {
  readonly type: 'stream-cancel';
  readonly id: number;
}

/** Why a stream failed, close to the Status reason the API answers with. */
export const StreamErrorReasons = [
  'NotFound',
  'BadRequest',
  'Unsupported',
  'TooManyStreams',
  'InternalError',
] as const;
export type StreamErrorReason = (typeof StreamErrorReasons)[number];

export interface StreamClose {
  readonly type: 'stream-close';
  readonly id: number;
  /** Exec: the command's exit code. */
  readonly exitCode?: number;
  readonly error?: { readonly reason: StreamErrorReason; readonly message: string };
}

/**
 * Binary frame layout (a WebSocket binary message; text frames stay JSON):
 *   byte 0     kind: 1 data, 2 eof (end of the hub's stdin; no payload)
 *   bytes 1-4  stream id, unsigned 32-bit big-endian, >= 1
 *   byte 5     channel: 0 stdin (hub → agent), 1 stdout, 2 stderr (agent → hub)
 *   bytes 6-   payload: data frames carry 1 to STREAM_CHUNK_BYTES bytes
 */
export const STREAM_FRAME_HEADER_BYTES = 6;
export const StreamChannels = { stdin: 0, stdout: 1, stderr: 2 } as const;
export type StreamChannel = (typeof StreamChannels)[keyof typeof StreamChannels];

export interface StreamFrame {
  readonly kind: 'data' | 'eof';
  readonly id: number;
  readonly channel: StreamChannel;
  readonly payload: Buffer;
}

export type AgentMessage = Hello | Ack | StatusBatch | Heartbeat | ErrorMessage | StreamWindow | StreamClose;
export type HubMessage =
  | Welcome
  | Batch
  | StatusAck
  | ErrorMessage
  | StreamOpen
  | StreamWindow
  | StreamResize
  | StreamCancel;
export type Message = AgentMessage | HubMessage;
