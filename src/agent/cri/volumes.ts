/**
 * Pod volumes on the node's disk, under `<dir>/<volume name>`: emptyDir (a directory), hostPath (the
 * host's path, created for DirectoryOrCreate/FileOrCreate), configMap, secret, downwardAPI and projected
 * (files written from the local store, rewritten when the object changes, and always mounted read-only,
 * as Kubernetes does). Returns the CRI mounts of each container.
 */
import { chmod, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import type { KubeObject } from '../../api/meta.ts';
import type { PodContext } from '../runtime.ts';
import type { Mount } from './client.ts';
import {
  arr,
  type DownwardValues,
  fieldRefValue,
  obj,
  objectData,
  PodConfigError,
  resourceFieldValue,
} from './spec.ts';

export interface PreparedVolume {
  readonly hostPath: string;
  /** configMap, secret, downwardAPI and projected volumes are read-only whatever the mount says. */
  readonly forceReadOnly: boolean;
}

interface FileSpec {
  readonly data: Buffer;
  readonly mode: number;
}

function checkRelativePath(volume: string, path: string): string {
  const n = normalize(path);
  if (path === '' || isAbsolute(path) || n.startsWith('..') || n.split('/').includes('..')) {
    throw new PodConfigError(
      'ContainerCreating',
      `volume "${volume}": item path ${JSON.stringify(path)} must be relative and stay inside the volume`,
      { volume, path },
    );
  }
  return n;
}

function mountError(volume: string, message: string): PodConfigError {
  return new PodConfigError(
    'ContainerCreating',
    `MountVolume.SetUp failed for volume "${volume}" : ${message}`,
    { volume },
  );
}

/** Files of a configMap or secret source (items select and rename keys). */
function keyFiles(
  volume: string,
  plural: 'configmaps' | 'secrets',
  source: Record<string, unknown>,
  pod: KubeObject,
  context: Pick<PodContext, 'lookup'>,
  defaultMode: number,
  out: Map<string, FileSpec>,
): void {
  const name = String(source['name'] ?? '');
  const optional = source['optional'] === true;
  const o = context.lookup(plural, pod.metadata.namespace ?? '', name);
  if (o === undefined) {
    if (optional) return;
    throw mountError(volume, `${plural === 'secrets' ? 'secret' : 'configmap'} "${name}" not found`);
  }
  const data = objectData(plural, o);
  const items = arr(source['items']);
  if (items.length === 0) {
    for (const [k, v] of data) out.set(checkRelativePath(volume, k), { data: v, mode: defaultMode });
    return;
  }
  for (const item of items) {
    const key = String(item['key'] ?? '');
    const v = data.get(key);
    if (v === undefined) {
      if (optional) continue;
      throw mountError(
        volume,
        `key "${key}" is not in ${plural === 'secrets' ? 'secret' : 'configmap'} "${name}"`,
      );
    }
    const mode = typeof item['mode'] === 'number' ? item['mode'] : defaultMode;
    out.set(checkRelativePath(volume, String(item['path'] ?? key)), { data: v, mode });
  }
}

function downwardFiles(
  volume: string,
  items: Record<string, unknown>[],
  pod: KubeObject,
  values: DownwardValues,
  defaultMode: number,
  out: Map<string, FileSpec>,
): void {
  for (const item of items) {
    const path = checkRelativePath(volume, String(item['path'] ?? ''));
    const mode = typeof item['mode'] === 'number' ? item['mode'] : defaultMode;
    let text: string;
    if (item['fieldRef'] !== undefined) {
      text = fieldRefValue(pod, String(obj(item['fieldRef'])['fieldPath'] ?? ''), values);
    } else {
      const r = obj(item['resourceFieldRef']);
      const containers = arr(obj(pod['spec'])['containers']);
      const c = containers.find((x) => x['name'] === r['containerName']) ?? containers[0] ?? {};
      text = resourceFieldValue(c, String(r['resource'] ?? ''), r['divisor'], { cpu: 1, memory: 0 });
    }
    out.set(path, { data: Buffer.from(text), mode });
  }
}

/** Writes `files` into `dir`: changed files atomically, files no longer wanted removed. */
async function syncFiles(dir: string, files: ReadonlyMap<string, FileSpec>): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  for (const [rel, f] of files) {
    const path = join(dir, rel);
    const current = await readFile(path).catch(() => undefined);
    if (current?.equals(f.data)) {
      const st = await stat(path);
      if ((st.mode & 0o777) !== (f.mode & 0o777)) await chmod(path, f.mode & 0o777);
      continue;
    }
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    const tmp = `${path}.kedge-tmp`;
    await writeFile(tmp, f.data, { mode: f.mode & 0o777 });
    await chmod(tmp, f.mode & 0o777);
    await rename(tmp, path);
  }
  const walk = async (sub: string): Promise<void> => {
    for (const e of await readdir(join(dir, sub), { withFileTypes: true })) {
      const rel = sub === '' ? e.name : `${sub}/${e.name}`;
      if (e.isDirectory()) await walk(rel);
      else if (!files.has(rel)) await rm(join(dir, rel), { force: true });
    }
  };
  await walk('');
}

/**
 * Prepares every volume of the pod under `dir` and returns them by name. Throws PodConfigError when a
 * volume cannot be set up (a missing ConfigMap or Secret, a hostPath that is not what its type says).
 */
export async function prepareVolumes(
  pod: KubeObject,
  dir: string,
  context: Pick<PodContext, 'lookup'>,
  values: DownwardValues,
): Promise<Map<string, PreparedVolume>> {
  const volumes = new Map<string, PreparedVolume>();
  for (const v of arr(obj(pod['spec'])['volumes'])) {
    const name = String(v['name'] ?? '');
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name))
      throw mountError(name, 'the volume name is not a DNS label');
    const path = join(dir, name);
    if (v['emptyDir'] !== undefined) {
      await mkdir(path, { recursive: true });
      await chmod(path, 0o777);
      volumes.set(name, { hostPath: path, forceReadOnly: false });
    } else if (v['hostPath'] !== undefined) {
      const hp = obj(v['hostPath']);
      const host = String(hp['path'] ?? '');
      if (!isAbsolute(host)) throw mountError(name, `hostPath ${JSON.stringify(host)} is not absolute`);
      const type = String(hp['type'] ?? '');
      const st = await lstat(host).catch(() => undefined);
      if (type === 'DirectoryOrCreate' && st === undefined)
        await mkdir(host, { recursive: true, mode: 0o755 });
      else if (type === 'FileOrCreate' && st === undefined) {
        await mkdir(dirname(host), { recursive: true, mode: 0o755 });
        await writeFile(host, '', { mode: 0o644 });
      } else if (type === 'Directory' && !st?.isDirectory())
        throw mountError(name, `hostPath type check failed: ${host} is not a directory`);
      else if (type === 'File' && !st?.isFile())
        throw mountError(name, `hostPath type check failed: ${host} is not a file`);
      else if (type === '' && st === undefined) throw mountError(name, `hostPath ${host} does not exist`);
      volumes.set(name, { hostPath: host, forceReadOnly: false });
    } else if (v['configMap'] !== undefined || v['secret'] !== undefined) {
      const plural = v['configMap'] !== undefined ? 'configmaps' : 'secrets';
      const source = obj(v[plural === 'configmaps' ? 'configMap' : 'secret']);
      const ref = plural === 'secrets' ? { ...source, name: source['secretName'] } : source;
      const mode = typeof source['defaultMode'] === 'number' ? source['defaultMode'] : 0o644;
      const files = new Map<string, FileSpec>();
      keyFiles(name, plural, ref, pod, context, mode, files);
      await syncFiles(path, files);
      volumes.set(name, { hostPath: path, forceReadOnly: true });
    } else if (v['downwardAPI'] !== undefined) {
      const source = obj(v['downwardAPI']);
      const mode = typeof source['defaultMode'] === 'number' ? source['defaultMode'] : 0o644;
      const files = new Map<string, FileSpec>();
      downwardFiles(name, arr(source['items']), pod, values, mode, files);
      await syncFiles(path, files);
      volumes.set(name, { hostPath: path, forceReadOnly: true });
    } else if (v['projected'] !== undefined) {
      const source = obj(v['projected']);
      const mode = typeof source['defaultMode'] === 'number' ? source['defaultMode'] : 0o644;
      const files = new Map<string, FileSpec>();
      for (const s of arr(source['sources'])) {
        if (s['configMap'] !== undefined)
          keyFiles(name, 'configmaps', obj(s['configMap']), pod, context, mode, files);
        else if (s['secret'] !== undefined)
          keyFiles(name, 'secrets', obj(s['secret']), pod, context, mode, files);
        else if (s['downwardAPI'] !== undefined)
          downwardFiles(name, arr(obj(s['downwardAPI'])['items']), pod, values, mode, files);
        // serviceAccountToken and clusterTrustBundle sources need the TokenRequest API, which the
        // agent does not have: those files are left out.
      }
      await syncFiles(path, files);
      volumes.set(name, { hostPath: path, forceReadOnly: true });
    } else {
      throw mountError(
        name,
        `volume type ${
          Object.keys(v)
            .filter((k) => k !== 'name')
            .join(', ') || '(none)'
        } is not supported by kedge`,
      );
    }
  }
  return volumes;
}

/** The CRI mounts of a container from its volumeMounts. */
export function containerMounts(
  container: Record<string, unknown>,
  volumes: ReadonlyMap<string, PreparedVolume>,
): Mount[] {
  const mounts: Mount[] = [];
  for (const m of arr(container['volumeMounts'])) {
    const name = String(m['name'] ?? '');
    const v = volumes.get(name);
    if (v === undefined) {
      throw new PodConfigError(
        'CreateContainerConfigError',
        `volumeMount ${JSON.stringify(name)} names no volume of the pod`,
        { volume: name },
      );
    }
    const sub =
      typeof m['subPath'] === 'string' && m['subPath'] !== '' ? checkRelativePath(name, m['subPath']) : '';
    mounts.push({
      containerPath: String(m['mountPath'] ?? ''),
      hostPath: sub === '' ? v.hostPath : join(v.hostPath, sub),
      readonly: v.forceReadOnly || m['readOnly'] === true,
      propagation:
        m['mountPropagation'] === 'HostToContainer'
          ? 'PROPAGATION_HOST_TO_CONTAINER'
          : m['mountPropagation'] === 'Bidirectional'
            ? 'PROPAGATION_BIDIRECTIONAL'
            : 'PROPAGATION_PRIVATE',
    });
  }
  return mounts;
}
