import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../../lib/errors.ts';
import { applyJsonPatch, parsePointer } from './index.ts';

const invalid = (err: unknown) => isKedgeError(err, 'KEDGE_PATCH_INVALID');
const testFailed = (err: unknown) => isKedgeError(err, 'KEDGE_PATCH_TEST_FAILED');

describe('parsePointer', () => {
  it('unescapes ~1 before ~0 so "~01" stays "~1"', () => {
    assert.deepEqual(parsePointer(''), []);
    assert.deepEqual(parsePointer('/'), ['']);
    assert.deepEqual(parsePointer('/a~1b/m~0n/~01'), ['a/b', 'm~n', '~1']);
  });
  it('rejects pointers without a leading slash and bad escapes', () => {
    for (const bad of ['a/b', '/a~2', '/a~', '#/a']) assert.throws(() => parsePointer(bad), invalid, bad);
  });
});

describe('applyJsonPatch', () => {
  const doc = { metadata: { name: 'p', labels: { app: 'web' } }, list: [1, 2, 3], 'a/b': 1, 'm~n': 2 };
  const cases: { name: string; patch: unknown[]; want: unknown }[] = [
    {
      name: 'add a member',
      patch: [{ op: 'add', path: '/metadata/labels/tier', value: 'fe' }],
      want: { ...doc, metadata: { name: 'p', labels: { app: 'web', tier: 'fe' } } },
    },
    {
      name: 'add replaces an existing member',
      patch: [{ op: 'add', path: '/metadata/name', value: 'q' }],
      want: { ...doc, metadata: { name: 'q', labels: { app: 'web' } } },
    },
    {
      name: 'add inserts into an array',
      patch: [{ op: 'add', path: '/list/1', value: 9 }],
      want: { ...doc, list: [1, 9, 2, 3] },
    },
    {
      name: 'add with - appends',
      patch: [{ op: 'add', path: '/list/-', value: 4 }],
      want: { ...doc, list: [1, 2, 3, 4] },
    },
    {
      name: 'add at the array length appends',
      patch: [{ op: 'add', path: '/list/3', value: 4 }],
      want: { ...doc, list: [1, 2, 3, 4] },
    },
    {
      name: 'add null is a value',
      patch: [{ op: 'add', path: '/x', value: null }],
      want: { ...doc, x: null },
    },
    {
      name: 'add at the root replaces the document',
      patch: [{ op: 'add', path: '', value: [1] }],
      want: [1],
    },
    {
      name: 'remove a member',
      patch: [{ op: 'remove', path: '/metadata/labels' }],
      want: { ...doc, metadata: { name: 'p' } },
    },
    {
      name: 'remove an array element',
      patch: [{ op: 'remove', path: '/list/0' }],
      want: { ...doc, list: [2, 3] },
    },
    {
      name: 'escaped keys',
      patch: [
        { op: 'remove', path: '/a~1b' },
        { op: 'replace', path: '/m~0n', value: 3 },
      ],
      want: { metadata: doc.metadata, list: doc.list, 'm~n': 3 },
    },
    {
      name: 'replace',
      patch: [{ op: 'replace', path: '/list/2', value: 'x' }],
      want: { ...doc, list: [1, 2, 'x'] },
    },
    {
      name: 'move a member',
      patch: [{ op: 'move', from: '/metadata/labels', path: '/labels' }],
      want: { ...doc, metadata: { name: 'p' }, labels: { app: 'web' } },
    },
    {
      name: 'move within an array',
      patch: [{ op: 'move', from: '/list/0', path: '/list/-' }],
      want: { ...doc, list: [2, 3, 1] },
    },
    {
      name: 'copy',
      patch: [{ op: 'copy', from: '/list', path: '/copy' }],
      want: { ...doc, copy: [1, 2, 3] },
    },
    {
      name: 'test that passes changes nothing',
      patch: [{ op: 'test', path: '/metadata', value: { labels: { app: 'web' }, name: 'p' } }],
      want: doc,
    },
    {
      name: 'ops apply in order',
      patch: [
        { op: 'add', path: '/n', value: 1 },
        { op: 'test', path: '/n', value: 1 },
        { op: 'remove', path: '/n' },
      ],
      want: doc,
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(applyJsonPatch(doc, c.patch), c.want));
  }

  it('copy makes an independent value', () => {
    const out = applyJsonPatch({ a: { b: 1 } }, [
      { op: 'copy', from: '/a', path: '/c' },
      { op: 'replace', path: '/c/b', value: 2 },
    ]);
    assert.deepEqual(out, { a: { b: 1 }, c: { b: 2 } });
  });

  it('a failed test is KEDGE_PATCH_TEST_FAILED and names the path', () => {
    assert.throws(
      () => applyJsonPatch(doc, [{ op: 'test', path: '/metadata/name', value: 'other' }]),
      (err: unknown) => testFailed(err) && err instanceof Error && err.message.includes('/metadata/name'),
    );
  });

  const bad: { name: string; patch: unknown }[] = [
    { name: 'not an array', patch: { op: 'add', path: '/a', value: 1 } },
    { name: 'an op that is not an object', patch: ['add'] },
    { name: 'unknown op', patch: [{ op: 'merge', path: '/a', value: 1 }] },
    { name: 'missing op', patch: [{ path: '/a' }] },
    { name: 'path not a string', patch: [{ op: 'remove', path: 3 }] },
    { name: 'pointer without slash', patch: [{ op: 'remove', path: 'metadata' }] },
    { name: 'bad escape', patch: [{ op: 'remove', path: '/a~5' }] },
    { name: 'add without value', patch: [{ op: 'add', path: '/a' }] },
    { name: 'add under a missing parent', patch: [{ op: 'add', path: '/nope/a', value: 1 }] },
    { name: 'add past the array end', patch: [{ op: 'add', path: '/list/5', value: 1 }] },
    { name: 'add with a leading-zero index', patch: [{ op: 'add', path: '/list/01', value: 1 }] },
    { name: 'add into a scalar', patch: [{ op: 'add', path: '/metadata/name/x', value: 1 }] },
    { name: 'remove a missing member', patch: [{ op: 'remove', path: '/nope' }] },
    { name: 'remove - from an array', patch: [{ op: 'remove', path: '/list/-' }] },
    { name: 'remove the root', patch: [{ op: 'remove', path: '' }] },
    { name: 'replace a missing member', patch: [{ op: 'replace', path: '/nope', value: 1 }] },
    { name: 'move without from', patch: [{ op: 'move', path: '/a' }] },
    { name: 'move from a missing member', patch: [{ op: 'move', from: '/nope', path: '/a' }] },
    { name: 'move into its own child', patch: [{ op: 'move', from: '/metadata', path: '/metadata/x' }] },
    { name: 'copy from a missing member', patch: [{ op: 'copy', from: '/nope', path: '/a' }] },
    { name: 'test a missing member', patch: [{ op: 'test', path: '/nope', value: 1 }] },
    { name: 'inherited names are not members', patch: [{ op: 'remove', path: '/constructor' }] },
    { name: 'a non-JSON value', patch: [{ op: 'add', path: '/a', value: () => 1 }] },
  ];
  for (const c of bad) {
    it(`rejects ${c.name} with KEDGE_PATCH_INVALID`, () => {
      assert.throws(() => applyJsonPatch(doc, c.patch), invalid);
    });
  }

  it('names the failing operation and path in the message', () => {
    assert.throws(
      () =>
        applyJsonPatch(doc, [
          { op: 'test', path: '/list/0', value: 1 },
          { op: 'remove', path: '/spec/x' },
        ]),
      (err: unknown) => invalid(err) && err instanceof Error && /operation 1 .*"\/spec\/x"/.test(err.message),
    );
  });

  it('"__proto__" is an ordinary member', () => {
    const out = applyJsonPatch({}, [{ op: 'add', path: '/__proto__', value: { polluted: true } }]) as object;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.deepEqual(Object.keys(out), ['__proto__']);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
});

// Random documents and operations that are valid for them.
const key = fc.constantFrom('a', 'b', 'c', 'a/b', 'm~n', '');
const scalar = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.boolean(), fc.constant(null));
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(key, tie('v'), { maxKeys: 3, noNullPrototype: true }),
  ),
})).v;
const doc = fc.dictionary(key, value, { maxKeys: 4, noNullPrototype: true });

type Doc = unknown;
const esc = (k: string) => k.replaceAll('~', '~0').replaceAll('/', '~1');

/** Every pointer to an existing location, and the containers you can add into. */
function locations(node: Doc, at = ''): { existing: string[]; containers: { path: string; node: Doc }[] } {
  const existing: string[] = [];
  const containers: { path: string; node: Doc }[] = [];
  const walk = (n: Doc, p: string) => {
    existing.push(p);
    if (Array.isArray(n)) {
      containers.push({ path: p, node: n });
      for (const [i, c] of n.entries()) walk(c, `${p}/${i}`);
    } else if (typeof n === 'object' && n !== null) {
      containers.push({ path: p, node: n });
      for (const [k, c] of Object.entries(n)) walk(c, `${p}/${esc(k)}`);
    }
  };
  walk(node, at);
  return { existing, containers };
}

/** Picks a valid operation for `current` using the random numbers in `r`. */
function pickOp(current: Doc, r: number[], v: unknown): Record<string, unknown> {
  const { existing, containers } = locations(current);
  const pick = <T>(list: T[], n: number): T => list[n % list.length] as T;
  const nonRoot = existing.filter((p) => p !== '');
  if (containers.length === 0) return { op: 'add', path: '', value: { a: v } };
  const target = pick(containers, r[1] ?? 0);
  const addPath = Array.isArray(target.node)
    ? `${target.path}/${(r[2] ?? 0) % 2 === 0 ? '-' : (r[2] ?? 0) % (target.node.length + 1)}`
    : `${target.path}/${esc(pick(['a', 'b', 'x/y', 'q~'], r[2] ?? 0))}`;
  switch ((r[0] ?? 0) % 5) {
    case 0:
      return { op: 'add', path: addPath, value: v };
    case 1:
      return nonRoot.length > 0
        ? { op: 'remove', path: pick(nonRoot, r[3] ?? 0) }
        : { op: 'add', path: addPath, value: v };
    case 2:
      return { op: 'replace', path: pick(existing, r[3] ?? 0), value: v };
    case 3:
      return { op: 'copy', from: pick(existing, r[3] ?? 0), path: addPath };
    default: {
      const from = pick(nonRoot.length > 0 ? nonRoot : [''], r[3] ?? 0);
      if (from === '' || addPath.startsWith(`${from}/`)) return { op: 'test', path: from, value: null };
      return { op: 'move', from, path: addPath };
    }
  }
}

describe('applyJsonPatch properties', () => {
  it('a random sequence of valid ops applies and never mutates the input', () => {
    fc.assert(
      fc.property(
        doc,
        fc.array(fc.tuple(fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), value), { maxLength: 8 }),
        (d, steps) => {
          const ops: Record<string, unknown>[] = [];
          let current: unknown = d;
          for (const [r, v] of steps) {
            const op = pickOp(current, r, v);
            try {
              current = applyJsonPatch(current, [op]);
              ops.push(op);
            } catch (err) {
              // A move whose target vanished with its source, or a test of null: both legitimately refused.
              if (!(isKedgeError(err) && (op['op'] === 'move' || op['op'] === 'test'))) throw err;
            }
          }
          const before = structuredClone(d);
          const out = applyJsonPatch(d, ops);
          assert.deepEqual(d, before);
          assert.deepEqual(out, current);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('testing a value right after adding it succeeds', () => {
    fc.assert(
      fc.property(doc, fc.nat(), fc.nat(), value, (d, r1, r2, v) => {
        const op = pickOp(d, [0, r1, r2, 0], v);
        const path = String(op['path']).endsWith('/-')
          ? String(op['path']).replace(/-$/, String(findArrayLength(d, String(op['path']).slice(0, -2))))
          : String(op['path']);
        const before = structuredClone(d);
        const out = applyJsonPatch(d, [
          { ...op, path },
          { op: 'test', path, value: v },
        ]);
        assert.deepEqual(d, before);
        assert.ok(out !== d);
      }),
      { numRuns: 300 },
    );
  });
});

function findArrayLength(d: unknown, pointer: string): number {
  let node: unknown = d;
  for (const token of parsePointer(pointer)) node = (node as Record<string, unknown>)[token];
  return (node as unknown[]).length;
}
