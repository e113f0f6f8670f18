import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { isKedgeError, type KedgeError } from '../../lib/errors.ts';
import { decodeProtobufObject, isProtobufContentType, supportedProtobufKinds } from './decode.ts';

const MAGIC = Uint8Array.of(0x6b, 0x38, 0x73, 0x00);
const FIXTURES = [
  'namespace',
  'configmap',
  'secret',
  'deployment',
  'service',
  'serviceaccount',
  'job',
  'cronjob',
  'ssar-resource',
  'ssar-nonresource',
] as const;

function fixture(name: (typeof FIXTURES)[number]): Uint8Array {
  return readFileSync(new URL(`./fixtures/${name}.pb`, import.meta.url));
}

/** A protobuf message written by field number, so these tests pin numbers independently of k8s.proto. */
type Fields = [number, string | number | boolean | Uint8Array | Fields][];

function encode(fields: Fields): Uint8Array {
  const w = protobuf.Writer.create();
  for (const [n, v] of fields) {
    if (typeof v === 'string') w.uint32((n << 3) | 2).string(v);
    else if (typeof v === 'boolean') w.uint32(n << 3).bool(v);
    else if (typeof v === 'number') w.uint32(n << 3).int64(v);
    else if (v instanceof Uint8Array) w.uint32((n << 3) | 2).bytes(v);
    else w.uint32((n << 3) | 2).bytes(encode(v));
  }
  return w.finish();
}

function body(apiVersion: string, kind: string, message: Fields, extra: Fields = []): Uint8Array {
  const envelope = encode([
    [
      1,
      [
        [1, apiVersion],
        [2, kind],
      ],
    ],
    [2, encode(message)],
    ...extra,
  ]);
  return Buffer.concat([MAGIC, envelope]);
}

/** A map entry: field `n` holding the message {1: key, 2: value}. */
function entry(n: number, key: string, value: string | Fields | Uint8Array): [number, Fields] {
  return [
    n,
    [
      [1, key],
      [2, value],
    ],
  ];
}

function throwsCode(fn: () => unknown, code: string): KedgeError {
  try {
    fn();
  } catch (err) {
    assert.ok(isKedgeError(err), `expected a KedgeError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('isProtobufContentType', () => {
  test('matches the protobuf media type with or without parameters, in any case', () => {
    assert.equal(isProtobufContentType('application/vnd.kubernetes.protobuf'), true);
    assert.equal(isProtobufContentType('Application/VND.kubernetes.protobuf ; charset=binary'), true);
    assert.equal(isProtobufContentType('application/json'), false);
    assert.equal(isProtobufContentType('application/vnd.kubernetes.protobuf+json'), false);
    assert.equal(isProtobufContentType(''), false);
    assert.equal(isProtobufContentType(undefined), false);
  });
});

describe('decodeProtobufObject on bodies captured from kubectl 1.32', () => {
  test('namespace', () => {
    assert.deepEqual(decodeProtobufObject(fixture('namespace')), {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'edge-1' },
      spec: {},
      status: {},
    });
  });

  test('configmap with binaryData', () => {
    assert.deepEqual(decodeProtobufObject(fixture('configmap')), {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cfg', namespace: 'team-a' },
      data: { level: '3', mode: 'fast' },
      binaryData: { blob: 'AP/+gEEK' },
    });
  });

  test('secret data is base64', () => {
    const secret = decodeProtobufObject(fixture('secret'));
    assert.deepEqual(secret['data'], {
      key: 'AP/+gEEK',
      password: Buffer.from('p@ss w0rd').toString('base64'),
      user: Buffer.from('admin').toString('base64'),
    });
    assert.equal(secret['type'], 'Opaque');
  });

  test('deployment', () => {
    assert.deepEqual(decodeProtobufObject(fixture('deployment')), {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            containers: [
              { name: 'nginx', image: 'nginx:1.25', ports: [{ containerPort: 8080 }], resources: {} },
            ],
          },
        },
        strategy: {},
      },
      status: {},
    });
  });

  test('service ports with numeric and named targets', () => {
    const spec = decodeProtobufObject(fixture('service'))['spec'];
    assert.deepEqual(spec, {
      ports: [
        { name: '80-8080', protocol: 'TCP', port: 80, targetPort: 8080 },
        { name: '443-https', protocol: 'TCP', port: 443, targetPort: 'https' },
      ],
      selector: { app: 'api' },
      type: 'ClusterIP',
    });
  });

  test('serviceaccount', () => {
    assert.deepEqual(decodeProtobufObject(fixture('serviceaccount')), {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'robot' },
    });
  });

  test('job and cronjob', () => {
    const job = decodeProtobufObject(fixture('job'));
    assert.equal(job.apiVersion, 'batch/v1');
    assert.deepEqual(job['spec'], {
      template: {
        metadata: {},
        spec: {
          containers: [
            { name: 'once', image: 'busybox:1.36', command: ['sh', '-c', 'echo hi'], resources: {} },
          ],
          restartPolicy: 'Never',
        },
      },
    });
    const cron = decodeProtobufObject(fixture('cronjob'));
    assert.equal((cron['spec'] as { schedule: string }).schedule, '*/5 * * * *');
  });

  test('self subject access reviews', () => {
    assert.deepEqual(decodeProtobufObject(fixture('ssar-resource'))['spec'], {
      resourceAttributes: { namespace: 'default', verb: 'create', resource: 'pods' },
    });
    assert.deepEqual(decodeProtobufObject(fixture('ssar-nonresource'))['spec'], {
      nonResourceAttributes: { path: '/healthz', verb: 'get' },
    });
  });
});

describe('decodeProtobufObject conversions', () => {
  const podSpec: Fields = [
    [
      1,
      [
        [1, 'scratch'],
        [2, [[2, []]]],
      ],
    ], // volumes: emptyDir {}
    [
      1,
      [
        [1, 'conf'],
        [
          2,
          [
            [
              19,
              [
                [1, [[1, 'app-config']]],
                [3, 420],
              ],
            ],
          ],
        ],
      ],
    ], // volumes: configMap
    [
      2,
      [
        [1, 'app'],
        [2, 'registry.local/app:1'],
        [4, '--verbose'],
        [
          7,
          [
            [1, 'TOKEN'],
            [
              3,
              [
                [
                  4,
                  [
                    [1, [[1, 'creds']]],
                    [2, 'token'],
                  ],
                ],
              ],
            ],
          ],
        ], // env valueFrom secretKeyRef
        [
          19,
          [
            [1, 'CFG_'],
            [2, [[1, [[1, 'app-config']]]]],
          ],
        ], // envFrom configMapRef
        [8, [entry(1, 'cpu', [[1, '500m']]), entry(1, 'memory', [[1, '64Mi']]), entry(2, 'cpu', [[1, '0']])]],
        [
          9,
          [
            [1, 'conf'],
            [2, true],
            [3, '/etc/app'],
          ],
        ], // volumeMounts
        [
          10,
          [
            [
              1,
              [
                [
                  2,
                  [
                    [1, '/healthz'],
                    [
                      2,
                      [
                        [1, 0],
                        [2, 8080],
                      ],
                    ],
                  ],
                ],
              ],
            ],
            [2, 5],
          ],
        ], // livenessProbe httpGet
        [
          11,
          [
            [
              1,
              [
                [
                  3,
                  [
                    [
                      1,
                      [
                        [1, 1],
                        [3, 'http'],
                      ],
                    ],
                  ],
                ],
              ],
            ],
          ],
        ], // readinessProbe tcpSocket on a named port
        [14, 'IfNotPresent'],
        [15, [[5, false]]], // securityContext.runAsNonRoot: false is kept (pointer field)
      ],
    ],
    [3, 'Always'],
    [4, 0], // terminationGracePeriodSeconds 0 is kept (pointer field)
    [6, ''], // dnsPolicy "" is dropped (plain field)
    entry(7, 'disk', 'ssd'),
    [8, 'runner'],
    [
      22,
      [
        [1, 'node.kubernetes.io/unreachable'],
        [2, 'Exists'],
        [4, 'NoExecute'],
        [5, 300],
      ],
    ],
  ];

  test('pod spec fields a typed client sends round-trip to their JSON shapes', () => {
    const deployment = decodeProtobufObject(
      body('apps/v1', 'Deployment', [
        [
          1,
          [
            [1, 'app'],
            [3, 'edge'],
            [7, 2],
            [8, [[1, 1704164645]]],
            entry(11, 'a', 'b'),
            entry(12, 'note', 'x'),
            [
              13,
              [
                [1, 'ReplicaSet'],
                [3, 'app-1'],
                [4, 'u-1'],
                [5, 'apps/v1'],
                [6, true],
              ],
            ],
            [14, 'kedge.io/cleanup'],
          ],
        ],
        [
          2,
          [
            [1, 0],
            [
              3,
              [
                [1, [entry(11, 'app', 'app')]],
                [2, podSpec],
              ],
            ],
            [
              4,
              [
                [1, 'RollingUpdate'],
                [
                  2,
                  [
                    [
                      1,
                      [
                        [1, 1],
                        [3, '25%'],
                      ],
                    ],
                    [2, [[2, 0]]],
                  ],
                ],
              ],
            ],
          ],
        ],
      ]),
    );
    assert.deepEqual(deployment.metadata, {
      name: 'app',
      namespace: 'edge',
      generation: 2,
      creationTimestamp: '2024-01-02T03:04:05Z',
      labels: { a: 'b' },
      annotations: { note: 'x' },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'app-1', uid: 'u-1', controller: true },
      ],
      finalizers: ['kedge.io/cleanup'],
    });
    const spec = deployment['spec'] as Record<string, unknown>;
    assert.equal(spec['replicas'], 0);
    assert.deepEqual(spec['strategy'], {
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: '25%', maxSurge: 0 },
    });
    const template = spec['template'] as { metadata: unknown; spec: Record<string, unknown> };
    assert.deepEqual(template.metadata, { labels: { app: 'app' } });
    assert.deepEqual(template.spec, {
      volumes: [
        { name: 'scratch', emptyDir: {} },
        { name: 'conf', configMap: { name: 'app-config', defaultMode: 420 } },
      ],
      containers: [
        {
          name: 'app',
          image: 'registry.local/app:1',
          args: ['--verbose'],
          envFrom: [{ prefix: 'CFG_', configMapRef: { name: 'app-config' } }],
          env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } }],
          resources: { limits: { cpu: '500m', memory: '64Mi' }, requests: { cpu: '0' } },
          volumeMounts: [{ name: 'conf', readOnly: true, mountPath: '/etc/app' }],
          livenessProbe: { httpGet: { path: '/healthz', port: 8080 }, initialDelaySeconds: 5 },
          readinessProbe: { tcpSocket: { port: 'http' } },
          imagePullPolicy: 'IfNotPresent',
          securityContext: { runAsNonRoot: false },
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 0,
      nodeSelector: { disk: 'ssd' },
      serviceAccountName: 'runner',
      tolerations: [
        {
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
      ],
    });
  });

  test('MicroTime keeps microseconds, Time drops the fraction, managed fields parse as JSON', () => {
    const lease = decodeProtobufObject(
      body('coordination.k8s.io/v1', 'Lease', [
        [
          1,
          [
            [1, 'node-a'],
            [
              17,
              [
                [1, 'kubelet'],
                [2, 'Update'],
                [3, 'coordination.k8s.io/v1'],
                [
                  4,
                  [
                    [1, 1704164645],
                    [2, 999_000_000],
                  ],
                ],
                [6, 'FieldsV1'],
                [7, [[1, Buffer.from('{"f:spec":{}}')]]],
              ],
            ],
          ],
        ],
        [
          2,
          [
            [1, 'node-a'],
            [2, 40],
            [
              4,
              [
                [1, 1704164645],
                [2, 123_456_789],
              ],
            ],
            [5, 0],
          ],
        ],
      ]),
    );
    assert.deepEqual(lease, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: 'node-a',
        managedFields: [
          {
            manager: 'kubelet',
            operation: 'Update',
            apiVersion: 'coordination.k8s.io/v1',
            time: '2024-01-02T03:04:05Z',
            fieldsType: 'FieldsV1',
            fieldsV1: { 'f:spec': {} },
          },
        ],
      },
      spec: {
        holderIdentity: 'node-a',
        leaseDurationSeconds: 40,
        renewTime: '2024-01-02T03:04:05.123456Z',
        leaseTransitions: 0,
      },
    });
  });

  test('a secret with an empty value and immutable false keeps both', () => {
    const secret = decodeProtobufObject(
      body('v1', 'Secret', [
        [1, [[1, 's']]],
        [5, false],
        entry(2, 'empty', new Uint8Array()),
        entry(4, 'plain', 'text'),
      ]),
    );
    assert.deepEqual(secret, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      immutable: false,
      data: { empty: '' },
      stringData: { plain: 'text' },
    });
  });

  test('every supported kind decodes from an empty message', () => {
    for (const key of supportedProtobufKinds()) {
      const slash = key.lastIndexOf('/');
      const object = decodeProtobufObject(body(key.slice(0, slash), key.slice(slash + 1), []));
      assert.deepEqual(object, { apiVersion: key.slice(0, slash), kind: key.slice(slash + 1), metadata: {} });
    }
  });
});

describe('decodeProtobufObject errors', () => {
  test('a body without the magic bytes is invalid', () => {
    throwsCode(() => decodeProtobufObject(new Uint8Array()), 'KEDGE_PROTOBUF_INVALID');
    throwsCode(() => decodeProtobufObject(Buffer.from('{"kind":"Namespace"}')), 'KEDGE_PROTOBUF_INVALID');
    throwsCode(() => decodeProtobufObject(fixture('namespace').subarray(1)), 'KEDGE_PROTOBUF_INVALID');
  });

  test('an unknown kind is unsupported and named in the error', () => {
    const err = throwsCode(
      () => decodeProtobufObject(body('apps/v1', 'StatefulSet', [[1, [[1, 'db']]]])),
      'KEDGE_PROTOBUF_UNSUPPORTED',
    );
    assert.match(err.message, /apps\/v1\/StatefulSet/);
    assert.deepEqual(err.context, { apiVersion: 'apps/v1', kind: 'StatefulSet' });
  });

  test('an envelope without a kind is invalid', () => {
    throwsCode(() => decodeProtobufObject(body('v1', '', [])), 'KEDGE_PROTOBUF_INVALID');
  });

  test('a compressed envelope is unsupported', () => {
    throwsCode(
      () => decodeProtobufObject(body('v1', 'Namespace', [], [[3, 'gzip']])),
      'KEDGE_PROTOBUF_UNSUPPORTED',
    );
  });

  test('a body cut inside the typed message is invalid', () => {
    const whole = fixture('deployment');
    throwsCode(() => decodeProtobufObject(whole.subarray(0, whole.length - 10)), 'KEDGE_PROTOBUF_INVALID');
  });

  test('a time outside the years 0 to 9999 is invalid', () => {
    throwsCode(
      () => decodeProtobufObject(body('v1', 'Namespace', [[1, [[8, [[1, 400_000_000_000]]]]]])),
      'KEDGE_PROTOBUF_INVALID',
    );
  });

  test('malformed managed fields JSON is invalid', () => {
    throwsCode(
      () => decodeProtobufObject(body('v1', 'Namespace', [[1, [[17, [[7, [[1, '{not json']]]]]]]])),
      'KEDGE_PROTOBUF_INVALID',
    );
  });
});

describe('decodeProtobufObject never throws anything but KedgeError', () => {
  function decodesOrKedgeError(bytes: Uint8Array): void {
    try {
      decodeProtobufObject(bytes);
    } catch (err) {
      assert.ok(
        isKedgeError(err),
        `non-KedgeError for ${Buffer.from(bytes).toString('hex')}: ${String(err)}`,
      );
    }
  }

  test('every truncation of every fixture', () => {
    for (const name of FIXTURES) {
      const whole = fixture(name);
      for (let length = 0; length < whole.length; length++) decodesOrKedgeError(whole.subarray(0, length));
    }
  });

  test('random bytes, with and without the magic', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, magic) => {
        decodesOrKedgeError(magic ? Buffer.concat([MAGIC, bytes]) : bytes);
      }),
      { numRuns: 2000 },
    );
  });

  test('fixtures with random bytes overwritten', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...FIXTURES),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        (name, edits) => {
          const bytes = Uint8Array.from(fixture(name));
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          decodesOrKedgeError(bytes);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
