/** The workload controllers: Deployments, ReplicaSets and DaemonSets, on shared informers. */
import type { InformerFactory } from '../../client/informer.ts';
import type { Cluster } from '../../client/types.ts';
import type { Logger } from '../../lib/log.ts';
import { DaemonSetController } from './daemonset.ts';
import { DeploymentController } from './deployment.ts';
import { ReplicaSetController } from './replicaset.ts';

export { DaemonSetController, nodeShouldRunDaemonPod } from './daemonset.ts';
export { DeploymentController } from './deployment.ts';
export { ReplicaSetController } from './replicaset.ts';

export interface WorkloadControllersOptions {
  readonly cluster: Cluster;
  readonly informers: InformerFactory;
  readonly logger: Logger;
}

/**
 * Start the Deployment, ReplicaSet and DaemonSet controllers. Registers their informers on the factory
 * and starts it (starting an already started factory is harmless); workers begin once the caches synced.
 * `stop` ends the workers; the caller stops the factory.
 */
export function startWorkloadControllers(options: WorkloadControllersOptions): { stop(): Promise<void> } {
  const controllers = [
    new ReplicaSetController(options),
    new DeploymentController(options),
    new DaemonSetController(options),
  ];
  options.informers.start();
  for (const c of controllers) c.start();
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= Promise.all(controllers.map((c) => c.stop())).then(() => undefined);
      return stopped;
    },
  };
}
