/**
 * Node status: capacity, addresses, nodeInfo and the pressure conditions of this machine, sent through the
 * outbox when something other than heartbeat times changed (the hub keeps the node alive from heartbeats).
 */
import { readFileSync, statfsSync } from 'node:fs';
import {
  arch,
  availableParallelism,
  freemem,
  hostname,
  networkInterfaces,
  platform,
  release,
  totalmem,
} from 'node:os';
import { isPlainObject, type KubeObject } from '../api/meta.ts';
import type { Logger } from '../lib/log.ts';
import { syncKey } from '../protocol/messages.ts';
import type { Outbox } from './outbox.ts';

export const KUBELET_VERSION = 'v1.32.0-kedge';
const MAX_PODS = 110;

export interface NodeStatusOptions {
  readonly nodeName: string;
  readonly dataDir: string;
  readonly runtimeVersion: string;
  readonly hostIP: string;
  readonly outbox: Outbox;
  readonly logger: Logger;
  /** How often the machine is looked at; default 10,000 ms. */
  readonly intervalMs?: number;
  /** Local API port shown as daemonEndpoints.kubeletEndpoint (0: none). */
  readonly localApiPort?: number;
  readonly now?: () => Date;
}

/** The first non-internal IPv4 address of the machine, else 127.0.0.1. */
export function defaultHostIP(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function osImage(): string {
  const text = readTrimmed('/etc/os-release') ?? '';
  const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
  return m?.[1] ?? `${platform()} ${release()}`;
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** What the node status is computed from (injectable for tests). */
export interface Machine {
  cpus: number;
  memTotal: number;
  memFree: number;
  diskTotal: number;
  diskFree: number;
}

function lookAtMachine(dataDir: string): Machine {
  let diskTotal = 0;
  let diskFree = 0;
  try {
    const fs = statfsSync(dataDir);
    diskTotal = fs.blocks * fs.bsize;
    diskFree = fs.bavail * fs.bsize;
  } catch {}
  return { cpus: availableParallelism(), memTotal: totalmem(), memFree: freemem(), diskTotal, diskFree };
}

/** The core/v1 NodeStatus of this machine now; transition times carried over from `prev` when unchanged. */
export function collectNodeStatus(
  options: Pick<NodeStatusOptions, 'nodeName' | 'dataDir' | 'runtimeVersion' | 'hostIP' | 'localApiPort'>,
  prev: Record<string, unknown> | undefined,
  now: Date,
  machine: Machine = lookAtMachine(options.dataDir),
): Record<string, unknown> {
  const at = rfc3339(now);
  const prevConditions = (Array.isArray(prev?.['conditions']) ? prev['conditions'] : []).filter(
    isPlainObject,
  );
  const condition = (type: string, status: boolean, reason: string, message: string) => {
    const s = status ? 'True' : 'False';
    const before = prevConditions.find((c) => c['type'] === type);
    const since =
      before?.['status'] === s && typeof before['lastTransitionTime'] === 'string'
        ? before['lastTransitionTime']
        : at;
    return { type, status: s, reason, message, lastHeartbeatTime: at, lastTransitionTime: since };
  };
  const memoryPressure = machine.memTotal > 0 && machine.memFree / machine.memTotal < 0.05;
  const diskPressure = machine.diskTotal > 0 && machine.diskFree / machine.diskTotal < 0.1;
  const resources = {
    cpu: String(machine.cpus),
    memory: `${Math.floor(machine.memTotal / 1024)}Ki`,
    pods: String(MAX_PODS),
    'ephemeral-storage': `${Math.floor(machine.diskTotal / 1024)}Ki`,
  };
  return {
    capacity: resources,
    allocatable: resources,
    addresses: [
      { type: 'InternalIP', address: options.hostIP },
      { type: 'Hostname', address: hostname() },
    ],
    conditions: [
      condition(
        'MemoryPressure',
        memoryPressure,
        memoryPressure ? 'KubeletHasInsufficientMemory' : 'KubeletHasSufficientMemory',
        memoryPressure ? 'less than 5% of memory is free' : 'kedge agent has sufficient memory available',
      ),
      condition(
        'DiskPressure',
        diskPressure,
        diskPressure ? 'KubeletHasDiskPressure' : 'KubeletHasNoDiskPressure',
        diskPressure
          ? 'less than 10% of the data dir file system is free'
          : 'kedge agent has no disk pressure',
      ),
      condition('PIDPressure', false, 'KubeletHasSufficientPID', 'kedge agent has sufficient PID available'),
      condition('Ready', true, 'KubeletReady', 'kedge agent is posting ready status'),
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: options.localApiPort ?? 0 } },
    nodeInfo: {
      machineID: readTrimmed('/etc/machine-id') ?? '',
      systemUUID: readTrimmed('/sys/class/dmi/id/product_uuid') ?? '',
      bootID: readTrimmed('/proc/sys/kernel/random/boot_id') ?? '',
      kernelVersion: release(),
      osImage: osImage(),
      containerRuntimeVersion: options.runtimeVersion,
      kubeletVersion: KUBELET_VERSION,
      kubeProxyVersion: '',
      operatingSystem: platform(),
      architecture: arch() === 'x64' ? 'amd64' : arch(),
    },
  };
}

/** The status without heartbeat times: what decides whether it changed. */
function withoutHeartbeats(status: Record<string, unknown>): string {
  const conditions = (status['conditions'] as Array<Record<string, unknown>>).map(
    ({ lastHeartbeatTime: _h, ...rest }) => rest,
  );
  return JSON.stringify({ ...status, conditions });
}

/** type → status of each condition, for comparing what the server holds with what was reported. */
function conditionStatuses(status: unknown): string {
  const conditions = isPlainObject(status) && Array.isArray(status['conditions']) ? status['conditions'] : [];
  return JSON.stringify(
    conditions
      .filter(isPlainObject)
      .map((c) => `${String(c['type'])}=${String(c['status'])}`)
      .sort(),
  );
}

/**
 * Looks at the machine every interval and enqueues a NodeStatus when it changed. Also watches the Node the
 * hub syncs: when the server holds other conditions than the ones reported (the node lifecycle controller
 * set Ready=Unknown while the node was cut off), the status is reported again, as a kubelet does.
 */
export class NodeStatusReporter {
  readonly #o: NodeStatusOptions;
  #last: Record<string, unknown> | undefined;
  #lastKey = '';
  #timer: NodeJS.Timeout | undefined;
  #off: (() => void) | undefined;

  constructor(options: NodeStatusOptions) {
    this.#o = options;
  }

  start(): void {
    this.check();
    this.#timer = setInterval(() => this.check(), this.#o.intervalMs ?? 10_000);
    this.#timer.unref();
    const key = syncKey('', 'nodes', undefined, this.#o.nodeName);
    this.#off = this.#o.outbox.store.onChange((changes) => {
      for (const c of changes) if (c.key === key && c.type === 'put') this.serverCopy(c.object);
    });
  }

  /** The Node as the server holds it: report again when its conditions are not the ones reported. */
  serverCopy(node: KubeObject): boolean {
    if (this.#last === undefined) return false;
    const held = node['status'];
    if (conditionStatuses(held) === conditionStatuses(this.#last)) return false;
    this.#o.logger.info(
      { server: conditionStatuses(held) },
      'the server holds other node conditions than reported; reporting again',
    );
    // The server's copy is the previous status, so transition times say when the server saw a change.
    if (isPlainObject(held)) this.#last = held;
    this.#lastKey = '';
    return this.check();
  }

  /** Enqueues the status if it changed; returns whether it did. */
  check(machine?: Machine): boolean {
    const status = collectNodeStatus(this.#o, this.#last, this.#o.now?.() ?? new Date(), machine);
    const key = withoutHeartbeats(status);
    if (key === this.#lastKey) return false;
    this.#last = status;
    this.#lastKey = key;
    this.#o.outbox.enqueue({ kind: 'NodeStatus', name: this.#o.nodeName, status });
    return true;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#off?.();
  }
}
