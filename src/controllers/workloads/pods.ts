/** Pod ownership and ranking shared by the ReplicaSet and DaemonSet controllers. */
import { cloneJson, type KubeObject, type OwnerReference } from '../../api/meta.ts';
import { type LabelSelector, matchesLabels } from '../../api/selectors.ts';
import { isApiError } from '../../api/status-error.ts';
import { type Cluster, type ResourceRef, Resources } from '../../client/types.ts';
import {
  controllerRef,
  isPodReady,
  labelsOf,
  nameOf,
  namespaceOf,
  newControllerRef,
  type Pod,
  type PodTemplate,
} from './common.ts';

/**
 * Adopt orphans (pods, or a Deployment's ReplicaSets) matching the selector and release owned pods that stopped matching, like
 * client-go's PodControllerRefManager. Returns the pods the owner controls afterwards. `fresh` re-reads
 * the owner before the first adoption: an owner that is being deleted or was replaced adopts nothing.
 */
export async function claimObjects<T extends KubeObject>(
  cluster: Cluster,
  owner: KubeObject,
  ownerRef: { apiVersion: string; kind: string; resource: ResourceRef },
  selector: LabelSelector,
  pods: readonly T[],
  childResource: ResourceRef = Resources.pods,
): Promise<T[]> {
  const claimed: T[] = [];
  let canAdopt: boolean | undefined;
  const uid = owner.metadata.uid;
  for (const pod of pods) {
    const ref = controllerRef(pod);
    const matches = matchesLabels(selector, labelsOf(pod));
    if (ref !== undefined) {
      if (ref.uid !== uid) continue;
      if (matches) claimed.push(pod);
      else if (owner.metadata.deletionTimestamp === undefined)
        await release(cluster, childResource, pod, uid ?? '');
      continue;
    }
    if (
      !matches ||
      owner.metadata.deletionTimestamp !== undefined ||
      pod.metadata.deletionTimestamp !== undefined
    )
      continue;
    if (canAdopt === undefined) {
      try {
        const fresh = await cluster.get(ownerRef.resource, owner.metadata.namespace, nameOf(owner));
        canAdopt = fresh.metadata.uid === uid && fresh.metadata.deletionTimestamp === undefined;
      } catch (err) {
        if (!isApiError(err, 404)) throw err;
        canAdopt = false;
      }
    }
    if (!canAdopt) continue;
    const adopted = await setOwner(cluster, childResource, pod, [
      ...(pod.metadata.ownerReferences ?? []),
      newControllerRef(owner, ownerRef.apiVersion, ownerRef.kind),
    ]);
    if (adopted !== undefined) claimed.push(adopted);
  }
  return claimed;
}

async function release(cluster: Cluster, resource: ResourceRef, pod: KubeObject, uid: string): Promise<void> {
  await setOwner(
    cluster,
    resource,
    pod,
    (pod.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid),
  );
}

/** Replace a pod's owner references, guarded by its resourceVersion; undefined when the pod is gone. */
async function setOwner<T extends KubeObject>(
  cluster: Cluster,
  resource: ResourceRef,
  pod: T,
  refs: OwnerReference[],
): Promise<T | undefined> {
  const next = cloneJson(pod);
  if (refs.length === 0) delete next.metadata.ownerReferences;
  else next.metadata.ownerReferences = refs;
  try {
    return await cluster.update<T>(resource, next);
  } catch (err) {
    if (isApiError(err, 404)) return undefined;
    throw err;
  }
}

/** A new pod from a template: labels, annotations and finalizers copied, owned by `owner`. */
export function podFromTemplate(
  template: PodTemplate | undefined,
  owner: KubeObject,
  ref: OwnerReference,
  extraLabels: Record<string, string> = {},
): Pod {
  const meta = template?.metadata ?? {};
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${nameOf(owner)}-`,
      namespace: namespaceOf(owner),
      labels: { ...(meta.labels ?? {}), ...extraLabels },
      ownerReferences: [ref],
    },
    spec: cloneJson(template?.spec ?? {}),
  };
  if (meta.annotations !== undefined) pod.metadata.annotations = { ...meta.annotations };
  if (meta.finalizers !== undefined) pod.metadata.finalizers = [...meta.finalizers];
  return pod;
}

function phaseRank(pod: Pod): number {
  switch (pod.status?.phase) {
    case 'Pending':
      return 0;
    case 'Unknown':
      return 1;
    case 'Running':
      return 2;
    default:
      return 3;
  }
}

function readySince(pod: Pod): string | undefined {
  const c = pod.status?.conditions?.find((x) => x.type === 'Ready' && x.status === 'True');
  return c?.lastTransitionTime;
}

function restarts(pod: Pod): number {
  let max = 0;
  for (const s of pod.status?.containerStatuses ?? []) max = Math.max(max, s.restartCount ?? 0);
  return max;
}

/**
 * The `count` pods to delete first, in Kubernetes' order: unscheduled before scheduled, pending before
 * running, not ready before ready, pods doubled up on a node (with `related` pods of sibling sets)
 * first, ready for a shorter time first, more restarts first, newer first.
 */
export function podsToDelete(pods: readonly Pod[], related: readonly Pod[], count: number): Pod[] {
  const perNode = new Map<string, number>();
  for (const p of related) {
    const node = p.spec?.nodeName;
    if (node !== undefined && node !== '' && p.metadata.deletionTimestamp === undefined)
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
  }
  const rank = (p: Pod): number => perNode.get(p.spec?.nodeName ?? '') ?? 0;
  const sorted = [...pods].sort((a, b) => {
    const na = a.spec?.nodeName ?? '';
    const nb = b.spec?.nodeName ?? '';
    if ((na === '') !== (nb === '')) return na === '' ? -1 : 1;
    if (phaseRank(a) !== phaseRank(b)) return phaseRank(a) - phaseRank(b);
    if (isPodReady(a) !== isPodReady(b)) return isPodReady(a) ? 1 : -1;
    if (rank(a) !== rank(b)) return rank(b) - rank(a);
    if (isPodReady(a) && isPodReady(b)) {
      const ra = readySince(a) ?? '';
      const rb = readySince(b) ?? '';
      if (ra !== rb) return ra > rb ? -1 : 1;
    }
    if (restarts(a) !== restarts(b)) return restarts(b) - restarts(a);
    const ca = a.metadata.creationTimestamp ?? '';
    const cb = b.metadata.creationTimestamp ?? '';
    if (ca !== cb) return ca > cb ? -1 : 1;
    return 0;
  });
  return sorted.slice(0, Math.max(0, count));
}
