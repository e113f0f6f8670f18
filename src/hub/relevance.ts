/**
 * Which objects an edge node may see: its Node, the pods bound to it, and the ConfigMaps, Secrets and
 * ServiceAccounts those pods reference; with devices on, the Devices bound to it (spec.nodeName) and the
 * DeviceModels they reference. Kept by indexes on shared informers (pods by node, pods by
 * referenced key), so a change is mapped to the nodes it concerns without rescanning. The hub and the
 * node authorizer both answer from here.
 */
import { DeviceResources, deviceModelName, deviceNodeName } from '../api/devices.ts';
import type { KubeObject } from '../api/meta.ts';
import type { Informer, InformerFactory } from '../client/informer.ts';
import { type ResourceRef, Resources } from '../client/types.ts';
import { type SyncKey, syncKey } from '../protocol/messages.ts';

const POD_NODE_INDEX = 'kedge-hub/node';
const POD_REF_INDEX = 'kedge-hub/ref';
const DEVICE_NODE_INDEX = 'kedge-hub/device-node';
const DEVICE_MODEL_INDEX = 'kedge-hub/device-model';

/** The collections the hub always syncs, each with the informer that caches it (devices: SYNCED_DEVICES). */
export const SYNCED = {
  nodes: Resources.nodes,
  pods: Resources.pods,
  configmaps: Resources.configmaps,
  secrets: Resources.secrets,
  serviceaccounts: Resources.serviceaccounts,
} as const satisfies Record<string, ResourceRef>;
export type SyncedKind = keyof typeof SYNCED;

/** The device collections, synced when the server runs with devices (their CRDs installed). */
export const SYNCED_DEVICES = DeviceResources;

/** Key of the DeviceModel a Device references (same namespace), if any. */
export function deviceModelKey(device: KubeObject): SyncKey | undefined {
  const model = deviceModelName(device);
  if (model === undefined) return undefined;
  const ref = SYNCED_DEVICES.devicemodels;
  return syncKey(ref.group, ref.resource, device.metadata.namespace ?? 'default', model);
}

export function keyOf(ref: ResourceRef, obj: KubeObject): SyncKey {
  return syncKey(ref.group, ref.resource, obj.metadata.namespace, obj.metadata.name ?? '');
}

export function nodeKey(node: string): SyncKey {
  return syncKey('', 'nodes', undefined, node);
}

/** Revision of an object (its resourceVersion as a number; 0 when missing). */
export function revisionOf(obj: KubeObject): number {
  const n = Number(obj.metadata.resourceVersion ?? '0');
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

export function podNodeName(pod: KubeObject): string | undefined {
  const spec = pod['spec'] as { nodeName?: unknown } | undefined;
  return typeof spec?.nodeName === 'string' && spec.nodeName !== '' ? spec.nodeName : undefined;
}

type Loose = Record<string, unknown>;
const asArray = (v: unknown): Loose[] =>
  Array.isArray(v) ? v.filter((x): x is Loose => typeof x === 'object' && x !== null) : [];
const asObj = (v: unknown): Loose | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Loose) : undefined;
const nameIn = (v: unknown, field = 'name'): string | undefined => {
  const n = asObj(v)?.[field];
  return typeof n === 'string' && n !== '' ? n : undefined;
};

/**
 * Keys of the ConfigMaps, Secrets and ServiceAccount a pod references: volumes (configMap, secret,
 * projected sources), env valueFrom, envFrom, imagePullSecrets, and its service account (default
 * 'default', as admission would set it).
 */
export function podReferences(pod: KubeObject): SyncKey[] {
  const ns = pod.metadata.namespace ?? 'default';
  const spec = asObj(pod['spec']) ?? {};
  const out = new Set<SyncKey>();
  const cm = (name: string | undefined): void => {
    if (name !== undefined) out.add(syncKey('', 'configmaps', ns, name));
  };
  const secret = (name: string | undefined): void => {
    if (name !== undefined) out.add(syncKey('', 'secrets', ns, name));
  };
  for (const vol of asArray(spec['volumes'])) {
    cm(nameIn(vol['configMap']));
    secret(nameIn(vol['secret'], 'secretName'));
    for (const src of asArray(asObj(vol['projected'])?.['sources'])) {
      cm(nameIn(src['configMap']));
      secret(nameIn(src['secret']));
    }
  }
  for (const list of ['initContainers', 'containers', 'ephemeralContainers']) {
    for (const c of asArray(spec[list])) {
      for (const env of asArray(c['env'])) {
        const from = asObj(env['valueFrom']);
        cm(nameIn(from?.['configMapKeyRef']));
        secret(nameIn(from?.['secretKeyRef']));
      }
      for (const from of asArray(c['envFrom'])) {
        cm(nameIn(from['configMapRef']));
        secret(nameIn(from['secretRef']));
      }
    }
  }
  for (const ref of asArray(spec['imagePullSecrets'])) secret(nameIn(ref));
  const sa = spec['serviceAccountName'] ?? spec['serviceAccount'];
  out.add(syncKey('', 'serviceaccounts', ns, typeof sa === 'string' && sa !== '' ? sa : 'default'));
  return [...out];
}

const indexed = new WeakSet<Informer>();

/** The relevance graph over shared informers. Construct before the informer factory starts. */
export class NodeGraph {
  readonly informers: { readonly [K in SyncedKind]: Informer };
  /** Device informers, when the graph was built with devices. */
  readonly devices: { readonly devices: Informer; readonly devicemodels: Informer } | undefined;
  readonly #byResource: Map<string, Informer>;

  constructor(factory: InformerFactory, options: { readonly devices?: boolean } = {}) {
    const informers = {
      nodes: factory.informer(SYNCED.nodes),
      pods: factory.informer(SYNCED.pods),
      configmaps: factory.informer(SYNCED.configmaps),
      secrets: factory.informer(SYNCED.secrets),
      serviceaccounts: factory.informer(SYNCED.serviceaccounts),
    };
    this.informers = informers;
    // Shared informers: another NodeGraph (hub and authorizer) may have added the same indexes already.
    if (!indexed.has(informers.pods)) {
      indexed.add(informers.pods);
      informers.pods.addIndex(POD_NODE_INDEX, (pod) => {
        const n = podNodeName(pod);
        return n === undefined ? [] : [n];
      });
      informers.pods.addIndex(POD_REF_INDEX, podReferences);
    }
    if (options.devices === true) {
      const devices = {
        devices: factory.informer(SYNCED_DEVICES.devices),
        devicemodels: factory.informer(SYNCED_DEVICES.devicemodels),
      };
      this.devices = devices;
      if (!indexed.has(devices.devices)) {
        indexed.add(devices.devices);
        devices.devices.addIndex(DEVICE_NODE_INDEX, (d) => {
          const n = deviceNodeName(d);
          return n === undefined ? [] : [n];
        });
        devices.devices.addIndex(DEVICE_MODEL_INDEX, (d) => {
          const k = deviceModelKey(d);
          return k === undefined ? [] : [k];
        });
      }
    } else this.devices = undefined;
    this.#byResource = new Map(this.#all().map((inf) => [`${inf.ref.group}/${inf.ref.resource}`, inf]));
  }

  #all(): Informer[] {
    return [
      ...Object.values(this.informers),
      ...(this.devices === undefined ? [] : Object.values(this.devices)),
    ];
  }

  /** Resolves when every informer the graph reads has listed once. */
  async synced(): Promise<void> {
    await Promise.all(this.#all().map((i) => i.hasSynced()));
  }

  /** Devices bound to `node` (empty without devices). */
  devicesOn(node: string): KubeObject[] {
    return this.devices?.devices.byIndex(DEVICE_NODE_INDEX, node) ?? [];
  }

  /** Devices that reference the DeviceModel with this key. */
  devicesReferencing(modelKey: SyncKey): KubeObject[] {
    return this.devices?.devices.byIndex(DEVICE_MODEL_INDEX, modelKey) ?? [];
  }

  /** Highest revision any of the graph's informers reflects. */
  revision(): number {
    let max = 0;
    for (const inf of this.#all()) {
      const n = Number(inf.resourceVersion);
      if (Number.isSafeInteger(n) && n > max) max = n;
    }
    return max;
  }

  podsOn(node: string): KubeObject[] {
    return this.informers.pods.byIndex(POD_NODE_INDEX, node);
  }

  /** Pods that reference the object with this key (any node). */
  podsReferencing(key: SyncKey): KubeObject[] {
    return this.informers.pods.byIndex(POD_REF_INDEX, key);
  }

  /** True when a pod bound to `node` references `key`. */
  referencedBy(key: SyncKey, node: string): boolean {
    return this.podsReferencing(key).some((p) => podNodeName(p) === node);
  }

  /** The cached object for a key, if the graph syncs its collection. */
  get(key: SyncKey): KubeObject | undefined {
    const parts = key.split('/');
    if (parts.length !== 4) return undefined;
    const [group, resource, ns, name] = parts as [string, string, string, string];
    const inf = this.#byResource.get(`${group === 'core' ? '' : group}/${resource}`);
    return inf?.get(ns === '' ? undefined : ns, name);
  }
}
