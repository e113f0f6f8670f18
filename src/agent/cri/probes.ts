/**
 * Container probes (exec, httpGet, tcpSocket) and lifecycle handlers (preStop), run the kubelet's way:
 * a startup probe gates the other two; liveness and startup failures past the threshold ask the runtime
 * to kill the container; readiness decides the container's `ready`. One worker per running container.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { arr, obj } from './spec.ts';

/** Where a probe or handler runs: the container (exec) and the pod's address (http, tcp). */
export interface ProbeTarget {
  readonly containerId: string;
  readonly podIP: string;
  /** The container's ports, to resolve a named port. */
  readonly ports: readonly Record<string, unknown>[];
  execSync(
    containerId: string,
    cmd: readonly string[],
    timeoutSeconds: number,
  ): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer }>;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly message: string;
}

function portOf(value: unknown, ports: readonly Record<string, unknown>[]): number {
  if (typeof value === 'number') return value;
  const named = ports.find((p) => p['name'] === value);
  if (named !== undefined) return Number(named['containerPort']);
  const n = Number(value);
  if (Number.isInteger(n) && n > 0) return n;
  throw new Error(`port ${JSON.stringify(value)} is not a number or a named port of the container`);
}

function httpGet(
  action: Record<string, unknown>,
  target: ProbeTarget,
  timeoutMs: number,
): Promise<ProbeResult> {
  const port = portOf(action['port'], target.ports);
  const host = typeof action['host'] === 'string' && action['host'] !== '' ? action['host'] : target.podIP;
  const https = action['scheme'] === 'HTTPS';
  const path = typeof action['path'] === 'string' ? action['path'] : '/';
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/1.32', accept: '*/*' };
  for (const h of arr(action['httpHeaders']))
    headers[String(h['name']).toLowerCase()] = String(h['value'] ?? '');
  return new Promise((resolve) => {
    const req = (https ? httpsRequest : httpRequest)(
      { host, port, path, method: 'GET', headers, timeout: timeoutMs, rejectUnauthorized: false },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve({ ok: code >= 200 && code < 400, message: `HTTP probe failed with statuscode: ${code}` });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs}ms`)));
    req.on('error', (err) =>
      resolve({
        ok: false,
        message: `Get "http${https ? 's' : ''}://${host}:${port}${path}": ${err.message}`,
      }),
    );
    req.end();
  });
}

function tcpSocket(
  action: Record<string, unknown>,
  target: ProbeTarget,
  timeoutMs: number,
): Promise<ProbeResult> {
  const port = portOf(action['port'], target.ports);
  const host = typeof action['host'] === 'string' && action['host'] !== '' ? action['host'] : target.podIP;
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ ok: true, message: '' });
    });
    socket.once('timeout', () => socket.destroy(new Error(`timeout after ${timeoutMs}ms`)));
    socket.once('error', (err) =>
      resolve({ ok: false, message: `dial tcp ${host}:${port}: ${err.message}` }),
    );
  });
}

/** Runs one probe or handler action (exec, httpGet, tcpSocket, sleep) once. */
export async function runAction(
  action: Record<string, unknown>,
  target: ProbeTarget,
  timeoutSeconds: number,
): Promise<ProbeResult> {
  const timeoutMs = Math.max(1, timeoutSeconds) * 1000;
  try {
    if (action['exec'] !== undefined) {
      const cmd = (
        Array.isArray(obj(action['exec'])['command']) ? (obj(action['exec'])['command'] as unknown[]) : []
      ).map(String);
      const r = await target.execSync(target.containerId, cmd, Math.max(1, timeoutSeconds));
      const out = `${r.stdout.toString()}${r.stderr.toString()}`.trim().slice(0, 1024);
      return {
        ok: r.exitCode === 0,
        message: `command ${JSON.stringify(cmd)} exited with ${r.exitCode}${out === '' ? '' : `: ${out}`}`,
      };
    }
    if (action['httpGet'] !== undefined) return await httpGet(obj(action['httpGet']), target, timeoutMs);
    if (action['tcpSocket'] !== undefined)
      return await tcpSocket(obj(action['tcpSocket']), target, timeoutMs);
    if (action['sleep'] !== undefined) {
      const seconds = Number(obj(action['sleep'])['seconds'] ?? 0);
      await new Promise((r) => setTimeout(r, Math.min(seconds, timeoutSeconds) * 1000));
      return { ok: true, message: '' };
    }
    return { ok: false, message: 'the probe has no exec, httpGet, tcpSocket or sleep action' };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

export type ProbeKind = 'startup' | 'liveness' | 'readiness';

export interface ProbeEvents {
  /** `ready` or `started` changed. */
  changed(): void;
  /** A probe failed (for an Unhealthy event); `fatal`: liveness/startup past the threshold, kill the container. */
  failed(kind: ProbeKind, message: string, fatal: boolean): void;
}

interface ProbeSettings {
  readonly action: Record<string, unknown>;
  readonly initialDelayMs: number;
  readonly periodMs: number;
  readonly timeoutSeconds: number;
  readonly successThreshold: number;
  readonly failureThreshold: number;
}

function settings(probe: unknown): ProbeSettings | undefined {
  if (probe === undefined || probe === null) return undefined;
  const p = obj(probe);
  const n = (k: string, d: number, min: number): number => {
    const v = p[k];
    return typeof v === 'number' && Number.isFinite(v) ? Math.max(min, v) : d;
  };
  return {
    action: p,
    initialDelayMs: n('initialDelaySeconds', 0, 0) * 1000,
    periodMs: n('periodSeconds', 10, 1) * 1000,
    timeoutSeconds: n('timeoutSeconds', 1, 1),
    successThreshold: n('successThreshold', 1, 1),
    failureThreshold: n('failureThreshold', 3, 1),
  };
}

/** The probes of one running container. */
export class ContainerProber {
  #started: boolean;
  #ready: boolean;
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;
  readonly #target: ProbeTarget;
  readonly #events: ProbeEvents;
  readonly #probes: Partial<Record<ProbeKind, ProbeSettings>>;

  /** `startedAtMs`: when the container started (initial delays count from there, also after an agent restart). */
  constructor(
    container: Record<string, unknown>,
    target: ProbeTarget,
    startedAtMs: number,
    events: ProbeEvents,
  ) {
    this.#target = target;
    this.#events = events;
    const startup = settings(container['startupProbe']);
    const liveness = settings(container['livenessProbe']);
    const readiness = settings(container['readinessProbe']);
    this.#probes = {
      ...(startup === undefined ? {} : { startup }),
      ...(liveness === undefined ? {} : { liveness }),
      ...(readiness === undefined ? {} : { readiness }),
    };
    this.#started = startup === undefined;
    this.#ready = readiness === undefined;
    const since = Date.now() - startedAtMs;
    for (const kind of ['startup', 'liveness', 'readiness'] as const) {
      const s = this.#probes[kind];
      if (s !== undefined) this.#schedule(kind, s, Math.max(0, s.initialDelayMs - since), { ok: 0, fail: 0 });
    }
  }

  /** The startup probe passed (or there is none). */
  get started(): boolean {
    return this.#started;
  }

  /** Started and the readiness probe passed (or there is none). */
  get ready(): boolean {
    return this.#started && this.#ready;
  }

  #schedule(kind: ProbeKind, s: ProbeSettings, delayMs: number, counts: { ok: number; fail: number }): void {
    if (this.#stopped) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      void this.#tick(kind, s, counts);
    }, delayMs);
    t.unref();
    this.#timers.add(t);
  }

  async #tick(kind: ProbeKind, s: ProbeSettings, counts: { ok: number; fail: number }): Promise<void> {
    if (this.#stopped) return;
    // Liveness and readiness wait for the startup probe.
    if (kind !== 'startup' && !this.#started) {
      this.#schedule(kind, s, s.periodMs, counts);
      return;
    }
    const r = await runAction(s.action, this.#target, s.timeoutSeconds);
    if (this.#stopped) return;
    if (r.ok) {
      counts.ok++;
      counts.fail = 0;
    } else {
      counts.fail++;
      counts.ok = 0;
    }
    if (kind === 'startup') {
      if (counts.ok >= 1) {
        this.#started = true;
        this.#events.changed();
        return; // the startup probe stops once it passed
      }
      if (!r.ok) this.#events.failed(kind, r.message, counts.fail >= s.failureThreshold);
      if (counts.fail >= s.failureThreshold) return;
    } else if (kind === 'liveness') {
      if (!r.ok) {
        const fatal = counts.fail >= s.failureThreshold;
        this.#events.failed(kind, r.message, fatal);
        if (fatal) return;
      }
    } else {
      const before = this.#ready;
      if (r.ok && counts.ok >= s.successThreshold) this.#ready = true;
      if (!r.ok && counts.fail >= s.failureThreshold) this.#ready = false;
      if (!r.ok) this.#events.failed(kind, r.message, false);
      if (before !== this.#ready) this.#events.changed();
    }
    this.#schedule(kind, s, s.periodMs, counts);
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
