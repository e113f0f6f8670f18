import { Counter, Gauge, Registry } from 'prom-client';

/** The agent's Prometheus metrics, served on the local API port at /metrics. */
export interface AgentMetrics {
  readonly registry: Registry;
  readonly reconnects: Counter;
  readonly appliedBatches: Counter;
  readonly droppedEvents: Counter;
  /** Device twin messages handled, by action (twin/update, state/update, twin/get) and result code. */
  readonly twinMessages: Counter<'action' | 'code'>;
  /** What the gauges read at scrape time; the agent fills these in as its parts start. */
  readonly sources: {
    outboxDepth: () => number;
    /** Milliseconds since the epoch of the last frame or pong from the hub (undefined: never). */
    lastContact: () => number | undefined;
    /** Sync items applied with a revision below the one their key held (must stay 0). */
    outOfOrder: () => number;
    /** Devices bound to this node (twins held). */
    devices: () => number;
  };
}

export function createAgentMetrics(registry: Registry = new Registry()): AgentMetrics {
  const startedAt = Date.now();
  const sources: AgentMetrics['sources'] = {
    outboxDepth: () => 0,
    lastContact: () => undefined,
    outOfOrder: () => 0,
    devices: () => 0,
  };
  new Gauge({
    name: 'kedge_agent_devices',
    help: 'Devices bound to this node (device twins held)',
    registers: [registry],
    collect() {
      this.set(sources.devices());
    },
  });
  new Counter({
    name: 'kedge_agent_out_of_order_total',
    help: 'Sync items applied with a revision below the one their key held (a sync bug if above 0)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.outOfOrder());
    },
  });
  new Gauge({
    name: 'kedge_agent_outbox_depth',
    help: 'Status items waiting in the durable outbox for a status-ack from the hub',
    registers: [registry],
    collect() {
      this.set(sources.outboxDepth());
    },
  });
  new Gauge({
    name: 'kedge_agent_sync_lag_seconds',
    help: 'Seconds since the last frame or pong from the hub (since agent start when there was none)',
    registers: [registry],
    collect() {
      this.set((Date.now() - (sources.lastContact() ?? startedAt)) / 1000);
    },
  });
  return {
    registry,
    sources,
    reconnects: new Counter({
      name: 'kedge_agent_reconnects_total',
      help: 'Connections to the hub that ended and were retried',
      registers: [registry],
    }),
    appliedBatches: new Counter({
      name: 'kedge_agent_applied_batches_total',
      help: 'Sync batches from the hub applied to the local store',
      registers: [registry],
    }),
    twinMessages: new Counter({
      name: 'kedge_agent_twin_messages_total',
      help: 'Device twin messages handled (MQTT and mappers), by action and result code (200 accepted)',
      labelNames: ['action', 'code'] as const,
      registers: [registry],
    }),
    droppedEvents: new Counter({
      name: 'kedge_agent_outbox_dropped_events_total',
      help: 'Events dropped from the outbox because too many were pending',
      registers: [registry],
    }),
  };
}
