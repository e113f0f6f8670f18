import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SchedulingQueue } from './queue.ts';

describe('SchedulingQueue', () => {
  it('hands out pods in order, once each', async () => {
    const q = new SchedulingQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    assert.equal(await q.pop(), 'a');
    assert.equal(await q.pop(), 'b');
    assert.equal(q.tryPop(), undefined);
    const next = q.pop();
    q.add('c');
    assert.equal(await next, 'c');
    q.close();
    assert.equal(await q.pop(), undefined);
  });

  it('parks unschedulable pods until the cluster changes, then respects their backoff', async () => {
    let now = 0;
    const q = new SchedulingQueue({ initialBackoffMs: 1000, maxBackoffMs: 4000 }, () => now);
    q.add('p');
    assert.equal(await q.pop(), 'p');
    q.addUnschedulable('p');
    assert.equal(q.unschedulableLength, 1);
    assert.equal(q.tryPop(), undefined);
    now = 2000; // past the 1 s backoff
    q.moveAllToActive();
    assert.equal(q.tryPop(), 'p');
    q.addUnschedulable('p'); // second failure: 2 s backoff from now
    assert.equal(q.backoffDuration('p'), 2000);
    q.moveAllToActive(); // still backing off: waits on a timer, not active
    assert.equal(q.tryPop(), undefined);
    assert.equal(q.backoffLength, 1);
    q.delete('p');
    assert.equal(q.backoffLength, 0);
    q.close();
  });

  it('retries failed pods after a doubling, capped backoff', async () => {
    const q = new SchedulingQueue({ initialBackoffMs: 1, maxBackoffMs: 4 });
    q.add('x');
    await q.pop();
    for (let i = 0; i < 5; i++) {
      q.addBackoff('x');
      assert.equal(await q.pop(), 'x');
    }
    assert.equal(q.attempts('x'), 5);
    assert.equal(q.backoffDuration('x'), 4);
    q.forget('x');
    assert.equal(q.attempts('x'), 0);
    q.close();
  });

  it('retries parked pods after the maximum wait even when nothing changed', async () => {
    const q = new SchedulingQueue({ initialBackoffMs: 1, maxUnschedulableMs: 20 });
    q.add('late');
    await q.pop();
    q.addUnschedulable('late');
    assert.equal(await q.pop(), 'late');
    q.close();
  });
});
