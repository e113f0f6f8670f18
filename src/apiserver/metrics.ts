import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Store } from '../store/types.ts';

/** The API server's Prometheus metrics (names prefixed kedge_). */
export interface ApiMetrics {
  observeRequest(labels: { verb: string; resource: string; code: string }, seconds: number): void;
  watchStarted(resource: string): void;
  watchEnded(resource: string): void;
}

export function createApiMetrics(registry: Registry, store: Store): ApiMetrics {
  const duration = new Histogram({
    name: 'kedge_api_request_duration_seconds',
    help: 'API request latency by verb, resource and HTTP code (watches excluded).',
    labelNames: ['verb', 'resource', 'code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const requests = new Counter({
    name: 'kedge_api_requests_total',
    help: 'API requests by verb, resource and HTTP code.',
    labelNames: ['verb', 'resource', 'code'],
    registers: [registry],
  });
  const watches = new Gauge({
    name: 'kedge_api_watches',
    help: 'Watches currently open, by resource.',
    labelNames: ['resource'],
    registers: [registry],
  });
  new Gauge({
    name: 'kedge_store_revision',
    help: 'Latest revision of the object store.',
    registers: [registry],
    collect() {
      this.set(store.currentRevision());
    },
  });
  new Gauge({
    name: 'kedge_store_compacted_revision',
    help: 'Revisions at or below this one have been compacted away.',
    registers: [registry],
    collect() {
      this.set(store.compactedRevision());
    },
  });
  return {
    observeRequest(labels, seconds) {
      duration.observe(labels, seconds);
      requests.inc(labels);
    },
    watchStarted(resource) {
      watches.inc({ resource });
    },
    watchEnded(resource) {
      watches.dec({ resource });
    },
  };
}
