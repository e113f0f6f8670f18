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
 *   hub   → status-ack {seq}                      (every status up to seq is written to the API)
 *   agent → heartbeat {}                          (tiny; the hub renews the node's Lease)
 *   either → error {code, message}                (then close; except `forbidden`: an item was refused,
 *                                                  the session goes on)
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
}

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

export interface StatusAck {
  readonly type: 'status-ack';
  readonly seq: number;
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

export type AgentMessage = Hello | Ack | StatusBatch | Heartbeat | ErrorMessage;
export type HubMessage = Welcome | Batch | StatusAck | ErrorMessage;
export type Message = AgentMessage | HubMessage;
