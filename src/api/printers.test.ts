import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../lib/errors.ts';
import { ageSince, humanDuration } from './duration.ts';
import type { KubeObject } from './meta.ts';
import { buildTable, type CustomPrinterColumn, tableColumns } from './printers.ts';
import { BUILTIN_RESOURCES, type ResourceType } from './resource.ts';

const NOW = new Date('2024-06-01T12:00:00Z');
const ago = (seconds: number): string => new Date(NOW.getTime() - seconds * 1000).toISOString();
const MIN = 60;
const HOUR = 3600;
const DAY = 86400;

function rt(group: string, kind: string): ResourceType {
  const found = BUILTIN_RESOURCES.find((r) => r.group === group && r.kind === kind);
  assert.ok(found, `${group}/${kind}`);
  return found;
}

function row(r: ResourceType, obj: KubeObject) {
  const table = buildTable(r, [obj], { now: NOW });
  assert.equal(table.rows.length, 1);
  return table.rows[0]!;
}

function cells(r: ResourceType, obj: KubeObject): unknown[] {
  return row(r, obj).cells;
}

function names(r: ResourceType, ps?: CustomPrinterColumn[]): string[] {
  return tableColumns(r, ps).map((c) => (c.priority > 0 ? `${c.name}*` : c.name));
}

describe('humanDuration', () => {
  const cases: [number, string][] = [
    [-5 * 1000, '<invalid>'],
    [-1500, '0s'],
    [0, '0s'],
    [59 * 1000, '59s'],
    [119 * 1000, '119s'],
    [(2 * MIN + 3) * 1000, '2m3s'],
    [5 * MIN * 1000, '5m'],
    [10 * MIN * 1000, '10m'],
    [179 * MIN * 1000, '179m'],
    [(3 * HOUR + 5 * MIN) * 1000, '3h5m'],
    [7 * HOUR * 1000, '7h'],
    [10 * HOUR * 1000, '10h'],
    [47 * HOUR * 1000, '47h'],
    [(2 * DAY + 3 * HOUR) * 1000, '2d3h'],
    [7 * DAY * 1000, '7d'],
    [45 * DAY * 1000, '45d'],
    [729 * DAY * 1000, '729d'],
    [(2 * 365 + 30) * DAY * 1000, '2y30d'],
    [3 * 365 * DAY * 1000, '3y'],
    [9 * 365 * DAY * 1000, '9y'],
  ];
  for (const [ms, want] of cases) test(`${ms}ms is ${want}`, () => assert.equal(humanDuration(ms), want));

  test('ages of timestamps', () => {
    assert.equal(ageSince(undefined, NOW), '<unknown>');
    assert.equal(ageSince('', NOW), '<unknown>');
    assert.equal(ageSince(ago(90), NOW), '90s');
  });
});

const podType = rt('', 'Pod');

function pod(
  status: Record<string, unknown>,
  extra: Partial<KubeObject> = {},
  spec: Record<string, unknown> = {},
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web',
      namespace: 'default',
      creationTimestamp: ago(3 * HOUR + 5 * MIN),
      ...extra.metadata,
    },
    spec: { containers: [{ name: 'app', image: 'nginx' }], nodeName: 'edge-1', ...spec },
    status,
  };
}

const running = { running: { startedAt: ago(HOUR) } };

describe('Pod table', () => {
  test('columns', () => {
    assert.deepEqual(names(podType), [
      'Name',
      'Ready',
      'Status',
      'Restarts',
      'Age',
      'IP*',
      'Node*',
      'Nominated Node*',
      'Readiness Gates*',
    ]);
    assert.equal(tableColumns(podType)[0]?.format, 'name');
  });

  const cases: [string, KubeObject, unknown[]][] = [
    [
      'pending, unscheduled',
      { ...pod({ phase: 'Pending' }), spec: { containers: [{ name: 'app' }] } },
      ['web', '0/1', 'Pending', '0', '3h5m', '<none>', '<none>', '<none>', '<none>'],
    ],
    [
      'running and ready',
      pod({
        phase: 'Running',
        podIPs: [{ ip: '10.42.0.7' }],
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: [{ name: 'app', ready: true, restartCount: 0, state: running }],
      }),
      ['web', '1/1', 'Running', '0', '3h5m', '10.42.0.7', 'edge-1', '<none>', '<none>'],
    ],
    [
      'crash looping with restarts',
      pod({
        phase: 'Running',
        containerStatuses: [
          {
            name: 'app',
            ready: false,
            restartCount: 5,
            state: { waiting: { reason: 'CrashLoopBackOff' } },
            lastState: { terminated: { exitCode: 1, reason: 'Error', finishedAt: ago(5 * MIN) } },
          },
        ],
      }),
      ['web', '0/1', 'CrashLoopBackOff', '5 (5m ago)', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'image pull error',
      pod({
        phase: 'Pending',
        containerStatuses: [
          { name: 'app', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImagePull' } } },
        ],
      }),
      ['web', '0/1', 'ErrImagePull', '0', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'completed',
      pod({
        phase: 'Succeeded',
        containerStatuses: [
          {
            name: 'app',
            ready: false,
            restartCount: 0,
            state: { terminated: { exitCode: 0, reason: 'Completed' } },
          },
        ],
      }),
      ['web', '0/1', 'Completed', '0', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'killed by a signal without reason',
      pod({
        phase: 'Failed',
        containerStatuses: [
          { name: 'app', ready: false, restartCount: 0, state: { terminated: { exitCode: 137, signal: 9 } } },
        ],
      }),
      ['web', '0/1', 'Signal:9', '0', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'exit code without reason',
      pod({
        phase: 'Failed',
        containerStatuses: [
          { name: 'app', ready: false, restartCount: 0, state: { terminated: { exitCode: 3 } } },
        ],
      }),
      ['web', '0/1', 'ExitCode:3', '0', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'evicted (status reason)',
      pod({ phase: 'Failed', reason: 'Evicted' }),
      ['web', '0/1', 'Evicted', '0', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'waiting for an init container',
      pod(
        {
          phase: 'Pending',
          initContainerStatuses: [{ name: 'init', ready: false, restartCount: 0, state: { running: {} } }],
          containerStatuses: [
            { name: 'app', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } },
          ],
        },
        {},
        { initContainers: [{ name: 'init', image: 'busybox' }] },
      ),
      ['web', '0/1', 'Init:0/1', '0', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'second init container crash looping',
      pod(
        {
          phase: 'Pending',
          initContainerStatuses: [
            {
              name: 'a',
              ready: true,
              restartCount: 0,
              state: { terminated: { exitCode: 0, reason: 'Completed' } },
            },
            {
              name: 'b',
              ready: false,
              restartCount: 3,
              state: { waiting: { reason: 'CrashLoopBackOff' } },
              lastState: { terminated: { exitCode: 1, finishedAt: ago(30) } },
            },
          ],
          containerStatuses: [
            { name: 'app', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } },
          ],
        },
        {},
        { initContainers: [{ name: 'a' }, { name: 'b' }] },
      ),
      ['web', '0/1', 'Init:CrashLoopBackOff', '3 (30s ago)', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'init container failed',
      pod(
        {
          phase: 'Pending',
          initContainerStatuses: [
            { name: 'a', ready: false, restartCount: 0, state: { terminated: { exitCode: 2 } } },
          ],
        },
        {},
        { initContainers: [{ name: 'a' }, { name: 'b' }] },
      ),
      ['web', '0/1', 'Init:ExitCode:2', '0', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'running sidecar counts as a container',
      pod(
        {
          phase: 'Running',
          conditions: [
            { type: 'Initialized', status: 'True' },
            { type: 'Ready', status: 'True' },
          ],
          initContainerStatuses: [
            {
              name: 'proxy',
              ready: true,
              started: true,
              restartCount: 1,
              state: running,
              lastState: { terminated: { exitCode: 1, finishedAt: ago(2 * HOUR) } },
            },
          ],
          containerStatuses: [{ name: 'app', ready: true, restartCount: 0, state: running }],
        },
        {},
        { initContainers: [{ name: 'proxy', restartPolicy: 'Always' }] },
      ),
      ['web', '2/2', 'Running', '1 (120m ago)', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'completed container beside a running one',
      pod(
        {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'False' }],
          containerStatuses: [
            { name: 'app', ready: true, restartCount: 0, state: running },
            {
              name: 'job',
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode: 0, reason: 'Completed' } },
            },
          ],
        },
        {},
        { containers: [{ name: 'app' }, { name: 'job' }] },
      ),
      ['web', '1/2', 'NotReady', '0', '3h5m', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'terminating',
      pod(
        {
          phase: 'Running',
          containerStatuses: [{ name: 'app', ready: true, restartCount: 0, state: running }],
        },
        { metadata: { name: 'web', creationTimestamp: ago(10), deletionTimestamp: ago(1) } },
      ),
      ['web', '1/1', 'Terminating', '0', '10s', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'terminating on a lost node',
      pod(
        { phase: 'Running', reason: 'NodeLost' },
        { metadata: { name: 'web', creationTimestamp: ago(10), deletionTimestamp: ago(1) } },
      ),
      ['web', '0/1', 'Unknown', '0', '10s', '<none>', 'edge-1', '<none>', '<none>'],
    ],
    [
      'scheduling gated, nominated, readiness gates',
      pod(
        {
          phase: 'Pending',
          nominatedNodeName: 'edge-2',
          conditions: [
            { type: 'PodScheduled', status: 'False', reason: 'SchedulingGated' },
            { type: 'example.com/gate', status: 'True' },
          ],
        },
        {},
        {
          nodeName: undefined,
          readinessGates: [{ conditionType: 'example.com/gate' }, { conditionType: 'other' }],
        },
      ),
      ['web', '0/1', 'SchedulingGated', '0', '3h5m', '<none>', '<none>', 'edge-2', '1/2'],
    ],
  ];
  for (const [title, obj, want] of cases) {
    test(title, () => assert.deepEqual(cells(podType, obj), want));
  }

  test('finished pods carry a Completed row condition', () => {
    assert.deepEqual(row(podType, pod({ phase: 'Succeeded' })).conditions, [
      {
        type: 'Completed',
        status: 'True',
        reason: 'Succeeded',
        message: 'The pod has completed successfully.',
      },
    ]);
    assert.equal(row(podType, pod({ phase: 'Failed' })).conditions?.[0]?.reason, 'Failed');
    assert.equal(row(podType, pod({ phase: 'Running' })).conditions, undefined);
  });
});

describe('built-in kinds', () => {
  const meta = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    creationTimestamp: ago(45 * DAY),
    ...extra,
  });

  const cases: [string, ResourceType, string[], KubeObject, unknown[]][] = [
    [
      'ready node with roles',
      rt('', 'Node'),
      [
        'Name',
        'Status',
        'Roles',
        'Age',
        'Version',
        'Internal-IP*',
        'External-IP*',
        'OS-Image*',
        'Kernel-Version*',
        'Container-Runtime*',
      ],
      {
        metadata: meta('edge-1', {
          labels: {
            'node-role.kubernetes.io/edge': '',
            'node-role.kubernetes.io/agent': '',
            'kubernetes.io/role': 'gw',
          },
        }),
        spec: {},
        status: {
          conditions: [{ type: 'Ready', status: 'True' }],
          addresses: [
            { type: 'Hostname', address: 'edge-1' },
            { type: 'InternalIP', address: '192.168.1.10' },
          ],
          nodeInfo: {
            kubeletVersion: 'v1.32.0-kedge',
            osImage: 'Debian GNU/Linux 12 (bookworm)',
            kernelVersion: '6.1.0',
            containerRuntimeVersion: 'containerd://1.6.20',
          },
        },
      },
      [
        'edge-1',
        'Ready',
        'agent,edge,gw',
        '45d',
        'v1.32.0-kedge',
        '192.168.1.10',
        '<none>',
        'Debian GNU/Linux 12 (bookworm)',
        '6.1.0',
        'containerd://1.6.20',
      ],
    ],
    [
      'cordoned node that stopped reporting',
      rt('', 'Node'),
      [],
      {
        metadata: meta('edge-2'),
        spec: { unschedulable: true },
        status: { conditions: [{ type: 'Ready', status: 'Unknown' }] },
      },
      [
        'edge-2',
        'NotReady,SchedulingDisabled',
        '<none>',
        '45d',
        '',
        '<none>',
        '<none>',
        '<unknown>',
        '<unknown>',
        '<unknown>',
      ],
    ],
    [
      'node without conditions',
      rt('', 'Node'),
      [],
      { metadata: meta('edge-3'), spec: {}, status: {} },
      ['edge-3', 'Unknown', '<none>', '45d', '', '<none>', '<none>', '<unknown>', '<unknown>', '<unknown>'],
    ],
    [
      'namespace',
      rt('', 'Namespace'),
      ['Name', 'Status', 'Age'],
      { metadata: meta('kube-system'), status: { phase: 'Active' } },
      ['kube-system', 'Active', '45d'],
    ],
    [
      'configmap counts data and binaryData',
      rt('', 'ConfigMap'),
      ['Name', 'Data', 'Age'],
      { metadata: meta('cfg'), data: { a: '1', b: '2' }, binaryData: { c: 'AA==' } },
      ['cfg', 3, '45d'],
    ],
    [
      'secret',
      rt('', 'Secret'),
      ['Name', 'Type', 'Data', 'Age'],
      { metadata: meta('s'), type: 'Opaque', data: { k: 'dg==' } },
      ['s', 'Opaque', 1, '45d'],
    ],
    [
      'cluster-ip service',
      rt('', 'Service'),
      ['Name', 'Type', 'Cluster-IP', 'External-IP', 'Port(s)', 'Age', 'Selector*'],
      {
        metadata: meta('web'),
        spec: {
          type: 'ClusterIP',
          clusterIP: '10.43.0.10',
          clusterIPs: ['10.43.0.10'],
          ports: [
            { port: 80, protocol: 'TCP' },
            { port: 53, protocol: 'UDP' },
          ],
          selector: { tier: 'front', app: 'web' },
        },
      },
      ['web', 'ClusterIP', '10.43.0.10', '<none>', '80/TCP,53/UDP', '45d', 'app=web,tier=front'],
    ],
    [
      'pending load balancer with node ports',
      rt('', 'Service'),
      [],
      {
        metadata: meta('lb'),
        spec: {
          type: 'LoadBalancer',
          clusterIPs: ['10.43.0.11'],
          ports: [{ port: 443, nodePort: 30443, protocol: 'TCP' }],
        },
        status: { loadBalancer: {} },
      },
      ['lb', 'LoadBalancer', '10.43.0.11', '<pending>', '443:30443/TCP', '45d', '<none>'],
    ],
    [
      'load balancer with ingress and external IPs',
      rt('', 'Service'),
      [],
      {
        metadata: meta('lb2'),
        spec: { type: 'LoadBalancer', clusterIPs: ['10.43.0.12'], externalIPs: ['1.2.3.4'], ports: [] },
        status: { loadBalancer: { ingress: [{ ip: '203.0.113.9' }, { hostname: 'lb.example.com' }] } },
      },
      ['lb2', 'LoadBalancer', '10.43.0.12', '203.0.113.9,lb.example.com,1.2.3.4', '<none>', '45d', '<none>'],
    ],
    [
      'headless external name',
      rt('', 'Service'),
      [],
      {
        metadata: meta('ext'),
        spec: { type: 'ExternalName', externalName: 'db.example.com', clusterIP: 'None' },
      },
      ['ext', 'ExternalName', 'None', 'db.example.com', '<none>', '45d', '<none>'],
    ],
    [
      'endpoints with more than three addresses',
      rt('', 'Endpoints'),
      ['Name', 'Endpoints', 'Age'],
      {
        metadata: meta('web'),
        subsets: [
          { addresses: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }], ports: [{ port: 80 }, { port: 443 }] },
          { addresses: [{ ip: 'fd00::1' }] },
        ],
      },
      ['web', '10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...', '45d'],
    ],
    [
      'endpoints without subsets',
      rt('', 'Endpoints'),
      [],
      { metadata: meta('none') },
      ['none', '<none>', '45d'],
    ],
    [
      'core event',
      rt('', 'Event'),
      [
        'Last Seen',
        'Type',
        'Reason',
        'Object',
        'Subobject*',
        'Source*',
        'Message',
        'First Seen*',
        'Count*',
        'Name*',
      ],
      {
        metadata: meta('web.17a'),
        involvedObject: { kind: 'Pod', name: 'web', namespace: 'default', fieldPath: 'spec.containers{app}' },
        reason: 'BackOff',
        message: 'Back-off restarting failed container\n',
        type: 'Warning',
        source: { component: 'kubelet', host: 'edge-1' },
        firstTimestamp: ago(2 * HOUR),
        lastTimestamp: ago(90),
        count: 12,
      },
      [
        '90s',
        'Warning',
        'BackOff',
        'pod/web',
        'spec.containers{app}',
        'kubelet, edge-1',
        'Back-off restarting failed container',
        '120m',
        12,
        'web.17a',
      ],
    ],
    [
      'core event in the new style (eventTime, series, reporting controller)',
      rt('', 'Event'),
      [],
      {
        metadata: meta('n.1'),
        involvedObject: { kind: 'Node', name: 'edge-1' },
        reason: 'NodeReady',
        message: 'ok',
        type: 'Normal',
        source: {},
        eventTime: ago(10 * MIN),
        series: { count: 4, lastObservedTime: ago(20) },
        reportingComponent: 'kedge-hub',
        reportingInstance: 'server-0',
      },
      ['20s', 'Normal', 'NodeReady', 'node/edge-1', '', 'kedge-hub, server-0', 'ok', '10m', 4, 'n.1'],
    ],
    [
      'events.k8s.io event',
      rt('events.k8s.io', 'Event'),
      [
        'Last Seen',
        'Type',
        'Reason',
        'Object',
        'Subobject*',
        'Source*',
        'Message',
        'First Seen*',
        'Count*',
        'Name*',
      ],
      {
        metadata: meta('d.1'),
        regarding: { kind: 'Device' },
        reason: 'Offline',
        note: '  lost  ',
        type: 'Warning',
        eventTime: ago(30),
        reportingController: 'kedge.io/devices',
        reportingInstance: '',
      },
      ['30s', 'Warning', 'Offline', 'device', '', 'kedge.io/devices', 'lost', '30s', 1, 'd.1'],
    ],
    [
      'service account',
      rt('', 'ServiceAccount'),
      ['Name', 'Secrets', 'Age'],
      { metadata: meta('default'), secrets: [{ name: 'token' }] },
      ['default', 1, '45d'],
    ],
    [
      'lease',
      rt('coordination.k8s.io', 'Lease'),
      ['Name', 'Holder', 'Age'],
      { metadata: meta('edge-1'), spec: { holderIdentity: 'edge-1', leaseDurationSeconds: 40 } },
      ['edge-1', 'edge-1', '45d'],
    ],
    [
      'deployment',
      rt('apps', 'Deployment'),
      ['Name', 'Ready', 'Up-to-date', 'Available', 'Age', 'Containers*', 'Images*', 'Selector*'],
      {
        metadata: meta('web'),
        spec: {
          replicas: 3,
          selector: {
            matchLabels: { app: 'web' },
            matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'api'] }],
          },
          template: {
            spec: {
              containers: [
                { name: 'app', image: 'nginx:1.27' },
                { name: 'log', image: 'fluent' },
              ],
            },
          },
        },
        status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 },
      },
      ['web', '2/3', 3, 2, '45d', 'app,log', 'nginx:1.27,fluent', 'app=web,tier in (api,front)'],
    ],
    [
      'replicaset with defaulted replicas and no status',
      rt('apps', 'ReplicaSet'),
      ['Name', 'Desired', 'Current', 'Ready', 'Age', 'Containers*', 'Images*', 'Selector*'],
      {
        metadata: meta('web-5d8'),
        spec: {
          selector: { matchLabels: { app: 'web' } },
          template: { spec: { containers: [{ name: 'app', image: 'nginx' }] } },
        },
      },
      ['web-5d8', 1, 0, 0, '45d', 'app', 'nginx', 'app=web'],
    ],
    [
      'daemonset',
      rt('apps', 'DaemonSet'),
      [
        'Name',
        'Desired',
        'Current',
        'Ready',
        'Up-to-date',
        'Available',
        'Node Selector',
        'Age',
        'Containers*',
        'Images*',
        'Selector*',
      ],
      {
        metadata: meta('agent'),
        spec: {
          selector: {},
          template: {
            spec: {
              nodeSelector: { 'kubernetes.io/os': 'linux' },
              containers: [{ name: 'a', image: 'kedge/agent' }],
            },
          },
        },
        status: {
          desiredNumberScheduled: 5,
          currentNumberScheduled: 5,
          numberReady: 4,
          updatedNumberScheduled: 5,
          numberAvailable: 4,
        },
      },
      ['agent', 5, 5, 4, 5, 4, 'kubernetes.io/os=linux', '45d', 'a', 'kedge/agent', '<none>'],
    ],
    [
      'controller revision',
      rt('apps', 'ControllerRevision'),
      ['Name', 'Controller', 'Revision', 'Age'],
      {
        metadata: meta('agent-7f9', {
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'u', controller: true },
          ],
        }),
        revision: 2,
      },
      ['agent-7f9', 'daemonset.apps/agent', 2, '45d'],
    ],
    [
      'controller revision without owner',
      rt('apps', 'ControllerRevision'),
      [],
      { metadata: meta('x'), revision: 1 },
      ['x', '<none>', 1, '45d'],
    ],
    [
      'running job with parallelism',
      rt('batch', 'Job'),
      ['Name', 'Status', 'Completions', 'Duration', 'Age', 'Containers*', 'Images*', 'Selector*'],
      {
        metadata: meta('batch'),
        spec: {
          parallelism: 3,
          selector: { matchLabels: { 'batch.kubernetes.io/controller-uid': 'u1' } },
          template: { spec: { containers: [{ name: 'w', image: 'busybox' }] } },
        },
        status: { startTime: ago(4 * MIN), succeeded: 1 },
      },
      ['batch', 'Running', '1/1 of 3', '4m', '45d', 'w', 'busybox', 'batch.kubernetes.io/controller-uid=u1'],
    ],
    [
      'completed job',
      rt('batch', 'Job'),
      [],
      {
        metadata: meta('done'),
        spec: { completions: 2, template: { spec: { containers: [] } } },
        status: {
          startTime: ago(HOUR),
          completionTime: ago(HOUR - 75),
          succeeded: 2,
          conditions: [{ type: 'Complete', status: 'True' }],
        },
      },
      ['done', 'Complete', '2/2', '75s', '45d', '', '', '<none>'],
    ],
    [
      'failed and suspended jobs',
      rt('batch', 'Job'),
      [],
      {
        metadata: meta('f'),
        spec: { completions: 1 },
        status: {
          conditions: [
            { type: 'Suspended', status: 'True' },
            { type: 'Failed', status: 'True' },
          ],
        },
      },
      ['f', 'Failed', '0/1', '', '45d', '', '', '<none>'],
    ],
    [
      'custom resource definition',
      rt('apiextensions.k8s.io', 'CustomResourceDefinition'),
      ['Name', 'Created At'],
      { metadata: { name: 'devices.kedge.io', creationTimestamp: '2024-05-01T10:20:30Z' } },
      ['devices.kedge.io', '2024-05-01T10:20:30Z'],
    ],
  ];
  for (const [title, type, columns, obj, want] of cases) {
    test(title, () => {
      if (columns.length > 0) assert.deepEqual(names(type), columns);
      assert.deepEqual(cells(type, obj), want);
    });
  }

  test('other built-ins fall back to Name and Age', () => {
    const type = rt('authorization.k8s.io', 'SelfSubjectAccessReview');
    assert.deepEqual(names(type), ['Name', 'Age']);
    assert.deepEqual(cells(type, { metadata: { name: 'x' } }), ['x', '<unknown>']);
  });
});

const widgetType: ResourceType = {
  group: 'kedge.io',
  version: 'v1alpha1',
  kind: 'Device',
  listKind: 'DeviceList',
  plural: 'devices',
  singular: 'device',
  namespaced: true,
  shortNames: [],
  categories: [],
  verbs: ['get', 'list'],
  subresources: {},
  custom: true,
};

describe('custom resources', () => {
  const columns: CustomPrinterColumn[] = [
    { name: 'Protocol', type: 'string', jsonPath: '.spec.protocol' },
    {
      name: 'Node',
      type: 'string',
      jsonPath: '.spec.nodeName',
      priority: 1,
      description: 'Where it is attached',
    },
    { name: 'Twins', type: 'integer', jsonPath: '.status.twinCount' },
    { name: 'Temp', type: 'number', jsonPath: ".status.twins[?(@.name=='temp')].reported" },
    { name: 'Online', type: 'boolean', jsonPath: '.status.online' },
    { name: 'Seen', type: 'date', jsonPath: '.status.lastSeen' },
    { name: 'Labels', type: 'string', jsonPath: '.metadata.labels' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ];
  const device: KubeObject = {
    apiVersion: 'kedge.io/v1alpha1',
    kind: 'Device',
    metadata: {
      name: 'thermo-1',
      namespace: 'default',
      creationTimestamp: ago(2 * DAY + 3 * HOUR),
      labels: { z: '1', a: '2' },
    },
    spec: { protocol: 'modbus', nodeName: 'edge-1' },
    status: { twinCount: 2, twins: [{ name: 'temp', reported: 21.5 }], online: true, lastSeen: ago(45) },
  };

  test('evaluates printer columns by type', () => {
    const table = buildTable(widgetType, [device], { now: NOW, printerColumns: columns });
    assert.deepEqual(
      table.columnDefinitions.map((c) => [c.name, c.type, c.priority]),
      [['Name', 'string', 0], ...columns.map((c) => [c.name, c.type, c.priority ?? 0])],
    );
    assert.equal(table.columnDefinitions[2]?.description, 'Where it is attached');
    assert.deepEqual(table.rows[0]?.cells, [
      'thermo-1',
      'modbus',
      'edge-1',
      2,
      21.5,
      true,
      '45s',
      '{"a":"2","z":"1"}',
      '2d3h',
    ]);
  });

  test('missing or mistyped values are null, bad dates <invalid>', () => {
    const odd: KubeObject = {
      metadata: { name: 'odd' },
      spec: { protocol: 7 },
      status: { twinCount: 'two', online: 'yes', lastSeen: 'yesterday' },
    };
    const table = buildTable(widgetType, [odd], { now: NOW, printerColumns: columns });
    assert.deepEqual(table.rows[0]?.cells, ['odd', '7', null, null, null, null, '<invalid>', null, null]);
  });

  test('no printer columns gives Name and an Age date column', () => {
    const table = buildTable(widgetType, [device], { now: NOW });
    assert.deepEqual(
      table.columnDefinitions.map((c) => [c.name, c.type]),
      [
        ['Name', 'string'],
        ['Age', 'date'],
      ],
    );
    assert.deepEqual(table.rows[0]?.cells, ['thermo-1', '2d3h']);
  });

  test('an invalid printer column path is rejected', () => {
    assert.throws(
      () => buildTable(widgetType, [], { printerColumns: [{ name: 'X', type: 'string', jsonPath: '.a[' }] }),
      (err: unknown) => isKedgeError(err, 'KEDGE_JSONPATH_INVALID'),
    );
  });
});

describe('table envelope', () => {
  const cm: KubeObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'c', namespace: 'ns', uid: 'u1' },
    data: {},
  };

  test('list metadata and the default Metadata objects', () => {
    const table = buildTable(rt('', 'ConfigMap'), [cm], {
      now: NOW,
      resourceVersion: '42',
      continue: 'tok',
      remainingItemCount: 3,
    });
    assert.equal(table.kind, 'Table');
    assert.equal(table.apiVersion, 'meta.k8s.io/v1');
    assert.deepEqual(table.metadata, { resourceVersion: '42', continue: 'tok', remainingItemCount: 3 });
    assert.deepEqual(table.rows[0]?.object, {
      apiVersion: 'meta.k8s.io/v1',
      kind: 'PartialObjectMetadata',
      metadata: cm.metadata,
    });
  });

  test('Object and None', () => {
    assert.equal(buildTable(rt('', 'ConfigMap'), [cm], { includeObject: 'Object' }).rows[0]?.object, cm);
    const none = buildTable(rt('', 'ConfigMap'), [cm], { includeObject: 'None' }).rows[0];
    assert.ok(none !== undefined && !('object' in none));
    assert.deepEqual(buildTable(rt('', 'ConfigMap'), []).metadata, {});
  });

  test('serialises every column field, as the apiserver does', () => {
    const json = JSON.parse(JSON.stringify(buildTable(rt('', 'Namespace'), [])));
    assert.deepEqual(Object.keys(json.columnDefinitions[2]).sort(), [
      'description',
      'format',
      'name',
      'priority',
      'type',
    ]);
  });

  test('every row has as many cells as there are columns', () => {
    const types = [...BUILTIN_RESOURCES, widgetType];
    const anyObject = fc.record({
      metadata: fc.record(
        {
          name: fc.string(),
          creationTimestamp: fc.oneof(fc.constant(ago(5)), fc.string()),
          deletionTimestamp: fc.constant(ago(1)),
        },
        { requiredKeys: [] },
      ),
      spec: fc.jsonValue(),
      status: fc.jsonValue(),
      data: fc.jsonValue(),
      subsets: fc.jsonValue(),
    });
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.array(anyObject, { maxLength: 3 }), (type, objects) => {
        const table = buildTable(type, objects as KubeObject[], { now: NOW });
        assert.equal(table.rows.length, objects.length);
        for (const r of table.rows) {
          assert.equal(r.cells.length, table.columnDefinitions.length);
          for (const c of r.cells)
            assert.ok(c === null || ['string', 'number', 'boolean'].includes(typeof c));
        }
      }),
    );
  });
});
