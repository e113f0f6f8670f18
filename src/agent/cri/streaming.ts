/**
 * StreamingRuntime over CRI (containerd): `kubectl logs` from the CRI log files, `kubectl exec` through
 * the CRI Exec RPC and the runtime's streaming server.
 *
 * Logs: the sandbox's log directory is `<data dir>/pods/<ns>_<name>_<uid>`, each container attempt writes
 * `<container>/<attempt>.log` in the CRI format, one line per write: `TIMESTAMP STREAM P|F MESSAGE`
 * (P: partial, continued on the next line; F: full, ends a line). The newest attempt is the current log,
 * the one before it `--previous`.
 *
 * Exec: Exec answers a URL on containerd's streaming server, the kubelet streaming library, which speaks
 * SPDY/3.1 and the WebSocket channel protocols up to v4.channel.k8s.io (channel byte 0 stdin, 1 stdout,
 * 2 stderr, 3 error Status, 4 resize). WebSocket v4 has no way to close stdin alone (v5's close channel is
 * an API server feature, translated to SPDY there), and tar (`kubectl cp` into a pod) reads to the end of
 * its input: so an exec with stdin goes over SPDY (spdy.ts, FIN on stdin), one without over WebSocket.
 */
import { once } from 'node:events';
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { KedgeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { StreamErrorReason } from '../../protocol/messages.ts';
import type { ExecIO, ExecOptions, LogOptions, PodRef, StreamingRuntime } from '../runtime.ts';
import type { ContainerStatus, CriClient } from './client.ts';
import { connectSpdy } from './spdy.ts';
import { LABEL_CONTAINER_NAME, LABEL_POD_UID, podLogDirName } from './spec.ts';

export interface CriStreamingOptions {
  readonly client: CriClient;
  /** The agent's data dir (logs under `pods/`). */
  readonly dataDir: string;
  readonly logger: Logger;
  /** How often a followed log checks whether its container still runs; default 1,000 ms. */
  readonly followCheckMs?: number;
}

function streamError(reason: StreamErrorReason, message: string): KedgeError {
  return new KedgeError('KEDGE_AGENT_STREAM', message, { context: { reason } });
}

/** One log line of the CRI format, partial lines not yet joined. */
export interface CriLogLine {
  readonly time: string;
  readonly stream: 'stdout' | 'stderr';
  readonly partial: boolean;
  readonly message: Buffer;
}

/** Parses one line (without its newline) of a CRI log file; undefined for a malformed line. */
export function parseCriLogLine(line: Buffer): CriLogLine | undefined {
  const s1 = line.indexOf(0x20);
  const s2 = s1 < 0 ? -1 : line.indexOf(0x20, s1 + 1);
  if (s2 < 0) return undefined;
  const s3 = line.indexOf(0x20, s2 + 1);
  const time = line.subarray(0, s1).toString('latin1');
  const stream = line.subarray(s1 + 1, s2).toString('latin1');
  const tag = line.subarray(s2 + 1, s3 < 0 ? line.length : s3).toString('latin1');
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  if (Number.isNaN(Date.parse(time))) return undefined;
  // The tag is `P` or `F`, possibly with more fields after a colon.
  const partial = tag.split(':')[0] === 'P';
  if (!partial && tag.split(':')[0] !== 'F') return undefined;
  return { time, stream, partial, message: s3 < 0 ? Buffer.alloc(0) : line.subarray(s3 + 1) };
}

/** Nanosecond RFC 3339 times compare as text once the fraction is padded; Date.parse is enough for `since`. */
function timeMs(time: string): number {
  return Date.parse(time);
}

/**
 * Turns CRI log bytes into `kubectl logs` output with the options: joins partial lines, filters by time,
 * prefixes timestamps, keeps at most `limitBytes`. Feed it chunks; it keeps an incomplete trailing line.
 */
export class CriLogDecoder {
  readonly #o: Pick<LogOptions, 'timestamps' | 'since'>;
  #rest: Buffer = Buffer.alloc(0);
  #partial: { time: string; parts: Buffer[] } | undefined;

  constructor(options: Pick<LogOptions, 'timestamps' | 'since'>) {
    this.#o = options;
  }

  /** Complete output lines (each ending with a newline) in this chunk. */
  push(chunk: Buffer): Buffer[] {
    const data = this.#rest.byteLength === 0 ? chunk : Buffer.concat([this.#rest, chunk]);
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl < 0) break;
      const line = parseCriLogLine(data.subarray(start, nl));
      start = nl + 1;
      if (line === undefined) continue;
      if (line.partial) {
        this.#partial ??= { time: line.time, parts: [] };
        this.#partial.parts.push(line.message);
        continue;
      }
      const time = this.#partial?.time ?? line.time;
      const message =
        this.#partial === undefined ? line.message : Buffer.concat([...this.#partial.parts, line.message]);
      this.#partial = undefined;
      if (this.#o.since !== undefined && timeMs(time) < this.#o.since.getTime()) continue;
      out.push(
        Buffer.concat([...(this.#o.timestamps ? [Buffer.from(`${time} `)] : []), message, Buffer.from('\n')]),
      );
    }
    this.#rest = Buffer.from(data.subarray(start));
    return out;
  }
}

async function write(out: NodeJS.WritableStream, buf: Buffer, signal: AbortSignal): Promise<void> {
  if (out.write(buf)) return;
  await Promise.race([once(out as NodeJS.EventEmitter, 'drain'), once(signal, 'abort')]).catch(() => {});
}

/** Reads backwards from the end until the last `lines` complete lines of the file are in hand; their offset. */
async function tailOffset(fh: FileHandle, size: number, lines: number, options: LogOptions): Promise<number> {
  if (lines === 0) return size;
  const block = 64 * 1024;
  let pos = size;
  for (;;) {
    const from = Math.max(0, pos - block);
    pos = from;
    // Count output lines from `from` (after the first newline, unless at the start) to the end.
    const len = size - from;
    const buf = Buffer.allocUnsafe(len);
    await fh.read(buf, 0, len, from);
    const first = from === 0 ? -1 : buf.indexOf(0x0a);
    const decoder = new CriLogDecoder({
      timestamps: false,
      ...(options.since === undefined ? {} : { since: options.since }),
    });
    const got = decoder.push(buf.subarray(first + 1)).length;
    if (got > lines) {
      // Walk forward over the surplus lines.
      let skip = got - lines;
      let offset = first + 1;
      const d = new CriLogDecoder({ timestamps: false });
      while (skip > 0) {
        const nl = buf.indexOf(0x0a, offset);
        if (nl < 0) break;
        if (d.push(buf.subarray(offset, nl + 1)).length > 0) skip--;
        offset = nl + 1;
      }
      return from + offset;
    }
    if (got === lines || from === 0) return from + first + 1;
  }
}

export class CriStreaming implements StreamingRuntime {
  readonly #o: CriStreamingOptions;
  readonly #log: Logger;

  constructor(options: CriStreamingOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  /** The attempts of a container, newest first. */
  async #attempts(pod: PodRef, container: string): Promise<ContainerStatus[]> {
    const list = await this.#o.client.listContainers({
      labelSelector: { [LABEL_POD_UID]: pod.uid, [LABEL_CONTAINER_NAME]: container },
    });
    const statuses: ContainerStatus[] = [];
    for (const c of list) {
      try {
        statuses.push(await this.#o.client.containerStatus(c.id));
      } catch {}
    }
    return statuses.sort((a, b) => (b.metadata?.attempt ?? 0) - (a.metadata?.attempt ?? 0));
  }

  /** Log files of a container by attempt, newest first. */
  async #logFiles(pod: PodRef, container: string): Promise<Array<{ attempt: number; path: string }>> {
    const dir = join(this.#o.dataDir, 'pods', podLogDirName(pod), container);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    return names
      .map((n) => /^(\d+)\.log$/.exec(n))
      .filter((m) => m !== null)
      .map((m) => ({ attempt: Number(m[1]), path: join(dir, m[0]) }))
      .sort((a, b) => b.attempt - a.attempt);
  }

  async logs(
    pod: PodRef,
    options: LogOptions,
    out: NodeJS.WritableStream,
    signal: AbortSignal,
  ): Promise<void> {
    const files = await this.#logFiles(pod, options.container);
    const attempts = await this.#attempts(pod, options.container);
    const current = attempts[0];
    const currentAttempt = current?.metadata?.attempt ?? files[0]?.attempt;
    let file: { attempt: number; path: string } | undefined;
    if (options.previous) {
      file = files.find((f) => currentAttempt === undefined || f.attempt < currentAttempt);
      if (file === undefined) {
        throw streamError(
          'BadRequest',
          `previous terminated container "${options.container}" in pod "${pod.name}" not found`,
        );
      }
    } else {
      file = files.find((f) => f.attempt === currentAttempt) ?? files[0];
      if (file === undefined) {
        const waiting = current === undefined ? 'has not started' : 'has no log yet';
        throw streamError('BadRequest', `container "${options.container}" in pod "${pod.name}" ${waiting}`);
      }
    }
    const follow = options.follow && !options.previous && current?.state === 'CONTAINER_RUNNING';
    const fh = await open(file.path, 'r');
    try {
      // Without --follow the answer is the file as it was when asked: `--tail=2` gives two lines even while the
      // container writes a third.
      const size = (await fh.stat()).size;
      const end = follow ? Number.POSITIVE_INFINITY : size;
      let pos = options.tailLines === undefined ? 0 : await tailOffset(fh, size, options.tailLines, options);
      const decoder = new CriLogDecoder(options);
      let budget = options.limitBytes ?? Number.POSITIVE_INFINITY;
      const buf = Buffer.allocUnsafe(64 * 1024);
      let lastCheck = Date.now();
      const checkMs = this.#o.followCheckMs ?? 1000;
      for (;;) {
        if (signal.aborted) return;
        const want = Math.min(buf.byteLength, end - pos);
        const { bytesRead } = want > 0 ? await fh.read(buf, 0, want, pos) : { bytesRead: 0 };
        if (bytesRead > 0) {
          pos += bytesRead;
          for (const line of decoder.push(buf.subarray(0, bytesRead))) {
            const piece = line.byteLength > budget ? line.subarray(0, budget) : line;
            await write(out, piece, signal);
            budget -= piece.byteLength;
            if (budget <= 0 || signal.aborted) return;
          }
          continue;
        }
        if (!follow) return;
        // At the end of the file: wait for growth, and end once the container no longer runs.
        if (Date.now() - lastCheck >= checkMs) {
          lastCheck = Date.now();
          const now = current === undefined ? undefined : await this.#status(current.id);
          if (now?.state !== 'CONTAINER_RUNNING') {
            if ((await stat(file.path)).size > pos) continue;
            return;
          }
        }
        await sleep(100, undefined, { signal }).catch(() => {});
      }
    } finally {
      await fh.close();
    }
  }

  async #status(id: string): Promise<ContainerStatus | undefined> {
    try {
      return await this.#o.client.containerStatus(id);
    } catch {
      return undefined;
    }
  }

  async exec(
    pod: PodRef,
    options: ExecOptions,
    io: ExecIO,
    signal: AbortSignal,
  ): Promise<{ exitCode: number }> {
    const current = (await this.#attempts(pod, options.container))[0];
    if (current?.state !== 'CONTAINER_RUNNING') {
      throw streamError('BadRequest', `container ${options.container} is not running in pod ${pod.name}`);
    }
    const url = await this.#o.client.exec(current.id, options.command, {
      tty: options.tty,
      stdin: options.stdin,
      stdout: options.stdout,
      stderr: options.stderr && !options.tty,
    });
    // stdin needs its end to reach the process (tar in `kubectl cp`): only SPDY can say so to this server.
    if (io.stdin !== undefined) return this.#spdy(url, options, io, signal);
    return this.#stream(url, io, signal);
  }

  /** One session over SPDY/3.1 (remote command v4): a stream per channel, FIN on stdin at its end. */
  async #spdy(
    url: string,
    options: ExecOptions,
    io: ExecIO,
    signal: AbortSignal,
  ): Promise<{ exitCode: number }> {
    const ids = new Map<number, NodeJS.WritableStream | 'error'>();
    let status = '';
    const ended = Promise.withResolvers<Error | undefined>();
    const conn = await connectSpdy(url, ['v4.channel.k8s.io'], {
      data: (id, data) => {
        const sink = ids.get(id);
        if (sink === 'error') status += data.toString('utf8');
        else if (sink !== undefined && !sink.write(data)) {
          conn.pause();
          (sink as NodeJS.EventEmitter).once('drain', () => conn.resume());
        }
      },
      closed: () => {},
      end: (err) => ended.resolve(err),
    });
    const onAbort = (): void => conn.close();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const want: Array<[string, NodeJS.WritableStream | 'error' | undefined]> = [['error', 'error']];
      if (options.stdin) want.push(['stdin', undefined]);
      if (options.stdout) want.push(['stdout', io.stdout]);
      if (options.stderr && !options.tty) want.push(['stderr', io.stderr]);
      if (options.tty) want.push(['resize', undefined]);
      const opened = await Promise.all(want.map(([type]) => conn.open({ streamtype: type })));
      const byType = new Map(want.map(([type], i) => [type, opened[i]!]));
      for (const [i, [, sink]] of want.entries()) if (sink !== undefined) ids.set(opened[i]!.id, sink);
      const stdinStream = byType.get('stdin');
      if (stdinStream !== undefined && io.stdin !== undefined) {
        const input = io.stdin;
        void (async () => {
          try {
            for await (const chunk of input as AsyncIterable<Buffer>) await stdinStream.write(chunk);
          } catch {}
          stdinStream.end();
        })();
      }
      const resizeStream = byType.get('resize');
      if (resizeStream !== undefined && io.resize !== undefined) {
        const sizes = io.resize;
        void (async () => {
          for await (const { width, height } of sizes) {
            await resizeStream.write(Buffer.from(JSON.stringify({ Width: width, Height: height })));
          }
        })().catch(() => {});
      }
      const err = await ended.promise;
      if (signal.aborted) return { exitCode: 130 };
      if (status === '' && err !== undefined) {
        this.#log.debug({ err }, 'exec connection to the runtime failed');
        throw new KedgeError('KEDGE_AGENT_RUNTIME', `The exec stream failed: ${err.message}`, { cause: err });
      }
      let parsed: unknown;
      try {
        parsed = status === '' ? undefined : JSON.parse(status);
      } catch {
        parsed = { status: 'Failure', message: status };
      }
      return { exitCode: exitCodeOf(parsed) };
    } finally {
      signal.removeEventListener('abort', onAbort);
      conn.close();
    }
  }

  /** One session with the runtime's streaming server (WebSocket, v4.channel.k8s.io). */
  async #stream(url: string, io: ExecIO, signal: AbortSignal): Promise<{ exitCode: number }> {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), ['v4.channel.k8s.io'], { perMessageDeflate: false });
    const { promise, resolve, reject } = Promise.withResolvers<{ exitCode: number }>();
    let status: unknown;
    const onAbort = (): void => ws.terminate();
    signal.addEventListener('abort', onAbort, { once: true });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      reject(
        new KedgeError(
          'KEDGE_AGENT_RUNTIME',
          `The runtime's streaming server answered HTTP ${res.statusCode}`,
        ),
      );
    });
    ws.on('error', (err) =>
      reject(new KedgeError('KEDGE_AGENT_RUNTIME', `The exec stream failed: ${err.message}`, { cause: err })),
    );
    ws.on('open', () => {
      if (io.stdin !== undefined) void pumpStdin(ws, io.stdin);
      if (io.resize !== undefined) void pumpResize(ws, io.resize);
    });
    ws.on('message', (data: Buffer) => {
      if (data.byteLength === 0) return;
      const payload = data.subarray(1);
      const sink = data[0] === 1 ? io.stdout : data[0] === 2 ? io.stderr : undefined;
      if (sink !== undefined && payload.byteLength > 0) {
        if (!sink.write(Buffer.from(payload))) {
          ws.pause();
          (sink as NodeJS.EventEmitter).once('drain', () => ws.resume());
        }
      } else if (data[0] === 3) {
        try {
          status = JSON.parse(payload.toString('utf8'));
        } catch {
          status = { status: 'Failure', message: payload.toString('utf8') };
        }
      }
    });
    ws.on('close', () => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) return resolve({ exitCode: 130 });
      try {
        resolve({ exitCode: exitCodeOf(status) });
      } catch (err) {
        reject(err);
      }
    });
    return promise;
  }
}

/** The exit code a v4 error-channel Status means. */
export function exitCodeOf(status: unknown): number {
  if (status === undefined) return 0;
  const s = status as {
    status?: string;
    reason?: string;
    message?: string;
    details?: { causes?: Array<{ reason?: string; message?: string }> };
  };
  if (s.status === 'Success') return 0;
  if (s.reason === 'NonZeroExitCode') {
    const cause = s.details?.causes?.find((c) => c.reason === 'ExitCode');
    const code = Number(cause?.message);
    if (Number.isInteger(code)) return code;
  }
  throw streamError('InternalError', `exec failed in the runtime: ${s.message ?? JSON.stringify(status)}`);
}

async function pumpStdin(ws: WebSocket, stdin: NodeJS.ReadableStream): Promise<void> {
  try {
    for await (const chunk of stdin as AsyncIterable<Buffer>) {
      if (ws.readyState !== WebSocket.OPEN) return;
      await new Promise<void>((ok) => ws.send(Buffer.concat([Buffer.of(0), chunk]), () => ok()));
    }
  } catch {}
}

async function pumpResize(
  ws: WebSocket,
  sizes: AsyncIterable<{ width: number; height: number }>,
): Promise<void> {
  try {
    for await (const { width, height } of sizes) {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(Buffer.concat([Buffer.of(4), Buffer.from(JSON.stringify({ Width: width, Height: height }))]));
    }
  } catch {}
}
