import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../../lib/errors.ts';
import { applyMergePatch } from './index.ts';

const invalid = (err: unknown) => isKedgeError(err, 'KEDGE_PATCH_INVALID');

describe('applyMergePatch', () => {
  // The examples of RFC 7386 appendix A, as original / patch / result.
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    [{ a: 'x' }, { a: { b: 1 } }, { a: { b: 1 } }],
    [{ a: [1, null] }, { b: [null] }, { a: [1, null], b: [null] }],
    [null, { a: 1 }, { a: 1 }],
  ];
  cases.forEach(([doc, patch, want], i) => {
    it(`RFC 7386 example ${i}: ${JSON.stringify(patch)}`, () =>
      assert.deepEqual(applyMergePatch(doc, patch), want));
  });

  it('does not mutate its inputs', () => {
    const doc = { metadata: { labels: { a: '1' } }, list: [1] };
    const patch = { metadata: { labels: { a: null, b: '2' } } };
    const [d, p] = [structuredClone(doc), structuredClone(patch)];
    applyMergePatch(doc, patch);
    assert.deepEqual(doc, d);
    assert.deepEqual(patch, p);
  });

  for (const bad of [[1], 'x', null, 3]) {
    it(`rejects the non-object patch ${JSON.stringify(bad)}`, () => {
      assert.throws(() => applyMergePatch({}, bad), invalid);
    });
  }
  it('rejects values that are not JSON', () => {
    assert.throws(() => applyMergePatch({}, { a: undefined }), invalid);
    assert.throws(() => applyMergePatch({}, { a: Number.NaN }), invalid);
    assert.throws(() => applyMergePatch({ a: new Date() }, {}), invalid);
  });
});

// A merge patch cannot set a member to null, so generated objects hold no null members (arrays may).
const key = fc.constantFrom('a', 'b', 'c', 'd', '__proto__');
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.oneof(fc.string({ maxLength: 3 }), fc.integer(), fc.boolean()),
    fc.array(fc.oneof(tie('v'), fc.constant(null)), { maxLength: 3 }),
    fc.dictionary(key, tie('v'), { maxKeys: 4, noNullPrototype: true }),
  ),
})).v;
const object = fc.dictionary(key, value, { maxKeys: 4, noNullPrototype: true });

type J = unknown;
const isObj = (v: J): v is Record<string, J> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The smallest merge patch turning `a` into `b`. */
function createMergePatch(a: J, b: J): J {
  if (!isObj(a) || !isObj(b)) return b;
  const patch: Record<string, J> = {};
  const put = (k: string, v: J) =>
    Object.defineProperty(patch, k, { value: v, enumerable: true, writable: true });
  for (const k of Object.keys(a)) if (!Object.hasOwn(b, k)) put(k, null);
  for (const [k, v] of Object.entries(b)) {
    if (!Object.hasOwn(a, k)) put(k, v);
    else if (JSON.stringify(a[k]) !== JSON.stringify(v)) put(k, createMergePatch(a[k], v));
  }
  return patch;
}

describe('applyMergePatch properties', () => {
  it('applying createMergePatch(a, b) to a yields b', () => {
    fc.assert(
      fc.property(object, object, (a, b) => {
        assert.deepEqual(applyMergePatch(a, createMergePatch(a, b)), b);
      }),
      { numRuns: 500 },
    );
  });
  it('never mutates the document', () => {
    fc.assert(
      fc.property(object, object, (a, p) => {
        const before = JSON.stringify(a);
        applyMergePatch(a, p);
        assert.equal(JSON.stringify(a), before);
      }),
    );
  });
});
