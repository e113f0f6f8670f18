// The stream tunnel with both ends real (the hub's Tunnel and the agent's AgentStreams) and every frame
// going through the codec, on an in-memory wire; the runtime is a test double. Proves flow control bounds
// what is in flight, results and errors come back as the API needs them, and bad peers are refused.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { FakeRuntime } from '../agent/fake-runtime.ts';
import { LocalStore } from '../agent/local-store.ts';
import type {
  ExecIO,
  ExecOptions,
  LogOptions,
  PodRef,
  PodRuntime,
  StreamingRuntime,
} from '../agent/runtime.ts';
import { AgentStreams, StreamViolation } from '../agent/streams.ts';
import type { PodStreamTarget } from '../api/pod-streams.ts';
import { isApiError } from '../api/status-error.ts';
import { silentLogger } from '../lib/log.ts';
import {
  decodeAgentMessage,
  decodeHubMessage,
  decodeStreamFrame,
  encodeStreamFrame,
} from '../protocol/codec.ts';
import { STREAM_WINDOW_BYTES, type StreamClose, type StreamWindow } from '../protocol/messages.ts';
import { podStreamer, Tunnel, TunnelViolation } from './tunnel.ts';

const NODE = 'edge-t';

/** Logs: `size` bytes of 'x' (or what the test sets); exec: echoes stdin to stdout, exits with `exitCode`. */
class DoubleRuntime extends FakeRuntime implements StreamingRuntime {
  logSize = 1024 * 1024;
  exitCode = 0;
  lastSignal: AbortSignal | undefined;
  stdinEnded = false;
  constructor() {
    super({ logger: silentLogger() });
  }
  async logs(_pod: PodRef, o: LogOptions, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
    this.lastSignal = signal;
    const chunk = Buffer.alloc(10_000, o.container === 'main' ? 'x' : 'y');
    for (let sent = 0; sent < this.logSize && !signal.aborted; sent += chunk.byteLength) {
      if (!out.write(chunk.subarray(0, Math.min(chunk.byteLength, this.logSize - sent)))) {
        await Promise.race([once(out as NodeJS.EventEmitter, 'drain'), once(signal, 'abort')]);
      }
    }
    if (o.follow && !signal.aborted) await once(signal, 'abort');
  }
  async exec(_pod: PodRef, _o: ExecOptions, io: ExecIO, signal: AbortSignal): Promise<{ exitCode: number }> {
    this.lastSignal = signal;
    if (io.stdin !== undefined && io.stdout !== undefined) {
      for await (const chunk of io.stdin as AsyncIterable<Buffer>) {
        if (!io.stdout.write(chunk)) await once(io.stdout as NodeJS.EventEmitter, 'drain');
      }
      this.stdinEnded = true;
    }
    return { exitCode: this.exitCode };
  }
}

function podObject(name: string, node: string, uid = `uid-${name}`): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', uid },
    spec: { nodeName: node, containers: [{ name: 'main', image: 'busybox' }] },
  };
}

/** Both ends over an in-memory wire; counts what the agent sent and what the hub's caller consumed. */
function wire(runtime: PodRuntime) {
  const store = new LocalStore(':memory:');
  store.applyBatch(3, [
    { key: 'core/pods/default/mine', revision: 1, object: podObject('mine', NODE) },
    { key: 'core/pods/default/theirs', revision: 2, object: podObject('theirs', 'edge-other') },
  ]);
  const stats = { agentSentBytes: 0 };
  const agent = new AgentStreams({ nodeName: NODE, store, runtime, logger: silentLogger() });
  const tunnel: Tunnel = new Tunnel(
    {
      node: NODE,
      sendText: (t) =>
        setImmediate(() => agent.onMessage(decodeHubMessage(t) as Parameters<AgentStreams['onMessage']>[0])),
      sendBinary: (b) => setImmediate(() => agent.onFrame(decodeStreamFrame(b, 'hub'))),
    },
    silentLogger(),
  );
  agent.attach({
    sendText: (t) =>
      setImmediate(() => tunnel.onMessage(decodeAgentMessage(t) as StreamWindow | StreamClose)),
    sendBinary: (b) => {
      stats.agentSentBytes += b.byteLength - 6;
      setImmediate(() => tunnel.onFrame(decodeStreamFrame(b, 'agent')));
    },
  });
  const streamer = podStreamer((node) => (node === NODE ? tunnel : undefined));
  return { store, agent, tunnel, streamer, stats };
}

const target = (name: string, uid = `uid-${name}`): PodStreamTarget => ({
  node: NODE,
  namespace: 'default',
  name,
  uid,
});
const logOpts: LogOptions = { container: 'main', follow: false, previous: false, timestamps: false };

/** A sink that takes bytes only when released: a slow kubectl. */
function slowSink() {
  let consumed = 0;
  let waiting: Array<() => void> = [];
  let open = false;
  const sink = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _e, cb) {
      const done = () => {
        consumed += chunk.byteLength;
        cb();
      };
      if (open) done();
      else waiting.push(done);
    },
  });
  return {
    sink,
    get consumed() {
      return consumed;
    },
    release() {
      open = true;
      for (const w of waiting) w();
      waiting = [];
    },
  };
}

const stores: LocalStore[] = [];
after(() => {
  for (const s of stores) s.close();
});

describe('stream tunnel (hub Tunnel ↔ agent AgentStreams, real codec)', () => {
  it('carries a 1 MiB log intact', async () => {
    const rt = new DoubleRuntime();
    const w = wire(rt);
    stores.push(w.store);
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    await w.streamer.logs(target('mine'), logOpts, sink, new AbortController().signal);
    const all = Buffer.concat(chunks);
    assert.equal(all.byteLength, 1024 * 1024);
    assert.ok(all.every((b) => b === 0x78));
    assert.equal(w.tunnel.openStreams, 0);
    assert.equal(w.agent.openStreams, 0);
  });

  it('a slow reader holds the node to one window: no more than STREAM_WINDOW_BYTES in flight', async () => {
    const rt = new DoubleRuntime();
    rt.logSize = 4 * 1024 * 1024;
    const w = wire(rt);
    stores.push(w.store);
    const slow = slowSink();
    const done = w.streamer.logs(target('mine'), logOpts, slow.sink, new AbortController().signal);
    // Let the wire settle with nothing consumed: the agent stops at the window.
    for (let i = 0; i < 200; i++) await new Promise((ok) => setImmediate(ok));
    assert.ok(w.stats.agentSentBytes > 0);
    assert.ok(w.stats.agentSentBytes <= STREAM_WINDOW_BYTES, `${w.stats.agentSentBytes} bytes in flight`);
    slow.release();
    await done;
    assert.equal(slow.consumed, 4 * 1024 * 1024);
  });

  it('exec: stdin reaches the process, its end too; output and exit code come back', async () => {
    const rt = new DoubleRuntime();
    rt.exitCode = 3;
    const w = wire(rt);
    stores.push(w.store);
    const input = Buffer.alloc(700_000, 'i');
    const stdin = new (await import('node:stream')).PassThrough();
    stdin.end(input);
    const out: Buffer[] = [];
    const stdout = new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    });
    const options: ExecOptions = {
      container: 'main',
      command: ['cat'],
      stdin: true,
      stdout: true,
      stderr: false,
      tty: false,
    };
    const r = await w.streamer.exec(target('mine'), options, { stdin, stdout }, new AbortController().signal);
    assert.equal(r.exitCode, 3);
    assert.ok(rt.stdinEnded);
    assert.deepEqual(Buffer.concat(out), input);
  });

  it('a pod of another node, a pod the node does not hold, or another uid: NotFound from the agent', async () => {
    const w = wire(new DoubleRuntime());
    stores.push(w.store);
    const signal = new AbortController().signal;
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    for (const t of [target('theirs'), target('ghost'), target('mine', 'uid-of-an-older-pod')]) {
      await assert.rejects(w.streamer.logs(t, logOpts, sink, signal), (err: unknown) => {
        assert.ok(isApiError(err, 404), String(err));
        assert.match(err.message, /is not on node edge-t/);
        return true;
      });
    }
    await assert.rejects(
      w.streamer.logs(target('mine'), { ...logOpts, container: 'nope' }, sink, signal),
      /container nope is not in pod default\/mine/,
    );
  });

  it('the fake runtime answers with a clear error', async () => {
    const w = wire(new FakeRuntime({ logger: silentLogger() }));
    stores.push(w.store);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    await assert.rejects(
      w.streamer.logs(target('mine'), logOpts, sink, new AbortController().signal),
      (err: unknown) => {
        assert.ok(isApiError(err, 400));
        assert.match(err.message, /the fake runtime runs no containers/);
        return true;
      },
    );
  });

  it('a node that is not connected is a clear 503', async () => {
    const w = wire(new DoubleRuntime());
    stores.push(w.store);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    await assert.rejects(
      w.streamer.logs({ ...target('mine'), node: 'edge-1' }, logOpts, sink, new AbortController().signal),
      (err: unknown) => isApiError(err, 503) && /node edge-1 is not connected to the hub/.test(err.message),
    );
  });

  it('cancel from the API side stops the runtime; the session ending fails open streams', async () => {
    const rt = new DoubleRuntime();
    rt.logSize = 0;
    const w = wire(rt);
    stores.push(w.store);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const abort = new AbortController();
    const following = w.streamer.logs(target('mine'), { ...logOpts, follow: true }, sink, abort.signal);
    while (rt.lastSignal === undefined) await new Promise((ok) => setImmediate(ok));
    abort.abort();
    await following;
    if (!rt.lastSignal.aborted) await once(rt.lastSignal, 'abort');
    rt.lastSignal = undefined;
    const second = w.streamer.logs(
      target('mine'),
      { ...logOpts, follow: true },
      sink,
      new AbortController().signal,
    );
    while (rt.lastSignal === undefined) await new Promise((ok) => setImmediate(ok));
    w.tunnel.close('disconnected from the hub');
    await assert.rejects(
      second,
      (err: unknown) => isApiError(err, 503) && /node edge-t disconnected/.test(err.message),
    );
  });

  it('unknown stream ids: never opened is a violation on both ends, an ended one is dropped', () => {
    const w = wire(new DoubleRuntime());
    stores.push(w.store);
    const data = (id: number, channel: 0 | 1) => ({
      kind: 'data' as const,
      id,
      channel,
      payload: Buffer.from('x'),
    });
    assert.throws(() => w.tunnel.onFrame(data(5, 1)), TunnelViolation);
    assert.throws(() => w.tunnel.onMessage({ type: 'stream-close', id: 9 }), TunnelViolation);
    assert.throws(() => w.agent.onFrame(data(5, 0)), StreamViolation);
    assert.throws(() => w.agent.onMessage({ type: 'stream-window', id: 5, bytes: 10 }), StreamViolation);
    // Reusing an id is a violation too (an agent end on its own, answering into a recorder).
    const answers: string[] = [];
    const lone = new AgentStreams({
      nodeName: NODE,
      store: w.store,
      runtime: new DoubleRuntime(),
      logger: silentLogger(),
    });
    lone.attach({ sendText: (t) => answers.push(t), sendBinary: () => {} });
    const open = {
      type: 'stream-open' as const,
      id: 1,
      pod: { namespace: 'default', name: 'mine', uid: 'uid-mine' },
      request: { kind: 'logs' as const, container: 'main', follow: true, previous: false, timestamps: false },
    };
    lone.onMessage(open);
    assert.throws(() => lone.onMessage(open), StreamViolation);
    lone.onMessage({ type: 'stream-cancel', id: 1 });
    // A late frame of the cancelled stream: dropped quietly.
    lone.onMessage({ type: 'stream-window', id: 1, bytes: 10 });
    lone.detach();
  });

  it('a node that sends beyond its window has the stream cancelled with an error', async () => {
    const sent: string[] = [];
    const tunnel = new Tunnel(
      { node: NODE, sendText: (t) => sent.push(t), sendBinary: () => {} },
      silentLogger(),
    );
    // A kubectl that reads nothing: no credit is ever granted back.
    const sink = new Writable({ write: () => {} });
    const run = tunnel.run(
      { namespace: 'default', name: 'mine', uid: 'u' },
      { kind: 'logs', container: 'main', follow: false, previous: false, timestamps: false },
      { stdout: sink },
      new AbortController().signal,
    );
    const chunk = Buffer.alloc(32 * 1024, 1);
    for (let sentBytes = 0; sentBytes <= STREAM_WINDOW_BYTES; sentBytes += chunk.byteLength) {
      tunnel.onFrame(
        decodeStreamFrame(encodeStreamFrame({ kind: 'data', id: 1, channel: 1, payload: chunk }), 'agent'),
      );
    }
    const outcome = await run;
    assert.ok('error' in outcome && /sent more than the window of stream 1/.test(outcome.error.message));
    assert.ok(sent.some((t) => JSON.parse(t).type === 'stream-cancel'));
    // A data frame on a channel that was not asked for (stderr of a logs stream) is refused as well.
    const run2 = tunnel.run(
      { namespace: 'default', name: 'mine', uid: 'u' },
      { kind: 'logs', container: 'main', follow: false, previous: false, timestamps: false },
      { stdout: sink },
      new AbortController().signal,
    );
    tunnel.onFrame({ kind: 'data', id: 2, channel: 2, payload: Buffer.from('x') });
    const o2 = await run2;
    assert.ok('error' in o2 && /channel 2, which was not asked for/.test(o2.error.message));
  });
});
