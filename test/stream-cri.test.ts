// kubectl logs / exec / cp against real containers: a private containerd, `kedge server` and an agent with
// the CRI runtime (both in this process, on real sockets), and the real kubectl. Logs come from the CRI log
// files (CriStreaming), exec through CRI Exec and containerd's streaming server (WebSocket v4), all carried
// over the hub tunnel. `kubectl exec -it` runs under `script`, which gives kubectl a pseudo-terminal.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningAgent, startAgent } from '../src/cli/agent.ts';
import { type RunningServer, startServer } from '../src/cli/server.ts';
import { silentLogger } from '../src/lib/log.ts';
import {
  BUSYBOX_IMAGE,
  type Containerd,
  containerdTestOptions,
  startContainerd,
} from './harness/containerd.ts';
import { KUBECTL, kubectl, kubectlOk } from './harness/kubectl.ts';

const NODE = 'edge-cri-s';
const opts = containerdTestOptions();

describe('kubectl logs / exec / cp on real containers through the hub tunnel', opts, () => {
  let dir: string;
  let containerd: Containerd;
  let server: RunningServer;
  let agent: RunningAgent;
  let kc: string;

  const pod = (name: string, script: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: {
        nodeName: NODE,
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: BUSYBOX_IMAGE, command: ['sh', '-c', script] }],
        ...extra,
      },
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-stream-cri-'));
    containerd = await startContainerd();
    server = await startServer({
      dataDir: join(dir, 'server'),
      listen: '127.0.0.1:0',
      logger: silentLogger(),
    });
    kc = server.kubeconfigPath;
    agent = await startAgent({
      server: server.url,
      token: server.nodeToken,
      nodeName: NODE,
      dataDir: join(dir, 'agent'),
      localApi: 'off',
      runtime: 'cri',
      criEndpoint: containerd.endpoint,
      hostIP: '127.0.0.1',
      logger: silentLogger(),
    });
    await kubectlOk(kc, ['apply', '-f', '-'], {
      input: pod(
        'ticker',
        'echo start; echo to-stderr >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done',
      ),
    });
    await kubectlOk(kc, ['apply', '-f', '-'], {
      input: pod('crasher', 'echo run $RANDOM-$RANDOM-$RANDOM; sleep 1; exit 1'),
    });
    await kubectlOk(kc, ['wait', '--for=jsonpath={.status.phase}=Running', 'pod/ticker', '--timeout=90s']);
  });

  after(async () => {
    await agent?.close();
    await server?.close();
    await containerd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('kubectl logs: both streams, --tail, --timestamps, --limit-bytes, --since', async () => {
    const all = await kubectlOk(kc, ['logs', 'ticker']);
    // stdout and stderr are separate pipes: their order in the log is not fixed.
    assert.match(all, /(^|\n)start\n/);
    assert.match(all, /(^|\n)to-stderr\n/);
    assert.match(all, /\ntick 1\n/);
    assert.equal(await kubectlOk(kc, ['logs', 'ticker', '--tail=2']).then((t) => t.split('\n').length), 3);
    const stamped = await kubectlOk(kc, ['logs', 'ticker', '--timestamps', '--tail=1']);
    assert.match(stamped, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z tick \d+\n$/);
    const limited = await kubectlOk(kc, ['logs', 'ticker', '--limit-bytes=8']);
    assert.equal(limited.length, 8);
    assert.ok(all.startsWith(limited), limited);
    assert.match(await kubectlOk(kc, ['logs', 'ticker', '-c', 'main', '--since=1h']), /(^|\n)start\n/);
    // Once the container has run for more than a second, the last second holds only ticks.
    const follow = spawn(KUBECTL, ['logs', '-f', 'ticker'], { env: { ...process.env, KUBECONFIG: kc } });
    await new Promise<void>((ok) => {
      let seen = '';
      follow.stdout.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('tick 10\n')) ok();
      });
    });
    follow.kill('SIGTERM');
    const recent = await kubectlOk(kc, ['logs', 'ticker', '--since=1s']);
    assert.doesNotMatch(recent, /start/);
    assert.match(recent, /tick \d+\n$/);
  });

  it('kubectl logs -f follows the file as it grows', async () => {
    const child = spawn(KUBECTL, ['logs', '-f', 'ticker', '--tail=1'], {
      env: { ...process.env, KUBECONFIG: kc },
    });
    let out = '';
    await new Promise<void>((ok) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.split('\n').length > 4) ok();
      });
    });
    child.kill('SIGTERM');
    const ticks = out
      .trim()
      .split('\n')
      .map((l) => Number(l.replace('tick ', '')));
    for (let i = 1; i < ticks.length; i++) assert.equal(ticks[i], (ticks[i - 1] ?? 0) + 1, out);
  });

  it('kubectl logs --previous shows the run before the restart', async () => {
    // Wait for the second run (restartCount 1): the first run's log is then the previous one.
    await kubectlOk(kc, [
      'wait',
      '--for=jsonpath={.status.containerStatuses[0].restartCount}=1',
      'pod/crasher',
      '--timeout=90s',
    ]);
    const previous = await kubectlOk(kc, ['logs', 'crasher', '--previous']);
    assert.match(previous, /^run \d+-\d+-\d+\n$/);
    const current = await kubectl(kc, ['logs', 'crasher']);
    if (current.code === 0) assert.notEqual(current.stdout, previous);
    const none = await kubectl(kc, ['logs', 'ticker', '--previous']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /previous terminated container "main" in pod "ticker" not found/);
  });

  it('kubectl exec: output, stderr, exit codes, stdin', async () => {
    assert.equal(
      await kubectlOk(kc, ['exec', 'ticker', '--', 'cat', '/proc/1/cmdline']).then((s) => s.split('\0')[0]),
      'sh',
    );
    const r = await kubectl(kc, ['exec', 'ticker', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.equal(r.code, 7);
    assert.equal(r.stdout, 'out\n');
    assert.match(r.stderr, /err\ncommand terminated with exit code 7/);
    // stdin and its end (SPDY to containerd's streaming server: see streaming.ts).
    assert.equal(
      await kubectlOk(kc, ['exec', '-i', 'ticker', '--', 'cat'], { input: 'to cat\n' }),
      'to cat\n',
    );
    assert.equal(
      await kubectlOk(kc, ['exec', '-i', 'ticker', '--', 'head', '-n', '2'], { input: 'a\nb\nc\n' }),
      'a\nb\n',
    );
    const missing = await kubectl(kc, ['exec', 'ticker', '--', '/no/such/binary']);
    assert.notEqual(missing.code, 0);
  });

  it('kubectl exec -it with a terminal (under script): a tty and the exit code', async () => {
    const child = spawn(
      'script',
      ['-qec', `${KUBECTL} exec -it ticker -- sh -c 'tty; exit 4'`, '/dev/null'],
      {
        env: { ...process.env, KUBECONFIG: kc, COLUMNS: '100', LINES: '30' },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((ok) => child.on('close', ok));
    assert.match(out, /\/dev\/pts\/\d+/);
    assert.match(out, /command terminated with exit code 4/);
    assert.equal(code, 4);
  });

  it('kubectl cp both ways', { timeout: 30_000 }, async () => {
    const local = join(dir, 'up.txt');
    const body = 'through the tunnel\n'.repeat(5000);
    await writeFile(local, body);
    await kubectlOk(kc, ['cp', local, 'default/ticker:/tmp/up.txt']);
    assert.equal(
      await kubectlOk(kc, ['exec', 'ticker', '--', 'wc', '-c', '/tmp/up.txt']),
      `${body.length} /tmp/up.txt\n`,
    );
    const back = join(dir, 'back.txt');
    await kubectlOk(kc, ['cp', 'default/ticker:/tmp/up.txt', back]);
    assert.equal(await readFile(back, 'utf8'), body);
  });
});
