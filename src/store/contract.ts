/**
 * The store contract: every backend registers these tests with its own `open`, e.g.
 * `storeContract('sqlite', async () => ({ store, cleanup }))`. Each test opens a fresh, empty store.
 * Revisions are asserted relative to the fresh store's revision (etcd does not start at 0).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type ErrorCode, isKedgeError } from '../lib/errors.ts';
import { MemoryModel } from './memory-model.ts';
import type { BatchOp, Store, Watch, WatchEvent } from './types.ts';

export type OpenStore = () => Promise<{ store: Store; cleanup(): Promise<void> }>;

function failsWith(code: ErrorCode): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isKedgeError(err, code), `expected ${code}, got ${String(err)}`);
    return true;
  };
}

/** Reads the next `n` events of a watch. */
async function take(it: AsyncIterator<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  while (out.length < n) {
    const r = await it.next();
    assert.ok(!r.done, `watch ended after ${out.length} of ${n} events`);
    out.push(r.value);
  }
  return out;
}

function iter(watch: Watch): AsyncIterator<WatchEvent> {
  return watch[Symbol.asyncIterator]();
}

function brief(events: readonly WatchEvent[]): string[] {
  return events.map((e) => `${e.type} ${e.key} ${e.value}@${e.revision}`);
}

export function storeContract(name: string, open: OpenStore): void {
  const withStore = async (fn: (store: Store, r0: number) => Promise<void>): Promise<void> => {
    const { store, cleanup } = await open();
    try {
      await fn(store, store.currentRevision());
    } finally {
      await cleanup();
    }
  };

  describe(`store contract: ${name}`, () => {
    test('create and get; every write takes the next revision', () =>
      withStore(async (store, r0) => {
        assert.ok(store.compactedRevision() <= r0);
        assert.equal(await store.get('/a'), undefined);
        const a = await store.create('/a', 'v1');
        assert.deepEqual(a, { key: '/a', value: 'v1', revision: r0 + 1, createRevision: r0 + 1 });
        const b = await store.create('/b', 'v2');
        assert.equal(b.revision, r0 + 2);
        assert.equal(store.currentRevision(), r0 + 2);
        assert.deepEqual(await store.get('/a'), a);
      }));

    test('create of an existing key fails with KEDGE_STORE_KEY_EXISTS and takes no revision', () =>
      withStore(async (store, r0) => {
        await store.create('/a', 'v1');
        await assert.rejects(store.create('/a', 'v2'), failsWith('KEDGE_STORE_KEY_EXISTS'));
        assert.equal(store.currentRevision(), r0 + 1);
        assert.equal((await store.get('/a'))?.value, 'v1');
      }));

    test('update checks existence and the expected revision, and keeps createRevision', () =>
      withStore(async (store, r0) => {
        await assert.rejects(store.update('/a', 'x'), failsWith('KEDGE_STORE_NOT_FOUND'));
        const a = await store.create('/a', 'v1');
        await store.create('/b', 'other');
        await assert.rejects(store.update('/a', 'x', a.revision + 1), failsWith('KEDGE_STORE_CONFLICT'));
        const a2 = await store.update('/a', 'v2', a.revision);
        assert.deepEqual(a2, { key: '/a', value: 'v2', revision: r0 + 3, createRevision: r0 + 1 });
        await assert.rejects(store.update('/a', 'v3', a.revision), failsWith('KEDGE_STORE_CONFLICT'));
        const a3 = await store.update('/a', 'v3');
        assert.equal(a3.revision, r0 + 4);
        assert.equal(store.currentRevision(), r0 + 4);
      }));

    test('delete checks like update, returns the last state, and the key can be created again', () =>
      withStore(async (store, r0) => {
        await assert.rejects(store.delete('/a'), failsWith('KEDGE_STORE_NOT_FOUND'));
        const a = await store.create('/a', 'v1');
        await assert.rejects(store.delete('/a', a.revision + 7), failsWith('KEDGE_STORE_CONFLICT'));
        const deleted = await store.delete('/a', a.revision);
        assert.deepEqual(deleted, { prev: a, revision: r0 + 2 });
        assert.equal(await store.get('/a'), undefined);
        await assert.rejects(store.delete('/a'), failsWith('KEDGE_STORE_NOT_FOUND'));
        const again = await store.create('/a', 'v2');
        assert.deepEqual(again, { key: '/a', value: 'v2', revision: r0 + 3, createRevision: r0 + 3 });
      }));

    test('batch: consecutive revisions, later ops see earlier ones, deletes carry their revision', () =>
      withStore(async (store, r0) => {
        await store.create('/old', 'o');
        const out = await store.batch([
          { type: 'create', key: '/a', value: '1' },
          { type: 'update', key: '/a', value: '2', expectedRevision: r0 + 2 },
          { type: 'delete', key: '/old', expectedRevision: r0 + 1 },
          { type: 'create', key: '/old', value: 'new' },
        ]);
        assert.deepEqual(out, [
          { key: '/a', value: '1', revision: r0 + 2, createRevision: r0 + 2 },
          { key: '/a', value: '2', revision: r0 + 3, createRevision: r0 + 2 },
          { key: '/old', value: 'o', revision: r0 + 4, createRevision: r0 + 1 },
          { key: '/old', value: 'new', revision: r0 + 5, createRevision: r0 + 5 },
        ]);
        assert.equal(store.currentRevision(), r0 + 5);
        assert.deepEqual(await store.batch([]), []);
        assert.equal(store.currentRevision(), r0 + 5);
      }));

    test('batch is all or nothing: a failing op leaves no trace, not even in watches', () =>
      withStore(async (store, r0) => {
        await store.create('/a', '1');
        const watch = store.watch('/', { afterRevision: r0 + 1 });
        await assert.rejects(
          store.batch([
            { type: 'update', key: '/a', value: '2' },
            { type: 'create', key: '/b', value: 'b' },
            { type: 'create', key: '/a', value: 'dup' },
          ]),
          failsWith('KEDGE_STORE_KEY_EXISTS'),
        );
        assert.equal(store.currentRevision(), r0 + 1);
        assert.equal((await store.get('/a'))?.value, '1');
        assert.equal(await store.get('/b'), undefined);
        await store.create('/c', 'c');
        const [event] = await take(iter(watch), 1);
        assert.deepEqual(brief([event!]), [`put /c c@${r0 + 2}`]);
        watch.close();
      }));

    test('list selects a prefix in byte order, and count agrees', () =>
      withStore(async (store) => {
        const keys = ['/a/a', '/a/B', '/a/b/c', '/a', '/ab', '/a/\u00e9', '/a/~', '/a/'];
        for (const key of keys) await store.create(key, `v${key}`);
        const listed = await store.list('/a/');
        assert.deepEqual(
          listed.entries.map((e) => e.key),
          ['/a/', '/a/B', '/a/a', '/a/b/c', '/a/~', '/a/\u00e9'],
        );
        assert.equal(listed.revision, store.currentRevision());
        assert.equal(listed.more, false);
        assert.equal(listed.remaining, 0);
        assert.equal(listed.entries[1]?.value, 'v/a/B');
        assert.deepEqual(
          (await store.list('')).entries.map((e) => e.key),
          ['/a', '/a/', '/a/B', '/a/a', '/a/b/c', '/a/~', '/a/\u00e9', '/ab'],
        );
        assert.equal(await store.count('/a/'), 6);
        assert.equal(await store.count(''), 8);
        assert.equal(await store.count('/zz'), 0);
        assert.deepEqual((await store.list('/zz')).entries, []);
      }));

    test('list pages with limit and startKey, reporting more and remaining', () =>
      withStore(async (store) => {
        for (const k of ['1', '2', '3', '4', '5']) await store.create(`/p/${k}`, k);
        await store.create('/q/1', 'q');
        const first = await store.list('/p/', { limit: 2 });
        assert.deepEqual(
          first.entries.map((e) => e.key),
          ['/p/1', '/p/2'],
        );
        assert.equal(first.more, true);
        assert.equal(first.remaining, 3);
        await store.update('/p/3', 'changed');
        const next = { revision: first.revision, limit: 2, startKey: '/p/2\0' };
        const second = await store.list('/p/', next);
        assert.deepEqual(
          second.entries.map((e) => [e.key, e.value]),
          [
            ['/p/3', '3'],
            ['/p/4', '4'],
          ],
        );
        assert.equal(second.revision, first.revision);
        assert.deepEqual([second.more, second.remaining], [true, 1]);
        const last = await store.list('/p/', { ...next, startKey: '/p/5' });
        assert.deepEqual(
          last.entries.map((e) => e.key),
          ['/p/5'],
        );
        assert.deepEqual([last.more, last.remaining], [false, 0]);
        const exact = await store.list('/p/', { limit: 5 });
        assert.deepEqual([exact.entries.length, exact.more, exact.remaining], [5, false, 0]);
        await assert.rejects(store.list('/p/', { startKey: '/q/1' }), failsWith('KEDGE_STORE_INVALID'));
      }));

    test('list at a past revision shows the state then; a future revision fails', () =>
      withStore(async (store, r0) => {
        await store.create('/k/a', 'a1');
        await store.create('/k/b', 'b1');
        await store.update('/k/a', 'a2');
        await store.delete('/k/b');
        await store.create('/k/c', 'c1');
        const at = async (revision: number) =>
          (await store.list('/k/', { revision })).entries.map((e) => `${e.key}=${e.value}@${e.revision}`);
        assert.deepEqual(await at(r0 + 1), [`/k/a=a1@${r0 + 1}`]);
        assert.deepEqual(await at(r0 + 2), [`/k/a=a1@${r0 + 1}`, `/k/b=b1@${r0 + 2}`]);
        assert.deepEqual(await at(r0 + 3), [`/k/a=a2@${r0 + 3}`, `/k/b=b1@${r0 + 2}`]);
        assert.deepEqual(await at(r0 + 4), [`/k/a=a2@${r0 + 3}`]);
        assert.deepEqual(await at(r0 + 5), [`/k/a=a2@${r0 + 3}`, `/k/c=c1@${r0 + 5}`]);
        assert.equal((await store.list('/k/', { revision: r0 + 2 })).revision, r0 + 2);
        await assert.rejects(
          store.list('/k/', { revision: r0 + 6 }),
          failsWith('KEDGE_STORE_FUTURE_REVISION'),
        );
      }));

    test('compaction drops old history but never the latest state of a key', () =>
      withStore(async (store, r0) => {
        await store.create('/k/keep', 'old'); // r0+1, never changed again
        await store.create('/k/a', 'a1'); // r0+2
        await store.update('/k/a', 'a2'); // r0+3
        await store.create('/k/gone', 'g'); // r0+4
        await store.delete('/k/gone'); // r0+5
        await store.update('/k/a', 'a3'); // r0+6
        await store.compact(r0 + 5);
        assert.equal(store.compactedRevision(), r0 + 5);
        await assert.rejects(store.list('/k/', { revision: r0 + 4 }), failsWith('KEDGE_STORE_COMPACTED'));
        const atC = await store.list('/k/', { revision: r0 + 5 });
        assert.deepEqual(
          atC.entries.map((e) => `${e.key}=${e.value}`),
          ['/k/a=a2', '/k/keep=old'],
        );
        const latest = await store.list('/k/');
        assert.deepEqual(
          latest.entries.map((e) => `${e.key}=${e.value}@${e.revision}`),
          [`/k/a=a3@${r0 + 6}`, `/k/keep=old@${r0 + 1}`],
        );
        const w = store.watch('/k/', { afterRevision: r0 + 4 });
        await assert.rejects(iter(w).next(), failsWith('KEDGE_STORE_COMPACTED'));
        assert.ok(isKedgeError(await w.done, 'KEDGE_STORE_COMPACTED'));
        const ok = store.watch('/k/', { afterRevision: r0 + 5 });
        const [event] = await take(iter(ok), 1);
        assert.deepEqual(event, {
          type: 'put',
          key: '/k/a',
          value: 'a3',
          revision: r0 + 6,
          createRevision: r0 + 2,
          prevValue: 'a2',
        });
        ok.close();
        await store.compact(r0 + 2); // older than the compacted revision: nothing to do
        assert.equal(store.compactedRevision(), r0 + 5);
        await assert.rejects(store.compact(r0 + 7), failsWith('KEDGE_STORE_FUTURE_REVISION'));
        await store.compact(r0 + 6);
        assert.deepEqual((await store.get('/k/keep'))?.value, 'old');
        assert.equal(await store.count('/k/'), 2);
        assert.equal(store.currentRevision(), r0 + 6);
      }));

    test('a key deleted between two compactions stays deleted in past lists', () =>
      withStore(async (store, r0) => {
        await store.create('/k/a', '1'); // r0+1
        await store.compact(r0 + 1); // keeps /k/a@r0+1 as the state at r0+1
        await store.update('/k/a', '2'); // r0+2
        await store.delete('/k/a'); // r0+3
        await store.create('/k/b', '1'); // r0+4
        await store.compact(r0 + 4);
        await store.create('/k/c', '1'); // r0+5
        const past = await store.list('/k/', { revision: r0 + 4 });
        assert.deepEqual(
          past.entries.map((e) => e.key),
          ['/k/b'],
        );
      }));

    test('watch replays history, then live events, with prevValue and the value of deletes', () =>
      withStore(async (store, r0) => {
        await store.create('/w/a', 'a1');
        await store.update('/w/a', 'a2');
        await store.create('/x/other', 'x');
        await store.delete('/w/a');
        const watch = store.watch('/w/', { afterRevision: r0 });
        await store.create('/w/b', 'b1');
        await store.batch([
          { type: 'update', key: '/w/b', value: 'b2' },
          { type: 'create', key: '/x/c', value: 'c' },
          { type: 'create', key: '/w/a', value: 'again' },
        ]);
        const events = await take(iter(watch), 6);
        assert.deepEqual(events, [
          { type: 'put', key: '/w/a', value: 'a1', revision: r0 + 1, createRevision: r0 + 1 },
          {
            type: 'put',
            key: '/w/a',
            value: 'a2',
            revision: r0 + 2,
            createRevision: r0 + 1,
            prevValue: 'a1',
          },
          { type: 'delete', key: '/w/a', value: 'a2', revision: r0 + 4, createRevision: r0 + 1 },
          { type: 'put', key: '/w/b', value: 'b1', revision: r0 + 5, createRevision: r0 + 5 },
          {
            type: 'put',
            key: '/w/b',
            value: 'b2',
            revision: r0 + 6,
            createRevision: r0 + 5,
            prevValue: 'b1',
          },
          { type: 'put', key: '/w/a', value: 'again', revision: r0 + 8, createRevision: r0 + 8 },
        ]);
        watch.close();
        assert.equal(await watch.done, undefined);
      }));

    test('a watch from the current revision gets only later events, each exactly once', () =>
      withStore(async (store) => {
        await store.create('/a', '1');
        await store.create('/b', '1');
        const watch = store.watch('', { afterRevision: store.currentRevision() });
        await store.update('/a', '2');
        await store.update('/b', '2');
        const it = iter(watch);
        assert.deepEqual(brief(await take(it, 2)), [
          `put /a 2@${store.currentRevision() - 1}`,
          `put /b 2@${store.currentRevision()}`,
        ]);
        watch.close();
        assert.deepEqual(await it.next(), { done: true, value: undefined });
        const future = store.watch('', { afterRevision: store.currentRevision() + 1 });
        assert.ok(isKedgeError(await future.done, 'KEDGE_STORE_FUTURE_REVISION'));
      }));

    test('breaking out of for-await closes the watch', () =>
      withStore(async (store, r0) => {
        await store.create('/a', '1');
        await store.create('/a2', '1');
        const watch = store.watch('/a', { afterRevision: r0 });
        for await (const event of watch) {
          assert.equal(event.key, '/a');
          break;
        }
        assert.equal(await watch.done, undefined);
      }));

    test('a slow watcher overflows at maxBuffered without holding up the others', () =>
      withStore(async (store, r0) => {
        const slow = store.watch('/s/', { afterRevision: r0, maxBuffered: 3 });
        const fast = store.watch('/s/', { afterRevision: r0, maxBuffered: 3 });
        const fastIt = iter(fast);
        for (let i = 0; i < 10; i++) {
          const got = fastIt.next();
          await store.create(`/s/${i}`, String(i));
          assert.equal(((await got).value as WatchEvent).key, `/s/${i}`);
        }
        const err = await slow.done;
        assert.ok(isKedgeError(err, 'KEDGE_STORE_WATCH_OVERFLOW'), String(err));
        await assert.rejects(iter(slow).next(), failsWith('KEDGE_STORE_WATCH_OVERFLOW'));
        const late = store.watch('/s/', { afterRevision: r0, maxBuffered: 9 });
        assert.ok(isKedgeError(await late.done, 'KEDGE_STORE_WATCH_OVERFLOW'));
        const fits = store.watch('/s/', { afterRevision: r0, maxBuffered: 10 });
        assert.equal((await take(iter(fits), 10)).length, 10);
        fits.close();
        fast.close();
      }));

    test('invalid arguments fail with KEDGE_STORE_INVALID', async () =>
      withStore(async (store) => {
        const invalid = failsWith('KEDGE_STORE_INVALID');
        const sneak = <T>(value: unknown) => value as T;
        await assert.rejects(store.create('', 'v'), invalid);
        await assert.rejects(store.create('/a', sneak<string>(42)), invalid);
        await assert.rejects(store.create(sneak<string>(undefined), 'v'), invalid);
        await assert.rejects(store.update('/a', 'v', -1), invalid);
        await assert.rejects(store.delete('/a', 1.5), invalid);
        await assert.rejects(store.get(''), invalid);
        await assert.rejects(store.list('/', { revision: -1 }), invalid);
        await assert.rejects(store.list('/', { limit: -2 }), invalid);
        await assert.rejects(store.compact(-1), invalid);
        await assert.rejects(
          store.batch([{ type: 'create', key: '/a', value: sneak<string>(null) }]),
          invalid,
        );
        await assert.rejects(
          store.batch([sneak<BatchOp>({ type: 'upsert', key: '/a', value: 'v' })]),
          invalid,
        );
        const w = store.watch('/', { afterRevision: -1 });
        assert.ok(isKedgeError(await w.done, 'KEDGE_STORE_INVALID'));
        const w2 = store.watch('/', { afterRevision: 0, maxBuffered: 0 });
        assert.ok(isKedgeError(await w2.done, 'KEDGE_STORE_INVALID'));
        assert.equal(await store.count(''), 0);
      }));

    test('after close every call fails with KEDGE_STORE_CLOSED and watches end with it', async () => {
      const { store, cleanup } = await open();
      try {
        await store.create('/a', '1');
        const watch = store.watch('/', { afterRevision: store.currentRevision() });
        const pending = iter(watch).next();
        await store.close();
        await assert.rejects(pending, failsWith('KEDGE_STORE_CLOSED'));
        assert.ok(isKedgeError(await watch.done, 'KEDGE_STORE_CLOSED'));
        const closed = failsWith('KEDGE_STORE_CLOSED');
        assert.throws(() => store.currentRevision(), closed);
        assert.throws(() => store.compactedRevision(), closed);
        await assert.rejects(store.create('/b', '1'), closed);
        await assert.rejects(store.update('/a', '1'), closed);
        await assert.rejects(store.delete('/a'), closed);
        await assert.rejects(store.batch([]), closed);
        await assert.rejects(store.get('/a'), closed);
        await assert.rejects(store.list('/'), closed);
        await assert.rejects(store.count('/'), closed);
        await assert.rejects(store.compact(0), closed);
        assert.ok(isKedgeError(await store.watch('/', { afterRevision: 0 }).done, 'KEDGE_STORE_CLOSED'));
        await store.close();
      } finally {
        await cleanup();
      }
    });

    test('large values (1.5 MB) round-trip through get, list and watch', () =>
      withStore(async (store, r0) => {
        const big = JSON.stringify({ data: 'x'.repeat(1_500_000) });
        const watch = store.watch('/big', { afterRevision: r0 });
        await store.create('/big', big);
        await store.update('/big', `${big} `);
        assert.equal((await store.get('/big'))?.value, `${big} `);
        assert.equal((await store.list('/big', { revision: r0 + 1 })).entries[0]?.value, big);
        const [, update] = await take(iter(watch), 2);
        assert.ok(update?.type === 'put' && update.prevValue === big);
        watch.close();
      }));

    test('property: random operations agree with the model, and watches see its exact event sequence', async () => {
      await fc.assert(
        fc.asyncProperty(commandsArb, (commands) => runAgainstModel(open, commands)),
        {
          numRuns: Number(process.env['KEDGE_PROPERTY_RUNS'] ?? 120),
        },
      );
      for (const [what, n] of Object.entries(coverage))
        assert.ok(n > 0, `the property runs never exercised ${what}`);
    });
  });
}

// ---- property test ----

const KEYS = ['/a', '/a/1', '/a/2', '/a/b/1', '/a/b/2', '/ab', '/b/1', '/b/2'] as const;
const PREFIXES = ['', '/a', '/a/', '/a/b/', '/b/', '/c/'] as const;

/** How a write names its expected revision: none, the key's current one, or an arbitrary (likely stale) one. */
type Expect =
  | { readonly kind: 'none' }
  | { readonly kind: 'current' }
  | { readonly kind: 'fixed'; n: number };
type WriteCmd =
  | { readonly t: 'create'; readonly key: string; readonly value: string }
  | { readonly t: 'update'; readonly key: string; readonly value: string; readonly exp: Expect }
  | { readonly t: 'delete'; readonly key: string; readonly exp: Expect };
type Command =
  | WriteCmd
  | { readonly t: 'batch'; readonly ops: readonly WriteCmd[] }
  | { readonly t: 'get'; readonly key: string }
  | { readonly t: 'list'; readonly prefix: string; readonly at: number | null; readonly limit: number }
  | { readonly t: 'count'; readonly prefix: string }
  | { readonly t: 'compact'; readonly at: number }
  | { readonly t: 'watch'; readonly prefix: string; readonly at: number };

const keyArb = fc.constantFrom(...KEYS);
const prefixArb = fc.constantFrom(...PREFIXES);
/** A point in the history so far, as a number of revisions back from the latest (clamped at the start). */
const atArb = fc.nat(10);
const expectArb: fc.Arbitrary<Expect> = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.constant({ kind: 'current' as const }),
  fc.nat(40).map((n) => ({ kind: 'fixed' as const, n })),
);
const writeArb: fc.Arbitrary<WriteCmd> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('create' as const),
      key: keyArb,
      value: fc.string({ maxLength: 4 }),
    }),
    weight: 3,
  },
  fc.record({
    t: fc.constant('update' as const),
    key: keyArb,
    value: fc.string({ maxLength: 4 }),
    exp: expectArb,
  }),
  fc.record({ t: fc.constant('delete' as const), key: keyArb, exp: expectArb }),
);
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: writeArb, weight: 10 },
  {
    arbitrary: fc.record({ t: fc.constant('batch' as const), ops: fc.array(writeArb, { maxLength: 4 }) }),
    weight: 2,
  },
  fc.record({ t: fc.constant('get' as const), key: keyArb }),
  {
    arbitrary: fc.record({
      t: fc.constant('list' as const),
      prefix: prefixArb,
      at: fc.option(atArb),
      limit: fc.nat(3),
    }),
    weight: 3,
  },
  fc.record({ t: fc.constant('count' as const), prefix: prefixArb }),
  fc.record({ t: fc.constant('compact' as const), at: atArb }),
  { arbitrary: fc.record({ t: fc.constant('watch' as const), prefix: prefixArb, at: atArb }), weight: 2 },
);
const commandsArb = fc.array(commandArb, { maxLength: 80, size: 'large' });

/** What the property runs exercised, so a generator that stops reaching the interesting cases fails. */
const coverage = { pastLists: 0, pagedLists: 0, compactions: 0, watchEvents: 0, watchErrors: 0 };

type Outcome = { ok: unknown } | { error: string };

async function outcome(fn: () => unknown): Promise<Outcome> {
  try {
    return { ok: await fn() };
  } catch (err) {
    if (isKedgeError(err)) return { error: err.code };
    throw err;
  }
}

function toOp(cmd: WriteCmd, model: MemoryModel): BatchOp {
  if (cmd.t === 'create') return { type: 'create', key: cmd.key, value: cmd.value };
  const exp = cmd.exp;
  const expectedRevision =
    exp.kind === 'none' ? undefined : exp.kind === 'current' ? (model.get(cmd.key)?.revision ?? 1) : exp.n;
  const base =
    cmd.t === 'update'
      ? { type: 'update' as const, key: cmd.key, value: cmd.value }
      : { type: 'delete' as const, key: cmd.key };
  return expectedRevision === undefined ? base : { ...base, expectedRevision };
}

interface Started {
  readonly prefix: string;
  readonly after: number;
  readonly watch: Watch;
  readonly error: string | undefined;
}

async function runAgainstModel(open: OpenStore, commands: readonly Command[]): Promise<void> {
  const { store, cleanup } = await open();
  const r0 = store.currentRevision();
  const model = new MemoryModel(r0);
  const watches: Started[] = [];
  const at = (back: number) => Math.max(r0, model.currentRevision() - back);
  try {
    for (const cmd of commands) {
      let expected: Outcome;
      let actual: Outcome;
      switch (cmd.t) {
        case 'create':
        case 'update':
        case 'delete': {
          const op = toOp(cmd, model);
          const rev = op.type !== 'create' ? op.expectedRevision : undefined;
          if (op.type === 'create') {
            expected = await outcome(() => model.create(op.key, op.value));
            actual = await outcome(() => store.create(op.key, op.value));
          } else if (op.type === 'update') {
            expected = await outcome(() => model.update(op.key, op.value, rev));
            actual = await outcome(() => store.update(op.key, op.value, rev));
          } else {
            expected = await outcome(() => model.delete(op.key, rev));
            actual = await outcome(() => store.delete(op.key, rev));
          }
          break;
        }
        case 'batch': {
          const ops = cmd.ops.map((c) => toOp(c, model));
          expected = await outcome(() => model.batch(ops));
          actual = await outcome(() => store.batch(ops));
          break;
        }
        case 'get':
          expected = await outcome(() => model.get(cmd.key));
          actual = await outcome(() => store.get(cmd.key));
          break;
        case 'count':
          expected = await outcome(() => model.count(cmd.prefix));
          actual = await outcome(() => store.count(cmd.prefix));
          break;
        case 'compact': {
          const revision = at(cmd.at);
          if (revision > model.compactedRevision()) coverage.compactions++;
          expected = await outcome(() => model.compact(revision));
          actual = await outcome(() => store.compact(revision));
          break;
        }
        case 'list': {
          // Page through everything, pinned to the first page's revision, as the API's continue does.
          const revision = cmd.at === null ? 0 : at(cmd.at);
          const pages = async (target: MemoryModel | Store) => {
            const out = [];
            let options = { revision, limit: cmd.limit } as {
              revision: number;
              limit: number;
              startKey?: string;
            };
            for (;;) {
              const page = await target.list(cmd.prefix, options);
              out.push(page);
              if (!page.more) return out;
              const last = page.entries.at(-1)!.key;
              options = { revision: page.revision, limit: cmd.limit, startKey: `${last}\0` };
            }
          };
          expected = await outcome(() => pages(model));
          actual = await outcome(() => pages(store));
          if ('ok' in expected && Array.isArray(expected.ok)) {
            const first = expected.ok[0] as { entries: unknown[] } | undefined;
            if (revision !== 0 && revision < model.currentRevision() && first?.entries.length)
              coverage.pastLists++;
            if (expected.ok.length > 1) coverage.pagedLists++;
          }
          break;
        }
        case 'watch': {
          const after = at(cmd.at);
          const modelResult = await outcome(() => model.watchEvents(cmd.prefix, after));
          const error = 'error' in modelResult ? modelResult.error : undefined;
          watches.push({
            prefix: cmd.prefix,
            after,
            watch: store.watch(cmd.prefix, { afterRevision: after }),
            error,
          });
          expected = actual = { ok: null };
          break;
        }
      }
      assert.deepEqual(actual, expected, `${JSON.stringify(cmd)}`);
      assert.equal(store.currentRevision(), model.currentRevision());
      assert.equal(store.compactedRevision(), model.compactedRevision());
    }
    // Each watch must have seen exactly the model's events after its start, up to a sentinel write of its own.
    for (const [i, w] of watches.entries()) {
      const sentinel = `${w.prefix}~sentinel${i}`;
      const mine = model.create(sentinel, 's');
      await store.create(sentinel, 's');
      const it = iter(w.watch);
      if (w.error !== undefined) {
        await assert.rejects(it.next(), failsWith(w.error as ErrorCode));
        coverage.watchErrors++;
        continue;
      }
      const seen: WatchEvent[] = [];
      for (;;) {
        const r = await it.next();
        assert.ok(!r.done, 'watch ended early');
        seen.push(r.value);
        if (r.value.revision >= mine.revision) break;
      }
      coverage.watchEvents += seen.length - 1;
      assert.deepEqual(
        seen,
        model.eventsBetween(w.prefix, w.after, mine.revision),
        `watch ${JSON.stringify(w.prefix)} after ${w.after}`,
      );
      w.watch.close();
    }
  } finally {
    for (const w of watches) w.watch.close();
    await cleanup();
  }
}
