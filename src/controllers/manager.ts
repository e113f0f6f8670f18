/**
 * The controller manager: one shared InformerFactory, every enabled controller started on it, informers
 * synced before it returns, and a clean stop (controllers first, then the informers they read).
 */
import { InformerFactory } from '../client/informer.ts';
import type { Cluster } from '../client/types.ts';
import type { Logger } from '../lib/log.ts';
import { startGarbageCollector } from './gc/garbage-collector.ts';
import { startNamespaceController } from './namespace/namespace-controller.ts';
import {
  type NodeLifecycleOptions,
  resolveNodeLifecycleOptions,
  startNodeLifecycleController,
} from './nodes/node-lifecycle.ts';
import { startScheduler } from './scheduler/index.ts';
import { startWorkloadControllers } from './workloads/index.ts';

/** Which controllers run (each defaults to true). */
export interface ControllerSelection {
  readonly scheduler?: boolean;
  readonly workloads?: boolean;
  readonly gc?: boolean;
  readonly namespaces?: boolean;
  readonly nodes?: boolean;
}

export interface ControllerManagerOptions {
  readonly cluster: Cluster;
  readonly logger: Logger;
  readonly controllers?: ControllerSelection;
  readonly nodeLifecycle?: NodeLifecycleOptions;
}

export interface RunningControllers {
  /** Names of the controllers that run, in start order. */
  readonly names: readonly string[];
  /** The shared informers (for the hub or tests that want the same caches). */
  readonly informers: InformerFactory;
  stop(): Promise<void>;
}

interface Stoppable {
  stop(): Promise<void>;
}

/** Start the enabled controllers on one shared InformerFactory and wait until their caches are synced. */
export async function startControllers(options: ControllerManagerOptions): Promise<RunningControllers> {
  const { cluster, logger } = options;
  const enabled = (name: keyof ControllerSelection): boolean => options.controllers?.[name] ?? true;
  // Check every option before anything starts.
  const nodeLifecycle = resolveNodeLifecycleOptions(options.nodeLifecycle);
  const informers = new InformerFactory(cluster, logger.child({ component: 'informers' }));
  const running: Array<{ name: string; controller: Stoppable }> = [];
  const child = (component: string): Logger => logger.child({ component });

  if (enabled('scheduler')) {
    running.push({ name: 'scheduler', controller: startScheduler({ cluster, informers, logger }) });
  }
  if (enabled('workloads')) {
    running.push({
      name: 'workloads',
      controller: startWorkloadControllers({ cluster, informers, logger: child('workloads') }),
    });
  }
  if (enabled('gc')) {
    running.push({
      name: 'garbage-collector',
      controller: startGarbageCollector({ cluster, factory: informers, logger: child('garbage-collector') }),
    });
  }
  if (enabled('namespaces')) {
    running.push({
      name: 'namespace',
      controller: startNamespaceController({
        cluster,
        factory: informers,
        logger: child('namespace-controller'),
      }),
    });
  }
  if (enabled('nodes')) {
    running.push({
      name: 'node-lifecycle',
      controller: startNodeLifecycleController({
        cluster,
        factory: informers,
        logger: child('node-lifecycle-controller'),
        ...nodeLifecycle,
      }),
    });
  }

  const stopAll = async (): Promise<void> => {
    for (const { controller } of [...running].reverse()) await controller.stop();
    await informers.stop();
  };
  informers.start();
  try {
    await informers.waitForSync();
  } catch (err) {
    await stopAll();
    throw err;
  }
  const names = running.map((r) => r.name);
  logger.info({ controllers: names }, 'controllers started');
  let stopped: Promise<void> | undefined;
  return {
    names,
    informers,
    stop() {
      stopped ??= stopAll();
      return stopped;
    },
  };
}
