/**
 * The API side of `kubectl logs`, `kubectl exec` and `kubectl cp`: GET pods/NAME/log (plain text, streamed)
 * and pods/NAME/exec (a WebSocket with the v5.channel.k8s.io or v4.channel.k8s.io subprotocol). The pod is
 * resolved and the request checked here; the bytes come from the pod's node through a PodStreamer (the hub's
 * tunnel). Channel protocol: every binary message starts with its channel byte, 0 stdin, 1 stdout, 2 stderr,
 * 3 error (a meta/v1 Status, then close), 4 resize ({"Width","Height"}), and in v5 255 close (the next byte
 * names the channel the client closed: stdin's end, which `kubectl cp` needs).
 */
import type { ServerResponse } from 'node:http';
import { PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { isPlainObject, type KubeObject, type Status } from '../api/meta.ts';
import type { ExecIO, ExecOptions, LogOptions, PodStreamer, PodStreamTarget } from '../api/pod-streams.ts';
import { LatestQueue } from '../lib/latest-queue.ts';
import type { Logger } from '../lib/log.ts';
import { ApiError, toApiError } from './errors.ts';

export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;

const Channel = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

/** The container a request means: the named one, or the pod's only container. */
export function containerOf(pod: KubeObject, requested: string | null): string {
  const spec = isPlainObject(pod['spec']) ? pod['spec'] : {};
  const names = (key: string): string[] =>
    (Array.isArray(spec[key]) ? spec[key] : []).filter(isPlainObject).map((c) => String(c['name'] ?? ''));
  const main = names('containers');
  const all = [...main, ...names('initContainers'), ...names('ephemeralContainers')];
  const pod_ = pod.metadata.name ?? '';
  if (requested === null || requested === '') {
    if (main.length === 1) return main[0]!;
    throw badRequest(
      `a container name must be specified for pod ${pod_}, choose one of: [${main.join(' ')}]` +
        (all.length > main.length
          ? ` or one of the init containers: [${all.slice(main.length).join(' ')}]`
          : ''),
    );
  }
  if (!all.includes(requested)) throw badRequest(`container ${requested} is not valid for pod ${pod_}`);
  return requested;
}

/** Where the pod runs; a pod not yet scheduled has nowhere to stream from. */
export function targetOf(pod: KubeObject): PodStreamTarget {
  const spec = isPlainObject(pod['spec']) ? pod['spec'] : {};
  const node = spec['nodeName'];
  const name = pod.metadata.name ?? '';
  if (typeof node !== 'string' || node === '') throw badRequest(`pod ${name} does not have a host assigned`);
  return { node, namespace: pod.metadata.namespace ?? 'default', name, uid: pod.metadata.uid ?? '' };
}

function boolQuery(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null || v === '' || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw badRequest(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

function intQuery(q: URLSearchParams, name: string, min: number): number | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
    throw badRequest(`${name} must be a whole number >= ${min}, got ${JSON.stringify(v)}`);
  }
  return Number(v);
}

/** The query of GET pods/NAME/log as LogOptions (400 for anything malformed). */
export function logOptions(q: URLSearchParams, pod: KubeObject, now = new Date()): LogOptions {
  const container = containerOf(pod, q.get('container'));
  const tailLines = intQuery(q, 'tailLines', 0);
  const limitBytes = intQuery(q, 'limitBytes', 1);
  const sinceSeconds = intQuery(q, 'sinceSeconds', 1);
  const sinceTime = q.get('sinceTime');
  if (sinceSeconds !== undefined && sinceTime !== null) {
    throw badRequest('at most one of sinceTime or sinceSeconds may be specified');
  }
  let since: Date | undefined;
  if (sinceSeconds !== undefined) since = new Date(now.getTime() - sinceSeconds * 1000);
  if (sinceTime !== null) {
    if (!/^\d{4}-\d\d-\d\dT/.test(sinceTime) || Number.isNaN(Date.parse(sinceTime))) {
      throw badRequest(`sinceTime must be an RFC 3339 time, got ${JSON.stringify(sinceTime)}`);
    }
    since = new Date(sinceTime);
  }
  return {
    container,
    follow: boolQuery(q, 'follow'),
    previous: boolQuery(q, 'previous'),
    timestamps: boolQuery(q, 'timestamps'),
    ...(tailLines === undefined ? {} : { tailLines }),
    ...(since === undefined ? {} : { since }),
    ...(limitBytes === undefined ? {} : { limitBytes }),
  };
}

/** Streams the log as text/plain; the status line waits for the first byte, so early failures are Statuses. */
export async function serveLogs(
  res: ServerResponse,
  streamer: PodStreamer,
  target: PodStreamTarget,
  options: LogOptions,
): Promise<void> {
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  const head = (): void => {
    if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
  };
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      head();
      if (res.destroyed) return cb();
      res.write(chunk, () => cb());
    },
  });
  await streamer.logs(target, options, out, abort.signal);
  await new Promise<void>((ok) => out.end(ok));
  head();
  res.end();
}

/** The query of pods/NAME/exec as ExecOptions. */
export function execOptions(q: URLSearchParams, pod: KubeObject): ExecOptions {
  const container = containerOf(pod, q.get('container'));
  const command = q.getAll('command');
  if (command.length === 0 || command[0] === '') {
    throw badRequest('you must specify at least one command for the container');
  }
  const options = {
    container,
    command,
    stdin: boolQuery(q, 'stdin'),
    stdout: boolQuery(q, 'stdout'),
    stderr: boolQuery(q, 'stderr'),
    tty: boolQuery(q, 'tty'),
  };
  if (!options.stdin && !options.stdout && !options.stderr) {
    throw badRequest('you must specify at least one of stdin, stdout, stderr');
  }
  if (options.tty && options.stderr)
    throw badRequest('stderr cannot be used with tty (the terminal merges it)');
  const phase = isPlainObject(pod['status']) ? pod['status']['phase'] : undefined;
  if (phase === 'Succeeded' || phase === 'Failed') {
    throw badRequest(`cannot exec into a container in a completed pod; current phase is ${phase}`);
  }
  return options;
}

/** The Status sent on the error channel at the end of an exec. */
export function execStatus(
  result: { exitCode: number } | { error: ApiError },
): Status | Record<string, unknown> {
  if ('error' in result) return result.error.toStatus();
  if (result.exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: exit status ${result.exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(result.exitCode) }] },
  };
}

function asBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data as Buffer[]);
  return Buffer.from(data as ArrayBuffer);
}

/** Runs one exec session on an upgraded WebSocket until the command ends or the client goes away. */
export async function runExecSession(
  ws: WebSocket,
  streamer: PodStreamer,
  target: PodStreamTarget,
  options: ExecOptions,
  log: Logger,
): Promise<void> {
  const v5 = ws.protocol === 'v5.channel.k8s.io';
  const abort = new AbortController();
  ws.once('close', () => abort.abort());
  const stdin = options.stdin ? new PassThrough({ highWaterMark: 64 * 1024 }) : undefined;
  const resize = options.tty ? new LatestQueue<{ width: number; height: number }>() : undefined;
  ws.on('message', (data, isBinary) => {
    const buf = asBuffer(data);
    if (!isBinary || buf.byteLength === 0) return;
    const payload = buf.subarray(1);
    switch (buf[0]) {
      case Channel.stdin:
        if (stdin === undefined || stdin.writableEnded || payload.byteLength === 0) return;
        if (!stdin.write(payload)) {
          ws.pause();
          stdin.once('drain', () => ws.resume());
        }
        return;
      case Channel.resize: {
        let size: unknown;
        try {
          size = JSON.parse(payload.toString('utf8'));
        } catch {
          return;
        }
        if (!isPlainObject(size)) return;
        const width = Number(size['Width']);
        const height = Number(size['Height']);
        if (Number.isFinite(width) && Number.isFinite(height) && width >= 0 && height >= 0) {
          resize?.push({ width, height });
        }
        return;
      }
      case Channel.close:
        if (v5 && payload[0] === Channel.stdin) stdin?.end();
        return;
      default:
        log.debug({ channel: buf[0] }, 'exec message on an unknown channel ignored');
    }
  });
  const writers: Writable[] = [];
  const writer = (channel: number): Writable => {
    const w = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (ws.readyState !== ws.OPEN) return cb();
        ws.send(Buffer.concat([Buffer.of(channel), chunk]), { binary: true }, () => cb());
      },
    });
    writers.push(w);
    return w;
  };
  const io: ExecIO = {
    ...(stdin === undefined ? {} : { stdin }),
    ...(options.stdout ? { stdout: writer(Channel.stdout) } : {}),
    ...(options.stderr ? { stderr: writer(Channel.stderr) } : {}),
    ...(resize === undefined ? {} : { resize }),
  };
  let result: { exitCode: number } | { error: ApiError };
  try {
    result = await streamer.exec(target, options, io, abort.signal);
  } catch (err) {
    result = { error: toApiError(err) };
  }
  resize?.end();
  stdin?.destroy();
  await Promise.all(writers.map((w) => new Promise<void>((ok) => w.end(ok))));
  if (ws.readyState !== ws.OPEN) return;
  ws.send(Buffer.concat([Buffer.of(Channel.error), Buffer.from(JSON.stringify(execStatus(result)))]), {
    binary: true,
  });
  ws.close(1000);
}
