/**
 * `kedge server` and `kedge token`: the server-side commands. Loaded by main.ts only when one of them runs, so
 * an agent process never loads the API server, the controllers or the hub.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../lib/duration.ts';
import { createRootLogger } from '../lib/log.ts';
import { caHash } from '../lib/pki.ts';
import { TokenStore } from '../lib/tokens.ts';
import { startServer } from './server.ts';

export async function runServerCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'data-dir': { type: 'string' }, listen: { type: 'string' } },
    strict: true,
  });
  const logger = createRootLogger();
  const server = await startServer({
    logger,
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.listen === undefined ? {} : { listen: values.listen }),
  });
  const stop = Promise.withResolvers<void>();
  process.once('SIGINT', () => stop.resolve());
  process.once('SIGTERM', () => stop.resolve());
  await stop.promise;
  logger.info('shutting down');
  await server.close();
  logger.info('stopped');
  return 0;
}

export function tokenCommand(args: string[]): number {
  const [sub, ...rest] = args;
  if (sub !== 'create') {
    process.stderr.write('Usage: kedge token create [--ttl DURATION] [--data-dir DIR]\n');
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: { ttl: { type: 'string' }, 'data-dir': { type: 'string' }, description: { type: 'string' } },
    strict: true,
  });
  const dataDir = resolve(values['data-dir'] ?? process.env['KEDGE_DATA_DIR'] ?? '.kedge/server');
  const ca = readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
  const tokens = new TokenStore({ path: join(dataDir, 'tokens.db'), caHash: caHash(ca) });
  try {
    const ttl = values.ttl === undefined ? undefined : parseDuration(values.ttl, '--ttl');
    const created = tokens.create({
      ...(ttl === undefined ? {} : { ttlSeconds: Math.ceil(ttl / 1000) }),
      ...(values.description === undefined ? {} : { description: values.description }),
    });
    console.log(created.token);
    return 0;
  } finally {
    tokens.close();
  }
}
