/**
 * A Kubernetes watch over plain HTTP (the agent's node-local API), read line by line. Every event goes
 * to the listener as soon as its line arrives.
 */
import { request } from 'node:http';
import { createInterface } from 'node:readline';

export interface WatchEvent {
  readonly type: string;
  readonly object: Record<string, unknown>;
}

export interface HttpWatch {
  /** Resolves once the response headers arrived (the watch is registered on the server). */
  readonly started: Promise<void>;
  close(): void;
}

/** GETs `url` with watch=true added and calls onEvent for each event line. */
export function httpWatch(url: string, onEvent: (e: WatchEvent) => void): HttpWatch {
  const u = new URL(url);
  u.searchParams.set('watch', 'true');
  const started = Promise.withResolvers<void>();
  const req = request(u, { method: 'GET', headers: { accept: 'application/json' } }, (res) => {
    if (res.statusCode !== 200) {
      started.reject(new Error(`Watch ${u} answered HTTP ${res.statusCode}`));
      res.resume();
      return;
    }
    started.resolve();
    // close() aborts the response on purpose: the stream and the line reader then report an error.
    res.on('error', () => {});
    const lines = createInterface({ input: res });
    lines.on('error', () => {});
    lines.on('line', (line) => {
      if (line.trim() === '') return;
      onEvent(JSON.parse(line) as WatchEvent);
    });
  });
  req.on('error', (err) => started.reject(err));
  req.end();
  return { started: started.promise, close: () => req.destroy() };
}
