/**
 * The `fake` runtime: every pod goes Running with ready containers and a pod IP at once, and nothing runs.
 * For simulation (`kedge sim`) and tests. It says so in its log once, so nobody mistakes it for a real one.
 * Pod IPs come from 10.88.0.0/16, derived from the uid, so a pod keeps its IP across agent restarts.
 */
import { createHash } from 'node:crypto';
import { isPlainObject, type KubeObject } from '../api/meta.ts';
import type { Logger } from '../lib/log.ts';
import type { PodContext, PodRef, PodRuntime, RuntimeContainer, RuntimePod } from './runtime.ts';

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function podIpFor(uid: string): string {
  const h = createHash('sha256').update(uid).digest();
  const a = h[0] ?? 0;
  const b = Math.min(Math.max(h[1] ?? 2, 2), 254);
  return `10.88.${a}.${b}`;
}

export class FakeRuntime implements PodRuntime {
  readonly name = 'fake';
  readonly version = 'fake://0.1';
  readonly #pods = new Map<string, RuntimePod>();
  readonly #now: () => Date;

  constructor(options: { logger: Logger; now?: () => Date }) {
    this.#now = options.now ?? (() => new Date());
    options.logger.warn(
      { runtime: 'fake' },
      'the fake runtime marks pods Running without running anything (simulation and tests only)',
    );
  }

  async sync(pod: KubeObject, _context?: PodContext): Promise<RuntimePod> {
    const uid = pod.metadata.uid ?? '';
    const existing = this.#pods.get(uid);
    if (existing !== undefined) return existing;
    const startedAt = rfc3339(this.#now());
    const spec = isPlainObject(pod['spec']) ? pod['spec'] : {};
    const containers: RuntimeContainer[] = (Array.isArray(spec['containers']) ? spec['containers'] : [])
      .filter(isPlainObject)
      .map((c) => {
        const name = String(c['name'] ?? '');
        const image = String(c['image'] ?? '');
        return {
          name,
          image,
          imageID: `fake://sha256:${createHash('sha256').update(image).digest('hex')}`,
          containerID: `fake://${uid}/${name}`,
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt } },
        };
      });
    const running: RuntimePod = {
      uid,
      namespace: pod.metadata.namespace ?? '',
      name: pod.metadata.name ?? '',
      podIP: podIpFor(uid),
      startedAt,
      containers,
    };
    this.#pods.set(uid, running);
    return running;
  }

  async stop(pod: PodRef, _gracePeriodSeconds: number): Promise<void> {
    this.#pods.delete(pod.uid);
  }

  async status(uid: string): Promise<RuntimePod | undefined> {
    return this.#pods.get(uid);
  }

  async list(): Promise<RuntimePod[]> {
    return [...this.#pods.values()];
  }

  async close(): Promise<void> {}
}
