import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../lib/errors.ts';
import { compileJsonPath, formatJsonPathResults, goFormatFloat, goJson } from './jsonpath.ts';

const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-0',
    labels: { app: 'web', 'app.kubernetes.io/name': 'shop' },
    annotations: { 'kedge.io/edge': 'true' },
  },
  spec: {
    containers: [
      { name: 'app', image: 'nginx:1.27', ports: [{ containerPort: 80 }, { containerPort: 443 }] },
      { name: 'sidecar', image: 'busybox', ports: [{ containerPort: 9090 }] },
      { name: 'log', image: 'fluent' },
    ],
  },
  status: {
    phase: 'Running',
    conditions: [
      { type: 'Initialized', status: 'True' },
      { type: 'Ready', status: 'False', priority: 2 },
      { type: 'PodScheduled', status: 'True', priority: 5 },
    ],
  },
};

const cases: [string, unknown[]][] = [
  ['.metadata.name', ['web-0']],
  ['{.metadata.name}', ['web-0']],
  ['{ .metadata.name }', ['web-0']],
  ['$.metadata.name', ['web-0']],
  ['metadata.name', ['web-0']],
  [".metadata.labels['app.kubernetes.io/name']", ['shop']],
  ['.metadata.labels["app.kubernetes.io/name"]', ['shop']],
  ['.metadata.labels.app\\.kubernetes\\.io/name', ['shop']],
  [".metadata['name','missing']", ['web-0']],
  ['.spec.containers[0].name', ['app']],
  ['.spec.containers[-1].name', ['log']],
  ['.spec.containers[5].name', []],
  ['.spec.containers[*].name', ['app', 'sidecar', 'log']],
  ['.spec.containers.*.image', ['nginx:1.27', 'busybox', 'fluent']],
  ['.spec.containers[0:2].name', ['app', 'sidecar']],
  ['.spec.containers[1:].name', ['sidecar', 'log']],
  ['.spec.containers[:-1].name', ['app', 'sidecar']],
  ['.spec.containers[::2].name', ['app', 'log']],
  ['.spec.containers[0,2].name', ['app', 'log']],
  ['..containerPort', [80, 443, 9090]],
  ['.spec..name', ['app', 'sidecar', 'log']],
  ['.status.conditions[?(@.type=="Ready")].status', ['False']],
  [".status.conditions[?(@.type == 'Ready')].status", ['False']],
  ['.status.conditions[?(@.status!="True")].type', ['Ready']],
  ['.status.conditions[?(@.priority>2)].type', ['PodScheduled']],
  ['.status.conditions[?(@.priority>=2)].type', ['Ready', 'PodScheduled']],
  ['.status.conditions[?(@.priority<5)].type', ['Ready']],
  ['.status.conditions[?(@.priority<=5)].type', ['Ready', 'PodScheduled']],
  ['.status.conditions[?(@.priority)].type', ['Ready', 'PodScheduled']],
  ['.spec.containers[?(@.ports[0].containerPort==9090)].name', ['sidecar']],
  ['.spec.containers[?(@.name=="nope")].name', []],
  ['.missing.deeper', []],
  ['.metadata.name.deeper', []],
  ['.status', [pod.status]],
];

describe('compileJsonPath', () => {
  for (const [expr, want] of cases) {
    test(expr, () => {
      assert.deepEqual(compileJsonPath(expr)(pod), want);
    });
  }

  const bad = [
    '',
    '{}',
    '{.a',
    '.a[',
    '.a[x]',
    '.a[?(@.b==)]',
    '.a[?(1)]',
    '.a[::0]',
    ".a['b",
    '.a b',
    '{range .items[*]}',
    '.',
  ];
  for (const expr of bad) {
    test(`rejects ${JSON.stringify(expr)}`, () => {
      assert.throws(
        () => compileJsonPath(expr),
        (err: unknown) =>
          isKedgeError(err, 'KEDGE_JSONPATH_INVALID') && err.message.includes(JSON.stringify(expr)),
      );
    });
  }

  test('never throws at evaluation time on arbitrary JSON', () => {
    const fn = compileJsonPath('..items[?(@.a>1)].b[-1:]');
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        assert.ok(Array.isArray(fn(v)));
      }),
    );
  });

  test('[*] returns every element, [n] the nth', () => {
    fc.assert(
      fc.property(fc.array(fc.integer()), fc.integer({ min: -5, max: 5 }), (arr, i) => {
        assert.deepEqual(compileJsonPath('.a[*]')({ a: arr }), arr);
        const at = i < 0 ? arr.length + i : i;
        const want = at >= 0 && at < arr.length ? [arr[at]] : [];
        assert.deepEqual(compileJsonPath(`.a[${i}]`)({ a: arr }), want);
      }),
    );
  });
});

describe('printing results like Go', () => {
  test('formats floats like fmt.Print', () => {
    assert.equal(goFormatFloat(1.5), '1.5');
    assert.equal(goFormatFloat(123456.5), '123456.5');
    assert.equal(goFormatFloat(1234567.5), '1.2345675e+06');
    assert.equal(goFormatFloat(0.0001), '0.0001');
    assert.equal(goFormatFloat(0.00001), '1e-05');
    assert.equal(goFormatFloat(-2.5e-7), '-2.5e-07');
  });

  test('JSON with sorted keys and HTML escapes', () => {
    assert.equal(
      goJson({ b: 1, a: [{ d: '<x>', c: '&' }] }),
      '{"a":[{"c":"\\u0026","d":"\\u003cx\\u003e"}],"b":1}',
    );
  });

  test('joins results with spaces', () => {
    assert.equal(
      formatJsonPathResults(['a', 3, true, { k: 'v' }, [1], 2.5, null]),
      'a 3 true {"k":"v"} [1] 2.5 <nil>',
    );
  });
});
