// kubectl logs / exec / cp through the hub's tunnel, end to end: a real `kedge server` (in process, on a
// real HTTPS port), a real agent joined with a token, and the real kubectl. The agent's runtime is a test
// double: pods are "run" as by the fake runtime, but exec runs the command as a real host process (in a
// directory per pod) and logs come from lines the test writes. Real-container tests live in
// stream-cri.test.ts; this one proves the API, the tunnel and the agent's handler.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { FakeRuntime } from '../src/agent/fake-runtime.ts';
import type { ExecIO, ExecOptions, LogOptions, PodRef, StreamingRuntime } from '../src/agent/runtime.ts';
import { type RunningAgent, startAgent } from '../src/cli/agent.ts';
import { type RunningServer, startServer } from '../src/cli/server.ts';
import { silentLogger } from '../src/lib/log.ts';
import { kubectl, kubectlOk } from './harness/kubectl.ts';

/** Fake pods, real host processes for exec, scripted logs. */
class HostRuntime extends FakeRuntime implements StreamingRuntime {
  readonly root: string;
  readonly lines = new Map<string, string[]>();
  readonly appended = new EventEmitter();
  constructor(root: string) {
    super({ logger: silentLogger() });
    this.root = root;
  }
  dirOf(pod: PodRef): string {
    return join(this.root, `${pod.namespace}_${pod.name}`);
  }
  /** Resolves once `cond` holds, checked whenever a log follower comes or goes. */
  until(cond: () => boolean): Promise<void> {
    return new Promise((ok) => {
      const check = (): void => {
        setImmediate(() => {
          if (!cond()) return;
          this.appended.off('newListener', check);
          this.appended.off('removeListener', check);
          ok();
        });
      };
      this.appended.on('newListener', check);
      this.appended.on('removeListener', check);
      check();
    });
  }
  append(container: string, line: string): void {
    const list = this.lines.get(container) ?? [];
    list.push(line);
    this.lines.set(container, list);
    this.appended.emit(container, line);
  }
  async logs(_pod: PodRef, o: LogOptions, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
    const stamp = (i: number): string =>
      o.timestamps ? `2026-11-23T10:00:${String(i).padStart(2, '0')}.000000000Z ` : '';
    const header = `container=${o.container} previous=${o.previous} since=${o.since !== undefined} limit=${o.limitBytes ?? '-'}`;
    let all = [header, ...(this.lines.get(o.container) ?? [])];
    if (o.tailLines !== undefined) all = all.slice(Math.max(0, all.length - o.tailLines));
    for (const [i, l] of all.entries()) out.write(`${stamp(i)}${l}\n`);
    if (!o.follow) return;
    const onLine = (l: string): void => {
      out.write(`${stamp(99)}${l}\n`);
    };
    this.appended.on(o.container, onLine);
    if (!signal.aborted) await once(signal, 'abort').catch(() => {});
    this.appended.off(o.container, onLine);
  }
  readonly sizes: Array<{ width: number; height: number }> = [];
  async exec(pod: PodRef, o: ExecOptions, io: ExecIO, signal: AbortSignal): Promise<{ exitCode: number }> {
    if (o.tty) {
      // A terminal: record the sizes kubectl sends, answer with what we got, exit when the first came.
      for await (const size of io.resize ?? []) {
        this.sizes.push(size);
        io.stdout?.write(`size ${size.width}x${size.height}\r\n`);
        break;
      }
      return { exitCode: 5 };
    }
    const cwd = this.dirOf(pod);
    await mkdir(cwd, { recursive: true });
    const [cmd, ...args] = o.command;
    const child = spawn(cmd ?? 'true', args, { cwd, stdio: ['pipe', 'pipe', 'pipe'], signal });
    child.on('error', () => {});
    if (io.stdin !== undefined) io.stdin.pipe(child.stdin);
    else child.stdin.end();
    if (io.stdout !== undefined) child.stdout.pipe(io.stdout);
    else child.stdout.resume();
    if (io.stderr !== undefined) child.stderr.pipe(io.stderr);
    else child.stderr.resume();
    const [code] = (await once(child, 'close')) as [number | null];
    return { exitCode: code ?? 137 };
  }
}

const NODE = 'edge-s1';

describe('kubectl logs / exec / cp through the hub tunnel (test double runtime)', () => {
  let dir: string;
  let server: RunningServer;
  let agent: RunningAgent;
  let runtime: HostRuntime;
  let kc: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-stream-'));
    server = await startServer({
      dataDir: join(dir, 'server'),
      listen: '127.0.0.1:0',
      logger: silentLogger(),
    });
    kc = server.kubeconfigPath;
    runtime = new HostRuntime(join(dir, 'pods'));
    agent = await startAgent({
      server: server.url,
      token: server.nodeToken,
      nodeName: NODE,
      dataDir: join(dir, 'agent'),
      localApi: 'off',
      logger: silentLogger(),
      runtimeInstance: runtime,
    });
    const pod = (name: string, containers: string[]) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: { nodeName: NODE, containers: containers.map((c) => ({ name: c, image: 'busybox' })) },
    });
    for (const p of [pod('one', ['main']), pod('two', ['app', 'side'])]) {
      await kubectlOk(kc, ['apply', '-f', '-'], { input: JSON.stringify(p) });
    }
    for (const name of ['one', 'two']) {
      await kubectlOk(kc, ['wait', '--for=jsonpath={.status.phase}=Running', `pod/${name}`, '--timeout=60s']);
    }
    runtime.append('main', 'hello from main');
    runtime.append('main', 'second line');
    runtime.append('side', 'hello from side');
  });

  after(async () => {
    await agent?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('kubectl logs carries the container, --tail, --timestamps and --previous to the node', async () => {
    assert.equal(
      await kubectlOk(kc, ['logs', 'one']),
      'container=main previous=false since=false limit=-\nhello from main\nsecond line\n',
    );
    assert.equal(await kubectlOk(kc, ['logs', 'one', '--tail=1']), 'second line\n');
    assert.match(
      await kubectlOk(kc, ['logs', 'one', '--timestamps', '--tail=1']),
      /^2026-11-23T10:00:00\.000000000Z second line\n$/,
    );
    assert.match(
      await kubectlOk(kc, ['logs', 'one', '--previous', '--since=1h', '--limit-bytes=100']),
      /previous=true since=true limit=100/,
    );
    assert.equal(await kubectlOk(kc, ['logs', 'two', '-c', 'side', '--tail=1']), 'hello from side\n');
  });

  it('kubectl logs errors are Statuses kubectl prints', async () => {
    const many = await kubectl(kc, ['logs', 'two']);
    // kubectl 1.32 picks the first container itself; asking the API without one is our 400.
    assert.ok(many.code === 0 || /container name must be specified/.test(many.stderr), many.stderr);
    const bad = await kubectl(kc, ['logs', 'one', '-c', 'nope']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /container nope is not valid for pod one/);
    const missing = await kubectl(kc, ['logs', 'ghost']);
    assert.match(missing.stderr, /pods "ghost" not found/);
  });

  it('kubectl logs -f follows until kubectl goes away', async () => {
    const child = spawn('/usr/bin/kubectl', ['logs', '-f', 'one', '--tail=0'], {
      env: { ...process.env, KUBECONFIG: kc },
    });
    let out = '';
    const seen = (text: string) =>
      new Promise<void>((ok) => {
        const check = () => {
          if (out.includes(text)) ok();
        };
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          check();
        });
        check();
      });
    // The stream is open once the agent's runtime listens for new lines.
    await runtime.until(() => runtime.appended.listenerCount('main') > 0);
    const first = seen('followed 1');
    runtime.append('main', 'followed 1');
    await first;
    const second = seen('followed 2');
    runtime.append('main', 'followed 2');
    await second;
    child.kill('SIGTERM');
    await once(child, 'close');
    // The cancel reaches the node: its runtime stops following.
    await runtime.until(() => runtime.appended.listenerCount('main') === 0);
    assert.equal(agent.session.connected, true);
  });

  it('kubectl exec: stdout, stderr, stdin and exit codes', async () => {
    assert.equal(await kubectlOk(kc, ['exec', 'one', '--', 'sh', '-c', 'echo out; echo err >&2']), 'out\n');
    const both = await kubectl(kc, ['exec', 'one', '--', 'sh', '-c', 'echo out; echo err >&2']);
    assert.equal(both.stderr, 'err\n');
    const failed = await kubectl(kc, ['exec', 'one', '--', 'sh', '-c', 'exit 3']);
    assert.equal(failed.code, 3);
    assert.match(failed.stderr, /command terminated with exit code 3/);
    const input = 'line one\nline two\n'.repeat(1000);
    assert.equal(await kubectlOk(kc, ['exec', '-i', 'one', '--', 'cat'], { input }), input);
    assert.equal(await kubectlOk(kc, ['exec', '-i', 'one', '--', 'wc', '-l'], { input }), '2000\n');
  });

  it('kubectl exec moves megabytes both ways within the window (flow control)', async () => {
    const big = 'x'
      .repeat(1023)
      .concat('\n')
      .repeat(8 * 1024); // 8 MiB
    const r = await kubectlOk(
      kc,
      ['exec', '-i', 'one', '--', 'sh', '-c', 'cat; head -c 4194304 /dev/zero | tr "\\0" y'],
      {
        input: big,
      },
    );
    assert.equal(r.length, big.length + 4 * 1024 * 1024);
    assert.ok(r.startsWith(big));
  });

  it('kubectl exec -it (under script, which gives kubectl a terminal): the terminal size reaches the node', async () => {
    const child = spawn(
      'script',
      ['-qec', 'stty cols 123 rows 45; /usr/bin/kubectl exec -it one -- sh', '/dev/null'],
      {
        env: { ...process.env, KUBECONFIG: kc },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((ok) => child.on('close', ok));
    assert.deepEqual(runtime.sizes[0], { width: 123, height: 45 });
    assert.match(out, /size 123x45/);
    assert.match(out, /command terminated with exit code 5/);
    assert.equal(code, 5);
  });

  it('kubectl cp both ways (exec of tar)', async () => {
    const local = join(dir, 'upload.txt');
    await writeFile(local, 'uploaded through the tunnel\n');
    await kubectlOk(kc, ['cp', local, 'default/one:up.txt']);
    assert.equal(
      await readFile(join(runtime.dirOf({ namespace: 'default', name: 'one', uid: '' }), 'up.txt'), 'utf8'),
      'uploaded through the tunnel\n',
    );
    const back = join(dir, 'download.txt');
    await kubectlOk(kc, ['cp', 'default/one:up.txt', back]);
    assert.equal(await readFile(back, 'utf8'), 'uploaded through the tunnel\n');
  });

  it('exec errors: unknown container, no command, a pod on no node', async () => {
    const bad = await kubectl(kc, ['exec', 'one', '-c', 'nope', '--', 'true']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /container nope is not valid for pod one|container nope not found/);
    await kubectlOk(kc, ['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'elsewhere', namespace: 'default' },
        spec: { nodeName: 'edge-gone', containers: [{ name: 'c', image: 'busybox' }] },
      }),
    });
    const gone = await kubectl(kc, ['logs', 'elsewhere']);
    assert.match(gone.stderr, /node edge-gone is not connected to the hub/);
    const goneExec = await kubectl(kc, ['exec', 'elsewhere', '--', 'true']);
    assert.notEqual(goneExec.code, 0);
    assert.match(goneExec.stderr, /node edge-gone is not connected to the hub/);
  });

  /** A raw request to the API with the given client certificate (the node's, or the admin's). */
  async function raw(
    path: string,
    creds: { cert: string; key: string; ca: string },
  ): Promise<{ status: number; body: string }> {
    return new Promise((ok, fail) => {
      const req = request(`${server.url}${path}`, { ...creds }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', fail);
      req.end();
    });
  }

  it('a node may not read logs or exec, even in its own pods; bad queries are 400 Statuses', async () => {
    const a = join(dir, 'agent');
    const node = {
      cert: await readFile(join(a, 'node.crt'), 'utf8'),
      key: await readFile(join(a, 'node.key'), 'utf8'),
      ca: await readFile(join(a, 'ca.crt'), 'utf8'),
    };
    const log = await raw('/api/v1/namespaces/default/pods/one/log', node);
    assert.equal(log.status, 403, log.body);
    assert.match(JSON.parse(log.body).message, /cannot get resource "pods\/log"/);
    const ws = new WebSocket(
      `${server.url.replace('https', 'wss')}/api/v1/namespaces/default/pods/one/exec?command=true&stdout=true`,
      ['v5.channel.k8s.io'],
      node,
    );
    const refused = await new Promise<number>((ok) =>
      ws.on('unexpected-response', (_q, res) => ok(res.statusCode ?? 0)),
    );
    assert.equal(refused, 403);

    const kubeconfig = await readFile(kc, 'utf8');
    const field = (name: string) =>
      Buffer.from(new RegExp(`${name}: (\\S+)`).exec(kubeconfig)?.[1] ?? '', 'base64').toString();
    const admin = {
      cert: field('client-certificate-data'),
      key: field('client-key-data'),
      ca: field('certificate-authority-data'),
    };
    for (const [query, message] of [
      ['tailLines=-2', /tailLines must be a whole number >= 0/],
      ['sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z', /at most one of sinceTime or sinceSeconds/],
      ['sinceTime=yesterday', /sinceTime must be an RFC 3339 time/],
      ['follow=maybe', /follow must be true or false/],
      ['limitBytes=0', /limitBytes must be a whole number >= 1/],
    ] as const) {
      const r = await raw(`/api/v1/namespaces/default/pods/one/log?${query}`, admin);
      assert.equal(r.status, 400, `${query}: ${r.body}`);
      assert.equal(JSON.parse(r.body).kind, 'Status');
      assert.match(JSON.parse(r.body).message, message);
    }
    const plain = await raw('/api/v1/namespaces/default/pods/one/exec?command=true&stdout=true', admin);
    assert.equal(plain.status, 400);
    assert.match(JSON.parse(plain.body).message, /serves exec over WebSocket/);
    const noCommand = new WebSocket(
      `${server.url.replace('https', 'wss')}/api/v1/namespaces/default/pods/one/exec?stdout=true`,
      ['v5.channel.k8s.io'],
      admin,
    );
    const bad = await new Promise<{ code: number; body: string }>((ok) =>
      noCommand.on('unexpected-response', (_q, res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => ok({ code: res.statusCode ?? 0, body }));
      }),
    );
    assert.equal(bad.code, 400);
    assert.match(JSON.parse(bad.body).message, /at least one command/);
  });
});
