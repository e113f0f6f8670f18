import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from '../../test/harness/cluster.ts';
import type { KubeObject } from '../api/meta.ts';
import { Resources } from '../client/types.ts';
import { type EventInput, EventRecorder, recordEvent } from './events.ts';

describe('event recorder', () => {
  let t: TestCluster;
  let cluster: TestCluster['cluster'];

  before(async () => {
    t = await startTestCluster();
    cluster = t.cluster;
  });
  after(() => t.close());

  const about = (name: string, extra: Partial<EventInput> = {}): EventInput => ({
    involvedObject: { apiVersion: 'v1', kind: 'Pod', name, namespace: 'default', uid: `uid-${name}` },
    type: 'Normal',
    reason: 'Scheduled',
    message: `Successfully assigned default/${name} to edge-1`,
    component: 'test',
    ...extra,
  });

  async function eventsFor(name: string, namespace = 'default'): Promise<KubeObject[]> {
    const list = await cluster.list(Resources.events, {
      namespace,
      fieldSelector: `involvedObject.name=${name}`,
    });
    return list.items;
  }

  it('aggregates a repeated event into one Event with count and lastTimestamp', async () => {
    let t = Date.parse('2025-01-01T00:00:00Z');
    const recorder = new EventRecorder(cluster, { now: () => new Date(t) });
    await recorder.record(about('a'));
    t += 5000;
    await recorder.record(about('a'));
    t += 5000;
    const last = await recorder.record(about('a'));
    const events = await eventsFor('a');
    assert.equal(events.length, 1);
    const ev = events[0]!;
    assert.equal(ev['count'], 3);
    assert.equal(ev['firstTimestamp'], '2025-01-01T00:00:00Z');
    assert.equal(ev['lastTimestamp'], '2025-01-01T00:00:10Z');
    assert.deepEqual(ev['source'], { component: 'test' });
    assert.equal(ev['reason'], 'Scheduled');
    assert.equal(ev['type'], 'Normal');
    assert.equal((ev['involvedObject'] as { uid: string }).uid, 'uid-a');
    assert.equal(last?.metadata.name, ev.metadata.name);
  });

  it('keeps events with a different message or reason apart', async () => {
    const recorder = new EventRecorder(cluster);
    await recorder.record(about('b'));
    await recorder.record(about('b', { message: 'other' }));
    await recorder.record(about('b', { reason: 'Other' }));
    assert.equal((await eventsFor('b')).length, 3);
  });

  it('serializes concurrent repeats so they never create two Events', async () => {
    const recorder = new EventRecorder(cluster);
    await Promise.all([
      recorder.record(about('c')),
      recorder.record(about('c')),
      recorder.record(about('c')),
    ]);
    const events = await eventsFor('c');
    assert.equal(events.length, 1);
    assert.equal(events[0]!['count'], 3);
  });

  it('remembers at most maxKeys events, forgetting the least recently used', async () => {
    const recorder = new EventRecorder(cluster, { maxKeys: 2 });
    await recorder.record(about('d1'));
    await recorder.record(about('d2'));
    await recorder.record(about('d1'));
    await recorder.record(about('d3'));
    assert.equal(recorder.size, 2);
    // d2 was the least recently used: forgotten, so a repeat creates a second Event.
    await recorder.record(about('d2'));
    assert.equal((await eventsFor('d2')).length, 2);
    // d2's return pushed out d1; d3 is still remembered, so its repeat aggregates.
    assert.equal(recorder.size, 2);
    await recorder.record(about('d3'));
    const d3 = await eventsFor('d3');
    assert.equal(d3.length, 1);
    assert.equal(d3[0]!['count'], 2);
  });

  it('starts a new Event when the aggregated one was deleted', async () => {
    const recorder = new EventRecorder(cluster);
    const first = await recorder.record(about('e'));
    await cluster.delete(Resources.events, 'default', first?.metadata.name ?? '');
    const second = await recorder.record(about('e'));
    assert.notEqual(second, undefined);
    const events = await eventsFor('e');
    assert.equal(events.length, 1);
    assert.equal(events[0]!['count'], 1);
  });

  it('puts events about cluster-scoped objects in the default namespace', async () => {
    const ev = await recordEvent(cluster, {
      involvedObject: { kind: 'Node', name: 'edge-9', uid: 'n9' },
      type: 'Warning',
      reason: 'NodeNotReady',
      message: 'Node edge-9 status is now: NodeNotReady',
      component: 'node-lifecycle-controller',
    });
    assert.equal(ev?.metadata.namespace, 'default');
    assert.equal((await eventsFor('edge-9')).length, 1);
  });

  it('resolves undefined instead of throwing when the API refuses the Event', async () => {
    const ev = await recordEvent(
      cluster,
      about('f', { involvedObject: { kind: 'Pod', name: 'f', namespace: 'nope' } }),
    );
    assert.equal(ev, undefined);
  });
});
