import type { KubeObject } from '../api/meta.ts';
import { isApiError } from '../api/status-error.ts';
import type { Cluster, ResourceRef, UpdateOptions } from './types.ts';

const ATTEMPTS = 5;

/**
 * Read-modify-write through `cluster.modify` when the cluster has it, else get + update with the read
 * resourceVersion as precondition, again on 409 Conflict (up to five attempts). `change` returns undefined to
 * write nothing; the result is then undefined too.
 */
export async function modifyObject<T extends KubeObject = KubeObject>(
  cluster: Cluster,
  ref: ResourceRef,
  namespace: string | undefined,
  name: string,
  change: (current: T) => T | undefined,
  options: UpdateOptions = {},
): Promise<T | undefined> {
  if (cluster.modify !== undefined) return cluster.modify(ref, namespace, name, change, options);
  for (let attempt = 1; ; attempt++) {
    const current = await cluster.get<T>(ref, namespace, name);
    const next = change(current);
    if (next === undefined) return undefined;
    try {
      return await cluster.update(ref, next, options);
    } catch (err) {
      if (!isApiError(err, 409) || attempt >= ATTEMPTS) throw err;
    }
  }
}
