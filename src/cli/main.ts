import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../lib/duration.ts';
import { isKedgeError } from '../lib/errors.ts';
import { createRootLogger } from '../lib/log.ts';
import { caHash } from '../lib/pki.ts';
import { TokenStore } from '../lib/tokens.ts';
import { runAgentCommand } from './agent.ts';
import { startServer } from './server.ts';
import { runSimCommand } from './sim.ts';
import { runUpCommand } from './up.ts';

const USAGE = `Usage: kedge <command> [options]

Commands:
  server [--data-dir DIR] [--listen HOST:PORT]   run the control plane (defaults ./.kedge/server, 0.0.0.0:6443)
  token create [--ttl DURATION] [--data-dir DIR] print a new join token (e.g. --ttl 24h)
  agent --server URL [--token T] [--node-name N] [--data-dir DIR] [--node-labels k=v,...]
        [--runtime fake] [--local-api 127.0.0.1:10550|off]    join and run an edge node
        [--mqtt-listen 127.0.0.1:1883|off | --mqtt-broker mqtt://HOST:PORT]   device twins over MQTT
  sim --server URL --token T --nodes N [--name-prefix sim-] [--data-dir DIR] [--concurrency 32]
      [--source-addresses 127.0.0.1-127.0.0.8] [--store memory|file]   N simulated edge nodes (fake runtime)
  up [--data-dir DIR] [--listen HOST:PORT]       the quickstart: a server, a local agent, a demo workload
     [--mqtt-listen HOST:PORT] [--local-api HOST:PORT]                and a demo device
  version                                        print the version
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'server':
      return runServerCommand(rest);
    case 'up':
      return runUpCommand(rest);
    case 'token':
      return tokenCommand(rest);
    case 'agent':
      return runAgentCommand(rest);
    case 'sim':
      return runSimCommand(rest);
    case 'version':
    case '--version':
      console.log('kedge 0.1.0 (Kubernetes API v1.32)');
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`kedge: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

async function runServerCommand(args: string[]): Promise<number> {
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

function tokenCommand(args: string[]): number {
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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isKedgeError(err)) process.stderr.write(`kedge: ${err.message}\n`);
    else if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`kedge: ${err.message}\n\n${USAGE}`);
    } else
      process.stderr.write(`kedge: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
