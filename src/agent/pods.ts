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
import type { PodContext, PodRef, PodRuntime, RuntimeContainer, RuntimePod } from './runtime.ts';

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

type Phase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

/** The pod phase the way the kubelet computes it from its container states and restart policy. */
export function phaseOf(pod: RuntimePod, restartPolicy: string): Phase {
  const init = pod.initContainers ?? [];
  if (pod.initialized === false) {
    // An init container that failed and will not be restarted fails the pod.
    const failed = init.some(
      (c) => 'terminated' in c.state && c.state.terminated.exitCode !== 0 && restartPolicy === 'Never',
    );
    return failed ? 'Failed' : 'Pending';
  }
  if (pod.containers.length === 0) return 'Pending';
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const c of pod.containers) {
    if ('running' in c.state) running++;
    else if ('terminated' in c.state) {
      stopped++;
      if (c.state.terminated.exitCode === 0) succeeded++;
    } else if (c.lastState !== undefined && 'terminated' in c.lastState) stopped++;
    else waiting++;
  }
  if (waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (restartPolicy === 'Always') return 'Running';
  if (stopped === succeeded) return 'Succeeded';
  if (restartPolicy === 'Never') return 'Failed';
  return 'Running';
}

function containerStatus(c: RuntimeContainer): Record<string, unknown> {
  return {
    name: c.name,
    image: c.image,
    imageID: c.imageID,
    ...(c.containerID === '' ? {} : { containerID: c.containerID }),
    ready: c.ready,
    started: c.started,
    restartCount: c.restartCount,
    state: c.state,
    lastState: c.lastState ?? {},
  };
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
  const spec = objectPart(pod['spec']);
  const restartPolicy = typeof spec['restartPolicy'] === 'string' ? spec['restartPolicy'] : 'Always';
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
  const phase = phaseOf(running, restartPolicy);
  const initialized = running.initialized !== false;
  const allReady = initialized && running.containers.length > 0 && running.containers.every((c) => c.ready);
  // A pod that finished is not ready, whatever its containers said last.
  const ready = allReady && phase !== 'Succeeded' && phase !== 'Failed';
  const notReadyReason = phase === 'Succeeded' || phase === 'Failed' ? 'PodCompleted' : 'ContainersNotReady';
  const status: Record<string, unknown> = {
    phase,
    conditions: [
      condition('PodReadyToStartContainers', running.sandboxReady !== false),
      condition('Initialized', initialized, 'ContainersNotInitialized'),
      condition('Ready', ready, notReadyReason),
      condition('ContainersReady', ready, notReadyReason),
      condition('PodScheduled', true),
    ],
    hostIP,
    hostIPs: [{ ip: hostIP }],
    startTime: typeof prev['startTime'] === 'string' ? prev['startTime'] : running.startedAt,
    containerStatuses: running.containers.map(containerStatus),
    qosClass: typeof prev['qosClass'] === 'string' ? prev['qosClass'] : 'BestEffort',
  };
  if (running.initContainers !== undefined && running.initContainers.length > 0) {
    status['initContainerStatuses'] = running.initContainers.map(containerStatus);
  }
  if (running.podIP !== undefined) {
    status['podIP'] = running.podIP;
    status['podIPs'] = [{ ip: running.podIP }];
  }
  return status;
}

/** The grace period to stop a pod with: deletionGracePeriodSeconds, else terminationGracePeriodSeconds, else 30. */
function graceOf(pod: KubeObject): number {
  const g =
    pod.metadata.deletionGracePeriodSeconds ?? objectPart(pod['spec'])['terminationGracePeriodSeconds'];
  return typeof g === 'number' && g >= 0 ? g : 30;
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
  /** Grace periods of pods deleted from the store, until their sync stops them. */
  readonly #goneGrace = new Map<string, number>();
  /** Pods the runtime may run, by namespace/name: from each resync's list and from every sync. */
  readonly #running = new Map<string, Map<string, PodRef>>();
  /** uids synced in this agent run (logged once as started). */
  readonly #started = new Set<string>();
  #idle = Promise.withResolvers<void>();
  #timer: NodeJS.Timeout | undefined;
  #off: (() => void) | undefined;
  #offRuntime: (() => void) | undefined;
  #stopped = false;
  readonly #context: PodContext;

  constructor(options: PodManagerOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#idle.resolve();
    const store = options.store;
    this.#context = {
      nodeName: options.nodeName,
      hostIP: options.hostIP,
      lookup: (plural, namespace, name) => store.get(`core/${plural}/${namespace}/${name}`)?.object,
    };
  }

  /** Subscribes to local changes and runs a first full sync; resolves when that pass is done. */
  async start(): Promise<void> {
    this.#off = this.#o.store.onChange((changes) => this.#onChanges(changes));
    this.#offRuntime = this.#o.runtime.watch?.((p) => this.#add(`${p.namespace}/${p.name}`));
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
    for (const p of await this.#o.runtime.list()) {
      const key = `${p.namespace}/${p.name}`;
      this.#remember(key, p);
      this.#add(key);
    }
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
    this.#offRuntime?.();
    this.#queue.clear();
    await this.idle();
  }

  #remember(key: string, pod: PodRef): void {
    let uids = this.#running.get(key);
    if (uids === undefined) {
      uids = new Map();
      this.#running.set(key, uids);
    }
    if (!uids.has(pod.uid)) uids.set(pod.uid, { uid: pod.uid, namespace: pod.namespace, name: pod.name });
  }

  #onChanges(changes: readonly LocalChange[]): void {
    for (const c of changes) {
      if (!c.key.startsWith(POD_PREFIX)) continue;
      const [ns, name] = c.key.slice(POD_PREFIX.length).split('/');
      // A pod deleted outright still gets the grace period its spec asked for.
      if (c.type === 'delete') this.#goneGrace.set(`${ns}/${name}`, graceOf(c.prev));
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
    const grace = desired === undefined ? (this.#goneGrace.get(key) ?? 30) : graceOf(desired);
    this.#goneGrace.delete(key);

    // Pods under this name that are not the desired one (gone, or replaced by a new uid). Known from the
    // last resync's runtime list and from this run's syncs: listing the runtime per pod costs O(pods²).
    for (const p of [...(this.#running.get(key)?.values() ?? [])]) {
      if (p.uid === uid) continue;
      this.#log.info({ pod: key, uid: p.uid }, 'stopping a pod that should not run here');
      await this.#o.runtime.stop(p, grace);
      this.#running.get(key)?.delete(p.uid);
      this.#reported.delete(p.uid);
      this.#started.delete(p.uid);
    }
    if (desired === undefined) {
      this.#running.delete(key);
      return;
    }

    if (desired.metadata.deletionTimestamp !== undefined) {
      await this.#o.runtime.stop({ uid, namespace, name }, grace);
      this.#running.get(key)?.delete(uid);
      this.#reported.delete(uid);
      if (!this.#deleted.has(uid)) {
        this.#deleted.add(uid);
        this.#o.outbox.enqueue({ kind: 'PodDeleted', namespace, name, uid });
        this.#log.info({ pod: key }, 'pod stopped for deletion');
      }
      return;
    }

    const prevPhase = objectPart(desired['status'])['phase'];
    if (prevPhase === 'Succeeded' || prevPhase === 'Failed') {
      // A pod that finished stays finished, even when its sandbox is gone.
      if ((await this.#o.runtime.status(uid)) === undefined) return;
    }
    this.#remember(key, { uid, namespace, name });
    const running = await this.#o.runtime.sync(desired, this.#context);
    if (!this.#started.has(uid)) {
      this.#started.add(uid);
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
