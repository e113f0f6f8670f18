// Each command's module is imported only when it runs: an agent must not pay (in memory and start time) for
// the server's API layer, controllers and hub.
import { isKedgeError } from '../lib/errors.ts';

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
      return (await import('./server-command.ts')).runServerCommand(rest);
    case 'up':
      return (await import('./up.ts')).runUpCommand(rest);
    case 'token':
      return (await import('./server-command.ts')).tokenCommand(rest);
    case 'agent':
      return (await import('./agent.ts')).runAgentCommand(rest);
    case 'sim':
      return (await import('./sim.ts')).runSimCommand(rest);
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
