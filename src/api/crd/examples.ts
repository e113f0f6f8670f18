/** Realistic CRDs for tests and demos: each call returns a fresh copy. */
import type { CustomResourceDefinition, JSONSchemaProps } from './types.ts';

const stringMap: JSONSchemaProps = { type: 'object', additionalProperties: { type: 'string' } };

const twinValue: JSONSchemaProps = {
  type: 'object',
  properties: { value: { type: 'string' }, metadata: stringMap },
};

/** A KubeEdge-like Device: a model reference, the node it is bound to, desired properties and reported twins. */
export function deviceCrdExample(): CustomResourceDefinition {
  const schema: JSONSchemaProps = {
    type: 'object',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: {
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
            properties: {
              protocolName: { type: 'string', enum: ['modbus', 'opcua', 'bluetooth', 'mqtt', 'virtual'] },
              configData: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
          properties: {
            type: 'array',
            'x-kubernetes-list-type': 'map',
            'x-kubernetes-list-map-keys': ['name'],
            items: {
              type: 'object',
              required: ['name'],
              properties: {
                name: { type: 'string', pattern: '^[a-zA-Z][-a-zA-Z0-9_]*$' },
                desired: twinValue,
                visitors: {
                  type: 'object',
                  properties: {
                    protocolName: { type: 'string' },
                    configData: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                  },
                },
                reportCycle: { type: 'integer', format: 'int64', minimum: 0 },
                collectCycle: { type: 'integer', format: 'int64', minimum: 0, default: 10000 },
                reportToCloud: { type: 'boolean', default: true },
              },
            },
          },
        },
      },
      status: {
        type: 'object',
        properties: {
          state: { type: 'string', enum: ['online', 'offline', 'unknown'], default: 'unknown' },
          lastOnlineTime: { type: 'string', format: 'date-time' },
          twins: {
            type: 'array',
            'x-kubernetes-list-type': 'map',
            'x-kubernetes-list-map-keys': ['propertyName'],
            items: {
              type: 'object',
              required: ['propertyName'],
              properties: {
                propertyName: { type: 'string' },
                reported: twinValue,
                observedDesired: twinValue,
              },
            },
          },
        },
      },
    },
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'devices.devices.kedge.io' },
    spec: {
      group: 'devices.kedge.io',
      names: {
        plural: 'devices',
        singular: 'device',
        kind: 'Device',
        shortNames: ['dev'],
        categories: ['kedge'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1beta1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: schema },
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Node', type: 'string', jsonPath: '.spec.nodeName' },
            { name: 'Model', type: 'string', jsonPath: '.spec.deviceModelRef.name' },
            { name: 'State', type: 'string', jsonPath: '.status.state' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
        },
      ],
    },
  };
}

/** A Device that validates against deviceCrdExample(). */
export function deviceExample(): Record<string, unknown> {
  return {
    apiVersion: 'devices.kedge.io/v1beta1',
    kind: 'Device',
    metadata: { name: 'thermometer-1', namespace: 'default' },
    spec: {
      deviceModelRef: { name: 'thermometer' },
      nodeName: 'edge-1',
      protocol: { protocolName: 'modbus', configData: { slaveID: 1, serialPort: '/dev/ttyS0' } },
      properties: [
        {
          name: 'temperature',
          desired: { value: '20', metadata: { type: 'float' } },
          visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', offset: 2 } },
          reportCycle: 5000,
        },
        { name: 'switch', desired: { value: 'on' } },
      ],
    },
    status: {
      state: 'online',
      lastOnlineTime: '2025-01-02T03:04:05Z',
      twins: [
        { propertyName: 'temperature', reported: { value: '19.5', metadata: { timestamp: '1700000000' } } },
      ],
    },
  };
}

/** The CronTab of the Kubernetes docs, with printer columns, a scale subresource and a deprecated version. */
export function cronTabCrdExample(): CustomResourceDefinition {
  const schema = (): JSONSchemaProps => ({
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        required: ['cronSpec', 'image'],
        properties: {
          cronSpec: { type: 'string', pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$' },
          image: { type: 'string' },
          replicas: { type: 'integer', minimum: 1, maximum: 10, default: 1 },
          selector: { type: 'string' },
        },
      },
      status: {
        type: 'object',
        properties: { replicas: { type: 'integer' }, labelSelector: { type: 'string' } },
      },
    },
  });
  const columns = [
    {
      name: 'Spec',
      type: 'string' as const,
      description: 'The cron spec defining the interval',
      jsonPath: '.spec.cronSpec',
    },
    { name: 'Replicas', type: 'integer' as const, jsonPath: '.spec.replicas' },
    { name: 'Image', type: 'string' as const, priority: 1, jsonPath: '.spec.image' },
    { name: 'Age', type: 'date' as const, jsonPath: '.metadata.creationTimestamp' },
  ];
  const subresources = {
    status: {},
    scale: {
      specReplicasPath: '.spec.replicas',
      statusReplicasPath: '.status.replicas',
      labelSelectorPath: '.status.labelSelector',
    },
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'crontabs.stable.example.com' },
    spec: {
      group: 'stable.example.com',
      names: {
        plural: 'crontabs',
        singular: 'crontab',
        kind: 'CronTab',
        listKind: 'CronTabList',
        shortNames: ['ct'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: schema() },
          subresources,
          additionalPrinterColumns: columns,
        },
        {
          name: 'v1beta1',
          served: true,
          storage: false,
          deprecated: true,
          deprecationWarning:
            'stable.example.com/v1beta1 CronTab is deprecated; use stable.example.com/v1 CronTab',
          schema: { openAPIV3Schema: schema() },
        },
        { name: 'v1alpha1', served: false, storage: false, schema: { openAPIV3Schema: schema() } },
      ],
    },
  };
}
