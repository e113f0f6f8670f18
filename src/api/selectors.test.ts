import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../lib/errors.ts';
import type { KubeObject, LabelSelectorSpec } from './meta.ts';
import {
  checkFieldSelectorSupported,
  EVERYTHING,
  fieldSelectorToString,
  fieldsOf,
  formatLabelSelectorSpec,
  formatLabels,
  isEverything,
  labelSelectorFromSpec,
  labelSelectorToString,
  matchesFields,
  matchesLabels,
  NOTHING,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.ts';

function selectorError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(
      isKedgeError(err, 'KEDGE_SELECTOR_INVALID'),
      `expected KEDGE_SELECTOR_INVALID, got ${String(err)}`,
    );
    return err.message;
  }
  assert.fail('expected the call to throw');
}

describe('parseLabelSelector', () => {
  const cases: [string, string][] = [
    ['', ''],
    ['app=web', 'app=web'],
    ['app==web', 'app==web'],
    ['app!=web', 'app!=web'],
    ['  tier  in ( b , a ) , app', 'app,tier in (a,b)'],
    ['tier notin (x)', 'tier notin (x)'],
    ['!canary', '!canary'],
    ['example.com/role=db,a.b/c', 'a.b/c,example.com/role=db'],
    ['x in (foo,,baz),y,z notin ()', 'x in (,baz,foo),y,z notin ()'],
    ['in in (in, notin)', 'in in (in,notin)'],
    ['size>5,size<10', 'size>5,size<10'],
    ['empty=', 'empty='],
  ];
  for (const [input, canonical] of cases) {
    test(`parses ${JSON.stringify(input)}`, () => {
      assert.equal(labelSelectorToString(parseLabelSelector(input)), canonical);
    });
  }

  test('matches like Kubernetes', () => {
    const labels = { app: 'web', tier: 'front', size: '7' };
    const yes = [
      'app=web',
      'app in (api,web)',
      'tier',
      '!canary',
      'app!=api',
      'canary notin (x)',
      'size>5',
      'size<8',
    ];
    const no = [
      'app=api',
      'app notin (web)',
      'canary',
      '!tier',
      'app!=web',
      'size>7',
      'tier>1',
      'canary in (x)',
    ];
    for (const s of yes) assert.equal(matchesLabels(parseLabelSelector(s), labels), true, s);
    for (const s of no) assert.equal(matchesLabels(parseLabelSelector(s), labels), false, s);
    assert.equal(matchesLabels(parseLabelSelector('app!=web'), undefined), true);
    assert.equal(matchesLabels(parseLabelSelector(''), undefined), true);
  });

  const errors: [string, string][] = [
    [
      'a$b=c',
      `unable to parse requirement: <nil>: Invalid value: "a$b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
    ],
    [
      'env=a$',
      `unable to parse requirement: values[0][env]: Invalid value: "a$": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
    ],
    ['a b', "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"],
    ['a=b c', "found 'c', expected: ',' or 'end of string'"],
    ['a=b,', "found '', expected: identifier after ','"],
    [',a', "found ',', expected: !, identifier, or 'end of string'"],
    ['a in b', "unable to parse requirement: found 'b' expected: '('"],
    ['a in (b', "unable to parse requirement: found '', expected: ',' or ')'"],
    ['!a=b', "found '=', expected: ',' or 'end of string'"],
    [
      'a>b',
      `unable to parse requirement: values[0]: Invalid value: "b": for 'Gt', 'Lt' operators, the value must be an integer`,
    ],
    [`a=${'v'.repeat(64)}`, 'must be no more than 63 characters'],
    [`${'k'.repeat(64)}`, 'name part must be no more than 63 characters'],
    ['/a', 'prefix part must be non-empty'],
    ['Example.com/a', 'prefix part a lowercase RFC 1123 subdomain'],
  ];
  for (const [input, message] of errors) {
    test(`rejects ${JSON.stringify(input.slice(0, 20))}`, () => {
      const got = selectorError(() => parseLabelSelector(input));
      assert.ok(got.includes(message), `${got}\n does not contain\n${message}`);
    });
  }
});

describe('labelSelectorFromSpec', () => {
  test('null matches nothing, empty matches everything', () => {
    assert.equal(labelSelectorFromSpec(undefined), NOTHING);
    assert.equal(labelSelectorFromSpec(null), NOTHING);
    assert.equal(matchesLabels(NOTHING, {}), false);
    assert.equal(labelSelectorToString(NOTHING), '');
    const all = labelSelectorFromSpec({});
    assert.equal(isEverything(all), true);
    assert.equal(matchesLabels(all, { a: 'b' }), true);
    assert.equal(isEverything(EVERYTHING), true);
  });

  test('combines matchLabels and matchExpressions, sorted by key', () => {
    const sel = labelSelectorFromSpec({
      matchLabels: { tier: 'front', app: 'web' },
      matchExpressions: [
        { key: 'env', operator: 'In', values: ['prod', 'dev'] },
        { key: 'canary', operator: 'DoesNotExist' },
        { key: 'zone', operator: 'Exists' },
        { key: 'rack', operator: 'NotIn', values: ['r1'] },
      ],
    });
    assert.equal(
      labelSelectorToString(sel),
      'app=web,!canary,env in (dev,prod),rack notin (r1),tier=front,zone',
    );
    assert.equal(matchesLabels(sel, { app: 'web', tier: 'front', env: 'dev', zone: 'z' }), true);
    assert.equal(matchesLabels(sel, { app: 'web', tier: 'front', env: 'dev', zone: 'z', canary: '' }), false);
  });

  test('rejects bad operators, keys and values', () => {
    const bad = { matchExpressions: [{ key: 'a', operator: 'Gt' }] } as unknown as LabelSelectorSpec;
    assert.match(
      selectorError(() => labelSelectorFromSpec(bad)),
      /"Gt" is not a valid label selector operator/,
    );
    assert.match(
      selectorError(() => labelSelectorFromSpec({ matchLabels: { 'a b': 'c' } })),
      /^key: Invalid value: "a b"/,
    );
    assert.match(
      selectorError(() =>
        labelSelectorFromSpec({ matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }),
      ),
      /values set can't be empty/,
    );
  });

  test('formats like kubectl wide columns', () => {
    assert.equal(formatLabelSelectorSpec({ matchLabels: { app: 'web' } }), 'app=web');
    assert.equal(formatLabelSelectorSpec({}), '<none>');
    assert.equal(formatLabelSelectorSpec(undefined), '<none>');
    assert.equal(formatLabels({ b: '2', a: '1' }), 'a=1,b=2');
    assert.equal(formatLabels({}), '<none>');
  });
});

// Generators for valid label keys and values.
const alnum = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split(''));
const inner = fc.constantFrom(...'abcxyzABC0189-_.'.split(''));
const qname = fc
  .tuple(alnum, fc.array(inner, { maxLength: 8 }), alnum)
  .map(([a, m, b]) => a + m.join('') + b)
  .filter((s) => s !== 'in' && s !== 'notin');
const labelKey = fc.oneof(
  qname,
  fc.tuple(fc.constantFrom('example.com', 'k8s.io', 'a.b-c'), qname).map(([p, n]) => `${p}/${n}`),
);
const labelValue = fc.oneof(fc.constant(''), qname);
const labels = fc.dictionary(
  fc.constantFrom('app', 'tier', 'env', 'k8s.io/x'),
  fc.constantFrom('', 'a', 'b', 'web'),
);

const specArb: fc.Arbitrary<LabelSelectorSpec> = fc.record(
  {
    matchLabels: fc.dictionary(labelKey, labelValue, { maxKeys: 3 }),
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({
          key: labelKey,
          operator: fc.constantFrom('In' as const, 'NotIn' as const),
          values: fc.array(labelValue, { minLength: 1, maxLength: 3 }),
        }),
        fc.record({ key: labelKey, operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const) }),
      ),
      { maxLength: 3 },
    ),
  },
  { requiredKeys: [] },
);

describe('label selector properties', () => {
  test('toString then parse round-trips', () => {
    fc.assert(
      fc.property(specArb, (spec) => {
        const sel = labelSelectorFromSpec(spec);
        const text = labelSelectorToString(sel);
        const reparsed = parseLabelSelector(text);
        assert.equal(labelSelectorToString(reparsed), text);
        assert.deepEqual(reparsed.requirements, sel.requirements);
      }),
    );
  });

  test('!= and notin negate = and in on objects that have the key', () => {
    fc.assert(
      fc.property(
        labelKey,
        fc.array(labelValue, { minLength: 1, maxLength: 3 }),
        labelValue,
        (key, values, actual) => {
          const ls = { [key]: actual };
          const v0 = values[0] ?? '';
          const eq = parseLabelSelector(`${key}=${v0}`);
          const ne = parseLabelSelector(`${key}!=${v0}`);
          assert.equal(matchesLabels(ne, ls), !matchesLabels(eq, ls));
          const set = [...new Set(values)].sort().join(',');
          const inSel = parseLabelSelector(`${key} in (${set})`);
          const notin = parseLabelSelector(`${key} notin (${set})`);
          assert.equal(matchesLabels(notin, ls), !matchesLabels(inSel, ls));
        },
      ),
    );
  });

  test('selectors from specs agree with their parsed equivalents', () => {
    fc.assert(
      fc.property(specArb, labels, (spec, ls) => {
        const parts: string[] = [];
        for (const [k, v] of Object.entries(spec.matchLabels ?? {})) parts.push(`${k}==${v}`);
        for (const e of spec.matchExpressions ?? []) {
          if (e.operator === 'Exists') parts.push(e.key);
          else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
          else {
            const set = [...new Set(e.values ?? [])].sort().join(',');
            parts.push(`${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${set})`);
          }
        }
        const fromSpec = labelSelectorFromSpec(spec);
        const parsed = parseLabelSelector(parts.join(','));
        assert.equal(matchesLabels(parsed, ls), matchesLabels(fromSpec, ls));
      }),
    );
  });
});

describe('field selectors', () => {
  test('parses operators and escapes', () => {
    const sel = parseFieldSelector('spec.nodeName=node-1,status.phase!=Running,metadata.name==a\\,b\\=c\\\\');
    assert.deepEqual(sel.requirements, [
      { field: 'metadata.name', operator: '=', value: 'a,b=c\\' },
      { field: 'spec.nodeName', operator: '=', value: 'node-1' },
      { field: 'status.phase', operator: '!=', value: 'Running' },
    ]);
    assert.equal(
      fieldSelectorToString(sel),
      'metadata.name=a\\,b\\=c\\\\,spec.nodeName=node-1,status.phase!=Running',
    );
    assert.deepEqual(parseFieldSelector('').requirements, []);
    assert.deepEqual(parseFieldSelector('a=b,,').requirements, [{ field: 'a', operator: '=', value: 'b' }]);
  });

  test('rejects malformed selectors', () => {
    assert.equal(
      selectorError(() => parseFieldSelector('a=b,c')),
      "invalid selector: 'a=b,c'; can't understand 'c'",
    );
    assert.match(
      selectorError(() => parseFieldSelector('a=b=c')),
      /unescaped character in value: '='/,
    );
    assert.match(
      selectorError(() => parseFieldSelector('a=b\\x')),
      /invalid escape sequence: \\x/,
    );
  });

  test('matches, treating absent fields as empty', () => {
    const fields = { 'spec.nodeName': 'n1', 'status.phase': 'Running' };
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName=n1'), fields), true);
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName!=n1'), fields), false);
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName=n1,status.phase=Pending'), fields), false);
    assert.equal(matchesFields(parseFieldSelector('missing='), fields), true);
    assert.equal(matchesFields(parseFieldSelector('missing!='), fields), false);
  });

  test('round-trips any values', () => {
    const field = fc.constantFrom('metadata.name', 'spec.nodeName', 'a.b');
    const req = fc
      .record({ field, operator: fc.constantFrom('=' as const, '!=' as const), value: fc.string() })
      .map((r) => ({ ...r }));
    fc.assert(
      fc.property(fc.uniqueArray(req, { selector: (r) => r.field, maxLength: 3 }), (reqs) => {
        const sorted = [...reqs].sort((a, b) => (a.field < b.field ? -1 : 1));
        const text = fieldSelectorToString({ requirements: sorted });
        assert.deepEqual(parseFieldSelector(text).requirements, sorted);
      }),
    );
  });

  test('field sets per kind', () => {
    const pod: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'ns' },
      spec: {
        nodeName: 'n1',
        restartPolicy: 'Always',
        schedulerName: 'default-scheduler',
        serviceAccountName: 'sa',
      },
      status: { phase: 'Running', podIPs: [{ ip: '10.0.0.5' }], podIP: '10.0.0.5' },
    };
    assert.deepEqual(fieldsOf('', 'Pod', pod), {
      'metadata.name': 'p',
      'metadata.namespace': 'ns',
      'spec.nodeName': 'n1',
      'spec.restartPolicy': 'Always',
      'spec.schedulerName': 'default-scheduler',
      'spec.serviceAccountName': 'sa',
      'spec.hostNetwork': 'false',
      'status.phase': 'Running',
      'status.podIP': '10.0.0.5',
      'status.nominatedNodeName': '',
    });
    const ev: KubeObject = {
      metadata: { name: 'e', namespace: 'ns' },
      involvedObject: { kind: 'Pod', name: 'p', namespace: 'ns', uid: 'u1', fieldPath: 'spec.containers{c}' },
      reason: 'Pulled',
      type: 'Normal',
      reportingComponent: 'kubelet',
      source: {},
    };
    const evFields = fieldsOf('', 'Event', ev);
    assert.equal(evFields['involvedObject.kind'], 'Pod');
    assert.equal(evFields['involvedObject.fieldPath'], 'spec.containers{c}');
    assert.equal(evFields['source'], 'kubelet');
    assert.equal(evFields['reportingComponent'], 'kubelet');
    const ev2: KubeObject = {
      metadata: { name: 'e' },
      regarding: { kind: 'Node', name: 'n1' },
      reason: 'Ready',
      type: 'Normal',
      reportingController: 'kedge',
    };
    const ev2Fields = fieldsOf('events.k8s.io', 'Event', ev2);
    assert.equal(ev2Fields['regarding.kind'], 'Node');
    assert.equal(ev2Fields['reportingController'], 'kedge');
    assert.equal(ev2Fields['involvedObject.kind'], undefined);
    assert.equal(
      fieldsOf('', 'Node', { metadata: { name: 'n' }, spec: { unschedulable: true } })['spec.unschedulable'],
      'true',
    );
    assert.equal(fieldsOf('', 'Secret', { metadata: {}, type: 'Opaque' })['type'], 'Opaque');
    assert.equal(
      fieldsOf('', 'Namespace', { metadata: {}, status: { phase: 'Active' } })['status.phase'],
      'Active',
    );
    assert.equal(
      fieldsOf('apps', 'ReplicaSet', { metadata: {}, status: { replicas: 3 } })['status.replicas'],
      '3',
    );
    assert.equal(
      fieldsOf('batch', 'Job', { metadata: {}, status: { succeeded: 2 } })['status.successful'],
      '2',
    );
    assert.deepEqual(
      Object.keys(fieldsOf('example.com', 'Widget', { metadata: { name: 'w' }, spec: { a: 1 } })),
      ['metadata.name', 'metadata.namespace'],
    );
  });

  test('checkFieldSelectorSupported names the unsupported label', () => {
    checkFieldSelectorSupported(parseFieldSelector('spec.nodeName=n1,metadata.name=p'), '', 'Pod');
    checkFieldSelectorSupported(parseFieldSelector('regarding.name=x'), 'events.k8s.io', 'Event');
    assert.equal(
      selectorError(() =>
        checkFieldSelectorSupported(parseFieldSelector('spec.nodeName=n1'), '', 'ConfigMap'),
      ),
      'field label not supported: spec.nodeName',
    );
    assert.equal(
      selectorError(() =>
        checkFieldSelectorSupported(parseFieldSelector('source=x'), 'events.k8s.io', 'Event'),
      ),
      'field label not supported: source',
    );
    assert.equal(
      selectorError(() =>
        checkFieldSelectorSupported(parseFieldSelector('spec.a=1'), 'example.com', 'Widget'),
      ),
      'field label not supported: spec.a',
    );
  });
});
