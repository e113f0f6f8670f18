/**
 * A private containerd for tests and benchmarks: its own root, state, socket, CNI config dir and
 * streaming port under a temporary directory, so several run side by side on one machine. Builds a tiny
 * OCI image from Debian's busybox-static (no registry is reachable here) and imports it twice: as
 * BUSYBOX_IMAGE (command /bin/sh) and as the sandbox image registry.k8s.io/pause:3.6 (sleeps forever).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CriClient } from '../../src/agent/cri/client.ts';

const run = promisify(execFile);

export const BUSYBOX_IMAGE = 'kedge.test/busybox:1.0';
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.6';
const BUSYBOX_BIN = '/usr/bin/busybox';

export interface Containerd {
  /** `unix:///.../containerd.sock`, for CriClient and `kedge agent --cri-endpoint`. */
  readonly endpoint: string;
  readonly socket: string;
  readonly dir: string;
  /** The CNI config dir containerd reads (empty at start: the runtime writes its default). */
  readonly cniConfDir: string;
  /** containerd's process id. */
  readonly pid: number;
  /** Runs `ctr -a SOCK -n k8s.io ARGS`. */
  ctr(args: readonly string[]): Promise<string>;
  /** Log lines containerd wrote so far (stderr). */
  logs(): string;
  /** Stops containerd, kills the containers it ran and removes the temporary directory. */
  stop(): Promise<void>;
}

/** Why containerd cannot run here, or undefined when it can. In CI a reason is a failure, not a skip. */
export function containerdMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'containerd tests need root';
  for (const bin of [
    '/usr/bin/containerd',
    '/usr/bin/ctr',
    '/usr/sbin/runc',
    BUSYBOX_BIN,
    '/usr/lib/cni/bridge',
  ]) {
    if (!existsSync(bin))
      return `${bin} is missing (apt-get install containerd runc containernetworking-plugins busybox-static)`;
  }
  return undefined;
}

/** For node:test: `{ skip }` outside CI when containerd cannot run, and a thrown error in CI. */
export function containerdTestOptions(): { skip?: string } {
  const missing = containerdMissing();
  if (missing === undefined) return {};
  if (process.env['CI'] === 'true') throw new Error(`CI: ${missing}`);
  return { skip: missing };
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Builds an OCI layout tar holding BUSYBOX_IMAGE and PAUSE_IMAGE (one shared layer). */
export async function buildTestImages(dir: string): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await mkdir(join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
  await copyFile(BUSYBOX_BIN, join(rootfs, 'bin', 'busybox'));
  const { stdout } = await run(BUSYBOX_BIN, ['--list']);
  for (const applet of stdout.split('\n')) {
    if (applet === '' || applet === 'busybox' || applet.includes('/')) continue;
    await symlink('busybox', join(rootfs, 'bin', applet));
  }
  await writeFile(
    join(rootfs, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  const layerTar = join(dir, 'layer.tar');
  await run('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@0',
    '-C',
    rootfs,
    '-cf',
    layerTar,
    '.',
  ]);
  const layer = await readFile(layerTar);
  const oci = join(dir, 'oci');
  const blobs = join(oci, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const putBlob = async (data: Buffer | string): Promise<{ digest: string; size: number }> => {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const hex = sha256(buf);
    await writeFile(join(blobs, hex), buf);
    return { digest: `sha256:${hex}`, size: buf.length };
  };
  const layerBlob = await putBlob(layer);
  const manifests = [];
  for (const [ref, config] of [
    [BUSYBOX_IMAGE, { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] }],
    [PAUSE_IMAGE, { Entrypoint: ['/bin/sleep', '2147483647'], Env: ['PATH=/bin'] }],
  ] as const) {
    const cfg = await putBlob(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config,
        rootfs: { type: 'layers', diff_ids: [layerBlob.digest] },
      }),
    );
    const manifest = await putBlob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layerBlob }],
      }),
    );
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      annotations: { 'org.opencontainers.image.ref.name': ref },
    });
  }
  await writeFile(join(oci, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(oci, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  const out = join(dir, 'images.tar');
  await run('tar', ['-C', oci, '-cf', out, ...(await readdir(oci))]);
  return out;
}

/** Starts a private containerd with the CRI plugin and the test images imported. */
export async function startContainerd(options: { cniConfDir?: string } = {}): Promise<Containerd> {
  const dir = await mkdtemp(join(tmpdir(), 'kedge-containerd-'));
  const socket = join(dir, 'containerd.sock');
  const cniConfDir = options.cniConfDir ?? join(dir, 'cni');
  await mkdir(cniConfDir, { recursive: true });
  const streamPort = await freePort();
  const config = [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}`,
    // This VM refuses a negative oom_score_adj even to root (runc: "failed to update
    // /proc/self/oom_score_adj: Permission denied"), so the sandbox's -998 is clamped to containerd's own.
    '  restrict_oom_score_adj = true',
    '  stream_server_address = "127.0.0.1"',
    `  stream_server_port = "${streamPort}"`,
    '[plugins."io.containerd.grpc.v1.cri".cni]',
    '  bin_dir = "/usr/lib/cni"',
    `  conf_dir = ${JSON.stringify(cniConfDir)}`,
    '',
  ].join('\n');
  const configPath = join(dir, 'config.toml');
  await writeFile(configPath, config);
  // runc and the CNI plugins' iptables live in sbin directories, which a CI shell's PATH may lack; without
  // iptables the bridge plugin fails and bridge pods stay in ContainerCreating.
  const path = [process.env['PATH'] ?? '', '/usr/local/sbin', '/usr/sbin', '/sbin'].filter((p) => p !== '');
  const child: ChildProcess = spawn('/usr/bin/containerd', ['--config', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PATH: path.join(':') },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 4_000_000) stderr = stderr.slice(-2_000_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ctr = async (args: readonly string[]): Promise<string> => {
    const r = await run('/usr/bin/ctr', ['-a', socket, '-n', 'k8s.io', ...args], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return r.stdout;
  };
  const stop = async (): Promise<void> => {
    // Stop the pod sandboxes through the CRI first, so CNI releases their IPs and iptables rules; then
    // kill whatever still runs (shims outlive containerd), then containerd, then the files.
    const cri = new CriClient({ endpoint: `unix://${socket}`, timeoutMs: 15_000 });
    try {
      for (const s of await cri.listPodSandbox()) {
        await cri.stopPodSandbox(s.id).catch(() => undefined);
        await cri.removePodSandbox(s.id).catch(() => undefined);
      }
    } catch {
    } finally {
      cri.close();
    }
    try {
      const ids = (await ctr(['tasks', 'ls', '-q'])).split('\n').filter((l) => l !== '');
      await Promise.all(ids.map((id) => ctr(['tasks', 'kill', '-s', 'SIGKILL', id]).catch(() => undefined)));
      for (const id of ids) await ctr(['tasks', 'delete', '-f', id]).catch(() => undefined);
      const cids = (await ctr(['containers', 'ls', '-q'])).split('\n').filter((l) => l !== '');
      for (const id of cids) await ctr(['containers', 'delete', id]).catch(() => undefined);
    } catch {}
    if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
    await run('umount', ['-R', '-l', join(dir, 'state')]).catch(() => undefined);
    await run('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(
      () => undefined,
    );
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    const deadline = Date.now() + 30_000;
    while (!existsSync(socket)) {
      if (child.exitCode !== null) throw new Error(`containerd exited: ${stderr.slice(-4000)}`);
      if (Date.now() > deadline)
        throw new Error(`containerd did not create ${socket}: ${stderr.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const images = await buildTestImages(join(dir, 'image'));
    await ctr(['images', 'import', images]);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    endpoint: `unix://${socket}`,
    socket,
    dir,
    cniConfDir,
    pid: child.pid ?? 0,
    ctr,
    logs: () => stderr,
    stop,
  };
}
