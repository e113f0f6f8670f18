import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { ContainerProber, type ProbeKind, type ProbeTarget, runAction } from './probes.ts';

/** A probe target whose exec results come from a script per command (a test double for the runtime). */
function target(results: Map<string, number[]>, calls: string[]): ProbeTarget {
  return {
    containerId: 'c1',
    podIP: '127.0.0.1',
    ports: [{ name: 'web', containerPort: 1 }],
    async execSync(_id, cmd) {
      const key = cmd.join(' ');
      calls.push(key);
      const script = results.get(key) ?? [0];
      const exitCode = script.length > 1 ? (script.shift() ?? 0) : (script[0] ?? 0);
      return { exitCode, stdout: Buffer.from(''), stderr: Buffer.from(exitCode === 0 ? '' : 'no') };
    },
  };
}

describe('ContainerProber', () => {
  it('gates liveness and readiness on the startup probe, then reports ready', async () => {
    const calls: string[] = [];
    const results = new Map([
      ['startup', [1, 0]],
      ['ready', [1, 0]],
      ['live', [0]],
    ]);
    const failures: Array<[ProbeKind, boolean]> = [];
    let changed = Promise.withResolvers<void>();
    const prober = new ContainerProber(
      {
        startupProbe: { exec: { command: ['startup'] }, periodSeconds: 1, failureThreshold: 5 },
        readinessProbe: { exec: { command: ['ready'] }, periodSeconds: 1 },
        livenessProbe: { exec: { command: ['live'] }, periodSeconds: 1 },
      },
      target(results, calls),
      Date.now(),
      { changed: () => changed.resolve(), failed: (kind, _m, fatal) => failures.push([kind, fatal]) },
    );
    try {
      assert.deepEqual([prober.started, prober.ready], [false, false]);
      await changed.promise;
      assert.equal(prober.started, true);
      assert.deepEqual(calls, ['startup', 'startup'], 'nothing but the startup probe ran before it passed');
      changed = Promise.withResolvers<void>();
      await changed.promise;
      assert.equal(prober.ready, true);
      assert.deepEqual(failures, [
        ['startup', false],
        ['readiness', false],
      ]);
    } finally {
      prober.stop();
    }
  });

  it('asks for a kill once liveness failed failureThreshold times in a row', async () => {
    const calls: string[] = [];
    const fatal = Promise.withResolvers<string>();
    const prober = new ContainerProber(
      { livenessProbe: { exec: { command: ['live'] }, periodSeconds: 1, failureThreshold: 2 } },
      target(new Map([['live', [1]]]), calls),
      Date.now(),
      { changed: () => {}, failed: (_k, message, isFatal) => isFatal && fatal.resolve(message) },
    );
    try {
      assert.match(await fatal.promise, /command \["live"\] exited with 1: no/);
      assert.equal(calls.length, 2);
      assert.equal(prober.ready, true, 'a container without a readiness probe is ready while it runs');
    } finally {
      prober.stop();
    }
  });
});

describe('runAction', () => {
  it('probes HTTP (named port, status codes) and TCP', async () => {
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/ok' ? 200 : 503;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const t: ProbeTarget = { ...target(new Map(), []), ports: [{ name: 'web', containerPort: port }] };
    try {
      assert.equal((await runAction({ httpGet: { path: '/ok', port: 'web' } }, t, 1)).ok, true);
      const bad = await runAction({ httpGet: { path: '/bad', port } }, t, 1);
      assert.deepEqual(bad, { ok: false, message: 'HTTP probe failed with statuscode: 503' });
      assert.equal((await runAction({ tcpSocket: { port } }, t, 1)).ok, true);
      assert.match(
        (await runAction({ httpGet: { port: 'nope' } }, t, 1)).message,
        /not a number or a named port/,
      );
      assert.match((await runAction({}, t, 1)).message, /no exec, httpGet, tcpSocket or sleep/);
    } finally {
      server.close();
    }
    const closed = await runAction({ tcpSocket: { port } }, t, 1);
    assert.equal(closed.ok, false);
    assert.match(closed.message, /dial tcp 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  });
});
