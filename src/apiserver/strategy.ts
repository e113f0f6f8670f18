import { randomUUID } from 'node:crypto';
import { isPlainObject, type KubeObject } from '../api/meta.ts';
import type { ResourceType } from '../api/resource.ts';
import type { FieldError } from './errors.ts';
import { dns1123LabelErrors, validateObjectMeta } from './validation.ts';

/**
 * Per-kind behaviour on write, as the Kubernetes registry strategies define it: defaults, what a create
 * resets, what an update may change, validation. Kinds without an entry get the generic behaviour.
 */
export interface Strategy {
  /** Fill defaults (on create and update, like the API's defaulting on decode). */
  defaults?(obj: KubeObject): void;
  /** Reset what a create may not set (typically status). */
  prepareForCreate?(obj: KubeObject): void;
  validate?(obj: KubeObject): FieldError[];
  validateUpdate?(next: KubeObject, prev: KubeObject): FieldError[];
  /** Name rule for metadata.name. */
  readonly nameRule?: 'label' | 'subdomain' | 'path';
}

type Obj = Record<string, unknown>;

function obj(parent: Obj, field: string): Obj {
  const v = parent[field];
  if (isPlainObject(v)) return v;
  const created: Obj = {};
  parent[field] = created;
  return created;
}

function setDefault(target: Obj, field: string, value: unknown): void {
  if (target[field] === undefined || target[field] === null) target[field] = value;
}

function imageTag(image: string): string | undefined {
  if (image.includes('@')) return 'digest';
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  return colon < 0 ? undefined : image.slice(colon + 1);
}

function defaultContainer(c: unknown): void {
  if (!isPlainObject(c)) return;
  const image = typeof c['image'] === 'string' ? c['image'] : '';
  const tag = imageTag(image);
  setDefault(c, 'imagePullPolicy', tag === undefined || tag === 'latest' ? 'Always' : 'IfNotPresent');
  setDefault(c, 'terminationMessagePath', '/dev/termination-log');
  setDefault(c, 'terminationMessagePolicy', 'File');
  setDefault(c, 'resources', {});
  if (Array.isArray(c['ports']))
    for (const p of c['ports']) if (isPlainObject(p)) setDefault(p, 'protocol', 'TCP');
  for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
    const p = c[probe];
    if (!isPlainObject(p)) continue;
    setDefault(p, 'timeoutSeconds', 1);
    setDefault(p, 'periodSeconds', 10);
    setDefault(p, 'successThreshold', 1);
    setDefault(p, 'failureThreshold', 3);
    if (isPlainObject(p['httpGet'])) setDefault(p['httpGet'], 'scheme', 'HTTP');
  }
}

/** Pod spec defaults, shared by pods and every pod template. */
export function defaultPodSpec(spec: Obj): void {
  setDefault(spec, 'restartPolicy', 'Always');
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'schedulerName', 'default-scheduler');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  setDefault(spec, 'securityContext', {});
  setDefault(spec, 'enableServiceLinks', true);
  if (spec['serviceAccountName'] === undefined && spec['serviceAccount'] !== undefined) {
    spec['serviceAccountName'] = spec['serviceAccount'];
  }
  for (const list of ['containers', 'initContainers']) {
    const cs = spec[list];
    if (Array.isArray(cs)) for (const c of cs) defaultContainer(c);
  }
  if (Array.isArray(spec['volumes'])) {
    for (const v of spec['volumes']) {
      if (!isPlainObject(v)) continue;
      for (const source of ['configMap', 'secret'] as const) {
        const s = v[source];
        if (isPlainObject(s)) setDefault(s, 'defaultMode', 0o644);
      }
    }
  }
}

function validatePodSpec(spec: unknown, path: string): FieldError[] {
  if (!isPlainObject(spec)) return [{ type: 'FieldValueRequired', field: path }];
  const errors: FieldError[] = [];
  const containers = spec['containers'];
  if (!Array.isArray(containers) || containers.length === 0) {
    errors.push({ type: 'FieldValueRequired', field: `${path}.containers` });
  }
  const names = new Set<string>();
  for (const list of ['initContainers', 'containers']) {
    const cs = spec[list];
    if (cs === undefined) continue;
    if (!Array.isArray(cs)) {
      errors.push({ type: 'FieldValueTypeInvalid', field: `${path}.${list}`, detail: 'must be a list' });
      continue;
    }
    cs.forEach((c: unknown, i) => {
      const field = `${path}.${list}[${i}]`;
      if (!isPlainObject(c)) {
        errors.push({ type: 'FieldValueTypeInvalid', field, detail: 'must be an object' });
        return;
      }
      const name = c['name'];
      if (typeof name !== 'string' || name === '')
        errors.push({ type: 'FieldValueRequired', field: `${field}.name` });
      else {
        errors.push(...dns1123LabelErrors(`${field}.name`, name));
        if (names.has(name))
          errors.push({ type: 'FieldValueDuplicate', field: `${field}.name`, value: name });
        names.add(name);
      }
      if (typeof c['image'] !== 'string' || c['image'] === '') {
        errors.push({ type: 'FieldValueRequired', field: `${field}.image` });
      }
    });
  }
  const restart = spec['restartPolicy'];
  if (restart !== undefined && !['Always', 'OnFailure', 'Never'].includes(String(restart))) {
    errors.push({
      type: 'FieldValueNotSupported',
      field: `${path}.restartPolicy`,
      value: restart,
      detail: 'supported values: "Always", "OnFailure", "Never"',
    });
  }
  return errors;
}

function labelsOf(o: unknown): Record<string, string> {
  if (!isPlainObject(o) || !isPlainObject(o['metadata'])) return {};
  const labels = o['metadata']['labels'];
  return isPlainObject(labels) ? (labels as Record<string, string>) : {};
}

/** matchLabels/matchExpressions of a workload selector against its template's labels. */
function selectorMatchesTemplate(selector: Obj, labels: Record<string, string>): boolean {
  const matchLabels = isPlainObject(selector['matchLabels']) ? selector['matchLabels'] : {};
  for (const [k, v] of Object.entries(matchLabels)) if (labels[k] !== v) return false;
  const exprs = Array.isArray(selector['matchExpressions']) ? selector['matchExpressions'] : [];
  for (const e of exprs) {
    if (!isPlainObject(e) || typeof e['key'] !== 'string') return false;
    const has = Object.hasOwn(labels, e['key']);
    const values = Array.isArray(e['values']) ? e['values'] : [];
    const value = labels[e['key']];
    switch (e['operator']) {
      case 'In':
        if (!has || !values.includes(value)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return Object.keys(matchLabels).length > 0 || exprs.length > 0;
}

function validateWorkload(o: KubeObject): FieldError[] {
  const spec = o['spec'];
  if (!isPlainObject(spec)) return [{ type: 'FieldValueRequired', field: 'spec' }];
  const errors: FieldError[] = [];
  const selector = spec['selector'];
  const template = spec['template'];
  if (!isPlainObject(selector)) errors.push({ type: 'FieldValueRequired', field: 'spec.selector' });
  if (!isPlainObject(template)) {
    errors.push({ type: 'FieldValueRequired', field: 'spec.template' });
    return errors;
  }
  if (isPlainObject(selector) && !selectorMatchesTemplate(selector, labelsOf(template))) {
    errors.push({
      type: 'FieldValueInvalid',
      field: 'spec.template.metadata.labels',
      value: labelsOf(template),
      detail: '`selector` does not match template `labels`',
    });
  }
  errors.push(...validatePodSpec(template['spec'], 'spec.template.spec'));
  for (const f of ['replicas', 'minReadySeconds', 'revisionHistoryLimit']) {
    const v = spec[f];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) {
      errors.push({
        type: 'FieldValueInvalid',
        field: `spec.${f}`,
        value: v,
        detail: 'must be greater than or equal to 0',
      });
    }
  }
  return errors;
}

function immutableSelector(next: KubeObject, prev: KubeObject): FieldError[] {
  const a = isPlainObject(next['spec']) ? next['spec']['selector'] : undefined;
  const b = isPlainObject(prev['spec']) ? prev['spec']['selector'] : undefined;
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    return [{ type: 'FieldValueInvalid', field: 'spec.selector', value: a, detail: 'field is immutable' }];
  }
  return [];
}

function defaultTemplate(spec: Obj): void {
  const template = spec['template'];
  if (isPlainObject(template)) defaultPodSpec(obj(template, 'spec'));
}

const workloadStatusReset = (o: KubeObject): void => {
  o['status'] = {};
};

function rollingUpdateDefaults(spec: Obj): void {
  const strategy = obj(spec, 'strategy');
  setDefault(strategy, 'type', 'RollingUpdate');
  if (strategy['type'] === 'RollingUpdate') {
    const ru = obj(strategy, 'rollingUpdate');
    setDefault(ru, 'maxUnavailable', '25%');
    setDefault(ru, 'maxSurge', '25%');
  }
}

const serviceIpBase = [10, 43];

/** A free cluster IP in 10.43.0.0/16 (k3s' default service range); uniqueness is checked by the caller. */
export function randomClusterIp(): string {
  const n = 1 + Math.floor(Math.random() * 65533);
  return `${serviceIpBase[0]}.${serviceIpBase[1]}.${n >> 8}.${n & 255}`;
}

const strategies: Record<string, Strategy> = {
  '/Namespace': {
    nameRule: 'label',
    prepareForCreate(o) {
      o['status'] = { phase: 'Active' };
      const spec = obj(o, 'spec');
      spec['finalizers'] = ['kubernetes'];
    },
    defaults(o) {
      if (o.metadata.name === undefined) return;
      o.metadata.labels = { ...o.metadata.labels, 'kubernetes.io/metadata.name': o.metadata.name };
    },
  },
  '/Node': {},
  '/Pod': {
    defaults(o) {
      defaultPodSpec(obj(o, 'spec'));
    },
    prepareForCreate(o) {
      o['status'] = { phase: 'Pending', qosClass: qosClass(obj(o, 'spec')) };
      const spec = obj(o, 'spec');
      if (typeof spec['nodeName'] === 'string' && spec['nodeName'] !== '') {
        const status = obj(o, 'status');
        status['conditions'] = [
          {
            type: 'PodScheduled',
            status: 'True',
            lastProbeTime: null,
            lastTransitionTime: o.metadata.creationTimestamp,
          },
        ];
      }
    },
    validate(o) {
      return validatePodSpec(o['spec'], 'spec');
    },
    validateUpdate(next, prev) {
      const a = obj(next, 'spec');
      const b = obj(prev, 'spec');
      const errors: FieldError[] = [];
      if ((b['nodeName'] ?? '') !== '' && a['nodeName'] !== b['nodeName']) {
        errors.push({
          type: 'FieldValueInvalid',
          field: 'spec.nodeName',
          value: a['nodeName'],
          detail: 'field is immutable',
        });
      }
      const images = (s: Obj): string =>
        JSON.stringify(
          (Array.isArray(s['containers']) ? s['containers'] : []).map((c: unknown) =>
            isPlainObject(c) ? c['name'] : '',
          ),
        );
      if (images(a) !== images(b)) {
        errors.push({
          type: 'FieldValueForbidden',
          field: 'spec',
          detail: 'pod updates may not add or remove containers',
        });
      }
      return errors;
    },
  },
  '/Service': {
    nameRule: 'label',
    defaults(o) {
      const spec = obj(o, 'spec');
      setDefault(spec, 'type', 'ClusterIP');
      setDefault(spec, 'sessionAffinity', 'None');
      if (spec['type'] !== 'ExternalName') {
        setDefault(spec, 'ipFamilies', ['IPv4']);
        setDefault(spec, 'ipFamilyPolicy', 'SingleStack');
        setDefault(spec, 'internalTrafficPolicy', 'Cluster');
      }
      if (Array.isArray(spec['ports'])) {
        for (const p of spec['ports']) {
          if (!isPlainObject(p)) continue;
          setDefault(p, 'protocol', 'TCP');
          setDefault(p, 'targetPort', p['port']);
        }
      }
    },
    validate(o) {
      const spec = obj(o, 'spec');
      const errors: FieldError[] = [];
      const type = spec['type'];
      if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(String(type))) {
        errors.push({ type: 'FieldValueNotSupported', field: 'spec.type', value: type });
      }
      const ports = spec['ports'];
      if (
        type !== 'ExternalName' &&
        (!Array.isArray(ports) || ports.length === 0) &&
        spec['clusterIP'] !== 'None'
      ) {
        errors.push({ type: 'FieldValueRequired', field: 'spec.ports' });
      }
      if (Array.isArray(ports)) {
        ports.forEach((p: unknown, i) => {
          const port = isPlainObject(p) ? p['port'] : undefined;
          if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
            errors.push({
              type: 'FieldValueInvalid',
              field: `spec.ports[${i}].port`,
              value: port,
              detail: 'must be between 1 and 65535, inclusive',
            });
          }
        });
      }
      return errors;
    },
    validateUpdate(next, prev) {
      const a = obj(next, 'spec')['clusterIP'];
      const b = obj(prev, 'spec')['clusterIP'];
      if (b !== undefined && a !== undefined && a !== b && a !== '') {
        return [
          { type: 'FieldValueInvalid', field: 'spec.clusterIP', value: a, detail: 'field is immutable' },
        ];
      }
      return [];
    },
  },
  '/Secret': {
    defaults(o) {
      setDefault(o, 'type', 'Opaque');
      const stringData = o['stringData'];
      if (isPlainObject(stringData)) {
        const data = obj(o, 'data');
        for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v)).toString('base64');
        delete o['stringData'];
      }
    },
    validate(o) {
      const errors: FieldError[] = [];
      const data = o['data'];
      if (data !== undefined && data !== null) {
        if (!isPlainObject(data))
          errors.push({ type: 'FieldValueTypeInvalid', field: 'data', detail: 'must be an object' });
        else {
          for (const [k, v] of Object.entries(data)) {
            if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) {
              errors.push({
                type: 'FieldValueInvalid',
                field: `data[${k}]`,
                detail: 'must be base64 encoded',
              });
            }
          }
        }
      }
      return errors;
    },
    validateUpdate(next, prev) {
      if (prev['immutable'] === true && JSON.stringify(next['data']) !== JSON.stringify(prev['data'])) {
        return [
          {
            type: 'FieldValueForbidden',
            field: 'data',
            detail: 'field is immutable when `immutable` is set',
          },
        ];
      }
      return [];
    },
  },
  '/ConfigMap': {
    validate(o) {
      const errors: FieldError[] = [];
      for (const field of ['data', 'binaryData']) {
        const data = o[field];
        if (data === undefined || data === null) continue;
        if (!isPlainObject(data)) {
          errors.push({ type: 'FieldValueTypeInvalid', field, detail: 'must be an object' });
          continue;
        }
        for (const [k, v] of Object.entries(data)) {
          if (!/^[-._a-zA-Z0-9]+$/.test(k)) {
            errors.push({
              type: 'FieldValueInvalid',
              field: field,
              value: k,
              detail: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            });
          }
          if (typeof v !== 'string')
            errors.push({
              type: 'FieldValueTypeInvalid',
              field: `${field}.${k}`,
              detail: 'must be a string',
            });
        }
      }
      return errors;
    },
    validateUpdate(next, prev) {
      if (prev['immutable'] === true && JSON.stringify(next['data']) !== JSON.stringify(prev['data'])) {
        return [
          {
            type: 'FieldValueForbidden',
            field: 'data',
            detail: 'field is immutable when `immutable` is set',
          },
        ];
      }
      return [];
    },
  },
  'apps/Deployment': {
    defaults(o) {
      const spec = obj(o, 'spec');
      setDefault(spec, 'replicas', 1);
      rollingUpdateDefaults(spec);
      setDefault(spec, 'revisionHistoryLimit', 10);
      setDefault(spec, 'progressDeadlineSeconds', 600);
      defaultTemplate(spec);
    },
    prepareForCreate: workloadStatusReset,
    validate: validateWorkload,
    validateUpdate: immutableSelector,
  },
  'apps/ReplicaSet': {
    defaults(o) {
      const spec = obj(o, 'spec');
      setDefault(spec, 'replicas', 1);
      defaultTemplate(spec);
    },
    prepareForCreate: workloadStatusReset,
    validate: validateWorkload,
    validateUpdate: immutableSelector,
  },
  'apps/DaemonSet': {
    defaults(o) {
      const spec = obj(o, 'spec');
      const us = obj(spec, 'updateStrategy');
      setDefault(us, 'type', 'RollingUpdate');
      if (us['type'] === 'RollingUpdate') {
        const ru = obj(us, 'rollingUpdate');
        setDefault(ru, 'maxUnavailable', 1);
        setDefault(ru, 'maxSurge', 0);
      }
      setDefault(spec, 'revisionHistoryLimit', 10);
      defaultTemplate(spec);
    },
    prepareForCreate: workloadStatusReset,
    validate: validateWorkload,
    validateUpdate: immutableSelector,
  },
  'batch/Job': {
    defaults(o) {
      const spec = obj(o, 'spec');
      setDefault(spec, 'parallelism', 1);
      setDefault(spec, 'completions', 1);
      setDefault(spec, 'backoffLimit', 6);
      setDefault(spec, 'completionMode', 'NonIndexed');
      setDefault(spec, 'suspend', false);
      setDefault(spec, 'manualSelector', undefined);
      if (spec['manualSelector'] === undefined) delete spec['manualSelector'];
      const template = obj(spec, 'template');
      defaultPodSpec(obj(template, 'spec'));
    },
    prepareForCreate(o) {
      o['status'] = {};
      const spec = obj(o, 'spec');
      if (spec['manualSelector'] !== true) {
        // Like Kubernetes: the selector is generated from the Job's uid, and the template carries it.
        const uid = o.metadata.uid ?? randomUUID();
        const template = obj(spec, 'template');
        const tmeta = obj(template, 'metadata');
        const labels = obj(tmeta, 'labels');
        labels['batch.kubernetes.io/controller-uid'] = uid;
        labels['batch.kubernetes.io/job-name'] = o.metadata.name ?? '';
        labels['controller-uid'] = uid;
        labels['job-name'] = o.metadata.name ?? '';
        spec['selector'] = { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
      }
    },
    validate(o) {
      const spec = obj(o, 'spec');
      const errors = validatePodSpec(obj(spec, 'template')['spec'], 'spec.template.spec');
      const rp = obj(obj(spec, 'template'), 'spec')['restartPolicy'];
      if (rp !== 'Never' && rp !== 'OnFailure') {
        errors.push({
          type: 'FieldValueNotSupported',
          field: 'spec.template.spec.restartPolicy',
          value: rp,
          detail: 'supported values: "OnFailure", "Never"',
        });
      }
      return errors;
    },
    validateUpdate: immutableSelector,
  },
  'coordination.k8s.io/Lease': {},
};

function qosClass(spec: Obj): string {
  const containers = Array.isArray(spec['containers']) ? spec['containers'] : [];
  let any = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    const res = isPlainObject(c) && isPlainObject(c['resources']) ? c['resources'] : {};
    const req = isPlainObject(res['requests']) ? res['requests'] : {};
    const lim = isPlainObject(res['limits']) ? res['limits'] : {};
    if (Object.keys(req).length > 0 || Object.keys(lim).length > 0) any = true;
    for (const r of ['cpu', 'memory']) {
      if (lim[r] === undefined || (req[r] !== undefined && req[r] !== lim[r])) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

const generic: Strategy = {};

export function strategyFor(rt: Pick<ResourceType, 'group' | 'kind'>): Strategy {
  return strategies[`${rt.group}/${rt.kind}`] ?? generic;
}

/** Validation every write gets: metadata rules, then the kind's own. */
export function validateObject(rt: ResourceType, o: KubeObject, prev?: KubeObject): FieldError[] {
  const strategy = strategyFor(rt);
  const nameRule = strategy.nameRule ?? (rt.custom ? 'subdomain' : 'subdomain');
  const errors = validateObjectMeta(o, rt.kind === 'Event' || rt.kind === 'Lease' ? 'path' : nameRule);
  errors.push(...(strategy.validate?.(o) ?? []));
  if (prev !== undefined) errors.push(...(strategy.validateUpdate?.(o, prev) ?? []));
  return errors;
}
