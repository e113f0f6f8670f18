/**
 * The node's MQTT side of the twins: an embedded broker (aedes on a TCP listener, 127.0.0.1:1883 by
 * default) or an external one by URL, and one MQTT client of the agent's on it that subscribes to the twin
 * topics, hands messages to the TwinManager and publishes its results, deltas and documents. One code
 * path for both brokers: the agent is an ordinary MQTT client either way.
 */
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { KedgeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { parseTopic, SUBSCRIPTIONS } from '../../protocol/mqtt.ts';
import type { TwinManager } from './twins.ts';

export interface EmbeddedBroker {
  /** `mqtt://HOST:PORT` */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts aedes on HOST:PORT (port 0 picks a free one). */
export async function startEmbeddedBroker(options: {
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
}): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker({ id: 'kedge-agent' });
  broker.on('clientError', (client, err) =>
    options.logger.debug({ client: client.id, err: err.message }, 'MQTT client error'),
  );
  // No Nagle: twin results and deltas are small messages that must not wait for a delayed ACK (40 ms).
  const server: Server = createServer({ noDelay: true }, broker.handle);
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(options.port, options.host, () => {
        server.off('error', fail);
        ok();
      });
    });
  } catch (err) {
    await new Promise<void>((ok) => broker.close(() => ok()));
    throw new KedgeError(
      'KEDGE_MQTT_BROKER',
      `The embedded MQTT broker cannot listen on ${options.host}:${options.port}: ${(err as Error).message}`,
      { cause: err, context: { host: options.host, port: options.port } },
    );
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `mqtt://${host}:${port}`,
    async close() {
      await new Promise<void>((ok) => broker.close(() => ok()));
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

export interface TwinBusOptions {
  /** `mqtt://HOST:PORT` of the broker. */
  readonly url: string;
  readonly nodeName: string;
  readonly twins: TwinManager;
  readonly logger: Logger;
}

/**
 * The agent's MQTT client: subscribes to the twin topics and answers them. It reconnects by itself (an
 * external broker may come and go); while it is away, twin changes are still stored and reported to the
 * cloud, only the MQTT notifications of that time are not sent.
 */
export class TwinBus {
  readonly #o: TwinBusOptions;
  readonly #log: Logger;
  #client: MqttClient | undefined;
  #offPublisher: (() => void) | undefined;

  constructor(options: TwinBusOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  /**
   * Connects and subscribes. Resolves once subscribed, or after `firstConnectMs` (default 5 s) with a
   * warning while the client keeps retrying: an external broker that is down must not keep the agent
   * (and its pods) from starting.
   */
  async start(firstConnectMs = 5000): Promise<void> {
    const client = mqtt.connect(this.#o.url, {
      clientId: `kedge-agent-${this.#o.nodeName}`,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      clean: true,
    });
    this.#client = client;
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
    client.on('error', (err) =>
      this.#log.warn({ err: err.message, broker: this.#o.url }, 'MQTT client error'),
    );
    client.on('offline', () => this.#log.warn({ broker: this.#o.url }, 'MQTT broker unreachable; retrying'));
    const subscribed = Promise.withResolvers<void>();
    client.on('connect', () => {
      // mqtt.js leaves Nagle on: small results would wait for a delayed ACK (40 ms) before leaving.
      (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      // A clean session: subscribe again on every connect.
      client.subscribe([...SUBSCRIPTIONS], { qos: 1 }, (err) => {
        if (err !== null && err !== undefined) this.#log.error({ err }, 'MQTT subscribe failed');
        else {
          this.#log.info({ broker: this.#o.url }, 'device twins served over MQTT');
          subscribed.resolve();
        }
      });
    });
    this.#offPublisher = this.#o.twins.addPublisher((topic, payload) => {
      if (client.connected) client.publish(topic, payload, { qos: 1 });
    });
    const timer = AbortSignal.timeout(firstConnectMs);
    const timedOut = new Promise<boolean>((ok) => timer.addEventListener('abort', () => ok(true)));
    if (await Promise.race([subscribed.promise.then(() => false), timedOut]))
      this.#log.warn(
        { broker: this.#o.url, waitedMs: firstConnectMs },
        'MQTT broker not reachable yet; the agent runs and keeps retrying',
      );
  }

  async close(): Promise<void> {
    this.#offPublisher?.();
    const c = this.#client;
    this.#client = undefined;
    if (c !== undefined) await c.endAsync();
  }

  #onMessage(topic: string, payload: Buffer): void {
    const t = parseTopic(topic);
    if (t === undefined) return;
    if (t.kind === 'membership-get') {
      this.#o.twins.handleMembershipGet(t.node, payload);
      return;
    }
    if (t.action === 'twin/update' || t.action === 'twin/get' || t.action === 'state/update')
      this.#o.twins.handleDevice(t.namespace, t.name, t.action, payload, t.legacy);
  }
}
