// The fault proxy itself, on real sockets: an echo server behind it, every control exercised.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FaultProxy } from './fault-proxy.ts';

let echo: Server;
let echoPort: number;
const proxies: FaultProxy[] = [];
const sockets: Socket[] = [];

before(async () => {
  echo = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {}); // the proxy's cut resets it
    s.pipe(s);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoPort = (echo.address() as { port: number }).port;
});
after(async () => {
  for (const s of sockets) s.destroy();
  for (const p of proxies) await p.close();
  await new Promise((resolve) => echo.close(resolve));
});

async function proxy(): Promise<FaultProxy> {
  const p = await FaultProxy.start({ targetPort: echoPort });
  proxies.push(p);
  return p;
}

async function connect(p: FaultProxy): Promise<Socket> {
  const s = createConnection({ host: '127.0.0.1', port: p.port });
  sockets.push(s);
  await once(s, 'connect');
  return s;
}

/** Resolves with the first `n` bytes the socket receives. */
function read(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer): void => {
      parts.push(d);
      got += d.length;
      if (got >= n) {
        s.off('data', onData);
        s.off('close', onClose);
        resolve(Buffer.concat(parts).subarray(0, n));
      }
    };
    const onClose = (): void => reject(new Error(`socket closed after ${got} of ${n} bytes`));
    s.on('data', onData);
    s.on('close', onClose);
  });
}

describe('fault proxy', () => {
  it('forwards both ways untouched and counts the bytes', async () => {
    const p = await proxy();
    const s = await connect(p);
    const data = Buffer.alloc(200_000, 'x');
    s.write(data);
    assert.deepEqual(await read(s, data.length), data);
    assert.deepEqual(
      { up: p.counters.up, down: p.counters.down, accepted: p.counters.accepted },
      { up: data.length, down: data.length, accepted: 1 },
    );
  });

  it('cut destroys every open connection, and later connections work', async () => {
    const p = await proxy();
    const a = await connect(p);
    const b = await connect(p);
    a.on('error', () => {});
    b.on('error', () => {});
    a.write('ping');
    await read(a, 4);
    p.cut();
    // (events.once would reject on the reset's 'error'; wait for 'close' alone.)
    await Promise.all([a, b].map((x) => new Promise((resolve) => x.once('close', resolve))));
    assert.equal(p.counters.open, 0);
    const c = await connect(p);
    c.write('again');
    assert.equal((await read(c, 5)).toString(), 'again');
  });

  it('blackhole forwards nothing either way until lifted, then delivers what waited', async () => {
    const p = await proxy();
    const s = await connect(p);
    s.write('one');
    await read(s, 3);
    p.blackhole();
    let received = 0;
    s.on('data', (d: Buffer) => {
      received += d.length;
    });
    s.write('held');
    // A connection opened during the blackhole does not reach the target either.
    const late = await connect(p);
    late.write('late');
    // Let the proxy's pumps run many times over: nothing may pass.
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(received, 0);
    assert.equal(p.counters.up, 3);
    const lateEcho = read(late, 4);
    const echoed = read(s, 4);
    p.lift();
    assert.equal((await echoed).toString(), 'held');
    assert.equal((await lateEcho).toString(), 'late');
  });

  it('stall holds traffic for at least the given time; delay adds latency each way', async () => {
    const p = await proxy();
    const s = await connect(p);
    let t = performance.now();
    p.stall(150);
    s.write('a');
    await read(s, 1);
    assert.ok(performance.now() - t >= 140, 'the stall must hold the byte');
    p.setDelay(60);
    t = performance.now();
    s.write('b');
    await read(s, 1);
    assert.ok(performance.now() - t >= 110, 'a round trip must take at least two delays');
    p.lift();
    s.write('c');
    assert.equal((await read(s, 1)).toString(), 'c');
  });

  it('throttle never forwards more than the rate allows (plus a quarter second of burst)', async () => {
    const p = await proxy();
    const rate = 100_000;
    p.setThrottle(rate);
    const s = await connect(p);
    const t = performance.now();
    const data = Buffer.alloc(60_000, 'y');
    s.write(data);
    const back = read(s, data.length);
    const samples: Array<{ ms: number; up: number }> = [];
    const timer = setInterval(() => samples.push({ ms: performance.now() - t, up: p.counters.up }), 20);
    assert.deepEqual(await back, data);
    clearInterval(timer);
    for (const { ms, up } of samples)
      assert.ok(up <= rate / 4 + (rate * ms) / 1000, `${up} bytes in ${ms} ms`);
    assert.ok(samples.length > 0);
    assert.throws(() => p.setThrottle(0), /must be > 0/);
  });
});
