/**
 * devices.kubeedge.io/v1beta1: DeviceModel and Device, with the field shapes KubeEdge uses so its users'
 * manifests apply unchanged. kedge adds to the Device status (which KubeEdge leaves open): `edgeVersion`,
 * the edge twin version the status reflects (a report with a lower one is ignored), and per twin
 * `metadata.version`/`metadata.timestamp`. Pure: CRD objects, parsing into typed values, value checks.
 */
import type { CustomResourceDefinition, JSONSchemaProps } from './crd/types.ts';
import { isPlainObject, type KubeObject } from './meta.ts';

export const DEVICES_GROUP = 'devices.kubeedge.io';
export const DEVICES_VERSION = 'v1beta1';
export const DeviceResources = {
  devices: { group: DEVICES_GROUP, version: DEVICES_VERSION, resource: 'devices' },
  devicemodels: { group: DEVICES_GROUP, version: DEVICES_VERSION, resource: 'devicemodels' },
} as const;

export const PropertyTypes = ['INT', 'FLOAT', 'DOUBLE', 'STRING', 'BOOLEAN', 'BYTES', 'STREAM'] as const;
export type ModelPropertyType = (typeof PropertyTypes)[number];
export const AccessModes = ['ReadWrite', 'ReadOnly'] as const;
export const DeviceStates = ['online', 'offline', 'unknown'] as const;
export type DeviceStateName = (typeof DeviceStates)[number];

const stringMap: JSONSchemaProps = { type: 'object', additionalProperties: { type: 'string' } };
const open: JSONSchemaProps = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
const twinValue = (required: boolean): JSONSchemaProps => ({
  type: 'object',
  ...(required ? { required: ['value'] } : {}),
  properties: { value: { type: 'string', maxLength: 512 }, metadata: stringMap },
});
const cycle: JSONSchemaProps = { type: 'integer', format: 'int64', minimum: 0 };
const propertyName: JSONSchemaProps = {
  type: 'string',
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9][-A-Za-z0-9_.]*$',
};

function crd(
  plural: string,
  kind: string,
  shortNames: string[],
  spec: JSONSchemaProps,
  status: JSONSchemaProps | undefined,
  columns: NonNullable<CustomResourceDefinition['spec']['versions'][number]['additionalPrinterColumns']>,
): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${DEVICES_GROUP}`, labels: { 'app.kubernetes.io/managed-by': 'kedge' } },
    spec: {
      group: DEVICES_GROUP,
      names: {
        plural,
        singular: kind.toLowerCase(),
        kind,
        listKind: `${kind}List`,
        shortNames,
        categories: ['kedge'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: DEVICES_VERSION,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                ...(status === undefined ? {} : { status }),
              },
            },
          },
          ...(status === undefined ? {} : { subresources: { status: {} } }),
          additionalPrinterColumns: columns,
        },
      ],
    },
  };
}

/** The DeviceModel CRD: a template of properties (type, access mode, range, unit). */
export function deviceModelCrd(): CustomResourceDefinition {
  return crd(
    'devicemodels',
    'DeviceModel',
    ['dm'],
    {
      type: 'object',
      properties: {
        protocol: { type: 'string' },
        properties: {
          type: 'array',
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['name'],
          items: {
            type: 'object',
            required: ['name', 'type'],
            properties: {
              name: propertyName,
              description: { type: 'string' },
              type: { type: 'string', enum: [...PropertyTypes] },
              accessMode: { type: 'string', enum: [...AccessModes] },
              minimum: { type: 'string' },
              maximum: { type: 'string' },
              unit: { type: 'string' },
            },
          },
        },
      },
    },
    undefined,
    [
      { name: 'Protocol', type: 'string', jsonPath: '.spec.protocol' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  );
}

/** The Device CRD: a device bound to a node, its protocol, desired properties; status holds the twins. */
export function deviceCrd(): CustomResourceDefinition {
  return crd(
    'devices',
    'Device',
    ['dev'],
    {
      type: 'object',
      required: ['deviceModelRef'],
      properties: {
        deviceModelRef: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1 } },
        },
        nodeName: { type: 'string', maxLength: 253 },
        protocol: {
          type: 'object',
          properties: { protocolName: { type: 'string', minLength: 1 }, configData: open },
        },
        properties: {
          type: 'array',
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['name'],
          items: {
            type: 'object',
            required: ['name'],
            properties: {
              name: propertyName,
              desired: twinValue(true),
              visitors: {
                type: 'object',
                properties: { protocolName: { type: 'string' }, configData: open },
              },
              collectCycle: cycle,
              reportCycle: cycle,
              reportToCloud: { type: 'boolean' },
              pushMethod: open,
            },
          },
        },
        methods: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name'],
            properties: {
              name: { type: 'string', minLength: 1 },
              description: { type: 'string' },
              propertyNames: { type: 'array', items: { type: 'string' } },
            },
          },
        },
        stateReport: {
          type: 'object',
          properties: { reportCycle: cycle, reportToCloud: { type: 'boolean' } },
        },
      },
    },
    {
      type: 'object',
      properties: {
        state: { type: 'string', enum: [...DeviceStates] },
        lastOnlineTime: { type: 'string' },
        edgeVersion: { type: 'integer', format: 'int64', minimum: 0 },
        reportCycle: cycle,
        reportToCloud: { type: 'boolean' },
        twins: {
          type: 'array',
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['propertyName'],
          items: {
            type: 'object',
            required: ['propertyName'],
            properties: {
              propertyName: { type: 'string' },
              reported: twinValue(false),
              observedDesired: twinValue(false),
            },
          },
        },
      },
    },
    [
      { name: 'Node', type: 'string', jsonPath: '.spec.nodeName' },
      { name: 'Model', type: 'string', jsonPath: '.spec.deviceModelRef.name' },
      { name: 'Protocol', type: 'string', jsonPath: '.spec.protocol.protocolName' },
      { name: 'State', type: 'string', jsonPath: '.status.state' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  );
}

// ---- typed views ----

export interface ModelProperty {
  readonly name: string;
  readonly type: ModelPropertyType;
  readonly accessMode: 'ReadWrite' | 'ReadOnly';
  readonly minimum?: number;
  readonly maximum?: number;
  readonly unit?: string;
}

export interface DeviceProperty {
  readonly name: string;
  readonly desired?: { readonly value: string; readonly metadata: Readonly<Record<string, string>> };
  readonly visitorProtocol?: string;
  readonly visitor: Readonly<Record<string, unknown>>;
  readonly collectCycleMs: number;
  readonly reportToCloud: boolean;
}

export interface DeviceView {
  readonly namespace: string;
  readonly name: string;
  readonly model: string;
  readonly nodeName: string | undefined;
  readonly protocol: string | undefined;
  readonly protocolConfig: Readonly<Record<string, unknown>>;
  readonly properties: readonly DeviceProperty[];
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
};
const obj = (v: unknown): Record<string, unknown> => (isPlainObject(v) ? v : {});
const arr = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v.filter(isPlainObject) : []);

/** The device's node (spec.nodeName), if bound. */
export function deviceNodeName(device: KubeObject): string | undefined {
  return str(obj(device['spec'])['nodeName']);
}

/** The DeviceModel name a Device references. */
export function deviceModelName(device: KubeObject): string | undefined {
  return str(obj(obj(device['spec'])['deviceModelRef'])['name']);
}

export function parseDevice(device: KubeObject): DeviceView {
  const spec = obj(device['spec']);
  const protocol = obj(spec['protocol']);
  return {
    namespace: device.metadata.namespace ?? 'default',
    name: device.metadata.name ?? '',
    model: deviceModelName(device) ?? '',
    nodeName: deviceNodeName(device),
    protocol: str(protocol['protocolName']),
    protocolConfig: obj(protocol['configData']),
    properties: arr(spec['properties']).flatMap((p): DeviceProperty[] => {
      const name = str(p['name']);
      if (name === undefined) return [];
      const desired = obj(p['desired']);
      const visitors = obj(p['visitors']);
      const value = desired['value'];
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(obj(desired['metadata'])))
        if (typeof v === 'string') metadata[k] = v;
      const vp = str(visitors['protocolName']);
      return [
        {
          name,
          ...(typeof value === 'string' ? { desired: { value, metadata } } : {}),
          ...(vp === undefined ? {} : { visitorProtocol: vp }),
          visitor: obj(visitors['configData']),
          collectCycleMs: num(p['collectCycle']) ?? 0,
          reportToCloud: p['reportToCloud'] !== false,
        },
      ];
    }),
  };
}

export function parseModelProperties(model: KubeObject | undefined): ModelProperty[] {
  if (model === undefined) return [];
  return arr(obj(model['spec'])['properties']).flatMap((p): ModelProperty[] => {
    const name = str(p['name']);
    const type = str(p['type'])?.toUpperCase();
    if (name === undefined || !PropertyTypes.includes(type as ModelPropertyType)) return [];
    const min = num(p['minimum']);
    const max = num(p['maximum']);
    const unit = str(p['unit']);
    return [
      {
        name,
        type: type as ModelPropertyType,
        accessMode: p['accessMode'] === 'ReadOnly' ? 'ReadOnly' : 'ReadWrite',
        ...(min === undefined ? {} : { minimum: min }),
        ...(max === undefined ? {} : { maximum: max }),
        ...(unit === undefined ? {} : { unit }),
      },
    ];
  });
}

/**
 * Why `value` is not a valid value of `type` within [minimum, maximum], or undefined when it is. Values
 * travel as strings (as in KubeEdge twins).
 */
export function valueError(
  value: string,
  type: string,
  range: { readonly minimum?: number; readonly maximum?: number } = {},
): string | undefined {
  const t = type.toUpperCase();
  if (t === 'INT' || t === 'FLOAT' || t === 'DOUBLE') {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) return `${JSON.stringify(value)} is not a number`;
    if (t === 'INT' && !Number.isInteger(n)) return `${JSON.stringify(value)} is not an integer`;
    if (range.minimum !== undefined && n < range.minimum)
      return `${value} is below the minimum ${range.minimum}`;
    if (range.maximum !== undefined && n > range.maximum)
      return `${value} is above the maximum ${range.maximum}`;
    return undefined;
  }
  if (t === 'BOOLEAN' && value !== 'true' && value !== 'false')
    return `${JSON.stringify(value)} is not true or false`;
  return undefined;
}

/** A semantic problem of a Device or DeviceModel (beyond its schema): [field path, message]. */
export type DeviceFieldProblem = readonly [field: string, message: string];

/** Checks a DeviceModel beyond its schema: numeric ranges parse and are ordered. */
export function validateDeviceModel(model: KubeObject): DeviceFieldProblem[] {
  const problems: DeviceFieldProblem[] = [];
  arr(obj(model['spec'])['properties']).forEach((p, i) => {
    const type = String(p['type'] ?? '');
    for (const bound of ['minimum', 'maximum'] as const) {
      const v = p[bound];
      if (v === undefined || v === '') continue;
      if (!['INT', 'FLOAT', 'DOUBLE'].includes(type))
        problems.push([`spec.properties[${i}].${bound}`, `a ${type} property has no ${bound}`]);
      else if (num(v) === undefined)
        problems.push([`spec.properties[${i}].${bound}`, `${JSON.stringify(v)} is not a number`]);
    }
    const min = num(p['minimum']);
    const max = num(p['maximum']);
    if (min !== undefined && max !== undefined && min > max)
      problems.push([`spec.properties[${i}].minimum`, `minimum ${min} is above maximum ${max}`]);
  });
  return problems;
}

/** Checks a Device beyond its schema: typed desired values, methods naming existing properties. */
export function validateDevice(device: KubeObject): DeviceFieldProblem[] {
  const problems: DeviceFieldProblem[] = [];
  const spec = obj(device['spec']);
  const names = new Set<string>();
  arr(spec['properties']).forEach((p, i) => {
    if (typeof p['name'] === 'string') names.add(p['name']);
    const desired = obj(p['desired']);
    const type = obj(desired['metadata'])['type'];
    if (typeof desired['value'] === 'string' && typeof type === 'string') {
      const why = valueError(desired['value'], type);
      if (why !== undefined) problems.push([`spec.properties[${i}].desired.value`, why]);
    }
  });
  arr(spec['methods']).forEach((m, i) => {
    const list = Array.isArray(m['propertyNames']) ? m['propertyNames'] : [];
    list.forEach((n, j) => {
      if (typeof n !== 'string' || !names.has(n))
        problems.push([
          `spec.methods[${i}].propertyNames[${j}]`,
          `${JSON.stringify(n)} is not a property of the device`,
        ]);
    });
  });
  const node = spec['nodeName'];
  if (typeof node === 'string' && node !== '' && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(node))
    problems.push(['spec.nodeName', `${JSON.stringify(node)} is not a valid node name`]);
  return problems;
}
