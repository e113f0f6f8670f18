/**
 * What an edge node (user system:node:<name>, group system:nodes) may do on the Kubernetes API, as
 * Kubernetes' Node authorizer allows a kubelet: read its own Node, the pods bound to it and the
 * ConfigMaps/Secrets/ServiceAccounts those pods reference; write its Node's status, its Lease, its pods'
 * status and events; with devices, read the Devices bound to it and their DeviceModels and write those
 * Devices' status. Anything else gets no decision here (and so is denied unless another authorizer allows).
 */
import type { Authorizer, Decision, RequestAttributes } from '../api/auth.ts';
import { deviceNodeName } from '../api/devices.ts';
import type { InformerFactory } from '../client/informer.ts';
import { syncKey } from '../protocol/messages.ts';
import { nodeNameOfUser } from './identity.ts';
import { deviceModelKey, NodeGraph, podNodeName, SYNCED_DEVICES } from './relevance.ts';

const ALLOW: Decision = { allowed: true };

/** Attributes with the request's field selector, when the API server passes it along. */
type WithFieldSelector = RequestAttributes & { readonly fieldSelector?: string };

/**
 * The node authorizer over shared informers (the same pods index the hub uses). `informers` may be a
 * function: the API server needs its authorizers before the in-process cluster (and so the informers)
 * exists; the graph is built on the first node request.
 */
export function nodeAuthorizer(
  options: { informers: InformerFactory | (() => InformerFactory); devices?: boolean } | { graph: NodeGraph },
): Authorizer {
  let built: NodeGraph | undefined = 'graph' in options ? options.graph : undefined;
  const graphOf = (): NodeGraph => {
    if (built === undefined && 'informers' in options) {
      const f = options.informers;
      built = new NodeGraph(typeof f === 'function' ? f() : f, { devices: options.devices === true });
    }
    return built!;
  };
  return async (attrs) => {
    const node = nodeNameOfUser(attrs.user);
    if (node === undefined || !attrs.resourceRequest) return undefined;
    const { verb, group, resource, subresource, namespace, name } = attrs;
    if (group === '' && resource === 'nodes') {
      if (name !== node) return undefined;
      if (subresource === '' && verb === 'get') return ALLOW;
      if (subresource === 'status' && (verb === 'get' || verb === 'update' || verb === 'patch')) return ALLOW;
      return undefined;
    }
    if (group === 'coordination.k8s.io' && resource === 'leases') {
      if (namespace !== 'kube-node-lease') return undefined;
      if (verb === 'create' && subresource === '') return ALLOW;
      return name === node && ['get', 'update', 'patch'].includes(verb) ? ALLOW : undefined;
    }
    if (group === '' && resource === 'events' && subresource === '') {
      return ['create', 'update', 'patch'].includes(verb) ? ALLOW : undefined;
    }
    if (group === '' && resource === 'pods') {
      if ((verb === 'list' || verb === 'watch') && subresource === '' && name === undefined) {
        const fs = (attrs as WithFieldSelector).fieldSelector;
        return fs !== undefined && fieldSelectorIsNode(fs, node) ? ALLOW : undefined;
      }
      if (name === undefined || namespace === undefined) return undefined;
      if (
        !(subresource === '' && verb === 'get') &&
        !(subresource === 'status' && ['get', 'update', 'patch'].includes(verb))
      ) {
        return undefined;
      }
      const graph = graphOf();
      await graph.synced();
      const pod = graph.informers.pods.get(namespace, name);
      return pod !== undefined && podNodeName(pod) === node ? ALLOW : undefined;
    }
    if (group === '' && ['configmaps', 'secrets', 'serviceaccounts'].includes(resource)) {
      if (verb !== 'get' || subresource !== '' || name === undefined || namespace === undefined)
        return undefined;
      const graph = graphOf();
      await graph.synced();
      return graph.referencedBy(syncKey('', resource, namespace, name), node) ? ALLOW : undefined;
    }
    if (group === SYNCED_DEVICES.devices.group && name !== undefined && namespace !== undefined) {
      const graph = graphOf();
      if (graph.devices === undefined) return undefined;
      await graph.synced();
      if (resource === 'devices') {
        const readOnly = subresource === '' && verb === 'get';
        const status = subresource === 'status' && ['get', 'update', 'patch'].includes(verb);
        if (!readOnly && !status) return undefined;
        const device = graph.devices.devices.get(namespace, name);
        return device !== undefined && deviceNodeName(device) === node ? ALLOW : undefined;
      }
      if (resource === 'devicemodels' && subresource === '' && verb === 'get') {
        const key = syncKey(group, resource, namespace, name);
        return graph
          .devicesReferencing(key)
          .some((d) => deviceNodeName(d) === node && deviceModelKey(d) === key)
          ? ALLOW
          : undefined;
      }
    }
    return undefined;
  };
}

/** True when a field selector restricts to spec.nodeName=<node> (other terms may narrow further). */
function fieldSelectorIsNode(selector: string, node: string): boolean {
  return selector
    .split(',')
    .map((t) => t.trim())
    .some((t) => t === `spec.nodeName=${node}` || t === `spec.nodeName==${node}`);
}
