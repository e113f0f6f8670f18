import type { KubeObject } from '../../src/api/meta.ts';
import type { Cluster, ResourceRef } from '../../src/client/types.ts';

/**
 * Every object of a list, page by page (5,000 at a time); `onPage` sees each page's list metadata (the first
 * page's resourceVersion is the snapshot the whole list was read at).
 */
export async function listAll(
  api: Cluster,
  ref: ResourceRef,
  options: { namespace?: string; labelSelector?: string } = {},
  onFirstPage?: (resourceVersion: string | undefined) => void,
): Promise<KubeObject[]> {
  const items: KubeObject[] = [];
  let cont: string | undefined;
  do {
    const page = await api.list(ref, {
      ...options,
      limit: 5000,
      ...(cont === undefined ? {} : { continue: cont }),
    });
    if (cont === undefined) onFirstPage?.(page.metadata?.resourceVersion);
    items.push(...page.items);
    cont = page.metadata?.continue || undefined;
  } while (cont !== undefined);
  return items;
}
