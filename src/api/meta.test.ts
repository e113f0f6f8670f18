import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cloneJson } from './meta.ts';

describe('cloneJson', () => {
  it('copies deeply: changing the copy leaves the original as it was', () => {
    const original = { a: { b: [1, { c: 'x' }] }, n: null, t: true };
    const copy = cloneJson(original);
    assert.deepEqual(copy, original);
    (copy.a.b[1] as { c: string }).c = 'changed';
    copy.a.b.push(3);
    assert.deepEqual(original, { a: { b: [1, { c: 'x' }] }, n: null, t: true });
  });

  it('drops undefined values as JSON does, and keeps primitives as they are', () => {
    assert.deepEqual(cloneJson({ a: undefined, b: 1 }), JSON.parse(JSON.stringify({ a: undefined, b: 1 })));
    assert.equal(cloneJson('s'), 's');
    assert.equal(cloneJson(null), null);
    assert.equal(cloneJson(undefined), undefined);
  });

  it('keeps a "__proto__" key from parsed JSON as an own key, without touching the prototype', () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Record<string, unknown>;
    const copy = cloneJson(parsed);
    assert.equal(Object.getPrototypeOf(copy), Object.prototype);
    assert.deepEqual(Object.keys(copy), ['__proto__', 'x']);
    assert.equal(JSON.stringify(copy), JSON.stringify(parsed));
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
});
