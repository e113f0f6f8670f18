/**
 * The hub: one WebSocket session per edge node (mTLS, CN system:node:<name>). Downstream it keeps, per
 * node, the relevant set (NodeGraph) and a coalescing pending queue (one entry per key, a delete replaces a
 * put), sent as batches with a bounded number unacknowledged. On (re)connect the agent's inventory
 * [key, revision] is diffed against the relevant set, so only what differs is sent, deletes included.
 * Upstream it writes status batches to the API, only for what the node owns, and acknowledges after the
 * writes. Heartbeats renew the node's Lease, at most every leaseRenewSeconds.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { deviceNodeName } from '../api/devices.ts';
import { isPlainObject, type KubeObject } from '../api/meta.ts';
import type { PodStreamer } from '../api/pod-streams.ts';
import { isApiError } from '../api/status-error.ts';
import type { InformerFactory } from '../client/informer.ts';
import { modifyObject } from '../client/modify.ts';
import { type Cluster, type ResourceRef, Resources } from '../client/types.ts';
import type { Logger } from '../lib/log.ts';
import { decodeAgentMessage, decodeStreamFrame, encodeMessage, protocolCodeOf } from '../protocol/codec.ts';
import {
  AgentFeatures,
  type AgentMessage,
  type Hello,
  HUB_PATH,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  type ProtocolErrorCode,
  type StatusAck,
  type StatusBatch,
  type StatusItem,
  type SyncItem,
  type SyncKey,
  syncKey,
  type WrittenStatus,
} from '../protocol/messages.ts';

/** What a status batch's writes came to. */
export interface StatusWriteResult {
  /** Refusals of items the node may not write (sent to the agent as `forbidden` errors). */
  readonly forbidden: readonly string[];
  readonly written: readonly WrittenStatus[];
}

import { type NodeIdentity, nodeIdentity } from './identity.ts';
import type { NodeRegistry } from './node-registry.ts';
import { publicKeyFingerprint } from './node-registry.ts';
import {
  deviceModelKey,
  keyOf,
  NodeGraph,
  nodeKey,
  podNodeName,
  podReferences,
  revisionOf,
  SYNCED,
  SYNCED_DEVICES,
} from './relevance.ts';
import { podStreamer, Tunnel, TunnelViolation } from './tunnel.ts';

export interface HubOptions {
  readonly cluster: Cluster;
  /** Shared informers; start the factory after creating the hub. */
  readonly informers: InformerFactory;
  readonly logger: Logger;
  /** Where the kedge_edge_* metrics are registered. */
  readonly metrics?: Registry;
  /** When given, a node's certificate must be for the key that owns its name. */
  readonly registry?: NodeRegistry;
  /** Heartbeat interval told to agents (default 10 s); a session silent for 3 intervals is closed. */
  readonly heartbeatSeconds?: number;
  /**
   * Least time between two Lease renewals of one node (default 20 s: half the Lease's 40 s, where a kubelet
   * renews every 10 s; at idle each renewal is a store write and a watch event, the largest part of the
   * hub's cost per node).
   */
  readonly leaseRenewSeconds?: number;
  /** Batch limits (default 500 items, 1 MiB) and batches in flight per node (default 4). */
  readonly batchItems?: number;
  readonly batchBytes?: number;
  readonly maxUnackedBatches?: number;
  /** Seconds the agent has to send hello (default 30). */
  readonly helloTimeoutSeconds?: number;
  /** Sync Devices (by spec.nodeName) and their DeviceModels, and write DeviceStatus items (needs the device CRDs). */
  readonly devices?: boolean;
  /** Where DeviceStatus items go instead of the built-in writer; without either they are dropped. */
  readonly deviceStatus?: (
    node: string,
    item: Extract<StatusItem, { kind: 'DeviceStatus' }>,
  ) => Promise<void>;
  readonly now?: () => number;
}

const LEASE_NAMESPACE = 'kube-node-lease';
const LEASE_DURATION_SECONDS = 40;
/** Lease renewals due within this window are written together. */
const LEASE_BATCH_MS = 500;
const MAX_STATUS_IN_FLIGHT = 4;
const FRAME_OVERHEAD = 256;

interface Resolved {
  readonly heartbeatSeconds: number;
  readonly leaseRenewMs: number;
  readonly batchItems: number;
  readonly batchBytes: number;
  readonly maxUnacked: number;
  readonly helloTimeoutMs: number;
  readonly now: () => number;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0)
    throw new TypeError(`Hub option ${name} must be > 0, got ${value}`);
  return value;
}

function resolve(o: HubOptions): Resolved {
  return {
    heartbeatSeconds: Math.round(positive('heartbeatSeconds', o.heartbeatSeconds, 10)),
    leaseRenewMs: positive('leaseRenewSeconds', o.leaseRenewSeconds, 20) * 1000,
    batchItems: Math.round(positive('batchItems', o.batchItems, 500)),
    batchBytes: Math.min(positive('batchBytes', o.batchBytes, 1024 * 1024), MAX_FRAME_BYTES - FRAME_OVERHEAD),
    maxUnacked: Math.round(positive('maxUnackedBatches', o.maxUnackedBatches, 4)),
    helloTimeoutMs: positive('helloTimeoutSeconds', o.helloTimeoutSeconds, 30) * 1000,
    now: o.now ?? Date.now,
  };
}

/** A failure that ends a session with a protocol error. */
class SessionError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

/** Bytes to and from one node, added up per message and read by the byte counters when scraped. */
interface NodeBytes {
  sent: number;
  received: number;
}

export class Hub {
  readonly #cluster: Cluster;
  readonly #log: Logger;
  readonly #o: Resolved;
  readonly #registry: NodeRegistry | undefined;
  readonly #deviceStatus: HubOptions['deviceStatus'];
  readonly #devices: boolean;
  readonly graph: NodeGraph;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Map<string, Session>();
  readonly #certExpiry = new Map<string, Date>();
  readonly #lastLeaseRenew = new Map<string, number>();
  /** Nodes whose Lease renewal waits for the next batch. */
  readonly #leaseDue = new Set<string>();
  #leaseTimer: NodeJS.Timeout | undefined;
  /** Highest status seq written per node: a resend after a lost ack is acknowledged without writing. */
  readonly #statusSeq = new Map<string, number>();
  readonly #background = new Set<Promise<void>>();
  /** Bytes to and from each node (read by the byte counters when /metrics is scraped). */
  readonly #bytes = new Map<string, NodeBytes>();
  /** kubectl logs / exec / cp of pods, carried over the sessions of their nodes. */
  readonly streams: PodStreamer;
  #closed = false;

  constructor(options: HubOptions) {
    this.#cluster = options.cluster;
    this.#log = options.logger;
    this.#o = resolve(options);
    this.#registry = options.registry;
    this.#deviceStatus = options.deviceStatus;
    this.#devices = options.devices === true;
    this.graph = new NodeGraph(options.informers, { devices: this.#devices });
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, clientTracking: false });
    if (options.metrics !== undefined) this.#registerMetrics(options.metrics);
    this.#watchGraph();
    this.streams = podStreamer((node) => {
      const s = this.#sessions.get(node);
      return s?.closed === false ? s.tunnel : undefined;
    });
  }

  /** Nodes with a live session. */
  get connectedNodes(): string[] {
    return [...this.#sessions.keys()];
  }

  /** Pending (not yet sent) items for a node's session, or undefined when it is not connected. */
  queueDepth(node: string): number | undefined {
    return this.#sessions.get(node)?.pending.size;
  }

  /**
   * Takes a WebSocket upgrade on HUB_PATH from a node with a verified client certificate. Returns false for
   * other paths (the caller may hand them to someone else); answers 401/403 itself for bad credentials.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = new URL(req.url ?? '/', 'http://kedge.invalid').pathname;
    if (path !== HUB_PATH) return false;
    const refuse = (status: string, message: string): true => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${message}\n`);
      return true;
    };
    if (this.#closed) return refuse('503 Service Unavailable', 'The hub is shutting down');
    const id = nodeIdentity(req.socket);
    if (id === undefined) {
      return refuse(
        '401 Unauthorized',
        'The hub needs a verified node client certificate (CN system:node:<name>, O system:nodes)',
      );
    }
    const owner = this.#registry?.get(id.node);
    if (owner !== undefined && owner.keyFingerprint !== publicKeyFingerprint(id.certDer)) {
      return refuse(
        '403 Forbidden',
        `The certificate of node ${id.node} is for a key the node no longer owns`,
      );
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, id));
    return true;
  }

  /** Ends every session (error 'internal' is not sent: the close code says the server is going away). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#leaseTimer !== undefined) clearTimeout(this.#leaseTimer);
    this.#leaseTimer = undefined;
    this.#leaseDue.clear();
    for (const s of [...this.#sessions.values()]) s.end(1001, 'hub shutting down');
    this.#sessions.clear();
    await new Promise<void>((ok) => this.#wss.close(() => ok()));
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  #accept(ws: WebSocket, id: NodeIdentity): void {
    this.#certExpiry.set(id.node, id.notAfter);
    const session = new Session(this, ws, id.node, this.#o, this.#log.child({ node: id.node }));
    session.start();
  }

  // ---- used by sessions ----

  /** Called once the session's hello is valid; replaces an older session of the same node. */
  async register(session: Session, hello: Hello): Promise<boolean> {
    await this.graph.synced();
    if (this.#closed || session.closed) return false;
    const old = this.#sessions.get(session.node);
    if (old !== undefined && old !== session)
      old.fail('replaced', 'A newer session of this node replaced this one');
    this.#sessions.set(session.node, session);
    session.begin(hello, this.graph.revision());
    this.heartbeat(session.node);
    return true;
  }

  unregister(session: Session): void {
    if (this.#sessions.get(session.node) === session) this.#sessions.delete(session.node);
  }

  countBytes(node: string, direction: 'sent' | 'received', bytes: number): void {
    // A plain sum per message: a labelled counter hashes its labels on every inc (7 % of the hub's idle time).
    let counts = this.#bytes.get(node);
    if (counts === undefined) {
      counts = { sent: 0, received: 0 };
      this.#bytes.set(node, counts);
    }
    counts[direction] += bytes;
  }

  /**
   * Renews the node's Lease in the background, at most about every leaseRenewMs (a heartbeat a little early,
   * from timer jitter, still counts). Renewals wait up to LEASE_BATCH_MS and go together, so they share one
   * store transaction (group commit) instead of one commit each.
   */
  heartbeat(node: string): void {
    const now = this.#o.now();
    const last = this.#lastLeaseRenew.get(node);
    if (last !== undefined && now - last < this.#o.leaseRenewMs * 0.9) return;
    this.#lastLeaseRenew.set(node, now);
    this.#leaseDue.add(node);
    this.#leaseTimer ??= setTimeout(() => this.#renewDueLeases(), LEASE_BATCH_MS);
  }

  #renewDueLeases(): void {
    this.#leaseTimer = undefined;
    const now = this.#o.now();
    for (const node of this.#leaseDue) {
      this.#track(
        this.#renewLease(node, now).catch((err: unknown) => {
          this.#lastLeaseRenew.delete(node);
          this.#log.warn({ err, node }, 'lease renewal failed');
        }),
      );
    }
    this.#leaseDue.clear();
  }

  #track(p: Promise<void>): void {
    this.#background.add(p);
    void p.finally(() => this.#background.delete(p));
  }

  async #renewLease(node: string, now: number): Promise<void> {
    const ref = Resources.leases;
    const spec = {
      holderIdentity: node,
      leaseDurationSeconds: LEASE_DURATION_SECONDS,
      renewTime: microTime(now),
    };
    try {
      await modifyObject(this.#cluster, ref, LEASE_NAMESPACE, node, (lease) => ({
        ...lease,
        spec: { ...(lease['spec'] as object), ...spec },
      }));
    } catch (err) {
      if (!isApiError(err, 404)) throw err;
      const owner = this.graph.informers.nodes.get(undefined, node);
      const uid = owner?.metadata.uid;
      await this.#cluster.create(ref, LEASE_NAMESPACE, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name: node,
          namespace: LEASE_NAMESPACE,
          ...(uid === undefined
            ? {}
            : { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node, uid }] }),
        },
        spec,
      });
    }
  }

  /** Writes one status batch; returns the errors to report (items dropped). Throws when it must be retried. */
  /**
   * Writes a status batch. `written` lists the pod and node statuses written as the agent sent them onto
   * the object it was reported against (the session may spare the agent that object: see StatusAck).
   */
  async writeStatus(node: string, batch: StatusBatch): Promise<StatusWriteResult> {
    const last = this.#statusSeq.get(node) ?? -1;
    if (batch.seq <= last) return { forbidden: [], written: [] };
    const forbidden: string[] = [];
    const written: WrittenStatus[] = [];
    for (const item of batch.items) {
      const refusal = await this.#writeItem(node, item, written);
      if (refusal !== undefined) forbidden.push(refusal);
    }
    this.#statusSeq.set(node, batch.seq);
    return { forbidden, written };
  }

  /** One upstream item; returns a refusal message when the node may not write it. */
  async #writeItem(node: string, item: StatusItem, written: WrittenStatus[]): Promise<string | undefined> {
    try {
      switch (item.kind) {
        case 'NodeStatus':
          if (item.name !== node) return `Node ${node} cannot write the status of node ${item.name}`;
          await this.#writeNodeStatus(node, item.status, written);
          return undefined;
        case 'PodStatus':
          return await this.#writePodStatus(node, item, written);
        case 'PodDeleted':
          return await this.#confirmPodDeleted(node, item);
        case 'Event':
          return await this.#writeEvent(node, item);
        case 'DeviceStatus':
          if (this.#deviceStatus !== undefined) {
            await this.#deviceStatus(node, item);
            return undefined;
          }
          if (this.#devices) return await this.#writeDeviceStatus(node, item);
          this.#log.debug({ node, item: item.name }, 'device status dropped');
          return undefined;
      }
    } catch (err) {
      // A request the API refuses for its content is dropped, or the agent would resend it forever.
      if (isApiError(err) && err.httpCode >= 400 && err.httpCode < 500 && err.httpCode !== 429) {
        this.#log.warn({ err, node, kind: item.kind }, 'status item refused by the API and dropped');
        return undefined;
      }
      throw err;
    }
  }

  /**
   * Replaces an object's status through the status subresource. `change` returns the status to write
   * (undefined: write nothing). When the API then holds exactly that status on the object it was
   * written onto, [key, from, to] goes to `written`.
   */
  async #updateStatus(
    ref: ResourceRef,
    ns: string | undefined,
    name: string,
    change: (o: KubeObject) => Record<string, unknown> | undefined,
    written: WrittenStatus[] | undefined,
  ): Promise<void> {
    let from = 0;
    let sent: Record<string, unknown> | undefined;
    const result = await modifyObject(
      this.#cluster,
      ref,
      ns,
      name,
      (o) => {
        sent = change(o);
        if (sent === undefined) return undefined;
        from = revisionOf(o);
        return { ...o, status: sent };
      },
      { subresource: 'status' },
    );
    if (result === undefined || written === undefined || sent === undefined) return;
    const to = revisionOf(result);
    if (to > from && from > 0 && JSON.stringify(result['status']) === JSON.stringify(sent))
      written.push([keyOf(ref, result), from, to]);
  }

  async #writeNodeStatus(
    node: string,
    status: Record<string, unknown>,
    written: WrittenStatus[],
  ): Promise<void> {
    try {
      await this.#updateStatus(Resources.nodes, undefined, node, () => status, written);
    } catch (err) {
      if (!isApiError(err, 404)) throw err;
      // The Node was deleted while the agent runs: register it again, as a kubelet does. The agent's copy
      // is gone with it, so the new object goes down in full.
      await this.#cluster.create(Resources.nodes, undefined, {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: node },
      });
      await this.#updateStatus(Resources.nodes, undefined, node, () => status, undefined);
    }
  }

  /** The pod when it is bound to `node` with this uid; a refusal when bound elsewhere; undefined when gone or replaced. */
  async #ownPod(
    node: string,
    ns: string,
    name: string,
    uid: string,
  ): Promise<KubeObject | string | undefined> {
    let pod: KubeObject;
    try {
      pod = await this.#cluster.get(Resources.pods, ns, name);
    } catch (err) {
      if (isApiError(err, 404)) return undefined;
      throw err;
    }
    if (podNodeName(pod) !== node)
      return `Node ${node} cannot write for pod ${ns}/${name}, which is not bound to it`;
    return pod.metadata.uid === uid ? pod : undefined;
  }

  /**
   * Writes the status of an object that must be bound to `node`: a refusal when it is bound elsewhere,
   * nothing when it is gone. `decide` returns the status to write, undefined to leave the object as it is,
   * or a refusal.
   */
  async #writeBoundStatus(
    node: string,
    what: { ref: ResourceRef; kind: string; nodeOf: (o: KubeObject) => string | undefined },
    item: { namespace: string; name: string },
    decide: (o: KubeObject) => Record<string, unknown> | string | undefined,
    written: WrittenStatus[] | undefined,
  ): Promise<string | undefined> {
    let refusal: string | undefined;
    try {
      await this.#updateStatus(
        what.ref,
        item.namespace,
        item.name,
        (o) => {
          const next =
            what.nodeOf(o) === node
              ? decide(o)
              : `Node ${node} cannot write the status of ${what.kind} ${item.namespace}/${item.name}, which is not bound to it`;
          if (typeof next !== 'string') return next;
          refusal = next;
          return undefined;
        },
        written,
      );
    } catch (err) {
      if (!isApiError(err, 404)) throw err;
    }
    return refusal;
  }

  #writePodStatus(
    node: string,
    item: Extract<StatusItem, { kind: 'PodStatus' }>,
    written: WrittenStatus[],
  ): Promise<string | undefined> {
    return this.#writeBoundStatus(
      node,
      { ref: Resources.pods, kind: 'pod', nodeOf: podNodeName },
      item,
      (pod) => (pod.metadata.uid === item.uid ? item.status : undefined),
      written,
    );
  }

  /**
   * Writes a device's twins and state, only when the device is bound to `node` and the report's
   * edgeVersion is above the one the status holds: an older report (a resend, a replay after a restart)
   * never overwrites a newer one. Devices need no write-back: the hub never sends a device's status-only
   * change down.
   */
  #writeDeviceStatus(
    node: string,
    item: Extract<StatusItem, { kind: 'DeviceStatus' }>,
  ): Promise<string | undefined> {
    return this.#writeBoundStatus(
      node,
      { ref: SYNCED_DEVICES.devices, kind: 'device', nodeOf: deviceNodeName },
      item,
      (dev) => {
        const held = isPlainObject(dev['status']) ? Number(dev['status']['edgeVersion'] ?? 0) : 0;
        const incoming = Number(item.status['edgeVersion']);
        if (!Number.isSafeInteger(incoming) || incoming <= 0)
          return `Device status for ${item.namespace}/${item.name} has no positive edgeVersion`;
        if (incoming <= held) {
          this.#log.debug({ node, device: item.name, incoming, held }, 'older device report ignored');
          return undefined;
        }
        return item.status;
      },
      undefined,
    );
  }

  async #confirmPodDeleted(
    node: string,
    item: Extract<StatusItem, { kind: 'PodDeleted' }>,
  ): Promise<string | undefined> {
    const pod = await this.#ownPod(node, item.namespace, item.name, item.uid);
    if (typeof pod === 'string' || pod === undefined) return pod;
    if (pod.metadata.deletionTimestamp === undefined) return undefined;
    try {
      await this.#cluster.delete(Resources.pods, item.namespace, item.name, {
        gracePeriodSeconds: 0,
        preconditions: { uid: item.uid },
      });
    } catch (err) {
      if (!isApiError(err, 404) && !isApiError(err, 409)) throw err;
    }
    return undefined;
  }

  async #writeEvent(node: string, item: Extract<StatusItem, { kind: 'Event' }>): Promise<string | undefined> {
    const event = item.event as KubeObject & { involvedObject?: Record<string, unknown> };
    const inv = event.involvedObject;
    const kind = inv?.['kind'];
    const name = inv?.['name'];
    if (kind === 'Node' && name === node) {
      // Node events live in a namespace of their own choosing (kubelet uses 'default').
    } else if (kind === 'Pod' && typeof name === 'string' && inv?.['namespace'] === item.namespace) {
      const pod = this.graph.informers.pods.get(item.namespace, name);
      const bound = pod !== undefined && podNodeName(pod) === node;
      if (!bound)
        return `Node ${node} cannot record events for pod ${item.namespace}/${name}, which is not bound to it`;
    } else {
      return `Node ${node} can record events only for itself and its pods, not for ${String(kind)} ${String(name)}`;
    }
    const meta = (
      typeof event.metadata === 'object' && event.metadata !== null ? event.metadata : {}
    ) as KubeObject['metadata'];
    const source = { ...(event['source'] as object | undefined), host: node };
    const obj: KubeObject = {
      ...event,
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {
        ...(meta.name === undefined ? { generateName: `${String(name)}.` } : { name: meta.name }),
        namespace: item.namespace,
      },
      source: { component: 'kedge-agent', ...source },
    };
    try {
      await this.#cluster.create(Resources.events, item.namespace, obj);
    } catch (err) {
      if (!isApiError(err, 409)) throw err; // a resend of an event already written
    }
    return undefined;
  }

  // ---- informer handlers: map each change to the sessions it concerns ----

  #watchGraph(): void {
    const inf = this.graph.informers;
    const live = (fn: () => void): void => {
      if (!this.#closed) fn();
    };
    inf.nodes.onAdd((n) =>
      live(() => this.#sessions.get(n.metadata.name ?? '')?.put(keyOf(SYNCED.nodes, n), n)),
    );
    inf.nodes.onUpdate((_o, n) =>
      live(() => this.#sessions.get(n.metadata.name ?? '')?.put(keyOf(SYNCED.nodes, n), n)),
    );
    inf.nodes.onDelete((n) =>
      live(() => this.#sessions.get(n.metadata.name ?? '')?.del(keyOf(SYNCED.nodes, n), revisionOf(n))),
    );
    const sessionOf = (pod: KubeObject): Session | undefined => {
      const n = podNodeName(pod);
      return n === undefined ? undefined : this.#sessions.get(n);
    };
    inf.pods.onAdd((p) => live(() => sessionOf(p)?.addPod(p)));
    inf.pods.onUpdate((o, p) =>
      live(() => {
        if (podNodeName(o) === podNodeName(p)) sessionOf(p)?.addPod(p);
        else {
          sessionOf(o)?.removePod(o, revisionOf(p));
          sessionOf(p)?.addPod(p);
        }
      }),
    );
    inf.pods.onDelete((p) => live(() => sessionOf(p)?.removePod(p, revisionOf(p))));
    const dev = this.graph.devices;
    if (dev !== undefined) {
      const sessionOfDevice = (d: KubeObject): Session | undefined => {
        const n = deviceNodeName(d);
        return n === undefined ? undefined : this.#sessions.get(n);
      };
      dev.devices.onAdd((d) => live(() => sessionOfDevice(d)?.addDevice(d)));
      dev.devices.onUpdate((o, d) =>
        live(() => {
          if (deviceNodeName(o) !== deviceNodeName(d)) sessionOfDevice(o)?.removeDevice(o, revisionOf(d));
          // A status write (the node's own report) is not sent back down: the node's twin is newer. The
          // node gets the current object with its next spec change or on reconnect (inventory diff).
          else if (onlyStatusChanged(o, d)) return;
          sessionOfDevice(d)?.addDevice(d);
        }),
      );
      dev.devices.onDelete((d) => live(() => sessionOfDevice(d)?.removeDevice(d, revisionOf(d))));
      const modelSessions = (key: SyncKey): Session[] => {
        const out = new Set<Session>();
        for (const d of this.graph.devicesReferencing(key)) {
          const s = sessionOfDevice(d);
          if (s !== undefined) out.add(s);
        }
        return [...out];
      };
      const ref = SYNCED_DEVICES.devicemodels;
      const changed = (m: KubeObject): void =>
        live(() => {
          const key = keyOf(ref, m);
          for (const s of modelSessions(key)) s.refChanged(key, m);
        });
      dev.devicemodels.onAdd(changed);
      dev.devicemodels.onUpdate((_o, m) => changed(m));
      dev.devicemodels.onDelete((m) =>
        live(() => {
          const key = keyOf(ref, m);
          for (const s of modelSessions(key)) s.refDeleted(key, revisionOf(m));
        }),
      );
    }
    for (const kind of ['configmaps', 'secrets', 'serviceaccounts'] as const) {
      const ref = SYNCED[kind];
      const nodesOf = (key: SyncKey): Session[] => {
        const out = new Set<Session>();
        for (const pod of this.graph.podsReferencing(key)) {
          const s = sessionOf(pod);
          if (s !== undefined) out.add(s);
        }
        return [...out];
      };
      const changed = (obj: KubeObject): void =>
        live(() => {
          const key = keyOf(ref, obj);
          for (const s of nodesOf(key)) s.refChanged(key, obj);
        });
      inf[kind].onAdd(changed);
      inf[kind].onUpdate((_o, n) => changed(n));
      inf[kind].onDelete((obj) =>
        live(() => {
          const key = keyOf(ref, obj);
          for (const s of nodesOf(key)) s.refDeleted(key, revisionOf(obj));
        }),
      );
    }
  }

  #registerMetrics(registry: Registry): void {
    const bytes = this.#bytes;
    const sessions = this.#sessions;
    const graph = this.graph;
    const certExpiry = this.#certExpiry;
    const now = this.#o.now;
    new Gauge({
      name: 'kedge_edge_node_status',
      help: 'Edge node state: connected (a hub session is open) and ready (the Node reports Ready)',
      labelNames: ['node', 'state'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const n of graph.informers.nodes.list()) {
          const name = n.metadata.name ?? '';
          const conditions = (
            n['status'] as { conditions?: Array<{ type?: string; status?: string }> } | undefined
          )?.conditions;
          const ready = conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
          this.set({ node: name, state: 'connected' }, sessions.has(name) ? 1 : 0);
          this.set({ node: name, state: 'ready' }, ready ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'kedge_certificate_expiry_days',
      help: 'Days until the client certificate an edge node last connected with expires',
      labelNames: ['node'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [node, at] of certExpiry) this.set({ node }, (at.getTime() - now()) / 86_400_000);
      },
    });
    new Gauge({
      name: 'kedge_edge_queue_depth',
      help: 'Objects waiting to be sent to an edge node (coalesced: at most one per object)',
      labelNames: ['node'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [node, s] of sessions) this.set({ node }, s.pending.size);
      },
    });
    for (const direction of ['sent', 'received'] as const) {
      new Counter({
        name: `kedge_edge_bytes_${direction}_total`,
        help:
          direction === 'sent'
            ? 'Bytes the hub sent to an edge node'
            : 'Bytes the hub received from an edge node',
        labelNames: ['node'] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const [node, counts] of bytes) this.inc({ node }, counts[direction]);
        },
      });
    }
  }
}

/** One node's connection: handshake, downstream queue, upstream writes. */
class Session {
  readonly node: string;
  readonly pending = new Map<SyncKey, SyncItem>();
  readonly #hub: Hub;
  readonly #ws: WebSocket;
  readonly #o: Resolved;
  readonly #log: Logger;
  /** What the agent will hold once every sent batch is applied. */
  readonly #agentHas = new Map<SyncKey, number>();
  /** Pods of this node and the keys each references. */
  readonly #pods = new Map<SyncKey, readonly SyncKey[]>();
  /** Devices bound to this node and the DeviceModel each references. */
  readonly #devices = new Map<SyncKey, readonly SyncKey[]>();
  readonly #refCount = new Map<SyncKey, number>();
  readonly tunnel: Tunnel;
  #state: 'hello' | 'registering' | 'live' | 'closed' = 'hello';
  #nextSeq = 1;
  #lastAcked = 0;
  #inFlight = 0;
  #flushScheduled = false;
  #upstream: Promise<void> = Promise.resolve();
  #upstreamQueued = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Messages received so far (the liveness check compares it across one event-loop turn). */
  #messages = 0;
  /** The agent applies status-ack `written` entries (hello feature status-write-back). */
  #writeBack = false;
  /** Keys whose status the hub is writing for this node now (not flushed meanwhile). */
  readonly #writing = new Set<SyncKey>();

  constructor(hub: Hub, ws: WebSocket, node: string, o: Resolved, log: Logger) {
    this.#hub = hub;
    this.#ws = ws;
    this.node = node;
    this.#o = o;
    this.#log = log;
    this.tunnel = new Tunnel(
      {
        node,
        sendText: (text) => this.#send(text),
        sendBinary: (frame) => {
          if (this.#ws.readyState !== this.#ws.OPEN) return;
          this.#hub.countBytes(this.node, 'sent', frame.byteLength);
          this.#ws.send(frame, { binary: true });
        },
      },
      log,
    );
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  start(): void {
    this.#timer = setTimeout(
      () => this.fail('bad-frame', 'No hello received in time'),
      this.#o.helloTimeoutMs,
    );
    this.#timer.unref();
    this.#ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    this.#ws.on('close', () => this.#closed());
    this.#ws.on('error', (err) => this.#log.debug({ err }, 'hub session socket error'));
  }

  /** Sends a protocol error and closes. */
  fail(code: ProtocolErrorCode, message: string): void {
    if (this.#state === 'closed') return;
    this.#log.info({ code, reason: message }, 'hub session closed with an error');
    this.#send(encodeMessage({ type: 'error', code, message }));
    this.end(code === 'replaced' ? 4000 : 1008, code);
  }

  end(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    this.#closed();
    this.#ws.close(code, reason);
  }

  #closed(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#timer);
    this.#hub.unregister(this);
    this.tunnel.close('disconnected from the hub');
  }

  #send(text: string): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    this.#hub.countBytes(this.node, 'sent', Buffer.byteLength(text));
    this.#ws.send(text);
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#state === 'closed') return;
    this.#messages++;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    this.#hub.countBytes(this.node, 'received', buf.byteLength);
    let msg: AgentMessage;
    try {
      if (isBinary) {
        if (this.#state !== 'live')
          throw new SessionError('bad-frame', 'A stream frame before the session is live');
        this.#timer?.refresh();
        this.tunnel.onFrame(decodeStreamFrame(buf, 'agent'));
        return;
      }
      msg = decodeAgentMessage(buf);
    } catch (err) {
      const code =
        err instanceof SessionError
          ? err.code
          : err instanceof TunnelViolation
            ? 'bad-frame'
            : protocolCodeOf(err);
      this.fail(code, err instanceof Error ? err.message : String(err));
      return;
    }
    try {
      this.#handle(msg);
    } catch (err) {
      if (err instanceof SessionError) this.fail(err.code, err.message);
      else {
        this.#log.error({ err }, 'hub session failed');
        this.fail('internal', 'The hub failed to handle the message');
      }
    }
  }

  #handle(msg: AgentMessage): void {
    if (msg.type === 'error') {
      this.#log.info({ code: msg.code, reason: msg.message }, 'agent reported an error');
      this.end(1000, 'agent error');
      return;
    }
    if (this.#state === 'hello') {
      if (msg.type !== 'hello') throw new SessionError('bad-frame', `Expected hello first, got ${msg.type}`);
      if (msg.v !== PROTOCOL_VERSION) {
        throw new SessionError(
          'version',
          `Protocol version ${msg.v} is not supported; the hub speaks ${PROTOCOL_VERSION}`,
        );
      }
      if (msg.node !== this.node) {
        throw new SessionError('unauthorized', `The certificate is for node ${this.node}, not ${msg.node}`);
      }
      this.#state = 'registering';
      this.#timer?.refresh();
      // Status sent right after hello (before welcome) waits on the upstream chain until the session is live.
      this.#upstream = this.#hub.register(this, msg).then(
        (ok) => {
          if (ok) this.#armLiveness();
        },
        (err: unknown) => {
          this.#log.error({ err }, 'hub session registration failed');
          this.fail('internal', 'The hub failed to start the session');
        },
      );
      return;
    }
    if (msg.type === 'hello') throw new SessionError('bad-frame', 'A session has only one hello');
    this.#timer?.refresh();
    switch (msg.type) {
      case 'heartbeat':
        this.#hub.heartbeat(this.node);
        return;
      case 'ack':
        this.#ack(msg.seq);
        return;
      case 'status':
        this.#status(msg);
        return;
      case 'stream-window':
      case 'stream-close':
        try {
          this.tunnel.onMessage(msg);
        } catch (err) {
          if (err instanceof TunnelViolation) throw new SessionError('bad-frame', err.message);
          throw err;
        }
        return;
    }
  }

  #armLiveness(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => {
        // Timers run before the event loop reads sockets: on a busy server the heartbeat that keeps this
        // session alive may be waiting there. Judge after one poll phase; a message read meanwhile has
        // refreshed the timer (and counted), so the session lives on.
        const seen = this.#messages;
        setImmediate(() => {
          if (this.#messages === seen) this.fail('bad-frame', 'No message for three heartbeat intervals');
          else this.#timer?.refresh();
        });
      },
      3 * this.#o.heartbeatSeconds * 1000,
    );
    this.#timer.unref();
  }

  /** Builds the relevant set and queues the difference to the agent's inventory. */
  begin(hello: Hello, serverRevision: number): void {
    this.#state = 'live';
    this.#writeBack = hello.features?.includes(AgentFeatures.statusWriteBack) ?? false;
    this.#send(
      encodeMessage({
        type: 'welcome',
        v: PROTOCOL_VERSION,
        serverRevision,
        heartbeatSeconds: this.#o.heartbeatSeconds,
      }),
    );
    for (const [key, rev] of hello.inventory) this.#agentHas.set(key, rev);
    const graph = this.#hub.graph;
    const own = graph.informers.nodes.get(undefined, this.node);
    if (own !== undefined) this.put(nodeKey(this.node), own);
    for (const pod of graph.podsOn(this.node)) this.addPod(pod);
    for (const device of graph.devicesOn(this.node)) this.addDevice(device);
    const rev = graph.revision();
    for (const key of this.#agentHas.keys()) {
      if (!this.#relevant(key) || graph.get(key) === undefined) this.del(key, rev);
    }
    this.#log.info({ inventory: hello.inventory.length, queued: this.pending.size }, 'hub session started');
    this.#scheduleFlush();
  }

  #relevant(key: SyncKey): boolean {
    return (
      key === nodeKey(this.node) || this.#pods.has(key) || this.#devices.has(key) || this.#refCount.has(key)
    );
  }

  put(key: SyncKey, obj: KubeObject): void {
    if (this.#state !== 'live') return;
    const revision = revisionOf(obj);
    if (this.#agentHas.get(key) === revision) this.pending.delete(key);
    else this.pending.set(key, { key, revision, object: obj as Record<string, unknown> });
    this.#scheduleFlush();
  }

  del(key: SyncKey, revision: number): void {
    if (this.#state !== 'live') return;
    if (this.#agentHas.has(key)) this.pending.set(key, { key, revision, deleted: true });
    else this.pending.delete(key);
    this.#scheduleFlush();
  }

  /** Adds or updates a pod of this node, with the objects it references (before the pod, for the agent). */
  addPod(pod: KubeObject): void {
    if (this.#state !== 'live') return;
    const key = keyOf(SYNCED.pods, pod);
    const before = this.#pods.get(key) ?? [];
    const after = podReferences(pod);
    this.#pods.set(key, after);
    for (const ref of after) if (!before.includes(ref)) this.#inc(ref);
    this.put(key, pod);
    for (const ref of before) if (!after.includes(ref)) this.#dec(ref);
  }

  removePod(pod: KubeObject, revision: number): void {
    if (this.#state !== 'live') return;
    const key = keyOf(SYNCED.pods, pod);
    const refs = this.#pods.get(key);
    if (refs === undefined) return;
    this.#pods.delete(key);
    this.del(key, revision);
    for (const ref of refs) this.#dec(ref);
  }

  /** Adds or updates a device bound to this node, with its DeviceModel (sent before the device). */
  addDevice(device: KubeObject): void {
    if (this.#state !== 'live') return;
    const key = keyOf(SYNCED_DEVICES.devices, device);
    const before = this.#devices.get(key) ?? [];
    const model = deviceModelKey(device);
    const after = model === undefined ? [] : [model];
    this.#devices.set(key, after);
    for (const ref of after) if (!before.includes(ref)) this.#inc(ref);
    this.put(key, device);
    for (const ref of before) if (!after.includes(ref)) this.#dec(ref);
  }

  removeDevice(device: KubeObject, revision: number): void {
    if (this.#state !== 'live') return;
    const key = keyOf(SYNCED_DEVICES.devices, device);
    const refs = this.#devices.get(key);
    if (refs === undefined) return;
    this.#devices.delete(key);
    this.del(key, revision);
    for (const ref of refs) this.#dec(ref);
  }

  refChanged(key: SyncKey, obj: KubeObject): void {
    if (this.#refCount.has(key)) this.put(key, obj);
  }

  refDeleted(key: SyncKey, revision: number): void {
    if (this.#refCount.has(key)) this.del(key, revision);
  }

  #inc(key: SyncKey): void {
    const n = this.#refCount.get(key) ?? 0;
    this.#refCount.set(key, n + 1);
    if (n === 0) {
      const obj = this.#hub.graph.get(key);
      if (obj !== undefined) this.put(key, obj);
    }
  }

  #dec(key: SyncKey): void {
    const n = this.#refCount.get(key) ?? 0;
    if (n > 1) {
      this.#refCount.set(key, n - 1);
      return;
    }
    this.#refCount.delete(key);
    this.del(key, this.#hub.graph.revision());
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#state !== 'live') return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Sends batches while fewer than maxUnacked are in flight. */
  #flush(): void {
    while (this.#state === 'live' && this.#inFlight < this.#o.maxUnacked && this.pending.size > 0) {
      const texts: string[] = [];
      const sent: SyncItem[] = [];
      let bytes = FRAME_OVERHEAD;
      let revision = 0;
      for (const [key, item] of this.pending) {
        if (this.#writing.has(key)) continue;
        const text = JSON.stringify(item);
        const size = Buffer.byteLength(text) + 1;
        if (size + FRAME_OVERHEAD > MAX_FRAME_BYTES) {
          this.pending.delete(key);
          this.#log.error({ key, bytes: size }, 'object is larger than a frame and cannot be synced');
          continue;
        }
        if (texts.length > 0 && (texts.length >= this.#o.batchItems || bytes + size > this.#o.batchBytes))
          break;
        texts.push(text);
        sent.push(item);
        bytes += size;
        if (item.revision > revision) revision = item.revision;
      }
      if (sent.length === 0) return;
      for (const item of sent) {
        this.pending.delete(item.key);
        if ('deleted' in item) this.#agentHas.delete(item.key);
        else this.#agentHas.set(item.key, item.revision);
      }
      const seq = this.#nextSeq++;
      this.#inFlight++;
      // Same text as encodeMessage of the batch, without stringifying every object twice.
      this.#send(`{"type":"batch","seq":${seq},"revision":${revision},"items":[${texts.join(',')}]}`);
    }
  }

  #ack(seq: number): void {
    if (seq >= this.#nextSeq)
      throw new SessionError(
        'bad-frame',
        `Ack for batch ${seq}, which was never sent (last sent ${this.#nextSeq - 1})`,
      );
    if (seq < this.#lastAcked)
      throw new SessionError(
        'bad-frame',
        `Ack for batch ${seq} is older than the last ack ${this.#lastAcked}`,
      );
    // Cumulative: batches lastAcked+1..seq are done.
    this.#inFlight -= seq - this.#lastAcked;
    this.#lastAcked = seq;
    this.#scheduleFlush();
  }

  /**
   * The status-ack, with the writes the agent can apply itself: those onto the revision the agent holds
   * (what was last sent for the key). The API's new revision then counts as held, so its watch event,
   * queued or still to come, sends nothing.
   */
  #statusAck(seq: number, written: readonly WrittenStatus[]): StatusAck {
    if (!this.#writeBack || written.length === 0) return { type: 'status-ack', seq };
    const own: WrittenStatus[] = [];
    for (const w of written) {
      const [key, from, to] = w;
      if (this.#agentHas.get(key) !== from) continue;
      this.#agentHas.set(key, to);
      if (this.pending.get(key)?.revision === to) this.pending.delete(key);
      own.push(w);
    }
    return own.length === 0 ? { type: 'status-ack', seq } : { type: 'status-ack', seq, written: own };
  }

  /**
   * While the hub writes a status, the object's new revision waits in `pending` (a flush in between
   * would send it down before the status-ack could spare it).
   */
  #holdBack(item: StatusItem): void {
    if (item.kind === 'PodStatus') this.#writing.add(syncKey('', 'pods', item.namespace, item.name));
    else if (item.kind === 'NodeStatus') this.#writing.add(nodeKey(item.name));
  }

  #status(batch: StatusBatch): void {
    if (this.#state === 'hello') throw new SessionError('bad-frame', 'Status before hello');
    this.#upstreamQueued++;
    if (this.#upstreamQueued > MAX_STATUS_IN_FLIGHT) this.#ws.pause();
    this.#upstream = this.#upstream.then(async () => {
      try {
        if (this.closed) return;
        if (this.#writeBack) for (const item of batch.items) this.#holdBack(item);
        const { forbidden, written } = await this.#hub.writeStatus(this.node, batch);
        if (this.closed) return;
        this.#send(encodeMessage(this.#statusAck(batch.seq, written)));
        // Refused items are dropped (acknowledged): resending them would never succeed.
        for (const message of forbidden)
          this.#send(encodeMessage({ type: 'error', code: 'forbidden', message }));
      } catch (err) {
        this.#log.warn({ err, seq: batch.seq }, 'status write failed; the agent will resend');
        this.fail('internal', 'The hub could not write the status; resend it');
      } finally {
        if (this.#writing.size > 0) {
          this.#writing.clear();
          this.#scheduleFlush();
        }
        this.#upstreamQueued--;
        if (this.#upstreamQueued <= MAX_STATUS_IN_FLIGHT && this.#ws.isPaused) this.#ws.resume();
      }
    });
  }
}

/** True when two versions of an object differ only in status (and the bookkeeping a write changes). */
function onlyStatusChanged(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject): string => {
    const { resourceVersion: _r, managedFields: _m, ...meta } = o.metadata;
    const { status: _s, metadata: _meta, ...rest } = o;
    return JSON.stringify([meta, rest]);
  };
  return strip(a) === strip(b);
}

/** Builds the hub; wire `handleUpgrade` to the HTTPS server's 'upgrade' event. */
export function createHub(options: HubOptions): Hub {
  return new Hub(options);
}
