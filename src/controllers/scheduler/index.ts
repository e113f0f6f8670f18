/** The scheduler: binds pending pods to nodes, Kubernetes-compatible (filters, scores, messages). */
export {
  numFeasibleNodesToFind,
  type ScheduleResult,
  ScoreWeights,
  schedulePod,
  seededRandom,
} from './algorithm.ts';
export { SchedulerCache } from './cache.ts';
export { type NodeSpec, type PodInfo, parseNode, parsePod, podRequests } from './model.ts';
export { SchedulingQueue, type SchedulingQueueOptions } from './queue.ts';
export {
  DEFAULT_SCHEDULER_NAME,
  resolveSchedulerOptions,
  type Scheduler,
  type SchedulerOptions,
  type SchedulerStats,
  startScheduler,
} from './scheduler.ts';
