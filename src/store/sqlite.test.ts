import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { isKedgeError } from '../lib/errors.ts';
import { storeContract } from './contract.ts';
import { openSqliteStore } from './sqlite.ts';

let dir: string;
let seq = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-sqlite-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
const freshPath = () => join(dir, `store-${++seq}.db`);

storeContract('sqlite', async () => {
  const path = freshPath();
  const store = openSqliteStore({ path, compaction: false });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(path, { force: true });
    },
  };
});

storeContract('sqlite without group commit', async () => {
  const path = freshPath();
  const store = openSqliteStore({ path, compaction: false, groupCommit: false });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(path, { force: true });
    },
  };
});

describe('sqlite store', () => {
  test('reopening keeps data, revision and compacted revision; a delete revision is never reused', async () => {
    const path = freshPath();
    const first = openSqliteStore({ path, compaction: false });
    await first.create('/a', '1');
    await first.create('/b', '1');
    await first.update('/a', '2');
    await first.compact(2);
    await first.delete('/b'); // the last write: its revision 4 exists nowhere but in the log row
    await first.close();

    const second = openSqliteStore({ path, compaction: false });
    assert.equal(second.currentRevision(), 4);
    assert.equal(second.compactedRevision(), 2);
    assert.deepEqual(await second.get('/a'), { key: '/a', value: '2', revision: 3, createRevision: 1 });
    assert.deepEqual(
      (await second.list('/', { revision: 2 })).entries.map((e) => e.key),
      ['/a', '/b'],
    );
    await second.compact(4); // removes the delete's log row too
    await second.close();

    const third = openSqliteStore({ path, compaction: false });
    assert.equal(third.currentRevision(), 4);
    assert.equal(third.compactedRevision(), 4);
    assert.equal((await third.create('/c', '1')).revision, 5);
    await third.close();
  });

  test('every acknowledged write survives kill -9 of the writing process', async () => {
    const path = freshPath();
    const child = spawn(process.execPath, [join(import.meta.dirname, 'crash-child.ts'), path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // 'close' comes after the process exited and its stdout ended, so every line has been seen.
    const closed = once(child, 'close');
    const acked: { revision: number; key: string }[] = [];
    let partial = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line === 'ready') continue;
        const [revision, key] = line.split(' ');
        acked.push({ revision: Number(revision), key: key! });
        if (acked.length === 2000) child.kill('SIGKILL');
      }
    });
    const [code, signal] = await closed;
    assert.equal(signal, 'SIGKILL', `child exited with ${String(code)} before it was killed`);
    assert.ok(acked.length >= 2000);

    const store = openSqliteStore({ path, compaction: false });
    try {
      const maxAcked = Math.max(...acked.map((a) => a.revision));
      assert.ok(
        store.currentRevision() >= maxAcked,
        `revision ${store.currentRevision()} < acked ${maxAcked}`,
      );
      for (const { revision, key } of acked) {
        assert.equal((await store.get(key))?.revision, revision, `acknowledged ${key}@${revision} was lost`);
      }
      assert.equal((await store.create('/after-crash', 'x')).revision, store.currentRevision());
    } finally {
      await store.close();
    }
  });

  test('a file that is not a kedge store fails with KEDGE_STORE_CORRUPT', async () => {
    const junk = freshPath();
    await writeFile(junk, 'this is not a database '.repeat(300));
    assert.throws(
      () => openSqliteStore({ path: junk }),
      (err) => isKedgeError(err, 'KEDGE_STORE_CORRUPT'),
    );

    const foreign = freshPath();
    const db = new DatabaseSync(foreign);
    db.exec('CREATE TABLE users (name TEXT)');
    db.close();
    assert.throws(
      () => openSqliteStore({ path: foreign }),
      (err) => isKedgeError(err, 'KEDGE_STORE_CORRUPT') && err.message.includes(foreign),
    );
  });

  test('a second store on the same file fails with KEDGE_STORE_LOCKED until the first closes', async () => {
    const path = freshPath();
    const first = openSqliteStore({ path, compaction: false });
    await first.create('/a', '1');
    assert.throws(
      () => openSqliteStore({ path, compaction: false }),
      (err) => isKedgeError(err, 'KEDGE_STORE_LOCKED'),
    );
    assert.equal((await first.create('/b', '1')).revision, 2);
    await first.close();
    const second = openSqliteStore({ path, compaction: false });
    assert.equal(second.currentRevision(), 2);
    await second.close();
  });

  test('invalid options fail with KEDGE_CONFIG_INVALID, naming every bad option', () => {
    assert.throws(
      () => openSqliteStore({ path: '', compaction: { keepRevisions: -1, intervalMs: 0 } }),
      (err) =>
        isKedgeError(err, 'KEDGE_CONFIG_INVALID') &&
        /path/.test(err.message) &&
        /keepRevisions -1/.test(err.message) &&
        /intervalMs 0/.test(err.message),
    );
  });

  test('the compaction policy keeps the last N revisions and the last M milliseconds, whichever is more', async () => {
    const byCount = openSqliteStore({
      path: freshPath(),
      compaction: { keepRevisions: 3, keepMs: 0, intervalMs: 3_600_000 },
    });
    for (let i = 0; i < 10; i++) await byCount.create(`/k/${i}`, 'v');
    assert.equal(await byCount.compactNow(), 7);
    assert.equal(byCount.compactedRevision(), 7);
    assert.equal(await byCount.count('/k/'), 10);
    await byCount.close();

    const byTime = openSqliteStore({
      path: freshPath(),
      compaction: { keepRevisions: 0, keepMs: 3_600_000, intervalMs: 3_600_000 },
    });
    for (let i = 0; i < 10; i++) await byTime.create(`/k/${i}`, 'v');
    assert.equal(await byTime.compactNow(), 0, 'nothing is an hour old yet');
    await byTime.close();
  });

  test('automatic compaction runs on its timer', async () => {
    let compacted!: () => void;
    const logged = new Promise<void>((resolve) => {
      compacted = resolve;
    });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        // The 5 ms timer can run while the creates are still going (an earlier, smaller compaction):
        // wait for the one that reaches the last revision but five.
        const line = String(chunk);
        if (line.includes('Store compacted') && JSON.parse(line).to === 15) compacted();
        done();
      },
    });
    const store = openSqliteStore({
      path: freshPath(),
      logger: pino({ level: 'debug' }, sink),
      compaction: { keepRevisions: 5, keepMs: 0, intervalMs: 5 },
    });
    for (let i = 0; i < 20; i++) await store.create(`/k/${i}`, 'v');
    await logged;
    assert.equal(store.compactedRevision(), 15);
    await store.close();
  });

  test('a compaction larger than one step runs in several transactions and keeps the latest state', async () => {
    const store = openSqliteStore({ path: freshPath(), compaction: false });
    for (let b = 0; b < 25; b++) {
      await store.batch(
        Array.from({ length: 1000 }, (_, i) =>
          b === 0
            ? { type: 'create' as const, key: `/k/${i}`, value: '0' }
            : { type: 'update' as const, key: `/k/${i}`, value: String(b) },
        ),
      );
    }
    const watch = store.watch('/k/', { afterRevision: 24_000, maxBuffered: 1000 });
    await store.compact(24_500);
    assert.equal(store.compactedRevision(), 24_500);
    const listed = await store.list('/k/', { revision: 24_500 });
    assert.equal(listed.entries.length, 1000);
    assert.equal(listed.entries.filter((e) => e.value === '24').length, 500);
    assert.equal(
      (await store.list('/k/')).entries.every((e) => e.value === '24'),
      true,
    );
    // A watch started before the compaction keeps its replayed events.
    let n = 0;
    for await (const event of watch) {
      assert.ok(event.type === 'put' && event.prevValue === '23');
      if (++n === 1000) break;
    }
    await store.close();
  });
});

describe('sqlite store on a full disk (group commit)', () => {
  test('a group whose COMMIT fails rejects every write in it, keeps nothing of it, and the store goes on once there is room', async (t) => {
    // A 2 MiB tmpfs is a disk that really fills up; mounting needs root, as this machine's CI has.
    const mnt = await mkdtemp(join(tmpdir(), 'kedge-fulldisk-'));
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    if (mounted.status !== 0) {
      await rm(mnt, { recursive: true, force: true });
      t.skip(`cannot mount a tmpfs here: ${mounted.stderr.toString().trim()}`);
      return;
    }
    try {
      const filler = join(mnt, 'filler');
      await writeFile(filler, Buffer.alloc(512 * 1024));
      const path = join(mnt, 'state.db');
      const store = openSqliteStore({ path, compaction: false, groupCommit: true });
      const events: number[] = [];
      const w = store.watch('/k/', { afterRevision: 0 });
      const seen = (async () => {
        try {
          for await (const e of w) events.push(e.revision);
        } catch (err) {
          if (!isKedgeError(err, 'KEDGE_STORE_CLOSED')) throw err;
        }
      })();
      const value = 'v'.repeat(16 * 1024);
      let n = 0;
      let failure: unknown;
      let committed = 0;
      // Five writes issued in one turn of the event loop share one transaction.
      const group = () =>
        Promise.allSettled(Array.from({ length: 5 }, () => store.create(`/k/${n++}`, value)));
      while (failure === undefined && n < 1000) {
        const rejected = (await group()).filter((r) => r.status === 'rejected');
        if (rejected.length > 0) {
          assert.equal(rejected.length, 5, 'the group failed as one');
          failure = (rejected[0] as PromiseRejectedResult).reason;
        } else committed = store.currentRevision();
      }
      assert.ok(failure !== undefined, 'the disk never filled');
      assert.match(String((failure as Error).message), /full/i);
      assert.equal(store.currentRevision(), committed, 'the failed group took no revision');
      const lost = `/k/${n - 1}`;
      assert.equal(await store.get(lost), undefined, 'nothing of the failed group is stored');

      await rm(filler);
      const after = await group();
      assert.deepEqual(
        after.map((r) => r.status),
        ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'],
        'with room again, the next group commits',
      );
      const final = store.currentRevision();
      assert.equal(final, committed + 5);
      while (events.length < final && events.at(-1) !== final) await new Promise((r) => setTimeout(r, 10));
      await store.close();
      await seen;
      assert.deepEqual(
        events,
        Array.from({ length: final }, (_, i) => i + 1),
        'watchers saw every committed write once, in order, and none of the failed group',
      );
      const again = openSqliteStore({ path, compaction: false });
      assert.equal(again.currentRevision(), final);
      assert.equal(await again.get(lost), undefined);
      assert.notEqual(await again.get(`/k/${n - 1}`), undefined);
      await again.close();
    } finally {
      spawnSync('umount', [mnt]);
      await rm(mnt, { recursive: true, force: true });
    }
  });
});
