import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cronTabCrdExample, deviceCrdExample } from './examples.ts';
import {
  applyCrdDefaults,
  type CustomResourceDefinition,
  formatFieldError,
  invalidMessage,
  validateCrd,
} from './index.ts';

// biome-ignore lint/suspicious/noExplicitAny: the table breaks CRDs on purpose, one field at a time.
type Loose = any;
type Mutation = (crd: Loose) => void;

function mutated(fn: Mutation, base: () => CustomResourceDefinition = cronTabCrdExample): unknown {
  const crd = base() as Loose;
  fn(crd);
  return crd;
}

function lines(obj: unknown): string[] {
  return validateCrd(obj).errors.map(formatFieldError);
}

describe('validateCrd', () => {
  it('accepts the example CRDs', () => {
    assert.deepEqual(lines(cronTabCrdExample()), []);
    assert.deepEqual(lines(deviceCrdExample()), []);
  });

  it('returns the CRD with its defaults applied', () => {
    const { crd, errors } = validateCrd(
      mutated((c) => {
        delete c.spec.names.singular;
        delete c.spec.names.listKind;
      }),
    );
    assert.deepEqual(errors, []);
    assert.equal(crd.spec.names.singular, 'crontab');
    assert.equal(crd.spec.names.listKind, 'CronTabList');
    assert.deepEqual(crd.spec.conversion, { strategy: 'None' });
  });

  const v0 = 'spec.versions[0]';
  const root = `${v0}.schema.openAPIV3Schema`;
  const cases: { name: string; mutate: Mutation; expect: string }[] = [
    {
      name: 'metadata.name is not <plural>.<group>',
      mutate: (c) => (c.metadata.name = 'crontab.stable.example.com'),
      expect:
        'metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group',
    },
    { name: 'missing group', mutate: (c) => delete c.spec.group, expect: 'spec.group: Required value' },
    {
      name: 'group without a dot',
      mutate: (c) => {
        c.spec.group = 'example';
        c.metadata.name = 'crontabs.example';
      },
      expect: 'spec.group: Invalid value: "example": should be a domain with at least one dot',
    },
    {
      name: 'group not a DNS subdomain',
      mutate: (c) => {
        c.spec.group = 'Stable.example.com';
        c.metadata.name = 'crontabs.Stable.example.com';
      },
      expect:
        'spec.group: Invalid value: "Stable.example.com": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters',
    },
    {
      name: 'plural not a DNS label',
      mutate: (c) => {
        c.spec.names.plural = 'cron_tabs';
        c.metadata.name = 'cron_tabs.stable.example.com';
      },
      expect: 'spec.names.plural: Invalid value: "cron_tabs": a DNS-1035 label must consist of lower case',
    },
    {
      name: 'missing kind',
      mutate: (c) => delete c.spec.names.kind,
      expect: 'spec.names.kind: Required value',
    },
    {
      name: 'lower-case kind',
      mutate: (c) => (c.spec.names.kind = 'cronTab'),
      expect: 'spec.names.kind: Invalid value: "cronTab": must start with an upper-case letter',
    },
    {
      name: 'listKind equal to kind',
      mutate: (c) => (c.spec.names.listKind = 'CronTab'),
      expect: 'spec.names.listKind: Invalid value: "CronTab": kind and listKind may not be the same',
    },
    {
      name: 'short name not a DNS label',
      mutate: (c) => (c.spec.names.shortNames = ['ct', 'C T']),
      expect: 'spec.names.shortNames[1]: Invalid value: "C T": a DNS-1035 label',
    },
    {
      name: 'scope missing',
      mutate: (c) => delete c.spec.scope,
      expect: 'spec.scope: Required value',
    },
    {
      name: 'scope unknown',
      mutate: (c) => (c.spec.scope = 'Global'),
      expect: 'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"',
    },
    {
      name: 'no versions',
      mutate: (c) => (c.spec.versions = []),
      expect: 'spec.versions: Required value: must have at least one version',
    },
    {
      name: 'two storage versions',
      mutate: (c) => (c.spec.versions[1].storage = true),
      expect: 'spec.versions: Invalid value: [',
    },
    {
      name: 'no storage version',
      mutate: (c) => (c.spec.versions[0].storage = false),
      expect: 'must have exactly one version marked as storage version',
    },
    {
      name: 'served is not a boolean',
      mutate: (c) => (c.spec.versions[0].served = 'yes'),
      expect: `${v0}.served: Invalid value: "yes": must be a boolean`,
    },
    {
      name: 'storage missing',
      mutate: (c) => delete c.spec.versions[2].storage,
      expect: 'spec.versions[2].storage: Required value',
    },
    {
      name: 'duplicate version names',
      mutate: (c) => (c.spec.versions[2].name = 'v1'),
      expect: 'spec.versions[2].name: Invalid value: "v1": must be unique',
    },
    {
      name: 'version name not a DNS label',
      mutate: (c) => (c.spec.versions[2].name = 'V1'),
      expect: 'spec.versions[2].name: Invalid value: "V1": a DNS-1035 label',
    },
    {
      name: 'schema missing',
      mutate: (c) => delete c.spec.versions[0].schema,
      expect: `${root}: Required value: schemas are required`,
    },
    {
      name: 'deprecation warning on a version that is not deprecated',
      mutate: (c) => (c.spec.versions[1].deprecated = false),
      expect:
        'spec.versions[1].deprecationWarning: Invalid value: "stable.example.com/v1beta1 CronTab is deprecated',
    },
    {
      name: 'property without a type',
      mutate: (c) => delete c.spec.versions[0].schema.openAPIV3Schema.properties.spec.type,
      expect: `${root}.properties[spec].type: Required value: must not be empty for specified object fields`,
    },
    {
      name: 'printer column with an unknown type',
      mutate: (c) => (c.spec.versions[0].additionalPrinterColumns[0].type = 'text'),
      expect: `${v0}.additionalPrinterColumns[0].type: Unsupported value: "text": supported values: "integer", "number", "string", "boolean", "date"`,
    },
    {
      name: 'printer column without jsonPath',
      mutate: (c) => delete c.spec.versions[0].additionalPrinterColumns[1].jsonPath,
      expect: `${v0}.additionalPrinterColumns[1].jsonPath: Required value`,
    },
    {
      name: 'printer column without name',
      mutate: (c) => delete c.spec.versions[0].additionalPrinterColumns[1].name,
      expect: `${v0}.additionalPrinterColumns[1].name: Required value`,
    },
    {
      name: 'printer column with an unknown format',
      mutate: (c) => (c.spec.versions[0].additionalPrinterColumns[1].format = 'int8'),
      expect: `${v0}.additionalPrinterColumns[1].format: Unsupported value: "int8"`,
    },
    {
      name: 'printer column with a negative priority',
      mutate: (c) => (c.spec.versions[0].additionalPrinterColumns[1].priority = -1),
      expect: `${v0}.additionalPrinterColumns[1].priority: Invalid value: -1: must be a non-negative integer`,
    },
    {
      name: 'scale spec path outside .spec',
      mutate: (c) => (c.spec.versions[0].subresources.scale.specReplicasPath = '.status.replicas'),
      expect: `${v0}.subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec`,
    },
    {
      name: 'scale status path missing',
      mutate: (c) => delete c.spec.versions[0].subresources.scale.statusReplicasPath,
      expect: `${v0}.subresources.scale.statusReplicasPath: Required value`,
    },
    {
      name: 'scale label selector path outside spec and status',
      mutate: (c) => (c.spec.versions[0].subresources.scale.labelSelectorPath = '.metadata.labels'),
      expect: 'should be a json path under either .spec or .status',
    },
    {
      name: 'preserveUnknownFields true',
      mutate: (c) => (c.spec.preserveUnknownFields = true),
      expect: 'spec.preserveUnknownFields: Invalid value: true: cannot set to true',
    },
    {
      name: 'unknown conversion strategy',
      mutate: (c) => (c.spec.conversion = { strategy: 'Magic' }),
      expect: 'spec.conversion.strategy: Unsupported value: "Magic": supported values: "None", "Webhook"',
    },
    {
      name: 'webhook conversion without webhook',
      mutate: (c) => (c.spec.conversion = { strategy: 'Webhook' }),
      expect: 'spec.conversion.webhook: Required value: required when strategy is set to Webhook',
    },
    {
      name: 'webhook set with strategy None',
      mutate: (c) =>
        (c.spec.conversion = {
          strategy: 'None',
          webhook: { conversionReviewVersions: ['v1'], clientConfig: { url: 'https://x' } },
        }),
      expect: 'spec.conversion.webhook: Forbidden: should not be set when strategy is not set to Webhook',
    },
    {
      name: 'default that does not match its schema',
      mutate: (c) =>
        (c.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.replicas.default = 'one'),
      expect: `${root}.properties[spec].properties[replicas].default: Invalid value: "string": spec.replicas in body must be of type integer: "string"`,
    },
    {
      name: 'default outside its bounds',
      mutate: (c) =>
        (c.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.replicas.default = 11),
      expect: `${root}.properties[spec].properties[replicas].default: Invalid value: 11: spec.replicas in body should be less than or equal to 10`,
    },
  ];
  for (const c of cases) {
    it(`refuses: ${c.name}`, () => {
      const got = lines(mutated(c.mutate));
      assert.ok(
        got.some((l) => l.startsWith(c.expect) || l.includes(c.expect)),
        `expected an error like ${JSON.stringify(c.expect)}, got ${JSON.stringify(got, null, 1)}`,
      );
    });
  }

  it('refuses a value that is not an object without throwing', () => {
    for (const bad of [null, 42, 'crd', [], {}, { spec: null }, { spec: { names: 'x', versions: 'v1' } }]) {
      assert.ok(validateCrd(bad).errors.length > 0, JSON.stringify(bad));
    }
  });

  it('formats an Invalid status message like the API server', () => {
    const { errors } = validateCrd(mutated((c) => delete c.spec.scope));
    assert.equal(
      invalidMessage('CustomResourceDefinition', 'crontabs.stable.example.com', errors),
      'CustomResourceDefinition "crontabs.stable.example.com" is invalid: spec.scope: Required value',
    );
  });
});

describe('applyCrdDefaults', () => {
  it('sets singular, listKind, conversion and webhook port without touching the input', () => {
    const input = cronTabCrdExample();
    delete input.spec.names.singular;
    delete input.spec.names.listKind;
    input.spec.conversion = {
      strategy: 'Webhook',
      webhook: {
        conversionReviewVersions: ['v1'],
        clientConfig: { service: { namespace: 'ns', name: 'conv' } },
      },
    };
    const out = applyCrdDefaults(input);
    assert.equal(out.spec.names.singular, 'crontab');
    assert.equal(out.spec.names.listKind, 'CronTabList');
    assert.equal(out.spec.conversion?.webhook?.clientConfig?.service?.port, 443);
    assert.equal(input.spec.names.singular, undefined);
    assert.equal(input.spec.conversion.webhook?.clientConfig?.service?.port, undefined);
  });

  it('keeps values that are set', () => {
    const input = deviceCrdExample();
    input.spec.names.listKind = 'Devices';
    const out = applyCrdDefaults(input);
    assert.equal(out.spec.names.listKind, 'Devices');
    assert.equal(out.spec.names.singular, 'device');
  });
});
