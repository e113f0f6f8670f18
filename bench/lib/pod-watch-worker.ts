/**
 * A pod watch in its own thread, for benchmarks whose main thread is busy creating pods: a watcher that
 * shares a thread with 32 creates in flight falls behind, and the server expires it (410). Reports when each
 * pod was first seen bound and first seen Running, as epoch milliseconds (performance.timeOrigin + now(),
 * comparable across threads), in batches.
 *
 * workerData: { kubeconfig, namespace, labelSelector, total }. Messages out: { scheduled: [name, ms][],
 * running: [name, ms][], restarts }. Message in: 'stop'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { KubeObject } from '../../src/api/meta.ts';
import { RemoteCluster } from '../../src/client/remote-cluster.ts';
import { Resources } from '../../src/client/types.ts';
import { readKubeconfig, resolveKubeconfig } from '../../src/lib/kubeconfig.ts';
import { listAll } from './list-all.ts';

interface Input {
  readonly kubeconfig: string;
  readonly namespace: string;
  readonly labelSelector: string;
  readonly total: number;
}
const input = workerData as Input;
const now = (): number => performance.timeOrigin + performance.now();
const api = new RemoteCluster(resolveKubeconfig(await readKubeconfig(input.kubeconfig)));
const abort = new AbortController();
parentPort?.on('message', (m) => {
  if (m === 'stop') abort.abort();
});

const scheduled = new Set<string>();
const running = new Set<string>();
let pendingScheduled: Array<[string, number]> = [];
let pendingRunning: Array<[string, number]> = [];
let restarts = 0;
const flush = (): void => {
  if (pendingScheduled.length === 0 && pendingRunning.length === 0) return;
  parentPort?.postMessage({ scheduled: pendingScheduled, running: pendingRunning, restarts });
  pendingScheduled = [];
  pendingRunning = [];
};
const timer = setInterval(flush, 200);

const see = (pod: KubeObject, at: number): void => {
  const name = pod.metadata.name ?? '';
  if ((pod['spec'] as { nodeName?: string } | undefined)?.nodeName !== undefined && !scheduled.has(name)) {
    scheduled.add(name);
    pendingScheduled.push([name, at]);
  }
  if ((pod['status'] as { phase?: string } | undefined)?.phase === 'Running' && !running.has(name)) {
    running.add(name);
    pendingRunning.push([name, at]);
  }
};

const options = { namespace: input.namespace, labelSelector: input.labelSelector };
let rv = (await api.list(Resources.pods, { ...options, limit: 1 })).metadata?.resourceVersion ?? '0';
while (!abort.signal.aborted && running.size < input.total) {
  try {
    for await (const e of api.watch(Resources.pods, {
      ...options,
      resourceVersion: rv,
      allowWatchBookmarks: true,
      signal: abort.signal,
    })) {
      rv = e.object.metadata.resourceVersion ?? rv;
      if (e.type !== 'BOOKMARK') see(e.object, now());
      if (running.size >= input.total) break;
    }
  } catch {
    if (abort.signal.aborted) break;
    // Expired (fell too far behind): list again; what is Running now is stamped now (an upper bound).
    restarts++;
    const pods = await listAll(api, Resources.pods, options, (listedAt) => {
      rv = listedAt ?? rv;
    });
    const at = now();
    for (const p of pods) see(p, at);
  }
}
clearInterval(timer);
flush();
api.close();
parentPort?.removeAllListeners('message'); // a listening port keeps the thread alive
parentPort?.unref();
