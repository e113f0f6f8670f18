/**
 * Pure mapping from a core/v1 Pod to CRI configs, as the kubelet does it: sandbox config (namespaces,
 * hostname, DNS, ports), container config (command/args/env with $(VAR) expansion, envFrom, mounts,
 * resources, securityContext), QoS and oom_score_adj, and the labels that let the agent find its pods
 * again after a restart. No I/O: ConfigMaps and Secrets come through a lookup function.
 */
import { createHash } from 'node:crypto';
import { isPlainObject, type KubeObject } from '../../api/meta.ts';
import { parseQuantity, quantityMilliValue, quantityValue } from '../../api/quantity.ts';
import { KedgeError } from '../../lib/errors.ts';
import type { PodContext } from '../runtime.ts';
import type {
  ContainerConfig,
  LinuxContainerResources,
  Mount,
  PodSandboxConfig,
  PortMapping,
} from './client.ts';

/** Labels on every sandbox and container kedge creates (the kubelet's names, so crictl shows them). */
export const LABEL_MANAGED = 'kedge.io/managed';
export const LABEL_POD_UID = 'io.kubernetes.pod.uid';
export const LABEL_POD_NAME = 'io.kubernetes.pod.name';
export const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_CONTAINER_NAME = 'io.kubernetes.container.name';
/** Annotations on containers: what the agent needs to manage them after its own restart. */
export const ANNOTATION_HASH = 'kedge.io/container-hash';
export const ANNOTATION_INIT = 'kedge.io/init-container';
export const ANNOTATION_GRACE = 'io.kubernetes.pod.terminationGracePeriod';

type Obj = Record<string, unknown>;

export function obj(value: unknown): Obj {
  return isPlainObject(value) ? value : {};
}
export function arr(value: unknown): Obj[] {
  return Array.isArray(value) ? value.filter(isPlainObject) : [];
}
function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** A pod value the runtime cannot use: the container waits with `reason` (CreateContainerConfigError, ...). */
export class PodConfigError extends KedgeError {
  readonly reason: string;
  constructor(reason: string, message: string, context: Record<string, unknown> = {}) {
    super('KEDGE_CRI_POD_INVALID', message, { context: { reason, ...context } });
    this.name = 'PodConfigError';
    this.reason = reason;
  }
}

export function podRefOf(pod: KubeObject): { uid: string; namespace: string; name: string } {
  return {
    uid: pod.metadata.uid ?? '',
    namespace: pod.metadata.namespace ?? '',
    name: pod.metadata.name ?? '',
  };
}

export function podLabels(pod: KubeObject): Record<string, string> {
  const ref = podRefOf(pod);
  return {
    [LABEL_MANAGED]: 'true',
    [LABEL_POD_UID]: ref.uid,
    [LABEL_POD_NAME]: ref.name,
    [LABEL_POD_NAMESPACE]: ref.namespace,
  };
}

export function isHostNetwork(pod: KubeObject): boolean {
  return obj(pod['spec'])['hostNetwork'] === true;
}

/** The kubelet's pod log directory name: `<namespace>_<name>_<uid>`. */
export function podLogDirName(pod: { namespace: string; name: string; uid: string }): string {
  return `${pod.namespace}_${pod.name}_${pod.uid}`;
}

function containersWithPorts(spec: Obj): Obj[] {
  return [...arr(spec['initContainers']), ...arr(spec['containers'])];
}

/** The sandbox config of a pod (metadata, hostname, log dir, DNS, host ports, namespaces). */
export function sandboxConfig(
  pod: KubeObject,
  options: { logDirectory: string; attempt: number },
): PodSandboxConfig {
  const ref = podRefOf(pod);
  const spec = obj(pod['spec']);
  const hostNetwork = isHostNetwork(pod);
  const portMappings: PortMapping[] = [];
  for (const c of containersWithPorts(spec)) {
    for (const p of arr(c['ports'])) {
      const hostPort = Number(p['hostPort'] ?? 0);
      if (!hostNetwork && hostPort > 0) {
        portMappings.push({
          protocol: p['protocol'] === 'UDP' ? 'UDP' : p['protocol'] === 'SCTP' ? 'SCTP' : 'TCP',
          containerPort: Number(p['containerPort'] ?? 0),
          hostPort,
          hostIp: str(p['hostIP']) ?? '',
        });
      }
    }
  }
  const dns = obj(spec['dnsConfig']);
  const psc = obj(spec['securityContext']);
  const hostname = str(spec['hostname']) ?? ref.name;
  const sysctls: Record<string, string> = {};
  for (const s of arr(psc['sysctls'])) sysctls[String(s['name'])] = String(s['value'] ?? '');
  return {
    metadata: { name: ref.name, uid: ref.uid, namespace: ref.namespace, attempt: options.attempt },
    // With the host's network the sandbox also shares the host's UTS namespace: runc refuses a hostname.
    hostname: hostNetwork ? '' : hostname.slice(0, 63),
    logDirectory: options.logDirectory,
    dnsConfig: {
      servers: strings(dns['nameservers']),
      searches: strings(dns['searches']),
      options: arr(dns['options']).map((o) =>
        o['value'] === undefined ? String(o['name']) : `${String(o['name'])}:${String(o['value'])}`,
      ),
    },
    portMappings,
    labels: podLabels(pod),
    annotations: { ...(pod.metadata.annotations ?? {}) },
    linux: {
      securityContext: {
        namespaceOptions: {
          network: hostNetwork ? 'NODE' : 'POD',
          pid:
            spec['hostPID'] === true ? 'NODE' : spec['shareProcessNamespace'] === true ? 'POD' : 'CONTAINER',
          ipc: spec['hostIPC'] === true ? 'NODE' : 'POD',
        },
        ...(psc['runAsUser'] === undefined ? {} : { runAsUser: { value: String(psc['runAsUser']) } }),
        ...(psc['runAsGroup'] === undefined ? {} : { runAsGroup: { value: String(psc['runAsGroup']) } }),
        supplementalGroups: strings(psc['supplementalGroups']),
        privileged: containersWithPorts(spec).some((c) => obj(c['securityContext'])['privileged'] === true),
      },
      sysctls,
    },
  };
}

// ---- env ----

/** Expands `$(VAR)` from `env` the way Kubernetes does: `$$` escapes, unknown references stay as written. */
export function expandVars(text: string, env: ReadonlyMap<string, string>): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch !== '$' || i === text.length - 1) {
      out += ch;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = text.indexOf(')', i + 2);
      if (close < 0) {
        out += text.slice(i);
        break;
      }
      const name = text.slice(i + 2, close);
      const value = env.get(name);
      out += value ?? `$(${name})`;
      i = close;
    } else out += ch;
  }
  return out;
}

/** What a fieldRef or a downward API item may read. */
export interface DownwardValues {
  readonly podIP: string;
  readonly hostIP: string;
  readonly nodeName: string;
}

/** The value of a downward API fieldRef path; throws for a path Kubernetes does not support. */
export function fieldRefValue(pod: KubeObject, path: string, values: DownwardValues): string {
  const meta = pod.metadata;
  const spec = obj(pod['spec']);
  const bracket = /^metadata\.(labels|annotations)\['([^']*)'\]$/.exec(path);
  if (bracket !== null) {
    const map = bracket[1] === 'labels' ? meta.labels : meta.annotations;
    return map?.[bracket[2] ?? ''] ?? '';
  }
  const kv = (m: Record<string, string> | undefined): string =>
    Object.entries(m ?? {})
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join('\n');
  switch (path) {
    case 'metadata.name':
      return meta.name ?? '';
    case 'metadata.namespace':
      return meta.namespace ?? '';
    case 'metadata.uid':
      return meta.uid ?? '';
    case 'metadata.labels':
      return kv(meta.labels);
    case 'metadata.annotations':
      return kv(meta.annotations);
    case 'spec.nodeName':
      return values.nodeName;
    case 'spec.serviceAccountName':
      return str(spec['serviceAccountName']) ?? 'default';
    case 'status.podIP':
    case 'status.podIPs':
      return values.podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return values.hostIP;
    default:
      throw new PodConfigError(
        'CreateContainerConfigError',
        `fieldRef ${JSON.stringify(path)} is not supported`,
        {
          path,
        },
      );
  }
}

/** The value of a resourceFieldRef (limits.cpu, requests.memory, ...) in units of `divisor`. */
export function resourceFieldValue(
  container: Obj,
  resource: string,
  divisor: unknown,
  nodeCapacity: { cpu: number; memory: number },
): string {
  const [kind = '', name = ''] = resource.split('.');
  const resources = obj(container['resources']);
  let raw = str(obj(resources[kind])[name]);
  if (raw === undefined && kind === 'requests') raw = str(obj(resources['limits'])[name]);
  const div = parseQuantity(
    typeof divisor === 'string' && divisor !== '' ? divisor : name === 'cpu' ? '1' : '1',
  );
  if (name === 'cpu') {
    const milli = raw === undefined ? nodeCapacity.cpu * 1000 : quantityMilliValue(parseQuantity(raw));
    return String(Math.ceil(milli / Math.max(1, quantityMilliValue(div))));
  }
  const bytes = raw === undefined ? nodeCapacity.memory : quantityValue(parseQuantity(raw));
  return String(Math.ceil(bytes / Math.max(1, quantityValue(div))));
}

function decodeSecretValue(secret: KubeObject, key: string): string | undefined {
  const data = obj(secret['data']);
  const b64 = str(data[key]);
  if (b64 !== undefined) return Buffer.from(b64, 'base64').toString('utf8');
  return str(obj(secret['stringData'])[key]);
}

/** The data of a ConfigMap or Secret as text (secrets decoded). */
export function objectData(plural: 'configmaps' | 'secrets', o: KubeObject): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (plural === 'secrets') {
    for (const [k, v] of Object.entries(obj(o['data'])))
      if (typeof v === 'string') out.set(k, Buffer.from(v, 'base64'));
  } else {
    for (const [k, v] of Object.entries(obj(o['data'])))
      if (typeof v === 'string') out.set(k, Buffer.from(v, 'utf8'));
    for (const [k, v] of Object.entries(obj(o['binaryData'])))
      if (typeof v === 'string') out.set(k, Buffer.from(v, 'base64'));
  }
  return out;
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * The environment of a container in order: envFrom first, then env (later entries win, $(VAR) expands to
 * earlier ones). Throws PodConfigError (CreateContainerConfigError) for a missing non-optional reference.
 */
export function resolveEnv(
  pod: KubeObject,
  container: Obj,
  context: Pick<PodContext, 'lookup'>,
  values: DownwardValues,
  nodeCapacity: { cpu: number; memory: number } = { cpu: 1, memory: 0 },
): Map<string, string> {
  const ns = pod.metadata.namespace ?? '';
  const env = new Map<string, string>();
  const need = (
    plural: 'configmaps' | 'secrets',
    name: string,
    optional: boolean,
  ): KubeObject | undefined => {
    const o = context.lookup(plural, ns, name);
    if (o === undefined && !optional) {
      throw new PodConfigError(
        'CreateContainerConfigError',
        `${plural === 'secrets' ? 'secret' : 'configmap'} "${name}" not found`,
        { plural, name },
      );
    }
    return o;
  };
  for (const from of arr(container['envFrom'])) {
    const prefix = str(from['prefix']) ?? '';
    const cm = obj(from['configMapRef']);
    const sec = obj(from['secretRef']);
    const plural = str(cm['name']) !== undefined ? 'configmaps' : 'secrets';
    const ref = plural === 'configmaps' ? cm : sec;
    const o = need(plural, String(ref['name'] ?? ''), ref['optional'] === true);
    if (o === undefined) continue;
    for (const [k, v] of objectData(plural, o)) {
      // Keys that are not valid variable names are skipped, as the kubelet does (with an event there).
      if (ENV_NAME.test(prefix + k)) env.set(prefix + k, v.toString('utf8'));
    }
  }
  for (const e of arr(container['env'])) {
    const name = String(e['name'] ?? '');
    if (e['value'] !== undefined || e['valueFrom'] === undefined) {
      env.set(name, expandVars(String(e['value'] ?? ''), env));
      continue;
    }
    const from = obj(e['valueFrom']);
    if (isPlainObject(from['configMapKeyRef']) || isPlainObject(from['secretKeyRef'])) {
      const plural = isPlainObject(from['configMapKeyRef']) ? 'configmaps' : 'secrets';
      const ref = obj(from[plural === 'configmaps' ? 'configMapKeyRef' : 'secretKeyRef']);
      const optional = ref['optional'] === true;
      const o = need(plural, String(ref['name'] ?? ''), optional);
      if (o === undefined) continue;
      const key = String(ref['key'] ?? '');
      const value =
        plural === 'secrets'
          ? decodeSecretValue(o, key)
          : (str(obj(o['data'])[key]) ?? objectData(plural, o).get(key)?.toString('utf8'));
      if (value === undefined) {
        if (optional) continue;
        throw new PodConfigError(
          'CreateContainerConfigError',
          `couldn't find key ${key} in ${plural === 'secrets' ? 'Secret' : 'ConfigMap'} ${ns}/${String(ref['name'])}`,
          { key },
        );
      }
      env.set(name, value);
    } else if (isPlainObject(from['fieldRef'])) {
      env.set(name, fieldRefValue(pod, String(from['fieldRef']['fieldPath'] ?? ''), values));
    } else if (isPlainObject(from['resourceFieldRef'])) {
      const r = from['resourceFieldRef'];
      env.set(name, resourceFieldValue(container, String(r['resource'] ?? ''), r['divisor'], nodeCapacity));
    }
  }
  return env;
}

// ---- resources ----

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

function quantity(resources: Obj, kind: 'requests' | 'limits', name: string): number | undefined {
  const raw = str(obj(resources[kind])[name]);
  if (raw === undefined) return undefined;
  const q = parseQuantity(raw);
  return name === 'cpu' ? quantityMilliValue(q) : quantityValue(q);
}

/** The pod's QoS class from its containers' requests and limits (cpu and memory). */
export function qosClass(pod: KubeObject): QosClass {
  const spec = obj(pod['spec']);
  const containers = [...arr(spec['initContainers']), ...arr(spec['containers'])];
  let any = false;
  let guaranteed = true;
  for (const c of containers) {
    const r = obj(c['resources']);
    for (const name of ['cpu', 'memory']) {
      const req = quantity(r, 'requests', name);
      const lim = quantity(r, 'limits', name);
      if (req !== undefined || lim !== undefined) any = true;
      if (lim === undefined || (req !== undefined && req !== lim)) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

/** CRI linux resources of a container: CFS shares and quota from cpu, memory limit, OOM score by QoS. */
export function linuxResources(
  pod: KubeObject,
  container: Obj,
  memoryCapacity: number,
): LinuxContainerResources {
  const r = obj(container['resources']);
  const cpuLimit = quantity(r, 'limits', 'cpu');
  const cpuRequest = quantity(r, 'requests', 'cpu') ?? cpuLimit;
  const memLimit = quantity(r, 'limits', 'memory');
  const memRequest = quantity(r, 'requests', 'memory') ?? memLimit;
  const out: LinuxContainerResources = {
    cpuShares: String(cpuRequest === undefined ? 2 : Math.max(2, Math.floor((cpuRequest * 1024) / 1000))),
  };
  if (cpuLimit !== undefined) {
    out.cpuPeriod = '100000';
    out.cpuQuota = String(Math.max(1000, Math.floor((cpuLimit * 100000) / 1000)));
  }
  if (memLimit !== undefined) out.memoryLimitInBytes = String(memLimit);
  const qos = qosClass(pod);
  let oom = 1000;
  if (qos === 'Guaranteed') oom = -997;
  else if (qos === 'Burstable') {
    const adj = memoryCapacity > 0 ? 1000 - Math.floor((1000 * (memRequest ?? 0)) / memoryCapacity) : 999;
    oom = Math.min(999, Math.max(2, adj));
  }
  out.oomScoreAdj = String(oom);
  return out;
}

// ---- containers ----

/** A hash of the container's spec: a changed spec (a new image) means a new container. */
export function containerHash(container: Obj): string {
  return createHash('sha256').update(canonicalJson(container)).digest('hex').slice(0, 16);
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    isPlainObject(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

/** imagePullPolicy as the API defaults it: Always for `:latest` or no tag, else IfNotPresent. */
export function pullPolicy(container: Obj): 'Always' | 'IfNotPresent' | 'Never' {
  const set = container['imagePullPolicy'];
  if (set === 'Always' || set === 'IfNotPresent' || set === 'Never') return set;
  const image = String(container['image'] ?? '');
  if (image.includes('@')) return 'IfNotPresent';
  const lastPart = image.slice(image.lastIndexOf('/') + 1);
  const tag = lastPart.includes(':') ? lastPart.slice(lastPart.indexOf(':') + 1) : 'latest';
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** The effective security context of a container (container fields over pod fields). */
export function effectiveSecurity(
  pod: KubeObject,
  container: Obj,
): {
  runAsUser: number | undefined;
  runAsGroup: number | undefined;
  runAsNonRoot: boolean;
} {
  const psc = obj(obj(pod['spec'])['securityContext']);
  const csc = obj(container['securityContext']);
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  return {
    runAsUser: num(csc['runAsUser']) ?? num(psc['runAsUser']),
    runAsGroup: num(csc['runAsGroup']) ?? num(psc['runAsGroup']),
    runAsNonRoot: (csc['runAsNonRoot'] ?? psc['runAsNonRoot']) === true,
  };
}

export interface ContainerConfigInput {
  readonly attempt: number;
  readonly env: ReadonlyMap<string, string>;
  readonly mounts: readonly Mount[];
  readonly image: string;
  readonly init: boolean;
  readonly memoryCapacity: number;
}

/** The CRI container config of one container of the pod. */
export function containerConfig(
  pod: KubeObject,
  container: Obj,
  input: ContainerConfigInput,
): ContainerConfig {
  const name = String(container['name'] ?? '');
  const csc = obj(container['securityContext']);
  const psc = obj(obj(pod['spec'])['securityContext']);
  const sec = effectiveSecurity(pod, container);
  const caps = obj(csc['capabilities']);
  const grace = obj(pod['spec'])['terminationGracePeriodSeconds'];
  return {
    metadata: { name, attempt: input.attempt },
    image: { image: input.image },
    command: strings(container['command']).map((s) => expandVars(s, input.env)),
    args: strings(container['args']).map((s) => expandVars(s, input.env)),
    workingDir: str(container['workingDir']) ?? '',
    envs: [...input.env].map(([key, value]) => ({ key, value })),
    mounts: [...input.mounts],
    labels: { ...podLabels(pod), [LABEL_CONTAINER_NAME]: name },
    annotations: {
      [ANNOTATION_HASH]: containerHash(container),
      ...(input.init ? { [ANNOTATION_INIT]: 'true' } : {}),
      [ANNOTATION_GRACE]: String(typeof grace === 'number' ? grace : 30),
    },
    logPath: `${name}/${input.attempt}.log`,
    stdin: container['stdin'] === true,
    stdinOnce: container['stdinOnce'] === true,
    tty: container['tty'] === true,
    linux: {
      resources: linuxResources(pod, container, input.memoryCapacity),
      securityContext: {
        privileged: csc['privileged'] === true,
        capabilities: { addCapabilities: strings(caps['add']), dropCapabilities: strings(caps['drop']) },
        namespaceOptions: {
          network: isHostNetwork(pod) ? 'NODE' : 'POD',
          pid:
            obj(pod['spec'])['hostPID'] === true
              ? 'NODE'
              : obj(pod['spec'])['shareProcessNamespace'] === true
                ? 'POD'
                : 'CONTAINER',
          ipc: obj(pod['spec'])['hostIPC'] === true ? 'NODE' : 'POD',
        },
        ...(sec.runAsUser === undefined ? {} : { runAsUser: { value: String(sec.runAsUser) } }),
        ...(sec.runAsGroup === undefined ? {} : { runAsGroup: { value: String(sec.runAsGroup) } }),
        readonlyRootfs: csc['readOnlyRootFilesystem'] === true,
        supplementalGroups: [
          ...strings(psc['supplementalGroups']),
          ...(typeof psc['fsGroup'] === 'number' ? [String(psc['fsGroup'])] : []),
        ],
        noNewPrivs: csc['allowPrivilegeEscalation'] === false,
      },
    },
  };
}
