/**
 * A TCP proxy on loopback that counts the bytes it forwards in each direction (for benchmarks: what goes
 * over the wire, TLS records included, TCP/IP headers not). Every accepted connection gets its own
 * upstream connection; when either side ends, both do.
 */
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** Bytes forwarded so far: `up` client → target, `down` target → client. */
export interface ByteCounts {
  up: number;
  down: number;
  connections: number;
}

export interface ByteProxy {
  readonly port: number;
  /** Live counters (they keep growing; take a copy with snapshot()). */
  readonly counts: Readonly<ByteCounts>;
  snapshot(): ByteCounts;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (port 0 picks one) and forwards to targetHost:targetPort. */
export async function startByteProxy(
  targetPort: number,
  targetHost = '127.0.0.1',
  port = 0,
): Promise<ByteProxy> {
  const counts: ByteCounts = { up: 0, down: 0, connections: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    counts.connections++;
    const upstream = createConnection({ host: targetHost, port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d: Buffer) => {
      counts.up += d.byteLength;
      if (!upstream.write(d)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (d: Buffer) => {
      counts.down += d.byteLength;
      if (!client.write(d)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('The byte proxy has no TCP address');
  return {
    port: address.port,
    counts,
    snapshot: () => ({ ...counts }),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The difference between two snapshots. */
export function bytesBetween(before: ByteCounts, after: ByteCounts): ByteCounts {
  return {
    up: after.up - before.up,
    down: after.down - before.down,
    connections: after.connections - before.connections,
  };
}
