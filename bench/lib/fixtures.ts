/** Objects benchmarks create in bulk. */
import type { KubeObject } from '../../src/api/meta.ts';

/** A Ready node `edge-i` (8 CPU, 32 Gi, 110 pods) in one of ten zones. */
export function nodeObject(i: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: `edge-${i}`,
      labels: { 'kubernetes.io/hostname': `edge-${i}`, 'topology.kubernetes.io/zone': `zone-${i % 10}` },
    },
    spec: {},
    status: {
      allocatable: { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' },
      capacity: { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' },
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
    },
  };
}
