/**
 * Server-side tables (meta.k8s.io/v1 `Table`), what kubectl gets when it asks with
 * `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`. Columns and cells follow the Kubernetes 1.32
 * printers (pkg/printers/internalversion); like the apiserver, every row carries the wide
 * (priority 1) cells too, and kubectl hides them unless asked for `-o wide`.
 */
import { ageSince, humanDuration, parseTimestamp } from './duration.ts';
import { compileJsonPath, formatJsonPathValue, type JsonPathFn } from './jsonpath.ts';
import type { KubeObject, LabelSelectorSpec, ListMeta, ObjectMeta } from './meta.ts';
import { isPlainObject } from './meta.ts';
import type { ResourceType } from './resource.ts';
import {
  formatLabelSelectorSpec,
  formatLabels,
  labelSelectorFromSpec,
  labelSelectorToString,
} from './selectors.ts';

export interface TableColumnDefinition {
  name: string;
  /** OpenAPI type: string, integer, number, boolean, date. */
  type: string;
  /** OpenAPI format; `name` marks the column holding the object's name. */
  format: string;
  description: string;
  /** 0: always shown; 1 and up: shown by `kubectl get -o wide`. */
  priority: number;
}

export type TableCell = string | number | boolean | null;

export interface TableRowCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

export interface PartialObjectMetadata {
  apiVersion: 'meta.k8s.io/v1';
  kind: 'PartialObjectMetadata';
  metadata: ObjectMeta;
}

export interface TableRow {
  cells: TableCell[];
  conditions?: TableRowCondition[];
  object?: KubeObject | PartialObjectMetadata;
}

export interface Table {
  apiVersion: 'meta.k8s.io/v1';
  kind: 'Table';
  metadata: ListMeta;
  columnDefinitions: TableColumnDefinition[];
  rows: TableRow[];
}

/** One item of a CRD version's `additionalPrinterColumns`. */
export interface CustomPrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface BuildTableOptions {
  /** The time ages are measured against (default: now). */
  now?: Date;
  /** What each row's `object` holds (default `Metadata`, what kubectl asks for). */
  includeObject?: IncludeObject;
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
  /** For custom resources: the served version's additionalPrinterColumns. */
  printerColumns?: CustomPrinterColumn[];
}

// ---------------------------------------------------------------------------------------------
// Reading untyped objects safely.

function at(obj: unknown, ...path: (string | number)[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (typeof p === 'number') {
      if (!Array.isArray(cur)) return undefined;
      cur = cur[p];
    } else {
      if (!isPlainObject(cur)) return undefined;
      cur = cur[p];
    }
  }
  return cur;
}
function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
function num(v: unknown, dflt = 0): number {
  return typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : dflt;
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function count(v: unknown): number {
  if (Array.isArray(v)) return v.length;
  return isPlainObject(v) ? Object.keys(v).length : 0;
}
function strMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isPlainObject(v)) for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}
function selectorSpec(v: unknown): LabelSelectorSpec | undefined {
  return isPlainObject(v) ? (v as LabelSelectorSpec) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Column definitions (names as the apiserver sends them; kubectl upper-cases them).

const DESC_NAME =
  'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names';
const DESC_AGE =
  'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata';
const DESC_CONTAINERS = 'Names of each container in the template.';
const DESC_IMAGES = 'Images referenced by each container in the template.';

function col(
  name: string,
  type: string,
  description: string,
  priority = 0,
  format = '',
): TableColumnDefinition {
  return { name, type, format, description, priority };
}
const NAME = col('Name', 'string', DESC_NAME, 0, 'name');
const AGE = col('Age', 'string', DESC_AGE);
const WIDE_TEMPLATE = (selectorDesc: string): TableColumnDefinition[] => [
  col('Containers', 'string', DESC_CONTAINERS, 1),
  col('Images', 'string', DESC_IMAGES, 1),
  col('Selector', 'string', selectorDesc, 1),
];

type RowFn = (obj: KubeObject, now: Date) => { cells: TableCell[]; conditions?: TableRowCondition[] };

interface Printer {
  readonly columns: readonly TableColumnDefinition[];
  readonly row: RowFn;
}

function containerCells(podSpec: unknown): [string, string] {
  const containers = arr(at(podSpec, 'containers'));
  return [
    containers.map((c) => str(at(c, 'name'))).join(','),
    containers.map((c) => str(at(c, 'image'))).join(','),
  ];
}

function age(obj: KubeObject, now: Date): string {
  return ageSince(obj.metadata.creationTimestamp, now);
}

// ---------------------------------------------------------------------------------------------
// Pod

function isRestartableInit(spec: unknown, name: string): boolean {
  const c = arr(at(spec, 'initContainers')).find((x) => at(x, 'name') === name);
  return at(c, 'restartPolicy') === 'Always';
}

function hasCondition(conditions: unknown, type: string): boolean {
  return arr(conditions).some((c) => at(c, 'type') === type && at(c, 'status') === 'True');
}

function printPod(pod: KubeObject, now: Date): { cells: TableCell[]; conditions?: TableRowCondition[] } {
  const spec = pod['spec'];
  const status = pod['status'];
  let restarts = 0;
  let restartableInitRestarts = 0;
  let totalContainers = arr(at(spec, 'containers')).length;
  let readyContainers = 0;
  let lastRestart = 0;
  let lastRestartableInitRestart = 0;
  const phase = str(at(status, 'phase'));
  let reason = str(at(status, 'reason')) || phase;
  for (const c of arr(at(status, 'conditions'))) {
    if (at(c, 'type') === 'PodScheduled' && at(c, 'reason') === 'SchedulingGated') reason = 'SchedulingGated';
  }
  const initContainers = arr(at(spec, 'initContainers'));
  for (const c of initContainers) if (at(c, 'restartPolicy') === 'Always') totalContainers++;

  const finishedAt = (cs: unknown): number =>
    parseTimestamp(at(cs, 'lastState', 'terminated', 'finishedAt')) ?? 0;

  let initializing = false;
  const initStatuses = arr(at(status, 'initContainerStatuses'));
  for (let i = 0; i < initStatuses.length; i++) {
    const cs = initStatuses[i];
    const restartable = isRestartableInit(spec, str(at(cs, 'name')));
    restarts += num(at(cs, 'restartCount'));
    lastRestart = Math.max(lastRestart, finishedAt(cs));
    if (restartable) {
      restartableInitRestarts += num(at(cs, 'restartCount'));
      lastRestartableInitRestart = Math.max(lastRestartableInitRestart, finishedAt(cs));
    }
    const terminated = at(cs, 'state', 'terminated');
    const waiting = at(cs, 'state', 'waiting');
    if (terminated !== undefined && num(at(terminated, 'exitCode')) === 0) continue;
    if (restartable && at(cs, 'started') === true) {
      if (at(cs, 'ready') === true) readyContainers++;
      continue;
    }
    if (terminated !== undefined) {
      const r = str(at(terminated, 'reason'));
      const signal = num(at(terminated, 'signal'));
      if (r !== '') reason = `Init:${r}`;
      else if (signal !== 0) reason = `Init:Signal:${signal}`;
      else reason = `Init:ExitCode:${num(at(terminated, 'exitCode'))}`;
    } else if (
      waiting !== undefined &&
      str(at(waiting, 'reason')) !== '' &&
      at(waiting, 'reason') !== 'PodInitializing'
    ) {
      reason = `Init:${str(at(waiting, 'reason'))}`;
    } else {
      reason = `Init:${i}/${initContainers.length}`;
    }
    initializing = true;
    break;
  }

  if (!initializing || hasCondition(at(status, 'conditions'), 'Initialized')) {
    restarts = restartableInitRestarts;
    lastRestart = lastRestartableInitRestart;
    let hasRunning = false;
    const statuses = arr(at(status, 'containerStatuses'));
    for (let i = statuses.length - 1; i >= 0; i--) {
      const cs = statuses[i];
      restarts += num(at(cs, 'restartCount'));
      lastRestart = Math.max(lastRestart, finishedAt(cs));
      const waiting = at(cs, 'state', 'waiting');
      const terminated = at(cs, 'state', 'terminated');
      if (waiting !== undefined && str(at(waiting, 'reason')) !== '') {
        reason = str(at(waiting, 'reason'));
      } else if (terminated !== undefined && str(at(terminated, 'reason')) !== '') {
        reason = str(at(terminated, 'reason'));
      } else if (terminated !== undefined) {
        const signal = num(at(terminated, 'signal'));
        reason = signal !== 0 ? `Signal:${signal}` : `ExitCode:${num(at(terminated, 'exitCode'))}`;
      } else if (at(cs, 'ready') === true && at(cs, 'state', 'running') !== undefined) {
        hasRunning = true;
        readyContainers++;
      }
    }
    if (reason === 'Completed' && hasRunning) {
      reason = hasCondition(at(status, 'conditions'), 'Ready') ? 'Running' : 'NotReady';
    }
  }

  const deleting = typeof pod.metadata.deletionTimestamp === 'string';
  if (deleting && at(status, 'reason') === 'NodeLost') reason = 'Unknown';
  else if (deleting && phase !== 'Succeeded' && phase !== 'Failed') reason = 'Terminating';

  const restartsText =
    restarts !== 0 && lastRestart !== 0
      ? `${restarts} (${humanDuration(now.getTime() - lastRestart)} ago)`
      : String(restarts);

  const podIPs = arr(at(status, 'podIPs'));
  const podIP = str(at(podIPs[0], 'ip')) || '<none>';
  const gates = arr(at(spec, 'readinessGates'));
  let readinessGates = '<none>';
  if (gates.length > 0) {
    let trueConditions = 0;
    for (const g of gates) {
      const cond = arr(at(status, 'conditions')).find((c) => at(c, 'type') === at(g, 'conditionType'));
      if (cond !== undefined && at(cond, 'status') === 'True') trueConditions++;
    }
    readinessGates = `${trueConditions}/${gates.length}`;
  }
  const cells: TableCell[] = [
    str(pod.metadata.name),
    `${readyContainers}/${totalContainers}`,
    reason,
    restartsText,
    age(pod, now),
    podIP,
    str(at(spec, 'nodeName')) || '<none>',
    str(at(status, 'nominatedNodeName')) || '<none>',
    readinessGates,
  ];
  if (phase === 'Succeeded') {
    return {
      cells,
      conditions: [
        {
          type: 'Completed',
          status: 'True',
          reason: 'Succeeded',
          message: 'The pod has completed successfully.',
        },
      ],
    };
  }
  if (phase === 'Failed') {
    return {
      cells,
      conditions: [{ type: 'Completed', status: 'True', reason: 'Failed', message: 'The pod failed.' }],
    };
  }
  return { cells };
}

// ---------------------------------------------------------------------------------------------
// Node

function printNode(node: KubeObject, now: Date): { cells: TableCell[] } {
  const ready = arr(at(node, 'status', 'conditions')).filter((c) => at(c, 'type') === 'Ready');
  const status: string[] = [];
  const last = ready[ready.length - 1];
  if (last !== undefined) status.push(at(last, 'status') === 'True' ? 'Ready' : 'NotReady');
  else status.push('Unknown');
  if (at(node, 'spec', 'unschedulable') === true) status.push('SchedulingDisabled');
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(node.metadata.labels ?? {})) {
    if (k.startsWith('node-role.kubernetes.io/')) {
      const role = k.slice('node-role.kubernetes.io/'.length);
      if (role !== '') roles.add(role);
    } else if (k === 'kubernetes.io/role' && v !== '') {
      roles.add(v);
    }
  }
  const addresses = arr(at(node, 'status', 'addresses'));
  const address = (type: string): string =>
    str(
      at(
        addresses.find((a) => at(a, 'type') === type),
        'address',
      ),
    ) || '<none>';
  const info = at(node, 'status', 'nodeInfo');
  return {
    cells: [
      str(node.metadata.name),
      status.join(','),
      [...roles].sort().join(',') || '<none>',
      age(node, now),
      str(at(info, 'kubeletVersion')),
      address('InternalIP'),
      address('ExternalIP'),
      str(at(info, 'osImage')) || '<unknown>',
      str(at(info, 'kernelVersion')) || '<unknown>',
      str(at(info, 'containerRuntimeVersion')) || '<unknown>',
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Service and Endpoints

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function serviceExternalIP(svc: KubeObject): string {
  const externalIPs = arr(at(svc, 'spec', 'externalIPs')).map(str);
  switch (str(at(svc, 'spec', 'type'))) {
    case 'ClusterIP':
    case 'NodePort':
      return externalIPs.length > 0 ? externalIPs.join(',') : '<none>';
    case 'LoadBalancer': {
      const lb = new Set<string>();
      for (const ing of arr(at(svc, 'status', 'loadBalancer', 'ingress'))) {
        const v = str(at(ing, 'ip')) || str(at(ing, 'hostname'));
        if (v !== '') lb.add(v);
      }
      const all = [...[...lb].sort(), ...externalIPs];
      return all.length > 0 ? all.join(',') : '<pending>';
    }
    case 'ExternalName':
      return str(at(svc, 'spec', 'externalName'));
    default:
      return '<unknown>';
  }
}

function printService(svc: KubeObject, now: Date): { cells: TableCell[] } {
  const spec = svc['spec'];
  const clusterIPs = arr(at(spec, 'clusterIPs'));
  const clusterIP = str(clusterIPs[0]) || str(at(spec, 'clusterIP')) || '<none>';
  const ports = arr(at(spec, 'ports'))
    .map((p) => {
      const protocol = str(at(p, 'protocol')) || 'TCP';
      const nodePort = num(at(p, 'nodePort'));
      return nodePort > 0
        ? `${num(at(p, 'port'))}:${nodePort}/${protocol}`
        : `${num(at(p, 'port'))}/${protocol}`;
    })
    .join(',');
  return {
    cells: [
      str(svc.metadata.name),
      str(at(spec, 'type')),
      clusterIP,
      serviceExternalIP(svc),
      ports || '<none>',
      age(svc, now),
      formatLabels(strMap(at(spec, 'selector'))),
    ],
  };
}

function formatEndpoints(ep: KubeObject): string {
  const subsets = arr(ep['subsets']);
  if (subsets.length === 0) return '<none>';
  const list: string[] = [];
  const max = 3;
  let more = false;
  let total = 0;
  for (const ss of subsets) {
    const addresses = arr(at(ss, 'addresses'));
    const ports = arr(at(ss, 'ports'));
    if (ports.length === 0) {
      total += addresses.length;
      for (const a of addresses) {
        if (list.length === max) {
          more = true;
          break;
        }
        list.push(str(at(a, 'ip')));
      }
      continue;
    }
    for (const port of ports) {
      total += addresses.length;
      for (const a of addresses) {
        if (list.length === max) {
          more = true;
          break;
        }
        list.push(joinHostPort(str(at(a, 'ip')), num(at(port, 'port'))));
      }
    }
  }
  const joined = list.join(',');
  return more ? `${joined} + ${total - max} more...` : joined;
}

// ---------------------------------------------------------------------------------------------
// Events (core/v1 and events.k8s.io/v1 print the same, as the apiserver converts both to one type)

interface EventView {
  name: string;
  involvedKind: string;
  involvedName: string;
  fieldPath: string;
  type: string;
  reason: string;
  message: string;
  sourceComponent: string;
  sourceHost: string;
  reportingController: string;
  reportingInstance: string;
  firstTimestamp: unknown;
  lastTimestamp: unknown;
  eventTime: unknown;
  count: number;
  series: unknown;
}

function coreEventView(ev: KubeObject): EventView {
  return {
    name: str(ev.metadata.name),
    involvedKind: str(at(ev, 'involvedObject', 'kind')),
    involvedName: str(at(ev, 'involvedObject', 'name')),
    fieldPath: str(at(ev, 'involvedObject', 'fieldPath')),
    type: str(ev['type']),
    reason: str(ev['reason']),
    message: str(ev['message']),
    sourceComponent: str(at(ev, 'source', 'component')),
    sourceHost: str(at(ev, 'source', 'host')),
    reportingController: str(ev['reportingComponent']),
    reportingInstance: str(ev['reportingInstance']),
    firstTimestamp: ev['firstTimestamp'],
    lastTimestamp: ev['lastTimestamp'],
    eventTime: ev['eventTime'],
    count: num(ev['count']),
    series: ev['series'],
  };
}

function eventsV1View(ev: KubeObject): EventView {
  return {
    name: str(ev.metadata.name),
    involvedKind: str(at(ev, 'regarding', 'kind')),
    involvedName: str(at(ev, 'regarding', 'name')),
    fieldPath: str(at(ev, 'regarding', 'fieldPath')),
    type: str(ev['type']),
    reason: str(ev['reason']),
    message: str(ev['note']),
    sourceComponent: str(at(ev, 'deprecatedSource', 'component')),
    sourceHost: str(at(ev, 'deprecatedSource', 'host')),
    reportingController: str(ev['reportingController']),
    reportingInstance: str(ev['reportingInstance']),
    firstTimestamp: ev['deprecatedFirstTimestamp'],
    lastTimestamp: ev['deprecatedLastTimestamp'],
    eventTime: ev['eventTime'],
    count: num(ev['deprecatedCount']),
    series: ev['series'],
  };
}

function printEvent(view: EventView, now: Date): { cells: TableCell[] } {
  const first =
    parseTimestamp(view.firstTimestamp) !== undefined
      ? ageSince(view.firstTimestamp, now)
      : ageSince(view.eventTime, now);
  let last = parseTimestamp(view.lastTimestamp) !== undefined ? ageSince(view.lastTimestamp, now) : first;
  let n = view.count;
  if (isPlainObject(view.series)) {
    last = ageSince(view.series['lastObservedTime'], now);
    n = num(view.series['count']);
  } else if (n === 0) {
    n = 1;
  }
  const kind = view.involvedKind.toLowerCase();
  const target = view.involvedName !== '' ? `${kind}/${view.involvedName}` : kind;
  const component = view.sourceComponent || view.reportingController;
  const instance = view.sourceHost || view.reportingInstance;
  return {
    cells: [
      last,
      view.type,
      view.reason,
      target,
      view.fieldPath,
      instance === '' ? component : `${component}, ${instance}`,
      view.message.trim(),
      first,
      n,
      view.name,
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Workloads

function printDeployment(d: KubeObject, now: Date): { cells: TableCell[] } {
  const [names, images] = containerCells(at(d, 'spec', 'template', 'spec'));
  let selector: string;
  try {
    selector = labelSelectorToString(labelSelectorFromSpec(selectorSpec(at(d, 'spec', 'selector'))));
  } catch {
    selector = '<invalid>';
  }
  return {
    cells: [
      str(d.metadata.name),
      `${num(at(d, 'status', 'readyReplicas'))}/${num(at(d, 'spec', 'replicas'), 1)}`,
      num(at(d, 'status', 'updatedReplicas')),
      num(at(d, 'status', 'availableReplicas')),
      age(d, now),
      names,
      images,
      selector,
    ],
  };
}

function printReplicaSet(rs: KubeObject, now: Date): { cells: TableCell[] } {
  const [names, images] = containerCells(at(rs, 'spec', 'template', 'spec'));
  return {
    cells: [
      str(rs.metadata.name),
      num(at(rs, 'spec', 'replicas'), 1),
      num(at(rs, 'status', 'replicas')),
      num(at(rs, 'status', 'readyReplicas')),
      age(rs, now),
      names,
      images,
      formatLabelSelectorSpec(selectorSpec(at(rs, 'spec', 'selector'))),
    ],
  };
}

function printDaemonSet(ds: KubeObject, now: Date): { cells: TableCell[] } {
  const podSpec = at(ds, 'spec', 'template', 'spec');
  const [names, images] = containerCells(podSpec);
  const status = ds['status'];
  return {
    cells: [
      str(ds.metadata.name),
      num(at(status, 'desiredNumberScheduled')),
      num(at(status, 'currentNumberScheduled')),
      num(at(status, 'numberReady')),
      num(at(status, 'updatedNumberScheduled')),
      num(at(status, 'numberAvailable')),
      formatLabels(strMap(at(podSpec, 'nodeSelector'))),
      age(ds, now),
      names,
      images,
      formatLabelSelectorSpec(selectorSpec(at(ds, 'spec', 'selector'))),
    ],
  };
}

function printJob(job: KubeObject, now: Date): { cells: TableCell[] } {
  const spec = job['spec'];
  const status = job['status'];
  const succeeded = num(at(status, 'succeeded'));
  let completions: string;
  if (typeof at(spec, 'completions') === 'number') {
    completions = `${succeeded}/${num(at(spec, 'completions'))}`;
  } else {
    const parallelism = num(at(spec, 'parallelism'));
    completions = parallelism > 1 ? `${succeeded}/1 of ${parallelism}` : `${succeeded}/1`;
  }
  const start = parseTimestamp(at(status, 'startTime'));
  const end = parseTimestamp(at(status, 'completionTime'));
  const duration =
    start === undefined
      ? ''
      : end === undefined
        ? humanDuration(now.getTime() - start)
        : humanDuration(end - start);
  const conditions = at(status, 'conditions');
  // Only the first condition of a type counts, as in Kubernetes' hasJobCondition.
  const has = (type: string): boolean =>
    at(
      arr(conditions).find((c) => at(c, 'type') === type),
      'status',
    ) === 'True';
  let state: string;
  if (has('Complete')) state = 'Complete';
  else if (has('Failed')) state = 'Failed';
  else if (typeof job.metadata.deletionTimestamp === 'string') state = 'Terminating';
  else if (has('Suspended')) state = 'Suspended';
  else if (has('FailureTarget')) state = 'FailureTarget';
  else state = 'Running';
  const [names, images] = containerCells(at(spec, 'template', 'spec'));
  return {
    cells: [
      str(job.metadata.name),
      state,
      completions,
      duration,
      age(job, now),
      names,
      images,
      formatLabelSelectorSpec(selectorSpec(at(spec, 'selector'))),
    ],
  };
}

function printControllerRevision(cr: KubeObject, now: Date): { cells: TableCell[] } {
  const ref = (cr.metadata.ownerReferences ?? []).find((r) => r.controller === true);
  let controller = '<none>';
  if (ref !== undefined) {
    const slash = ref.apiVersion.indexOf('/');
    const group = slash >= 0 ? ref.apiVersion.slice(0, slash) : '';
    const groupKind = group === '' ? ref.kind : `${ref.kind}.${group}`;
    controller = groupKind === '' ? ref.name : `${groupKind.toLowerCase()}/${ref.name}`;
  }
  return { cells: [str(cr.metadata.name), controller, num(cr['revision']), age(cr, now)] };
}

// ---------------------------------------------------------------------------------------------
// The printer table.

const simple =
  (...cells: ((o: KubeObject) => TableCell)[]): RowFn =>
  (o, now) => ({ cells: [str(o.metadata.name), ...cells.map((f) => f(o)), age(o, now)] });

const EVENT_COLUMNS: readonly TableColumnDefinition[] = [
  col('Last Seen', 'string', 'The time at which the most recent occurrence of this event was recorded.'),
  col('Type', 'string', 'Type of this event (Normal, Warning), new types could be added in the future'),
  col(
    'Reason',
    'string',
    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
  ),
  col('Object', 'string', 'The object that this event is about.'),
  col(
    'Subobject',
    'string',
    'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].',
    1,
  ),
  col(
    'Source',
    'string',
    'The component reporting this event. Should be a short machine understandable string.',
    1,
  ),
  col('Message', 'string', 'A human-readable description of the status of this operation.'),
  col(
    'First Seen',
    'string',
    'The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)',
    1,
  ),
  col('Count', 'string', 'The number of times this event has occurred.', 1),
  col('Name', 'string', DESC_NAME, 1, 'name'),
];

const PRINTERS: ReadonlyMap<string, Printer> = new Map<string, Printer>([
  [
    '/Pod',
    {
      columns: [
        NAME,
        col('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
        col('Status', 'string', 'The aggregate status of the containers in this pod.'),
        col(
          'Restarts',
          'string',
          'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.',
        ),
        AGE,
        col(
          'IP',
          'string',
          'podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.',
          1,
        ),
        col(
          'Node',
          'string',
          'NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename',
          1,
        ),
        col(
          'Nominated Node',
          'string',
          'nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.',
          1,
        ),
        col(
          'Readiness Gates',
          'string',
          'If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to "True" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates',
          1,
        ),
      ],
      row: printPod,
    },
  ],
  [
    '/Node',
    {
      columns: [
        NAME,
        col('Status', 'string', 'The status of the node'),
        col('Roles', 'string', 'The roles of the node'),
        AGE,
        col('Version', 'string', 'Kubelet Version reported by the node.'),
        col(
          'Internal-IP',
          'string',
          'List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses',
          1,
        ),
        col(
          'External-IP',
          'string',
          'List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses',
          1,
        ),
        col(
          'OS-Image',
          'string',
          'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).',
          1,
        ),
        col(
          'Kernel-Version',
          'string',
          "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
          1,
        ),
        col(
          'Container-Runtime',
          'string',
          'ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).',
          1,
        ),
      ],
      row: printNode,
    },
  ],
  [
    '/Namespace',
    {
      columns: [NAME, col('Status', 'string', 'The status of the namespace'), AGE],
      row: simple((o) => str(at(o, 'status', 'phase'))),
    },
  ],
  [
    '/ConfigMap',
    {
      columns: [
        NAME,
        col(
          'Data',
          'string',
          "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
        ),
        AGE,
      ],
      row: simple((o) => count(o['data']) + count(o['binaryData'])),
    },
  ],
  [
    '/Secret',
    {
      columns: [
        NAME,
        col(
          'Type',
          'string',
          'Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types',
        ),
        col(
          'Data',
          'string',
          "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
        ),
        AGE,
      ],
      row: simple(
        (o) => str(o['type']),
        (o) => count(o['data']),
      ),
    },
  ],
  [
    '/Service',
    {
      columns: [
        NAME,
        col(
          'Type',
          'string',
          'type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer.',
        ),
        col(
          'Cluster-IP',
          'string',
          'clusterIP is the IP address of the service and is usually assigned randomly.',
        ),
        col(
          'External-IP',
          'string',
          'externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.',
        ),
        col(
          'Port(s)',
          'string',
          'The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies',
        ),
        AGE,
        col(
          'Selector',
          'string',
          'Route service traffic to pods with label keys and values matching this selector. More info: https://kubernetes.io/docs/concepts/services-networking/service/',
          1,
        ),
      ],
      row: printService,
    },
  ],
  [
    '/Endpoints',
    {
      columns: [
        NAME,
        col(
          'Endpoints',
          'string',
          'The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.',
        ),
        AGE,
      ],
      row: simple(formatEndpoints),
    },
  ],
  ['/Event', { columns: EVENT_COLUMNS, row: (o, now) => printEvent(coreEventView(o), now) }],
  ['events.k8s.io/Event', { columns: EVENT_COLUMNS, row: (o, now) => printEvent(eventsV1View(o), now) }],
  [
    '/ServiceAccount',
    {
      columns: [
        NAME,
        col(
          'Secrets',
          'string',
          'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.',
        ),
        AGE,
      ],
      row: simple((o) => count(o['secrets'])),
    },
  ],
  [
    'coordination.k8s.io/Lease',
    {
      columns: [
        NAME,
        col('Holder', 'string', 'holderIdentity contains the identity of the holder of a current lease.'),
        AGE,
      ],
      row: simple((o) => str(at(o, 'spec', 'holderIdentity'))),
    },
  ],
  [
    'apps/Deployment',
    {
      columns: [
        NAME,
        col('Ready', 'string', 'Number of the pod with ready state'),
        col(
          'Up-to-date',
          'string',
          'Total number of non-terminated pods targeted by this deployment that have the desired template spec.',
        ),
        col(
          'Available',
          'string',
          'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.',
        ),
        AGE,
        ...WIDE_TEMPLATE(
          'Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.',
        ),
      ],
      row: printDeployment,
    },
  ],
  [
    'apps/ReplicaSet',
    {
      columns: [
        NAME,
        col(
          'Desired',
          'integer',
          'Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller',
        ),
        col(
          'Current',
          'integer',
          'Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller',
        ),
        col('Ready', 'integer', 'The number of ready replicas for this replica set.'),
        AGE,
        ...WIDE_TEMPLATE(
          'Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors',
        ),
      ],
      row: printReplicaSet,
    },
  ],
  [
    'apps/DaemonSet',
    {
      columns: [
        NAME,
        col(
          'Desired',
          'integer',
          'The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/',
        ),
        col(
          'Current',
          'integer',
          'The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/',
        ),
        col(
          'Ready',
          'integer',
          'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.',
        ),
        col('Up-to-date', 'integer', 'The total number of nodes that are running updated daemon pod'),
        col(
          'Available',
          'integer',
          'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)',
        ),
        col(
          'Node Selector',
          'string',
          "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
        ),
        AGE,
        ...WIDE_TEMPLATE(
          'A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors',
        ),
      ],
      row: printDaemonSet,
    },
  ],
  [
    'apps/ControllerRevision',
    {
      columns: [
        NAME,
        col('Controller', 'string', 'Controller of the object'),
        col('Revision', 'string', 'Revision indicates the revision of the state represented by Data.'),
        AGE,
      ],
      row: printControllerRevision,
    },
  ],
  [
    'batch/Job',
    {
      columns: [
        NAME,
        col('Status', 'string', 'Status of the job.'),
        col(
          'Completions',
          'string',
          'The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.',
        ),
        col('Duration', 'string', 'Time required to complete the job.'),
        AGE,
        ...WIDE_TEMPLATE(
          'A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors',
        ),
      ],
      row: printJob,
    },
  ],
  [
    'apiextensions.k8s.io/CustomResourceDefinition',
    {
      // CRDs have no printer in Kubernetes: the apiserver's default table convertor serves them.
      columns: [NAME, col('Created At', 'date', DESC_AGE)],
      row: (o) => ({ cells: [str(o.metadata.name), rfc3339Seconds(o.metadata.creationTimestamp)] }),
    },
  ],
]);

/** Go's `time.RFC3339` of a UTC time: whole seconds, `Z`; Go's zero time when absent. */
function rfc3339Seconds(timestamp: unknown): string {
  const t = parseTimestamp(timestamp);
  return t === undefined ? '0001-01-01T00:00:00Z' : `${new Date(t).toISOString().slice(0, 19)}Z`;
}

const DEFAULT_PRINTER: Printer = { columns: [NAME, AGE], row: simple() };

// ---------------------------------------------------------------------------------------------
// Custom resources

function customCell(type: string, fn: JsonPathFn, obj: KubeObject, now: Date): TableCell {
  const results = fn(obj);
  if (results.length === 0) return null;
  const value = results[0];
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'string':
      return formatJsonPathValue(value);
    case 'integer':
      return typeof value === 'number' ? Math.trunc(value) : null;
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    case 'date': {
      if (typeof value !== 'string') return null;
      if (value === '' || value === 'null') return '<unknown>';
      const t = parseTimestamp(value);
      return t === undefined ? '<invalid>' : humanDuration(now.getTime() - t);
    }
    default:
      return null;
  }
}

function customPrinter(columns: readonly CustomPrinterColumn[] | undefined): Printer {
  const cols: readonly CustomPrinterColumn[] =
    columns !== undefined && columns.length > 0
      ? columns
      : [{ name: 'Age', type: 'date', description: DESC_AGE, jsonPath: '.metadata.creationTimestamp' }];
  const compiled = cols.map((c) => ({ def: c, fn: compileJsonPath(c.jsonPath) }));
  return {
    columns: [
      NAME,
      ...cols.map((c) => col(c.name, c.type, c.description ?? '', c.priority ?? 0, c.format ?? '')),
    ],
    row: (obj, now) => ({
      cells: [str(obj.metadata.name), ...compiled.map(({ def, fn }) => customCell(def.type, fn, obj, now))],
    }),
  };
}

/** The printer a resource type uses: its built-in one, the CRD's printer columns, or Name and Age. */
function printerFor(rt: ResourceType, printerColumns: readonly CustomPrinterColumn[] | undefined): Printer {
  if (rt.custom) return customPrinter(printerColumns);
  return PRINTERS.get(`${rt.group}/${rt.kind}`) ?? DEFAULT_PRINTER;
}

/** The columns a resource type's table has, in order. */
export function tableColumns(
  rt: ResourceType,
  printerColumns?: CustomPrinterColumn[],
): TableColumnDefinition[] {
  return printerFor(rt, printerColumns).columns.map((c) => ({ ...c }));
}

/**
 * Build the Table the apiserver returns for these objects (one row each, in order). Invalid printer
 * column JSONPaths throw KEDGE_JSONPATH_INVALID. Pure: no I/O, time comes from `options.now`.
 */
export function buildTable(rt: ResourceType, objects: KubeObject[], options: BuildTableOptions = {}): Table {
  const now = options.now ?? new Date();
  const include = options.includeObject ?? 'Metadata';
  const printer = printerFor(rt, options.printerColumns);
  const metadata: ListMeta = {};
  if (options.resourceVersion !== undefined) metadata.resourceVersion = options.resourceVersion;
  if (options.continue !== undefined) metadata.continue = options.continue;
  if (options.remainingItemCount !== undefined) metadata.remainingItemCount = options.remainingItemCount;
  const rows = objects.map((obj): TableRow => {
    const { cells, conditions } = printer.row(obj, now);
    const row: TableRow = { cells };
    if (conditions !== undefined) row.conditions = conditions;
    if (include === 'Object') row.object = obj;
    else if (include === 'Metadata') {
      row.object = { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: obj.metadata };
    }
    return row;
  });
  return {
    apiVersion: 'meta.k8s.io/v1',
    kind: 'Table',
    metadata,
    columnDefinitions: printer.columns.map((c) => ({ ...c })),
    rows,
  };
}
