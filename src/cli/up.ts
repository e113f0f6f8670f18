import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isApiError } from '../api/status-error.ts';
import { LocalCluster } from '../apiserver/local-cluster.ts';
import { Resources } from '../client/types.ts';
import { createRootLogger } from '../lib/log.ts';
import { startAgent } from './agent.ts';
import { startServer } from './server.ts';

const DEMO = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'hello-edge', namespace: 'default', labels: { app: 'hello-edge' } },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'hello-edge' } },
    template: {
      metadata: { labels: { app: 'hello-edge' } },
      spec: { containers: [{ name: 'hello', image: 'busybox:1.36', command: ['sleep', 'infinity'] }] },
    },
  },
};

/**
 * `kedge up`: a server and one local agent on embedded defaults, and a demo Deployment whose pods run on
 * the local edge node. The agent uses the fake runtime (no containers) until the CRI issue lands.
 */
export async function runUpCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'data-dir': { type: 'string' }, listen: { type: 'string' }, 'node-name': { type: 'string' } },
    strict: true,
  });
  const base = resolve(values['data-dir'] ?? '.kedge');
  const logger = createRootLogger();
  const server = await startServer({
    logger: logger.child({ part: 'server' }),
    dataDir: join(base, 'server'),
    listen: values.listen ?? '127.0.0.1:6443',
  });
  const nodeName =
    values['node-name'] ??
    (hostname()
      .toLowerCase()
      .replace(/[^a-z0-9.-]/g, '-') ||
      'kedge-local');
  const agent = await startAgent({
    logger: logger.child({ part: 'agent' }),
    server: server.url,
    token: server.nodeToken,
    nodeName,
    dataDir: join(base, 'agent'),
    nodeLabels: 'kedge.io/demo=true',
    runtime: 'fake',
  });
  const cluster = new LocalCluster(server.api.storage);
  try {
    await cluster.create(Resources.deployments, 'default', DEMO);
  } catch (err) {
    if (!isApiError(err, 409)) throw err;
  }
  process.stderr.write(
    [
      '',
      `kedge is up: a server at ${server.url} and the edge node "${nodeName}" (fake runtime: pods are simulated).`,
      `  export KUBECONFIG=${server.kubeconfigPath}`,
      '  kubectl get nodes',
      '  kubectl get pods -o wide            # the hello-edge Deployment runs on the edge node',
      `  curl ${agent.localApiUrl ?? '(local API off)'}/api/v1/pods   # the node-local read-only API`,
      `Join another machine: kedge agent --server ${server.url} --token $(cat ${join(server.dataDir, 'node-token')})`,
      'The demo device (Modbus/virtual twins) comes with the devices issue. Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  const stop = Promise.withResolvers<void>();
  process.once('SIGINT', () => stop.resolve());
  process.once('SIGTERM', () => stop.resolve());
  await stop.promise;
  await agent.close();
  await server.close();
  return 0;
}
