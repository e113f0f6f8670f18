import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DeviceResources } from '../api/devices.ts';
import type { KubeObject } from '../api/meta.ts';
import { isApiError } from '../api/status-error.ts';
import { LocalCluster } from '../apiserver/local-cluster.ts';
import { Resources } from '../client/types.ts';
import { isKedgeError } from '../lib/errors.ts';
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

/** The demo device: a simulated thermostat (virtual protocol) whose temperature follows its target. */
function demoDevice(nodeName: string): { model: KubeObject; device: KubeObject } {
  return {
    model: {
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'DeviceModel',
      metadata: { name: 'demo-thermostat', namespace: 'default' },
      spec: {
        protocol: 'virtual',
        properties: [
          { name: 'temperature', type: 'FLOAT', accessMode: 'ReadOnly', unit: 'celsius' },
          {
            name: 'target',
            type: 'INT',
            accessMode: 'ReadWrite',
            minimum: '5',
            maximum: '35',
            unit: 'celsius',
          },
        ],
      },
    },
    device: {
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'Device',
      metadata: { name: 'demo-thermostat', namespace: 'default' },
      spec: {
        deviceModelRef: { name: 'demo-thermostat' },
        nodeName,
        protocol: { protocolName: 'virtual', configData: { seed: 42 } },
        properties: [
          {
            name: 'temperature',
            collectCycle: 1000,
            visitors: {
              protocolName: 'virtual',
              configData: { generator: 'follow', property: 'target', rate: 0.2, noise: 0.3, decimals: 1 },
            },
          },
          {
            name: 'target',
            collectCycle: 1000,
            desired: { value: '21' },
            visitors: { protocolName: 'virtual', configData: {} },
          },
        ],
      },
    },
  };
}

/**
 * `kedge up`: a server and one local agent on embedded defaults, a demo Deployment whose pods run on the
 * local edge node, and a demo device (virtual protocol) whose twins the agent serves over MQTT. The agent
 * uses the fake runtime (no containers) until the CRI issue lands.
 */
export async function runUpCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      'node-name': { type: 'string' },
      'mqtt-listen': { type: 'string' },
      'local-api': { type: 'string' },
    },
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
  const agentOptions = {
    logger: logger.child({ part: 'agent' }),
    server: server.url,
    token: server.nodeToken,
    nodeName,
    dataDir: join(base, 'agent'),
    nodeLabels: 'kedge.io/demo=true',
    ...(values['local-api'] === undefined ? {} : { localApi: values['local-api'] }),
    runtime: 'fake',
  };
  const mqttListen = values['mqtt-listen'] ?? process.env['KEDGE_MQTT_LISTEN'] ?? '127.0.0.1:1883';
  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent({ ...agentOptions, mqttListen });
  } catch (err) {
    // 1883 is often taken (a system mosquitto): the quickstart takes a free port instead and says so.
    if (!isKedgeError(err, 'KEDGE_MQTT_BROKER') || values['mqtt-listen'] !== undefined) throw err;
    logger.warn({ mqttListen, reason: err.message }, 'MQTT port taken; using a free port for the demo');
    agent = await startAgent({ ...agentOptions, mqttListen: '127.0.0.1:0' });
  }
  const cluster = new LocalCluster(server.api.storage);
  const demo = demoDevice(nodeName);
  for (const [ref, obj] of [
    [Resources.deployments, DEMO],
    [DeviceResources.devicemodels, demo.model],
    [DeviceResources.devices, demo.device],
  ] as const) {
    try {
      await cluster.create(ref, 'default', obj);
    } catch (err) {
      if (!isApiError(err, 409)) throw err;
    }
  }
  const mqtt = new URL(agent.mqttUrl ?? 'mqtt://127.0.0.1:1883');
  process.stderr.write(
    [
      '',
      `kedge is up: a server at ${server.url} and the edge node "${nodeName}" (fake runtime: pods are simulated).`,
      `  export KUBECONFIG=${server.kubeconfigPath}`,
      '  kubectl get nodes',
      '  kubectl get pods -o wide            # the hello-edge Deployment runs on the edge node',
      `  curl ${agent.localApiUrl ?? '(local API off)'}/api/v1/pods   # the node-local read-only API`,
      '  kubectl get devices                # demo-thermostat (virtual protocol) on the edge node, online',
      "  kubectl get device demo-thermostat -o jsonpath='{.status.twins}'   # temperature changes, following target",
      '  kubectl patch device demo-thermostat --type=json -p \'[{"op":"replace","path":"/spec/properties/1/desired/value","value":"28"}]\'',
      `  mosquitto_sub -h ${mqtt.hostname} -p ${mqtt.port} -v -t '$hw/events/device/default/demo-thermostat/#'   # the twin over MQTT`,
      `Join another machine: kedge agent --server ${server.url} --token $(cat ${join(server.dataDir, 'node-token')})`,
      'Press Ctrl-C to stop.',
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
