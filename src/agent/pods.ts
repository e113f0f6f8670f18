/**
 * The pod manager: the kubelet's sync loop in small. Desired pods come from the local store (so it works
 * before, and without, any hub connection); the runtime says what runs. Per pod key one sync at a time:
 * start what should run, stop what should not, and report the status through the outbox when it changed.
 * A pod with a deletionTimestamp is stopped and then reported as PodDeleted (the hub finishes the delete).
 */
import { isPlainObject, type KubeObject } from '../api/meta.ts';
import type { Logger } from '../lib/log.ts';
import type { LocalChange, LocalStore } from './local-store.ts';
import type { Outbox } from './outbox.ts';
import type { PodRuntime, RuntimePod } from './runtime.ts';

export interface PodManagerOptions {
  readonly nodeName: string;
  readonly hostIP: string;
  readonly store: LocalStore;
  readonly runtime: PodRuntime;
  readonly outbox: Outbox;
  readonly logger: Logger;
  /** Full resync (every desired and every running pod) interval; default 10,000 ms. */
  readonly resyncMs?: number;
  /** Pods synced at once; default 4. */
  readonly concurrency?: number;
  readonly now?: () => Date;
}

const POD_PREFIX = 'core/pods/';

type Condition = {
  type: string;
  status: string;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
};

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function objectPart(value: unknown): Record<string, unknown> {
  return isPlainObject(value) ? value : {};
}

function phaseOf(pod: RuntimePod): 'Pending' | 'Running' | 'Succeeded' | 'Failed' {
  const states = pod.containers.map((c) => c.state);
  if (states.length === 0) return 'Pending';
  if (states.some((s) => 'waiting' in s)) return 'Pending';
  if (states.every((s) => 'terminated' in s)) {
    return states.every((s) => 'terminated' in s && s.terminated.exitCode === 0) ? 'Succeeded' : 'Failed';
  }
  return 'Running';
}

/**
 * The core/v1 PodStatus for a running pod. Transition times and startTime come from `prev` (the status
 * the server holds) when unchanged, so an unchanged pod yields an identical status and nothing is sent.
 */
export function buildPodStatus(
  pod: KubeObject,
  running: RuntimePod,
  hostIP: string,
  now: Date,
): Record<string, unknown> {
  const prev = objectPart(pod['status']);
  const prevConditions = (Array.isArray(prev['conditions']) ? prev['conditions'] : []).filter(isPlainObject);
  const at = rfc3339(now);
  const condition = (type: string, ok: boolean, reason?: string): Condition => {
    const status = ok ? 'True' : 'False';
    const before = prevConditions.find((c) => c['type'] === type);
    const since =
      before !== undefined && before['status'] === status && typeof before['lastTransitionTime'] === 'string'
        ? before['lastTransitionTime']
        : at;
    return { type, status, lastTransitionTime: since, ...(ok || reason === undefined ? {} : { reason }) };
  };
  const allReady = running.containers.length > 0 && running.containers.every((c) => c.ready);
  const status: Record<string, unknown> = {
    phase: phaseOf(running),
    conditions: [
      condition('PodReadyToStartContainers', true),
      condition('Initialized', true),
      condition('Ready', allReady, 'ContainersNotReady'),
      condition('ContainersReady', allReady, 'ContainersNotReady'),
      condition('PodScheduled', true),
    ],
    hostIP,
    hostIPs: [{ ip: hostIP }],
    startTime: typeof prev['startTime'] === 'string' ? prev['startTime'] : running.startedAt,
    containerStatuses: running.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: c.imageID,
      containerID: c.containerID,
      ready: c.ready,
      started: c.started,
      restartCount: c.restartCount,
      state: c.state,
    })),
    qosClass: typeof prev['qosClass'] === 'string' ? prev['qosClass'] : 'BestEffort',
  };
  if (running.podIP !== undefined) {
    status['podIP'] = running.podIP;
    status['podIPs'] = [{ ip: running.podIP }];
  }
  return status;
}

/** Stable JSON (sorted keys) for change detection. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    isPlainObject(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

export class PodManager {
  readonly #o: PodManagerOptions;
  readonly #log: Logger;
  readonly #queue = new Set<string>();
  readonly #active = new Set<string>();
  /** uid → canonical JSON of the last status enqueued. */
  readonly #reported = new Map<string, string>();
  /** uids reported as deleted (so a pod is reported once per agent run). */
  readonly #deleted = new Set<string>();
  #idle = Promise.withResolvers<void>();
  #timer: NodeJS.Timeout | undefined;
  #off: (() => void) | undefined;
  #stopped = false;

  constructor(options: PodManagerOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#idle.resolve();
  }

  /** Subscribes to local changes and runs a first full sync; resolves when that pass is done. */
  async start(): Promise<void> {
    this.#off = this.#o.store.onChange((changes) => this.#onChanges(changes));
    await this.resync();
    this.#timer = setInterval(() => {
      this.resync().catch((err: unknown) => this.#log.error({ err }, 'pod resync failed'));
    }, this.#o.resyncMs ?? 10_000);
    this.#timer.unref();
  }

  /** Queues every desired and every running pod, and waits until the queue is empty. */
  async resync(): Promise<void> {
    for (const o of this.#o.store.list(POD_PREFIX))
      this.#add(`${o.object.metadata.namespace}/${o.object.metadata.name}`);
    for (const p of await this.#o.runtime.list()) this.#add(`${p.namespace}/${p.name}`);
    await this.idle();
  }

  /** Resolves when no pod is queued or syncing. */
  idle(): Promise<void> {
    return this.#idle.promise;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#off?.();
    this.#queue.clear();
    await this.idle();
  }

  #onChanges(changes: readonly LocalChange[]): void {
    for (const c of changes) {
      if (!c.key.startsWith(POD_PREFIX)) continue;
      const [ns, name] = c.key.slice(POD_PREFIX.length).split('/');
      this.#add(`${ns}/${name}`);
    }
  }

  #add(key: string): void {
    if (this.#stopped) return;
    if (this.#queue.size === 0 && this.#active.size === 0) this.#idle = Promise.withResolvers<void>();
    this.#queue.add(key);
    this.#kick();
  }

  #kick(): void {
    const max = this.#o.concurrency ?? 4;
    for (const key of this.#queue) {
      if (this.#active.size >= max) break;
      if (this.#active.has(key)) continue;
      this.#queue.delete(key);
      this.#active.add(key);
      this.#sync(key)
        .catch((err: unknown) => {
          this.#log.error({ err, pod: key }, 'pod sync failed; retrying at the next resync');
        })
        .finally(() => {
          this.#active.delete(key);
          if (this.#queue.size === 0 && this.#active.size === 0) this.#idle.resolve();
          else this.#kick();
        });
    }
  }

  async #sync(key: string): Promise<void> {
    const [namespace = '', name = ''] = key.split('/');
    const local = this.#o.store.get(`${POD_PREFIX}${namespace}/${name}`)?.object;
    const spec = objectPart(local?.['spec']);
    const desired = local !== undefined && spec['nodeName'] === this.#o.nodeName ? local : undefined;
    const uid = desired?.metadata.uid ?? '';
    const grace = Number(
      desired?.metadata.deletionGracePeriodSeconds ?? spec['terminationGracePeriodSeconds'] ?? 30,
    );

    for (const p of await this.#o.runtime.list()) {
      if (p.namespace !== namespace || p.name !== name || p.uid === uid) continue;
      this.#log.info({ pod: key, uid: p.uid }, 'stopping a pod that should not run here');
      await this.#o.runtime.stop(p, grace);
      this.#reported.delete(p.uid);
    }
    if (desired === undefined) return;

    if (desired.metadata.deletionTimestamp !== undefined) {
      await this.#o.runtime.stop({ uid, namespace, name }, grace);
      this.#reported.delete(uid);
      if (!this.#deleted.has(uid)) {
        this.#deleted.add(uid);
        this.#o.outbox.enqueue({ kind: 'PodDeleted', namespace, name, uid });
        this.#log.info({ pod: key }, 'pod stopped for deletion');
      }
      return;
    }

    const prevPhase = objectPart(desired['status'])['phase'];
    let running = await this.#o.runtime.status(uid);
    if (running === undefined) {
      // A pod that finished stays finished (restartPolicy is the runtime's business while it runs).
      if (prevPhase === 'Succeeded' || prevPhase === 'Failed') return;
      running = await this.#o.runtime.start(desired);
      this.#log.info({ pod: key, podIP: running.podIP }, 'pod started');
    }
    const status = buildPodStatus(desired, running, this.#o.hostIP, this.#o.now?.() ?? new Date());
    const text = canonical(status);
    const last = this.#reported.get(uid) ?? canonical(desired['status'] ?? null);
    if (text === last) return;
    this.#reported.set(uid, text);
    this.#o.outbox.enqueue({ kind: 'PodStatus', namespace, name, uid, status });
  }
}
