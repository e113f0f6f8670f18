import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isKedgeError } from '../lib/errors.ts';
import type { StatusItem, SyncItem } from '../protocol/messages.ts';
import { type LocalChange, LocalStore } from './local-store.ts';
import { Outbox } from './outbox.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-agent-store-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
const freshPath = (): string => join(dir, `store-${++n}.db`);

function pod(name: string, rev: number, extra: Record<string, unknown> = {}): SyncItem {
  return {
    key: `core/pods/default/${name}`,
    revision: rev,
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default', uid: `uid-${name}` },
      ...extra,
    },
  };
}

const podStatus = (name: string, phase: string): StatusItem => ({
  kind: 'PodStatus',
  namespace: 'default',
  name,
  uid: `uid-${name}`,
  status: { phase },
});

const event = (i: number): StatusItem => ({
  kind: 'Event',
  namespace: 'default',
  event: { reason: `r${i}` },
});

describe('LocalStore', () => {
  it('applies a batch, keeps the server revisions, and survives reopening', async () => {
    const path = freshPath();
    const store = new LocalStore(path);
    store.applyBatch(7, [
      pod('a', 5),
      pod('b', 7),
      { key: 'core/nodes//n1', revision: 6, object: { metadata: { name: 'n1' } } },
    ]);
    assert.equal(store.revision(), 7);
    assert.equal(store.get('core/pods/default/a')?.object.metadata.resourceVersion, '5');
    store.close();
    assert.equal(((await stat(path)).mode & 0o777).toString(8), '600');

    const again = new LocalStore(path);
    assert.equal(again.revision(), 7);
    assert.deepEqual(again.inventory().sort(), [
      ['core/nodes//n1', 6],
      ['core/pods/default/a', 5],
      ['core/pods/default/b', 7],
    ]);
    assert.deepEqual(
      again.list('core/pods/').map((o) => o.object.metadata.name),
      ['a', 'b'],
    );
    again.close();
  });

  it('counts items that move a key back to an older revision, durably (kedge_agent_out_of_order_total)', () => {
    const path = freshPath();
    const store = new LocalStore(path);
    store.applyBatch(5, [pod('a', 5), pod('b', 4)]);
    store.applyBatch(6, [pod('a', 5), pod('b', 6)]); // a resend of the same revision is in order
    assert.equal(store.outOfOrder(), 0);
    store.applyBatch(6, [pod('a', 3), { key: 'core/pods/default/b', revision: 2, deleted: true }]);
    assert.equal(store.outOfOrder(), 2);
    store.applyBatch(9, [pod('b', 1)]); // b was deleted: a new put starts afresh
    assert.equal(store.outOfOrder(), 2);
    store.close();
    const again = new LocalStore(path);
    assert.equal(again.outOfOrder(), 2);
    again.close();
  });

  it('applies deletes and reports puts and deletes with the previous object to listeners', () => {
    const store = new LocalStore(freshPath());
    store.applyBatch(2, [pod('a', 1), pod('b', 2)]);
    const heard: LocalChange[][] = [];
    store.onChange((c) => heard.push([...c]));
    const changes = store.applyBatch(4, [
      { key: 'core/pods/default/a', revision: 4, deleted: true },
      pod('b', 3, { spec: { nodeName: 'x' } }),
      { key: 'core/pods/default/never-held', revision: 4, deleted: true },
    ]);
    assert.deepEqual(
      changes.map((c) => [c.type, c.key, c.prev?.metadata.resourceVersion]),
      [
        ['delete', 'core/pods/default/a', '1'],
        ['put', 'core/pods/default/b', '2'],
      ],
    );
    assert.equal(heard.length, 1);
    assert.equal(store.get('core/pods/default/a'), undefined);
    assert.deepEqual(store.inventory(), [['core/pods/default/b', 3]]);
    store.close();
  });

  it('applies nothing from a batch with one bad item', () => {
    const path = freshPath();
    const store = new LocalStore(path);
    store.applyBatch(1, [pod('a', 1)]);
    const bad: SyncItem = {
      key: 'core/pods/default/c',
      revision: 9,
      object: { metadata: { name: 'not-c', namespace: 'default' } },
    };
    assert.throws(
      () =>
        store.applyBatch(9, [pod('b', 8), { key: 'core/pods/default/a', revision: 9, deleted: true }, bad]),
      (err) => isKedgeError(err, 'KEDGE_AGENT_SYNC_INVALID') && /not-c/.test(err.message),
    );
    assert.throws(
      () => store.applyBatch(9, [pod('b', 8), pod('b', 9)]),
      (err) => isKedgeError(err, 'KEDGE_AGENT_SYNC_INVALID') && /twice/.test(err.message),
    );
    assert.throws(
      () => store.applyBatch(9, [{ key: 'pods/x', revision: 9, deleted: true }]),
      (err) => isKedgeError(err, 'KEDGE_AGENT_SYNC_INVALID'),
    );
    assert.equal(store.revision(), 1);
    assert.deepEqual(store.inventory(), [['core/pods/default/a', 1]]);
    store.close();
    const again = new LocalStore(path);
    assert.deepEqual(again.inventory(), [['core/pods/default/a', 1]]);
    again.close();
  });

  it('refuses a second opener of the same file', () => {
    const path = freshPath();
    const store = new LocalStore(path);
    assert.throws(
      () => new LocalStore(path),
      (err) => isKedgeError(err, 'KEDGE_STORE_LOCKED'),
    );
    store.close();
  });
});

describe('Outbox', () => {
  it('coalesces per object, keeps order by seq, and removes only acked rows', () => {
    const store = new LocalStore(freshPath());
    const outbox = new Outbox(store);
    const s1 = outbox.enqueue(podStatus('a', 'Pending'));
    const s2 = outbox.enqueue(podStatus('b', 'Pending'));
    const s3 = outbox.enqueue(podStatus('a', 'Running'));
    assert.ok(s1 < s2 && s2 < s3);
    assert.deepEqual(
      outbox.pending().map((p) => [p.seq, p.item.kind === 'PodStatus' ? p.item.status['phase'] : '']),
      [
        [s2, 'Pending'],
        [s3, 'Running'],
      ],
    );
    // A deletion report replaces the pending status of the same pod.
    const s4 = outbox.enqueue({ kind: 'PodDeleted', namespace: 'default', name: 'b', uid: 'uid-b' });
    assert.deepEqual(
      outbox.pending().map((p) => p.seq),
      [s3, s4],
    );
    assert.equal(outbox.ack(s3), 1);
    assert.deepEqual(
      outbox.pending().map((p) => p.item.kind),
      ['PodDeleted'],
    );
    assert.deepEqual(outbox.pending(s4), []);
    store.close();
  });

  it("applies the hub's write-backs with the ack: the acked status at the API's revision, in one transaction", () => {
    const path = freshPath();
    let store = new LocalStore(path);
    store.applyBatch(5, [pod('a', 4, { spec: { nodeName: 'n1' } }), pod('b', 5), pod('c', 3)]);
    const outbox = new Outbox(store);
    outbox.enqueue(podStatus('a', 'Running'));
    outbox.enqueue(podStatus('b', 'Running'));
    const acked = outbox.enqueue({
      kind: 'NodeStatus',
      name: 'n1',
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
    const sent = outbox.pending().map((p) => p.item);
    const later = outbox.enqueue(podStatus('c', 'Running'));
    const heard: LocalChange[] = [];
    store.onChange((cs) => heard.push(...cs));
    // a: held at `from`, applied. b: the agent holds 5, not 4: left alone. c: not in the acked batch (its
    // row is after the ack): left alone. The node is not held at all: nothing.
    assert.equal(
      outbox.ack(
        acked,
        [
          ['core/pods/default/a', 4, 9],
          ['core/pods/default/b', 4, 10],
          ['core/pods/default/c', 3, 11],
          ['core/nodes//n1', 2, 12],
        ],
        sent,
      ),
      3,
    );
    assert.deepEqual(
      heard.map((c) => [c.key, c.revision]),
      [['core/pods/default/a', 9]],
    );
    const check = (s: LocalStore): void => {
      const a = s.get('core/pods/default/a');
      assert.equal(a?.revision, 9);
      assert.deepEqual(a?.object, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'a', namespace: 'default', uid: 'uid-a', resourceVersion: '9' },
        spec: { nodeName: 'n1' },
        status: { phase: 'Running' },
      });
      assert.equal(s.get('core/pods/default/b')?.revision, 5);
      assert.equal(s.get('core/pods/default/c')?.revision, 3);
      assert.deepEqual(new Map(s.inventory()).get('core/pods/default/a'), 9);
      assert.equal(s.revision(), 5, 'a write-back moves one object, not what the node has seen overall');
    };
    check(store);
    assert.deepEqual(
      outbox.pending().map((p) => p.seq),
      [later],
    );
    store.close();
    store = new LocalStore(path);
    check(store);
    store.close();
  });

  it('bounds events by dropping the oldest, never statuses', () => {
    const store = new LocalStore(freshPath());
    let dropped = 0;
    const outbox = new Outbox(store, { maxEvents: 3, onEventsDropped: (c) => (dropped += c) });
    outbox.enqueue(podStatus('a', 'Running'));
    for (let i = 0; i < 6; i++) outbox.enqueue(event(i));
    outbox.enqueue({ kind: 'NodeStatus', name: 'n1', status: {} });
    const pending = outbox.pending();
    assert.deepEqual(
      pending.map((p) => (p.item.kind === 'Event' ? p.item.event['reason'] : p.item.kind)),
      ['PodStatus', 'r3', 'r4', 'r5', 'NodeStatus'],
    );
    assert.equal(dropped, 3);
    store.close();
  });

  it('keeps pending items and a growing seq across restarts, even after it emptied', () => {
    const path = freshPath();
    let store = new LocalStore(path);
    let outbox = new Outbox(store);
    outbox.enqueue(podStatus('a', 'Running'));
    const last = outbox.enqueue(event(1));
    store.close();

    store = new LocalStore(path);
    outbox = new Outbox(store);
    assert.deepEqual(
      outbox.pending().map((p) => p.item.kind),
      ['PodStatus', 'Event'],
    );
    assert.equal(outbox.lastSeq(), last);
    outbox.ack(last);
    assert.equal(outbox.depth(), 0);
    store.close();

    store = new LocalStore(path);
    outbox = new Outbox(store);
    const next = outbox.enqueue(podStatus('a', 'Running'));
    assert.ok(next > last, `seq ${next} after restart must exceed ${last}`);
    store.close();
  });

  it('tells listeners about each enqueue', () => {
    const store = new LocalStore(freshPath());
    const outbox = new Outbox(store);
    let heard = 0;
    const off = outbox.onEnqueue(() => heard++);
    outbox.enqueue(event(1));
    off();
    outbox.enqueue(event(2));
    assert.equal(heard, 1);
    store.close();
  });
});
