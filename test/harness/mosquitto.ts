// Real MQTT parts from Debian: mosquitto_sub/mosquitto_pub as clients, /usr/sbin/mosquitto as an external
// broker on a free port in a temporary directory. In CI a missing binary fails the test (never a skip).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const MOSQUITTO = '/usr/sbin/mosquitto';
export const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub';
export const MOSQUITTO_SUB = '/usr/bin/mosquitto_sub';

/** Undefined when every mosquitto binary is present, else what is missing (CI: a failure; elsewhere: a skip reason). */
export function mosquittoMissing(): string | undefined {
  const missing = [MOSQUITTO, MOSQUITTO_PUB, MOSQUITTO_SUB].filter((p) => !existsSync(p));
  if (missing.length === 0) return undefined;
  const why = `${missing.join(', ')} not installed (apt-get install mosquitto mosquitto-clients)`;
  if (process.env['CI'] === 'true') throw new Error(why);
  return why;
}

function hostPort(url: string): [string, string] {
  const u = new URL(url);
  return [u.hostname, u.port || '1883'];
}

export interface Message {
  readonly topic: string;
  readonly payload: string;
  /** The payload as JSON, or undefined when it is not JSON. */
  readonly json: Record<string, unknown> | undefined;
}

export interface Subscription {
  readonly messages: Message[];
  /** The first message (already received or future) that matches. */
  waitFor(match: (m: Message) => boolean, timeoutMs?: number): Promise<Message>;
  close(): Promise<void>;
}

/** `mosquitto_sub -v` on a topic filter; resolves once the subscription is in place. */
export async function subscribe(url: string, topic: string): Promise<Subscription> {
  const [host, port] = hostPort(url);
  const child: ChildProcess = spawn(
    MOSQUITTO_SUB,
    ['-h', host, '-p', port, '-q', '1', '-v', '-t', topic, '-t', `kedge-test/ready/${process.pid}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const messages: Message[] = [];
  const waiters = new Set<{ match: (m: Message) => boolean; resolve: (m: Message) => void }>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const sp = line.indexOf(' ');
    const t = sp < 0 ? line : line.slice(0, sp);
    const payload = sp < 0 ? '' : line.slice(sp + 1);
    let json: Record<string, unknown> | undefined;
    try {
      const v = JSON.parse(payload) as unknown;
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) json = v as Record<string, unknown>;
    } catch {}
    const m = { topic: t, payload, json };
    messages.push(m);
    for (const w of waiters) {
      if (w.match(m)) {
        waiters.delete(w);
        w.resolve(m);
      }
    }
  });
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const sub: Subscription = {
    messages,
    waitFor(match, timeoutMs = 15_000) {
      const found = messages.find(match);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { match, resolve };
        waiters.add(w);
        setTimeout(() => {
          if (waiters.delete(w))
            reject(
              new Error(
                `No matching MQTT message on ${topic} in ${timeoutMs} ms; got:\n${messages.map((x) => `${x.topic} ${x.payload}`).join('\n')}`,
              ),
            );
        }, timeoutMs).unref();
      });
    },
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  // Subscribed once our own probe message comes back.
  const probe = `kedge-test/ready/${process.pid}`;
  for (let i = 0; ; i++) {
    await publish(url, probe, 'ready');
    try {
      await sub.waitFor((m) => m.topic === probe, 300);
      return sub;
    } catch (err) {
      if (i > 30) {
        await sub.close();
        throw err;
      }
    }
  }
}

/** `mosquitto_pub -q 1` one message; rejects when mosquitto_pub fails. */
export function publish(url: string, topic: string, payload: string): Promise<void> {
  const [host, port] = hostPort(url);
  return new Promise((resolve, reject) => {
    execFile(
      MOSQUITTO_PUB,
      ['-h', host, '-p', port, '-q', '1', '-t', topic, '-m', payload],
      (err, _o, stderr) => (err === null ? resolve() : reject(new Error(`mosquitto_pub failed: ${stderr}`))),
    );
  });
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const addr = srv.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  await new Promise<void>((ok) => srv.close(() => ok()));
  return port;
}

export interface MosquittoBroker {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts Debian's mosquitto on a loopback port (a free one by default; anonymous clients allowed), in a temp dir. */
export async function startMosquitto(port?: number): Promise<MosquittoBroker> {
  const dir = await mkdtemp(join(tmpdir(), 'kedge-mosquitto-'));
  port ??= await freePort();
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const url = `mqtt://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      await publish(url, 'kedge-test/up', 'x');
      break;
    } catch (err) {
      if (i > 50 || child.exitCode !== null)
        throw new Error(`mosquitto did not start: ${log} ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
