/** core/v1 Events the agent records about its pods (sent through the outbox; the hub writes them). */
import type { PodRef } from './runtime.ts';

let seq = 0;

/** A core/v1 Event about a pod, as the kubelet writes them (source: the node). */
export function podEvent(
  nodeName: string,
  pod: PodRef,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  fieldPath?: string,
  now = new Date(),
): Record<string, unknown> {
  const at = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  // A name unique per event, so a resend after a reconnect is recognised (409) instead of doubled.
  const name = `${pod.name}.${now.getTime().toString(16)}${(seq++ % 4096).toString(16).padStart(3, '0')}`;
  return {
    metadata: { name, namespace: pod.namespace },
    involvedObject: {
      apiVersion: 'v1',
      kind: 'Pod',
      namespace: pod.namespace,
      name: pod.name,
      uid: pod.uid,
      ...(fieldPath === undefined ? {} : { fieldPath }),
    },
    type,
    reason,
    message,
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: 'kubelet', host: nodeName },
    reportingComponent: 'kedge-agent',
    reportingInstance: nodeName,
  };
}
