// The quickstart's demo device: `kedge up` (a process, free ports) shows a simulated thermostat online in
// `kubectl get devices` whose reported temperature changes, and that follows a target set with kubectl.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { kubectlOk } from './harness/kubectl.ts';
import { removeDir } from './harness/server.ts';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;

describe('kedge up: the demo device', () => {
  let dir: string;
  let kubeconfig: string;
  let child: ReturnType<typeof spawn>;
  let exited: Promise<number | null>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-up-'));
    child = spawn(
      process.execPath,
      [
        MAIN,
        'up',
        '--data-dir',
        dir,
        '--listen',
        '127.0.0.1:0',
        '--local-api',
        '127.0.0.1:0',
        '--mqtt-listen',
        '127.0.0.1:0',
        '--node-name',
        'up-node',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    exited = new Promise((ok) => child.once('exit', (code) => ok(code)));
    let err = '';
    await new Promise<void>((ok, fail) => {
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('Press Ctrl-C to stop.')) ok();
      });
      void exited.then((code) => fail(new Error(`kedge up exited with ${code}: ${err}`)));
    });
    assert.match(err, /kubectl get devices/);
    kubeconfig = join(dir, 'server', 'admin.kubeconfig');
  });
  after(async () => {
    if (child.exitCode === null) child.kill('SIGINT');
    assert.equal(await exited, 0);
    await removeDir(dir);
  });

  const temperatures = async (): Promise<number | undefined> => {
    const out = await kubectlOk(kubeconfig, [
      'get',
      'device',
      'demo-thermostat',
      '-o',
      'jsonpath={.status.twins[?(@.propertyName=="temperature")].reported.value}',
    ]);
    return out === '' ? undefined : Number(out);
  };

  it('is online and its reported temperature changes', async () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200 && seen.size < 3; i++) {
      const t = await temperatures();
      if (t !== undefined) seen.add(t);
      await sleep(250);
    }
    assert.ok(seen.size >= 3, `temperatures seen: ${[...seen].join(', ')}`);
    const table = await kubectlOk(kubeconfig, ['get', 'devices', '--no-headers']);
    assert.match(table, /^demo-thermostat\s+up-node\s+demo-thermostat\s+virtual\s+online\s/);
  });

  it('follows a target set with kubectl, down and up', async () => {
    for (const target of [8, 33]) {
      await kubectlOk(kubeconfig, [
        'patch',
        'device',
        'demo-thermostat',
        '--type=json',
        '-p',
        `[{"op":"replace","path":"/spec/properties/1/desired/value","value":"${target}"}]`,
      ]);
      let t: number | undefined;
      for (let i = 0; ; i++) {
        t = await temperatures();
        if (t !== undefined && Math.abs(t - target) < 1.5) break;
        if (i > 400) assert.fail(`temperature did not approach ${target}, last ${t}`);
        await sleep(250);
      }
    }
  });
});
