/**
 * The scheduler controller: watches pods and nodes through shared informers, decides one pod at a time
 * (synchronously, on the cache), counts the pod on its node at once ("assume") and binds it through
 * pods/binding in the background with bounded concurrency. Pods that fit nowhere get
 * PodScheduled=False/Unschedulable and a FailedScheduling event, and wait until the cluster changes.
 */
import { isPlainObject, type KubeObject } from '../../api/meta.ts';
import { isApiError } from '../../api/status-error.ts';
import type { Informer, InformerFactory } from '../../client/informer.ts';
import { type Cluster, Resources } from '../../client/types.ts';
import { KedgeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { objectReference, recordEvent } from '../events.ts';
import { type AlgorithmState, type ScheduleResult, schedulePod, seededRandom } from './algorithm.ts';
import { SchedulerCache } from './cache.ts';
import { nodeSchedulingFingerprint, type PodInfo, parseNode, parsePod, podKey } from './model.ts';
import { SchedulingQueue, type SchedulingQueueOptions } from './queue.ts';

export const DEFAULT_SCHEDULER_NAME = 'default-scheduler';

export interface SchedulerOptions {
  readonly cluster: Cluster;
  /** Shared informers; start the factory before or after this call. */
  readonly informers: InformerFactory;
  readonly logger: Logger;
  /** Pods whose spec.schedulerName is this (unset counts as default-scheduler). */
  readonly schedulerName?: string;
  /** 0 (default): adaptive like Kubernetes (50% of nodes minus 1% per 125 nodes, at least 5%, at least 100 nodes). */
  readonly percentageOfNodesToScore?: number;
  /** Bindings in flight at once (default 64). */
  readonly maxInFlightBindings?: number;
  /** Emit a Normal "Scheduled" event per bound pod, like Kubernetes (default true). */
  readonly scheduledEvents?: boolean;
  readonly backoff?: SchedulingQueueOptions;
  /** Seed of the tie-break randomness (default: random). */
  readonly seed?: number;
}

export interface ResolvedSchedulerOptions {
  readonly schedulerName: string;
  readonly percentageOfNodesToScore: number;
  readonly maxInFlightBindings: number;
  readonly scheduledEvents: boolean;
  readonly backoff: SchedulingQueueOptions;
  readonly seed: number;
}

export function resolveSchedulerOptions(
  o: Omit<SchedulerOptions, 'cluster' | 'informers' | 'logger'>,
): ResolvedSchedulerOptions {
  const pct = o.percentageOfNodesToScore ?? 0;
  if (!Number.isFinite(pct) || pct < 0 || pct > 100) {
    throw new KedgeError(
      'KEDGE_CONFIG_INVALID',
      `Scheduler option percentageOfNodesToScore ${pct} must be within 0..100`,
      {
        context: { percentageOfNodesToScore: pct },
      },
    );
  }
  const inflight = o.maxInFlightBindings ?? 64;
  if (!Number.isInteger(inflight) || inflight < 1) {
    throw new KedgeError(
      'KEDGE_CONFIG_INVALID',
      `Scheduler option maxInFlightBindings ${inflight} must be a positive integer`,
      {
        context: { maxInFlightBindings: inflight },
      },
    );
  }
  return Object.freeze({
    schedulerName: o.schedulerName ?? DEFAULT_SCHEDULER_NAME,
    percentageOfNodesToScore: pct,
    maxInFlightBindings: inflight,
    scheduledEvents: o.scheduledEvents ?? true,
    backoff: o.backoff ?? {},
    seed: o.seed ?? Math.floor(Math.random() * 2 ** 32),
  });
}

export interface SchedulerStats {
  /** Pods bound by this scheduler. */
  bound: number;
  /** Attempts that found no node. */
  unschedulable: number;
  /** Bindings the API refused. */
  bindErrors: number;
  /** Decisions taken (bound or not). */
  attempts: number;
  inFlight: number;
  active: number;
  parked: number;
  backingOff: number;
}

export interface Scheduler {
  stop(): Promise<void>;
  stats(): SchedulerStats;
  /** The cache, for tests and benchmarks (read only). */
  readonly cache: SchedulerCache;
}

const COMPONENT = 'default-scheduler';
const YIELD_EVERY = 32;

function nextTick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function podScheduledCondition(obj: KubeObject): Record<string, unknown> | undefined {
  const status = obj['status'];
  if (!isPlainObject(status) || !Array.isArray(status['conditions'])) return undefined;
  return status['conditions'].find(
    (c): c is Record<string, unknown> => isPlainObject(c) && c['type'] === 'PodScheduled',
  );
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The parts of a pod whose change may change where it fits (status and heartbeats do not). */
function schedulingRelevantChange(oldObj: KubeObject, newObj: KubeObject): boolean {
  return (
    oldObj.metadata.generation !== newObj.metadata.generation ||
    oldObj.metadata.deletionTimestamp !== newObj.metadata.deletionTimestamp ||
    JSON.stringify(oldObj.metadata.labels ?? {}) !== JSON.stringify(newObj.metadata.labels ?? {}) ||
    JSON.stringify(oldObj['spec']) !== JSON.stringify(newObj['spec'])
  );
}

function phaseOf(obj: KubeObject): string {
  const status = obj['status'];
  return isPlainObject(status) && typeof status['phase'] === 'string' ? status['phase'] : '';
}

function nodeNameOf(obj: KubeObject): string {
  const spec = obj['spec'];
  return isPlainObject(spec) && typeof spec['nodeName'] === 'string' ? spec['nodeName'] : '';
}

/** Start scheduling; resolves nothing, runs until `stop()`. */
export function startScheduler(options: SchedulerOptions): Scheduler {
  const opts = resolveSchedulerOptions(options);
  const { cluster, logger } = options;
  const log = logger.child({ component: 'scheduler' });
  const cache = new SchedulerCache();
  const queue = new SchedulingQueue(opts.backoff);
  const nodeFingerprints = new Map<string, string>();
  const algo: AlgorithmState = {
    nextStart: 0,
    random: seededRandom(opts.seed),
    percentageOfNodesToScore: opts.percentageOfNodesToScore,
  };
  const counters = { bound: 0, unschedulable: 0, bindErrors: 0, attempts: 0 };
  let stopped = false;
  let inFlight = 0;
  const inFlightDone = new Set<() => void>();
  const pending = new Set<Promise<unknown>>();

  const pods: Informer = options.informers.informer(Resources.pods);
  const nodes: Informer = options.informers.informer(Resources.nodes);

  // Many changes in a burst (a node pool joining, a Deployment scaled down) wake parked pods once.
  let moveScheduled = false;
  const wakeParked = (): void => {
    if (moveScheduled || queue.unschedulableLength === 0) return;
    moveScheduled = true;
    setImmediate(() => {
      moveScheduled = false;
      if (!stopped) queue.moveAllToActive();
    });
  };

  const responsible = (p: PodInfo): boolean =>
    p.nodeName === '' && !p.deleting && !p.terminal && p.schedulerName === opts.schedulerName && !p.gated;

  // --- informer handlers: keep the cache and the queue current -------------------------------
  pods.onAdd((obj) => {
    if (stopped) return;
    const pod = parsePod(obj);
    if (pod.nodeName !== '') cache.setPod(pod);
    else if (responsible(pod)) queue.add(pod.key);
  });
  pods.onUpdate((oldObj, newObj) => {
    if (stopped) return;
    const key = podKey(newObj);
    const newNode = nodeNameOf(newObj);
    if (newNode !== '') {
      const oldNode = nodeNameOf(oldObj);
      const oldPhase = phaseOf(oldObj);
      const newPhase = phaseOf(newObj);
      if (
        oldNode === newNode &&
        oldPhase === newPhase &&
        !schedulingRelevantChange(oldObj, newObj) &&
        cache.pod(key) !== undefined &&
        !cache.isAssumed(key)
      ) {
        return;
      }
      const pod = parsePod(newObj);
      const before = cache.pod(key);
      cache.setPod(pod);
      if (oldNode === '') queue.delete(key);
      // Resources freed (a pod finished): parked pods may fit now.
      if (before !== undefined && pod.terminal) wakeParked();
      return;
    }
    const pod = parsePod(newObj);
    if (!responsible(pod)) queue.delete(key);
    else if (schedulingRelevantChange(oldObj, newObj)) queue.add(key);
  });
  pods.onDelete((obj) => {
    if (stopped) return;
    const key = podKey(obj);
    queue.delete(key);
    if (cache.pod(key) !== undefined) {
      cache.removePod(key);
      wakeParked();
    }
  });
  const upsertNode = (obj: KubeObject): void => {
    const spec = parseNode(obj);
    const fp = nodeSchedulingFingerprint(spec);
    if (nodeFingerprints.get(spec.name) === fp) return;
    nodeFingerprints.set(spec.name, fp);
    cache.upsertNode(spec);
    wakeParked();
  };
  nodes.onAdd((obj) => {
    if (!stopped) upsertNode(obj);
  });
  nodes.onUpdate((_old, obj) => {
    if (!stopped) upsertNode(obj);
  });
  nodes.onDelete((obj) => {
    if (stopped) return;
    const name = obj.metadata.name ?? '';
    nodeFingerprints.delete(name);
    cache.removeNode(name);
  });

  // --- binding -------------------------------------------------------------------------------
  const track = <T>(p: Promise<T>): void => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  const waitForSlot = async (): Promise<void> => {
    while (inFlight >= opts.maxInFlightBindings && !stopped) {
      await new Promise<void>((resolve) => inFlightDone.add(resolve));
    }
  };

  const releaseSlot = (): void => {
    inFlight--;
    const waiters = [...inFlightDone];
    inFlightDone.clear();
    for (const w of waiters) w();
  };

  const bind = (obj: KubeObject, pod: PodInfo, node: string): void => {
    inFlight++;
    const body = {
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: { name: pod.name, namespace: pod.namespace, ...(pod.uid === '' ? {} : { uid: pod.uid }) },
      target: { apiVersion: 'v1', kind: 'Node', name: node },
    };
    const p = cluster
      .createSubresource(Resources.pods, pod.namespace, pod.name, 'binding', body)
      .then(
        () => {
          counters.bound++;
          queue.forget(pod.key);
          if (opts.scheduledEvents) {
            track(
              recordEvent(cluster, {
                involvedObject: objectReference(obj),
                type: 'Normal',
                reason: 'Scheduled',
                message: `Successfully assigned ${pod.namespace}/${pod.name} to ${node}`,
                component: COMPONENT,
              }),
            );
          }
        },
        (err: unknown) => {
          counters.bindErrors++;
          cache.forget(pod.key);
          wakeParked();
          if (stopped) return;
          if (isApiError(err, 404)) {
            queue.delete(pod.key);
            return;
          }
          // 409: bound meanwhile (by someone else) or stale: the watch tells; retry after backoff if still pending.
          log.warn({ err, pod: pod.key, node }, 'binding failed');
          queue.addBackoff(pod.key);
          track(
            recordEvent(cluster, {
              involvedObject: objectReference(obj),
              type: 'Warning',
              reason: 'FailedScheduling',
              message: `Binding rejected: ${err instanceof Error ? err.message : String(err)}`,
              component: COMPONENT,
            }),
          );
        },
      )
      .finally(releaseSlot);
    track(p);
  };

  // --- reporting a pod that fits nowhere ------------------------------------------------------
  const reportUnschedulable = async (obj: KubeObject, pod: PodInfo, message: string): Promise<void> => {
    const cond = podScheduledCondition(obj);
    if (
      !(cond?.['status'] === 'False' && cond['reason'] === 'Unschedulable' && cond['message'] === message)
    ) {
      try {
        await cluster.patch(
          Resources.pods,
          pod.namespace,
          pod.name,
          'strategic',
          {
            status: {
              conditions: [
                {
                  type: 'PodScheduled',
                  status: 'False',
                  reason: 'Unschedulable',
                  message,
                  lastProbeTime: null,
                  lastTransitionTime: cond?.['status'] === 'False' ? cond['lastTransitionTime'] : timestamp(),
                },
              ],
            },
          },
          { subresource: 'status' },
        );
      } catch (err) {
        if (!isApiError(err, 404)) log.warn({ err, pod: pod.key }, 'could not set PodScheduled=False');
      }
    }
    await recordEvent(cluster, {
      involvedObject: objectReference(obj),
      type: 'Warning',
      reason: 'FailedScheduling',
      message,
      component: COMPONENT,
    });
  };

  // --- the loop ------------------------------------------------------------------------------
  const scheduleOne = async (key: string): Promise<void> => {
    const obj = pods.getByKey(key);
    if (obj === undefined) {
      queue.delete(key);
      return;
    }
    const pod = parsePod(obj);
    if (!responsible(pod) || cache.isAssumed(key) || cache.pod(key) !== undefined) return;
    counters.attempts++;
    let result: ScheduleResult;
    try {
      result = schedulePod(pod, cache, algo);
    } catch (err) {
      log.error({ err, pod: key }, 'scheduling failed');
      queue.addBackoff(key);
      return;
    }
    if (result.fit) {
      cache.assume(pod, result.node);
      await waitForSlot();
      if (stopped) {
        cache.forget(key);
        return;
      }
      bind(obj, pod, result.node);
      return;
    }
    counters.unschedulable++;
    queue.addUnschedulable(key);
    log.debug({ pod: key, message: result.message }, 'pod unschedulable');
    track(reportUnschedulable(obj, pod, result.message));
  };

  const loop = async (): Promise<void> => {
    await Promise.all([pods.hasSynced(), nodes.hasSynced()]);
    let sinceYield = 0;
    while (!stopped) {
      const key = sinceYield >= YIELD_EVERY ? undefined : queue.tryPop();
      if (key === undefined) {
        sinceYield = 0;
        await nextTick();
        if (stopped) break;
        const next = queue.tryPop() ?? (await queue.pop());
        if (next === undefined) break;
        await scheduleOne(next);
        continue;
      }
      sinceYield++;
      await scheduleOne(key);
    }
  };

  const running = loop().catch((err: unknown) => log.error({ err }, 'scheduler loop ended with an error'));
  log.info({ schedulerName: opts.schedulerName }, 'scheduler started');

  return {
    cache,
    stats: () => ({
      ...counters,
      inFlight,
      active: queue.activeLength,
      parked: queue.unschedulableLength,
      backingOff: queue.backoffLength,
    }),
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      queue.close();
      for (const w of inFlightDone) w();
      await running;
      await Promise.allSettled([...pending]);
      log.info('scheduler stopped');
    },
  };
}
