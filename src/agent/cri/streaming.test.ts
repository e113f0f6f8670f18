// CriStreaming's logs on real files in the CRI layout, with a test double for the two CRI calls it makes
// (ListContainers, ContainerStatus): partial lines, --tail, --since, --timestamps, --limit-bytes,
// --previous, follow until the container exits.
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isKedgeError } from '../../lib/errors.ts';
import { silentLogger } from '../../lib/log.ts';
import type { LogOptions } from '../runtime.ts';
import type { ContainerStatus, CriClient } from './client.ts';
import { CriLogDecoder, CriStreaming, exitCodeOf, parseCriLogLine } from './streaming.ts';

const pod = { namespace: 'default', name: 'web', uid: 'u1' };
const base: LogOptions = { container: 'app', follow: false, previous: false, timestamps: false };

/** Only what CriStreaming asks of the CRI: the attempts of a container and their state. */
function fakeClient(attempts: () => Array<{ attempt: number; state: ContainerStatus['state'] }>): CriClient {
  const status = (id: string): ContainerStatus => {
    const a = attempts().find((x) => `c${x.attempt}` === id);
    if (a === undefined) throw new Error('not found');
    return { id, metadata: { name: 'app', attempt: a.attempt }, state: a.state } as ContainerStatus;
  };
  return {
    listContainers: async () => attempts().map((a) => ({ id: `c${a.attempt}` })),
    containerStatus: async (id: string) => status(id),
  } as unknown as CriClient;
}

function collect(): { out: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  return {
    out: new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    }),
    text: () => Buffer.concat(chunks).toString(),
  };
}

describe('CRI logs', () => {
  let dir: string;
  let logDir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-cri-logs-'));
    logDir = join(dir, 'pods', 'default_web_u1', 'app');
    await mkdir(logDir, { recursive: true });
    await writeFile(join(logDir, '0.log'), '2026-11-23T10:00:00.000000001Z stdout F first run\n');
    await writeFile(
      join(logDir, '1.log'),
      [
        '2026-11-23T10:00:01.000000000Z stdout F one',
        '2026-11-23T10:00:02.000000000Z stderr F two',
        '2026-11-23T10:00:03.000000000Z stdout P thr',
        '2026-11-23T10:00:03.500000000Z stdout P e',
        '2026-11-23T10:00:04.000000000Z stdout F e joined',
        'garbage line that is not CRI',
        '2026-11-23T10:00:05.000000000Z stdout F five',
        '',
      ].join('\n'),
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const streaming = (state: ContainerStatus['state'] = 'CONTAINER_RUNNING') =>
    new CriStreaming({
      client: fakeClient(() => [
        { attempt: 1, state },
        { attempt: 0, state: 'CONTAINER_EXITED' },
      ]),
      dataDir: dir,
      logger: silentLogger(),
      followCheckMs: 20,
    });
  const read = async (options: Partial<LogOptions>, s = streaming('CONTAINER_EXITED')) => {
    const c = collect();
    await s.logs(pod, { ...base, ...options }, c.out, new AbortController().signal);
    return c.text();
  };

  it('parses the CRI line format and joins partial lines', () => {
    assert.deepEqual(parseCriLogLine(Buffer.from('2026-11-23T10:00:00Z stderr F hi there')), {
      time: '2026-11-23T10:00:00Z',
      stream: 'stderr',
      partial: false,
      message: Buffer.from('hi there'),
    });
    assert.equal(parseCriLogLine(Buffer.from('yesterday stdout F x')), undefined);
    assert.equal(parseCriLogLine(Buffer.from('2026-11-23T10:00:00Z stdin F x')), undefined);
    assert.equal(parseCriLogLine(Buffer.from('2026-11-23T10:00:00Z stdout X x')), undefined);
    const d = new CriLogDecoder({ timestamps: true });
    const out = d.push(Buffer.from('2026-11-23T10:00:00Z stdout P a'));
    assert.deepEqual(out, []); // no newline yet
    assert.deepEqual(d.push(Buffer.from('b\n2026-11-23T10:00:01Z stdout F c\n')).map(String), [
      '2026-11-23T10:00:00Z abc\n',
    ]);
  });

  it('reads the current attempt: all, --tail, --timestamps, --since, --limit-bytes', async () => {
    assert.equal(await read({}), 'one\ntwo\nthree joined\nfive\n');
    assert.equal(await read({ tailLines: 2 }), 'three joined\nfive\n');
    assert.equal(await read({ tailLines: 0 }), '');
    assert.equal(await read({ tailLines: 99 }), 'one\ntwo\nthree joined\nfive\n');
    assert.equal(await read({ timestamps: true, tailLines: 1 }), '2026-11-23T10:00:05.000000000Z five\n');
    assert.equal(await read({ since: new Date('2026-11-23T10:00:02Z') }), 'two\nthree joined\nfive\n');
    assert.equal(await read({ limitBytes: 6 }), 'one\ntw');
  });

  it('without --follow, answers the file as it was when asked (a line written meanwhile is left out)', async () => {
    const growDir = join(dir, 'pods', 'default_grow_u2', 'app');
    await mkdir(growDir, { recursive: true });
    const file = join(growDir, '0.log');
    await writeFile(
      file,
      '2026-11-23T10:00:01.000000000Z stdout F a\n2026-11-23T10:00:02.000000000Z stdout F b\n',
    );
    const s = new CriStreaming({
      client: fakeClient(() => [{ attempt: 0, state: 'CONTAINER_RUNNING' }]),
      dataDir: dir,
      logger: silentLogger(),
    });
    const chunks: string[] = [];
    // The container writes a line while the first one is on its way to kubectl.
    const out = new Writable({
      write(c: Buffer, _e, cb) {
        if (chunks.length === 0) appendFileSync(file, '2026-11-23T10:00:03.000000000Z stdout F c\n');
        chunks.push(String(c));
        cb();
      },
    });
    const grow = { namespace: 'default', name: 'grow', uid: 'u2' };
    await s.logs(grow, { ...base, tailLines: 2 }, out, new AbortController().signal);
    assert.equal(chunks.join(''), 'a\nb\n');
  });

  it('--previous reads the attempt before; none is a clear error', async () => {
    assert.equal(await read({ previous: true }), 'first run\n');
    const only = new CriStreaming({
      client: fakeClient(() => [{ attempt: 0, state: 'CONTAINER_RUNNING' }]),
      dataDir: dir,
      logger: silentLogger(),
    });
    await assert.rejects(read({ previous: true }, only), (err: unknown) => {
      assert.ok(isKedgeError(err, 'KEDGE_AGENT_STREAM'));
      assert.equal(err.context['reason'], 'BadRequest');
      assert.match(err.message, /previous terminated container "app" in pod "web" not found/);
      return true;
    });
  });

  it('follows the file as it grows and ends when the container exits', async () => {
    let state: ContainerStatus['state'] = 'CONTAINER_RUNNING';
    const s = new CriStreaming({
      client: fakeClient(() => [{ attempt: 1, state }]),
      dataDir: dir,
      logger: silentLogger(),
      followCheckMs: 20,
    });
    const c = collect();
    const done = s.logs(pod, { ...base, follow: true, tailLines: 1 }, c.out, new AbortController().signal);
    while (c.text() !== 'five\n') await new Promise((ok) => setTimeout(ok, 10));
    await appendFile(join(logDir, '1.log'), '2026-11-23T10:00:06.000000000Z stdout F six\n');
    while (!c.text().includes('six')) await new Promise((ok) => setTimeout(ok, 10));
    await appendFile(join(logDir, '1.log'), '2026-11-23T10:00:07.000000000Z stdout F seven\n');
    state = 'CONTAINER_EXITED';
    await done;
    assert.equal(c.text(), 'five\nsix\nseven\n');
  });

  it('maps the runtime streaming server Status to exit codes', () => {
    assert.equal(exitCodeOf({ status: 'Success' }), 0);
    assert.equal(
      exitCodeOf({
        status: 'Failure',
        reason: 'NonZeroExitCode',
        details: { causes: [{ reason: 'ExitCode', message: '42' }] },
      }),
      42,
    );
    assert.throws(() => exitCodeOf({ status: 'Failure', message: 'exec format error' }), /exec format error/);
  });
});
