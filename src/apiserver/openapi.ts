/**
 * OpenAPI v3 documents for the group-versions kedge serves: the `/openapi/v3` index and one document
 * per group-version, with a path item per served operation and the schemas of the served kinds. kubectl
 * reads them to decide it may send `fieldValidation=Strict`, to build strategic merge patches (it looks
 * for `x-kubernetes-patch-merge-key`/`-strategy`) and for `kubectl explain`.
 *
 * Schemas are written in a small DSL below (field names, types and patch strategies follow Kubernetes
 * v1.32's published OpenAPI), expanded at run time, and filtered per document to what it references.
 */
import { createHash } from 'node:crypto';
import type { ResourceType } from '../api/resource.ts';
import { type DiscoveryOptions, type GroupVersionKind, subresourcesOf } from './discovery.ts';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type Schema = { [key: string]: JsonValue };

// ---- Schema DSL -------------------------------------------------------------------------------------

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1.';
const CORE = 'io.k8s.api.core.v1.';
const APPS = 'io.k8s.api.apps.v1.';
const BATCH = 'io.k8s.api.batch.v1.';
const APIEXT = 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
const RAW = 'io.k8s.apimachinery.pkg.runtime.RawExtension';

const REF_PREFIX = '#/components/schemas/';
const str: Schema = { type: 'string' };
const bool: Schema = { type: 'boolean' };
const i32: Schema = { type: 'integer', format: 'int32' };
const i64: Schema = { type: 'integer', format: 'int64' };
const num: Schema = { type: 'number', format: 'double' };
const bytes: Schema = { type: 'string', format: 'byte' };

/** A property that refers to a named schema (Kubernetes wraps the $ref in allOf so it can add a description). */
function ref(name: string, description?: string): Schema {
  return {
    allOf: [{ $ref: REF_PREFIX + name }],
    ...(description === undefined ? {} : { description }),
  };
}
const time = (): Schema => ref(`${META}Time`);
const microTime = (): Schema => ref(`${META}MicroTime`);
const quantity = (): Schema => ref(QUANTITY);
const intOrString = (): Schema => ref(INT_OR_STRING);
const labelSelector = (): Schema => ref(`${META}LabelSelector`);
const objectMeta = (): Schema =>
  ref(
    `${META}ObjectMeta`,
    "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
  );
const listMeta = (): Schema => ref(`${META}ListMeta`);

interface ListExt {
  /** x-kubernetes-patch-merge-key */
  readonly key?: string;
  /** x-kubernetes-patch-strategy: 'merge', 'merge,retainKeys', ... */
  readonly strategy?: string;
  readonly listType?: 'atomic' | 'set' | 'map';
  readonly mapKeys?: readonly string[];
}

function arr(items: Schema, ext: ListExt = {}): Schema {
  const out: Schema = { type: 'array', items };
  if (ext.listType !== undefined) out['x-kubernetes-list-type'] = ext.listType;
  if (ext.mapKeys !== undefined) out['x-kubernetes-list-map-keys'] = [...ext.mapKeys];
  if (ext.key !== undefined) out['x-kubernetes-patch-merge-key'] = ext.key;
  if (ext.strategy !== undefined) out['x-kubernetes-patch-strategy'] = ext.strategy;
  return out;
}
/** A list merged by `key` in strategic merge patches. */
const mergeList = (items: Schema, key: string, extra: ListExt = {}): Schema =>
  arr(items, { key, strategy: 'merge', ...extra });
const strs = (): Schema => arr(str, { listType: 'atomic' });
const map = (values: Schema): Schema => ({ type: 'object', additionalProperties: values });
const strMap = (): Schema => map(str);
const quantityMap = (): Schema => map(quantity());

/** Add a description (shown by `kubectl explain`). */
function d(schema: Schema, description: string): Schema {
  return { ...schema, description };
}
/** Add an x-kubernetes-patch-strategy to an object-valued field (e.g. retainKeys). */
function strategy(schema: Schema, value: string): Schema {
  return { ...schema, 'x-kubernetes-patch-strategy': value };
}

function obj(
  properties: Record<string, Schema>,
  required: readonly string[] = [],
  description?: string,
): Schema {
  return {
    type: 'object',
    properties,
    ...(required.length > 0 ? { required: [...required] } : {}),
    ...(description === undefined ? {} : { description }),
  };
}

function gvkExt(group: string, version: string, kind: string): JsonValue {
  return [{ group, version, kind }];
}

const TYPE_META: Record<string, Schema> = {
  apiVersion: d(str, 'APIVersion defines the versioned schema of this representation of an object.'),
  kind: d(str, 'Kind is a string value representing the REST resource this object represents.'),
};

/** A top-level kind: apiVersion, kind, metadata and the given fields, tagged with its GVK. */
function kind(
  gvk: [string, string, string],
  description: string,
  fields: Record<string, Schema>,
  required: readonly string[] = [],
): Schema {
  return {
    ...obj({ ...TYPE_META, metadata: objectMeta(), ...fields }, required, description),
    'x-kubernetes-group-version-kind': gvkExt(...gvk),
  };
}

function list(gvk: [string, string, string], itemName: string): Schema {
  return {
    ...obj(
      { ...TYPE_META, items: arr(ref(itemName)), metadata: listMeta() },
      ['items'],
      `${gvk[2]} is a list of ${gvk[2].replace(/List$/, '')} objects.`,
    ),
    'x-kubernetes-group-version-kind': gvkExt(...gvk),
  };
}

// ---- Kubernetes schemas (v1.32) -------------------------------------------------------------------

function metaSchemas(): Record<string, Schema> {
  return {
    [`${META}Time`]: { type: 'string', format: 'date-time' },
    [`${META}MicroTime`]: { type: 'string', format: 'date-time' },
    [`${META}FieldsV1`]: { type: 'object', description: 'FieldsV1 stores a set of fields in a trie.' },
    [QUANTITY]: {
      description: 'Quantity is a fixed-point representation of a number, e.g. 100m or 1Gi.',
      oneOf: [{ type: 'string' }, { type: 'number' }],
    },
    [INT_OR_STRING]: {
      description: 'IntOrString is a type that can hold an int32 or a string.',
      format: 'int-or-string',
      oneOf: [{ type: 'integer' }, { type: 'string' }],
    },
    [RAW]: { type: 'object', description: 'RawExtension holds an arbitrary embedded object.' },
    [`${META}ObjectMeta`]: obj({
      annotations: strMap(),
      creationTimestamp: time(),
      deletionGracePeriodSeconds: i64,
      deletionTimestamp: time(),
      finalizers: arr(str, { listType: 'set', strategy: 'merge' }),
      generateName: str,
      generation: i64,
      labels: strMap(),
      managedFields: arr(ref(`${META}ManagedFieldsEntry`), { listType: 'atomic' }),
      name: str,
      namespace: str,
      ownerReferences: mergeList(ref(`${META}OwnerReference`), 'uid', { listType: 'map', mapKeys: ['uid'] }),
      resourceVersion: str,
      selfLink: str,
      uid: str,
    }),
    [`${META}ListMeta`]: obj({ continue: str, remainingItemCount: i64, resourceVersion: str, selfLink: str }),
    [`${META}OwnerReference`]: {
      ...obj(
        { apiVersion: str, blockOwnerDeletion: bool, controller: bool, kind: str, name: str, uid: str },
        ['apiVersion', 'kind', 'name', 'uid'],
      ),
      'x-kubernetes-map-type': 'atomic',
    },
    [`${META}ManagedFieldsEntry`]: obj({
      apiVersion: str,
      fieldsType: str,
      fieldsV1: ref(`${META}FieldsV1`),
      manager: str,
      operation: str,
      subresource: str,
      time: time(),
    }),
    [`${META}LabelSelector`]: {
      ...obj({
        matchExpressions: arr(ref(`${META}LabelSelectorRequirement`), { listType: 'atomic' }),
        matchLabels: strMap(),
      }),
      'x-kubernetes-map-type': 'atomic',
    },
    [`${META}LabelSelectorRequirement`]: obj({ key: str, operator: str, values: strs() }, [
      'key',
      'operator',
    ]),
    [`${META}Condition`]: obj(
      {
        lastTransitionTime: time(),
        message: str,
        observedGeneration: i64,
        reason: str,
        status: str,
        type: str,
      },
      ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
    ),
    [`${META}Status`]: {
      ...obj({
        ...TYPE_META,
        code: i32,
        details: ref(`${META}StatusDetails`),
        message: str,
        metadata: listMeta(),
        reason: str,
        status: str,
      }),
      'x-kubernetes-group-version-kind': gvkExt('', 'v1', 'Status'),
    },
    [`${META}StatusDetails`]: obj({
      causes: arr(ref(`${META}StatusCause`), { listType: 'atomic' }),
      group: str,
      kind: str,
      name: str,
      retryAfterSeconds: i32,
      uid: str,
    }),
    [`${META}StatusCause`]: obj({ field: str, message: str, reason: str }),
    [`${META}DeleteOptions`]: {
      ...obj({
        ...TYPE_META,
        dryRun: strs(),
        gracePeriodSeconds: i64,
        ignoreStoreReadErrorWithClusterBreakingPotential: bool,
        orphanDependents: bool,
        preconditions: ref(`${META}Preconditions`),
        propagationPolicy: str,
      }),
      'x-kubernetes-group-version-kind': gvkExt('', 'v1', 'DeleteOptions'),
    },
    [`${META}Preconditions`]: obj({ resourceVersion: str, uid: str }),
    [`${META}WatchEvent`]: obj({ object: ref(RAW), type: str }, ['type', 'object']),
    [`${META}Patch`]: {
      type: 'object',
      description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.',
    },
  };
}

function podSchemas(): Record<string, Schema> {
  const c = (n: string): Schema => ref(CORE + n);
  const keySelector = obj({ key: str, name: str, optional: bool }, ['key']);
  const probeHandlers = {
    exec: c('ExecAction'),
    grpc: c('GRPCAction'),
    httpGet: c('HTTPGetAction'),
    tcpSocket: c('TCPSocketAction'),
  };
  const affinityTerms = (term: string, weighted: string): Record<string, Schema> => ({
    preferredDuringSchedulingIgnoredDuringExecution: arr(c(weighted), { listType: 'atomic' }),
    requiredDuringSchedulingIgnoredDuringExecution: arr(c(term), { listType: 'atomic' }),
  });
  const containerFields: Record<string, Schema> = {
    args: strs(),
    command: strs(),
    env: mergeList(c('EnvVar'), 'name', { listType: 'map', mapKeys: ['name'] }),
    envFrom: arr(c('EnvFromSource'), { listType: 'atomic' }),
    image: d(str, 'Container image name.'),
    imagePullPolicy: str,
    lifecycle: c('Lifecycle'),
    livenessProbe: c('Probe'),
    name: d(str, 'Name of the container specified as a DNS_LABEL.'),
    ports: mergeList(c('ContainerPort'), 'containerPort', {
      listType: 'map',
      mapKeys: ['containerPort', 'protocol'],
    }),
    readinessProbe: c('Probe'),
    resizePolicy: arr(c('ContainerResizePolicy'), { listType: 'atomic' }),
    resources: c('ResourceRequirements'),
    restartPolicy: str,
    securityContext: c('SecurityContext'),
    startupProbe: c('Probe'),
    stdin: bool,
    stdinOnce: bool,
    terminationMessagePath: str,
    terminationMessagePolicy: str,
    tty: bool,
    volumeDevices: mergeList(c('VolumeDevice'), 'devicePath', { listType: 'map', mapKeys: ['devicePath'] }),
    volumeMounts: mergeList(c('VolumeMount'), 'mountPath', { listType: 'map', mapKeys: ['mountPath'] }),
    workingDir: str,
  };
  const containerStatusFields: Record<string, Schema> = {
    allocatedResources: quantityMap(),
    containerID: str,
    image: str,
    imageID: str,
    lastState: c('ContainerState'),
    name: str,
    ready: bool,
    resources: c('ResourceRequirements'),
    restartCount: i32,
    started: bool,
    state: c('ContainerState'),
  };
  return {
    [`${CORE}PodSpec`]: obj(
      {
        activeDeadlineSeconds: i64,
        affinity: c('Affinity'),
        automountServiceAccountToken: bool,
        containers: d(
          mergeList(c('Container'), 'name', { listType: 'map', mapKeys: ['name'] }),
          'List of containers belonging to the pod.',
        ),
        dnsConfig: c('PodDNSConfig'),
        dnsPolicy: str,
        enableServiceLinks: bool,
        ephemeralContainers: mergeList(c('EphemeralContainer'), 'name', {
          listType: 'map',
          mapKeys: ['name'],
        }),
        hostAliases: mergeList(c('HostAlias'), 'ip', { listType: 'map', mapKeys: ['ip'] }),
        hostIPC: bool,
        hostNetwork: bool,
        hostPID: bool,
        hostUsers: bool,
        hostname: str,
        imagePullSecrets: mergeList(c('LocalObjectReference'), 'name', {
          listType: 'map',
          mapKeys: ['name'],
        }),
        initContainers: mergeList(c('Container'), 'name', { listType: 'map', mapKeys: ['name'] }),
        nodeName: str,
        nodeSelector: { ...strMap(), 'x-kubernetes-map-type': 'atomic' },
        os: c('PodOS'),
        overhead: quantityMap(),
        preemptionPolicy: str,
        priority: i32,
        priorityClassName: str,
        readinessGates: arr(c('PodReadinessGate'), { listType: 'atomic' }),
        resourceClaims: mergeList(c('PodResourceClaim'), 'name', {
          strategy: 'merge,retainKeys',
          listType: 'map',
          mapKeys: ['name'],
        }),
        restartPolicy: str,
        runtimeClassName: str,
        schedulerName: str,
        schedulingGates: mergeList(c('PodSchedulingGate'), 'name', { listType: 'map', mapKeys: ['name'] }),
        securityContext: c('PodSecurityContext'),
        serviceAccount: str,
        serviceAccountName: str,
        setHostnameAsFQDN: bool,
        shareProcessNamespace: bool,
        subdomain: str,
        terminationGracePeriodSeconds: i64,
        tolerations: arr(c('Toleration'), { listType: 'atomic' }),
        topologySpreadConstraints: mergeList(c('TopologySpreadConstraint'), 'topologyKey', {
          listType: 'map',
          mapKeys: ['topologyKey', 'whenUnsatisfiable'],
        }),
        volumes: mergeList(c('Volume'), 'name', {
          strategy: 'merge,retainKeys',
          listType: 'map',
          mapKeys: ['name'],
        }),
      },
      ['containers'],
      'PodSpec is a description of a pod.',
    ),
    [`${CORE}Container`]: obj(containerFields, ['name'], 'A single application container to run in a pod.'),
    [`${CORE}EphemeralContainer`]: obj({ ...containerFields, targetContainerName: str }, ['name']),
    [`${CORE}ContainerPort`]: obj(
      { containerPort: i32, hostIP: str, hostPort: i32, name: str, protocol: { ...str, default: 'TCP' } },
      ['containerPort'],
    ),
    [`${CORE}EnvVar`]: obj({ name: str, value: str, valueFrom: c('EnvVarSource') }, ['name']),
    [`${CORE}EnvVarSource`]: obj({
      configMapKeyRef: c('ConfigMapKeySelector'),
      fieldRef: c('ObjectFieldSelector'),
      resourceFieldRef: c('ResourceFieldSelector'),
      secretKeyRef: c('SecretKeySelector'),
    }),
    [`${CORE}ConfigMapKeySelector`]: { ...keySelector, 'x-kubernetes-map-type': 'atomic' },
    [`${CORE}SecretKeySelector`]: { ...keySelector, 'x-kubernetes-map-type': 'atomic' },
    [`${CORE}ObjectFieldSelector`]: obj({ apiVersion: str, fieldPath: str }, ['fieldPath']),
    [`${CORE}ResourceFieldSelector`]: obj({ containerName: str, divisor: quantity(), resource: str }, [
      'resource',
    ]),
    [`${CORE}EnvFromSource`]: obj({
      configMapRef: c('ConfigMapEnvSource'),
      prefix: str,
      secretRef: c('SecretEnvSource'),
    }),
    [`${CORE}ConfigMapEnvSource`]: obj({ name: str, optional: bool }),
    [`${CORE}SecretEnvSource`]: obj({ name: str, optional: bool }),
    [`${CORE}VolumeMount`]: obj(
      {
        mountPath: str,
        mountPropagation: str,
        name: str,
        readOnly: bool,
        recursiveReadOnly: str,
        subPath: str,
        subPathExpr: str,
      },
      ['name', 'mountPath'],
    ),
    [`${CORE}VolumeDevice`]: obj({ devicePath: str, name: str }, ['name', 'devicePath']),
    [`${CORE}ContainerResizePolicy`]: obj({ resourceName: str, restartPolicy: str }, [
      'resourceName',
      'restartPolicy',
    ]),
    [`${CORE}ResourceRequirements`]: obj({
      claims: arr(c('ResourceClaim'), { listType: 'map', mapKeys: ['name'] }),
      limits: quantityMap(),
      requests: quantityMap(),
    }),
    [`${CORE}ResourceClaim`]: obj({ name: str, request: str }, ['name']),
    [`${CORE}Probe`]: obj({
      ...probeHandlers,
      failureThreshold: i32,
      initialDelaySeconds: i32,
      periodSeconds: i32,
      successThreshold: i32,
      terminationGracePeriodSeconds: i64,
      timeoutSeconds: i32,
    }),
    [`${CORE}ExecAction`]: obj({ command: strs() }),
    [`${CORE}GRPCAction`]: obj({ port: i32, service: str }, ['port']),
    [`${CORE}HTTPGetAction`]: obj(
      {
        host: str,
        httpHeaders: arr(c('HTTPHeader'), { listType: 'atomic' }),
        path: str,
        port: intOrString(),
        scheme: str,
      },
      ['port'],
    ),
    [`${CORE}HTTPHeader`]: obj({ name: str, value: str }, ['name', 'value']),
    [`${CORE}TCPSocketAction`]: obj({ host: str, port: intOrString() }, ['port']),
    [`${CORE}Lifecycle`]: obj({ postStart: c('LifecycleHandler'), preStop: c('LifecycleHandler') }),
    [`${CORE}LifecycleHandler`]: obj({
      exec: c('ExecAction'),
      httpGet: c('HTTPGetAction'),
      sleep: c('SleepAction'),
      tcpSocket: c('TCPSocketAction'),
    }),
    [`${CORE}SleepAction`]: obj({ seconds: i64 }, ['seconds']),
    [`${CORE}SecurityContext`]: obj({
      allowPrivilegeEscalation: bool,
      appArmorProfile: c('AppArmorProfile'),
      capabilities: c('Capabilities'),
      privileged: bool,
      procMount: str,
      readOnlyRootFilesystem: bool,
      runAsGroup: i64,
      runAsNonRoot: bool,
      runAsUser: i64,
      seLinuxOptions: c('SELinuxOptions'),
      seccompProfile: c('SeccompProfile'),
      windowsOptions: c('WindowsSecurityContextOptions'),
    }),
    [`${CORE}PodSecurityContext`]: obj({
      appArmorProfile: c('AppArmorProfile'),
      fsGroup: i64,
      fsGroupChangePolicy: str,
      runAsGroup: i64,
      runAsNonRoot: bool,
      runAsUser: i64,
      seLinuxChangePolicy: str,
      seLinuxOptions: c('SELinuxOptions'),
      seccompProfile: c('SeccompProfile'),
      supplementalGroups: arr(i64, { listType: 'atomic' }),
      supplementalGroupsPolicy: str,
      sysctls: arr(c('Sysctl'), { listType: 'atomic' }),
      windowsOptions: c('WindowsSecurityContextOptions'),
    }),
    [`${CORE}Capabilities`]: obj({ add: strs(), drop: strs() }),
    [`${CORE}AppArmorProfile`]: obj({ localhostProfile: str, type: str }, ['type']),
    [`${CORE}SeccompProfile`]: obj({ localhostProfile: str, type: str }, ['type']),
    [`${CORE}SELinuxOptions`]: obj({ level: str, role: str, type: str, user: str }),
    [`${CORE}WindowsSecurityContextOptions`]: obj({
      gmsaCredentialSpec: str,
      gmsaCredentialSpecName: str,
      hostProcess: bool,
      runAsUserName: str,
    }),
    [`${CORE}Sysctl`]: obj({ name: str, value: str }, ['name', 'value']),
    [`${CORE}Volume`]: obj(
      {
        configMap: c('ConfigMapVolumeSource'),
        csi: c('CSIVolumeSource'),
        downwardAPI: c('DownwardAPIVolumeSource'),
        emptyDir: c('EmptyDirVolumeSource'),
        hostPath: c('HostPathVolumeSource'),
        name: str,
        nfs: c('NFSVolumeSource'),
        persistentVolumeClaim: c('PersistentVolumeClaimVolumeSource'),
        projected: c('ProjectedVolumeSource'),
        secret: c('SecretVolumeSource'),
      },
      ['name'],
    ),
    [`${CORE}ConfigMapVolumeSource`]: obj({
      defaultMode: i32,
      items: arr(c('KeyToPath'), { listType: 'atomic' }),
      name: str,
      optional: bool,
    }),
    [`${CORE}SecretVolumeSource`]: obj({
      defaultMode: i32,
      items: arr(c('KeyToPath'), { listType: 'atomic' }),
      optional: bool,
      secretName: str,
    }),
    [`${CORE}KeyToPath`]: obj({ key: str, mode: i32, path: str }, ['key', 'path']),
    [`${CORE}EmptyDirVolumeSource`]: obj({ medium: str, sizeLimit: quantity() }),
    [`${CORE}HostPathVolumeSource`]: obj({ path: str, type: str }, ['path']),
    [`${CORE}NFSVolumeSource`]: obj({ path: str, readOnly: bool, server: str }, ['server', 'path']),
    [`${CORE}PersistentVolumeClaimVolumeSource`]: obj({ claimName: str, readOnly: bool }, ['claimName']),
    [`${CORE}CSIVolumeSource`]: obj(
      {
        driver: str,
        fsType: str,
        nodePublishSecretRef: c('LocalObjectReference'),
        readOnly: bool,
        volumeAttributes: strMap(),
      },
      ['driver'],
    ),
    [`${CORE}DownwardAPIVolumeSource`]: obj({
      defaultMode: i32,
      items: arr(c('DownwardAPIVolumeFile'), { listType: 'atomic' }),
    }),
    [`${CORE}DownwardAPIVolumeFile`]: obj(
      {
        fieldRef: c('ObjectFieldSelector'),
        mode: i32,
        path: str,
        resourceFieldRef: c('ResourceFieldSelector'),
      },
      ['path'],
    ),
    [`${CORE}ProjectedVolumeSource`]: obj({
      defaultMode: i32,
      sources: arr(c('VolumeProjection'), { listType: 'atomic' }),
    }),
    [`${CORE}VolumeProjection`]: obj({
      configMap: c('ConfigMapProjection'),
      downwardAPI: c('DownwardAPIProjection'),
      secret: c('SecretProjection'),
      serviceAccountToken: c('ServiceAccountTokenProjection'),
    }),
    [`${CORE}ConfigMapProjection`]: obj({
      items: arr(c('KeyToPath'), { listType: 'atomic' }),
      name: str,
      optional: bool,
    }),
    [`${CORE}SecretProjection`]: obj({
      items: arr(c('KeyToPath'), { listType: 'atomic' }),
      name: str,
      optional: bool,
    }),
    [`${CORE}DownwardAPIProjection`]: obj({ items: arr(c('DownwardAPIVolumeFile'), { listType: 'atomic' }) }),
    [`${CORE}ServiceAccountTokenProjection`]: obj({ audience: str, expirationSeconds: i64, path: str }, [
      'path',
    ]),
    [`${CORE}LocalObjectReference`]: {
      ...obj({ name: str }),
      'x-kubernetes-map-type': 'atomic',
    },
    [`${CORE}Toleration`]: obj({ effect: str, key: str, operator: str, tolerationSeconds: i64, value: str }),
    [`${CORE}Affinity`]: obj({
      nodeAffinity: c('NodeAffinity'),
      podAffinity: c('PodAffinity'),
      podAntiAffinity: c('PodAntiAffinity'),
    }),
    [`${CORE}NodeAffinity`]: obj({
      preferredDuringSchedulingIgnoredDuringExecution: arr(c('PreferredSchedulingTerm'), {
        listType: 'atomic',
      }),
      requiredDuringSchedulingIgnoredDuringExecution: c('NodeSelector'),
    }),
    [`${CORE}NodeSelector`]: {
      ...obj({ nodeSelectorTerms: arr(c('NodeSelectorTerm'), { listType: 'atomic' }) }, [
        'nodeSelectorTerms',
      ]),
      'x-kubernetes-map-type': 'atomic',
    },
    [`${CORE}NodeSelectorTerm`]: {
      ...obj({
        matchExpressions: arr(c('NodeSelectorRequirement'), { listType: 'atomic' }),
        matchFields: arr(c('NodeSelectorRequirement'), { listType: 'atomic' }),
      }),
      'x-kubernetes-map-type': 'atomic',
    },
    [`${CORE}NodeSelectorRequirement`]: obj({ key: str, operator: str, values: strs() }, ['key', 'operator']),
    [`${CORE}PreferredSchedulingTerm`]: obj({ preference: c('NodeSelectorTerm'), weight: i32 }, [
      'weight',
      'preference',
    ]),
    [`${CORE}PodAffinity`]: obj(affinityTerms('PodAffinityTerm', 'WeightedPodAffinityTerm')),
    [`${CORE}PodAntiAffinity`]: obj(affinityTerms('PodAffinityTerm', 'WeightedPodAffinityTerm')),
    [`${CORE}PodAffinityTerm`]: obj(
      {
        labelSelector: labelSelector(),
        matchLabelKeys: strs(),
        mismatchLabelKeys: strs(),
        namespaceSelector: labelSelector(),
        namespaces: strs(),
        topologyKey: str,
      },
      ['topologyKey'],
    ),
    [`${CORE}WeightedPodAffinityTerm`]: obj({ podAffinityTerm: c('PodAffinityTerm'), weight: i32 }, [
      'weight',
      'podAffinityTerm',
    ]),
    [`${CORE}TopologySpreadConstraint`]: obj(
      {
        labelSelector: labelSelector(),
        matchLabelKeys: strs(),
        maxSkew: i32,
        minDomains: i32,
        nodeAffinityPolicy: str,
        nodeTaintsPolicy: str,
        topologyKey: str,
        whenUnsatisfiable: str,
      },
      ['maxSkew', 'topologyKey', 'whenUnsatisfiable'],
    ),
    [`${CORE}HostAlias`]: obj({ hostnames: strs(), ip: str }, ['ip']),
    [`${CORE}PodDNSConfig`]: obj({
      nameservers: strs(),
      options: arr(c('PodDNSConfigOption'), { listType: 'atomic' }),
      searches: strs(),
    }),
    [`${CORE}PodDNSConfigOption`]: obj({ name: str, value: str }),
    [`${CORE}PodOS`]: obj({ name: str }, ['name']),
    [`${CORE}PodReadinessGate`]: obj({ conditionType: str }, ['conditionType']),
    [`${CORE}PodSchedulingGate`]: obj({ name: str }, ['name']),
    [`${CORE}PodResourceClaim`]: obj({ name: str, resourceClaimName: str, resourceClaimTemplateName: str }, [
      'name',
    ]),
    [`${CORE}PodStatus`]: obj({
      conditions: mergeList(c('PodCondition'), 'type', { listType: 'map', mapKeys: ['type'] }),
      containerStatuses: arr(c('ContainerStatus'), { listType: 'atomic' }),
      ephemeralContainerStatuses: arr(c('ContainerStatus'), { listType: 'atomic' }),
      hostIP: str,
      hostIPs: mergeList(c('HostIP'), 'ip', { listType: 'atomic' }),
      initContainerStatuses: arr(c('ContainerStatus'), { listType: 'atomic' }),
      message: str,
      nominatedNodeName: str,
      phase: str,
      podIP: str,
      podIPs: mergeList(c('PodIP'), 'ip', { listType: 'map', mapKeys: ['ip'] }),
      qosClass: str,
      reason: str,
      resize: str,
      startTime: time(),
    }),
    [`${CORE}PodCondition`]: obj(
      {
        lastProbeTime: time(),
        lastTransitionTime: time(),
        message: str,
        reason: str,
        status: str,
        type: str,
      },
      ['type', 'status'],
    ),
    [`${CORE}HostIP`]: obj({ ip: str }, ['ip']),
    [`${CORE}PodIP`]: obj({ ip: str }, ['ip']),
    [`${CORE}ContainerStatus`]: obj(containerStatusFields, [
      'name',
      'ready',
      'restartCount',
      'image',
      'imageID',
    ]),
    [`${CORE}ContainerState`]: obj({
      running: c('ContainerStateRunning'),
      terminated: c('ContainerStateTerminated'),
      waiting: c('ContainerStateWaiting'),
    }),
    [`${CORE}ContainerStateRunning`]: obj({ startedAt: time() }),
    [`${CORE}ContainerStateTerminated`]: obj(
      {
        containerID: str,
        exitCode: i32,
        finishedAt: time(),
        message: str,
        reason: str,
        signal: i32,
        startedAt: time(),
      },
      ['exitCode'],
    ),
    [`${CORE}ContainerStateWaiting`]: obj({ message: str, reason: str }),
    [`${CORE}PodTemplateSpec`]: obj(
      { metadata: objectMeta(), spec: ref(`${CORE}PodSpec`) },
      [],
      'PodTemplateSpec describes the data a pod should have when created from a template.',
    ),
  };
}

function coreSchemas(): Record<string, Schema> {
  const c = (n: string): Schema => ref(CORE + n);
  const g = (k: string): [string, string, string] => ['', 'v1', k];
  const condition = (extra: Record<string, Schema> = {}): Schema =>
    obj({ lastTransitionTime: time(), message: str, reason: str, status: str, type: str, ...extra }, [
      'type',
      'status',
    ]);
  return {
    [`${CORE}Namespace`]: kind(g('Namespace'), 'Namespace provides a scope for Names.', {
      spec: c('NamespaceSpec'),
      status: c('NamespaceStatus'),
    }),
    [`${CORE}NamespaceSpec`]: obj({ finalizers: strs() }),
    [`${CORE}NamespaceStatus`]: obj({
      conditions: mergeList(c('NamespaceCondition'), 'type', { listType: 'map', mapKeys: ['type'] }),
      phase: str,
    }),
    [`${CORE}NamespaceCondition`]: condition(),
    [`${CORE}Node`]: kind(g('Node'), 'Node is a worker node in Kubernetes.', {
      spec: c('NodeSpec'),
      status: c('NodeStatus'),
    }),
    [`${CORE}NodeSpec`]: obj({
      externalID: str,
      podCIDR: str,
      podCIDRs: arr(str, { listType: 'set', strategy: 'merge' }),
      providerID: str,
      taints: arr(c('Taint'), { listType: 'atomic' }),
      unschedulable: bool,
    }),
    [`${CORE}Taint`]: obj({ effect: str, key: str, timeAdded: time(), value: str }, ['key', 'effect']),
    [`${CORE}NodeStatus`]: obj({
      addresses: mergeList(c('NodeAddress'), 'type', { listType: 'map', mapKeys: ['type'] }),
      allocatable: quantityMap(),
      capacity: quantityMap(),
      conditions: mergeList(c('NodeCondition'), 'type', { listType: 'map', mapKeys: ['type'] }),
      daemonEndpoints: c('NodeDaemonEndpoints'),
      images: arr(c('ContainerImage'), { listType: 'atomic' }),
      nodeInfo: c('NodeSystemInfo'),
      phase: str,
      volumesInUse: strs(),
    }),
    [`${CORE}NodeAddress`]: obj({ address: str, type: str }, ['type', 'address']),
    [`${CORE}NodeCondition`]: condition({ lastHeartbeatTime: time() }),
    [`${CORE}NodeDaemonEndpoints`]: obj({ kubeletEndpoint: c('DaemonEndpoint') }),
    [`${CORE}DaemonEndpoint`]: obj({ Port: i32 }, ['Port']),
    [`${CORE}ContainerImage`]: obj({ names: strs(), sizeBytes: i64 }),
    [`${CORE}NodeSystemInfo`]: obj(
      {
        architecture: str,
        bootID: str,
        containerRuntimeVersion: str,
        kernelVersion: str,
        kubeProxyVersion: str,
        kubeletVersion: str,
        machineID: str,
        operatingSystem: str,
        osImage: str,
        systemUUID: str,
      },
      [
        'machineID',
        'systemUUID',
        'bootID',
        'kernelVersion',
        'osImage',
        'containerRuntimeVersion',
        'kubeletVersion',
        'kubeProxyVersion',
        'operatingSystem',
        'architecture',
      ],
    ),
    [`${CORE}Pod`]: kind(g('Pod'), 'Pod is a collection of containers that can run on a host.', {
      spec: c('PodSpec'),
      status: c('PodStatus'),
    }),
    [`${CORE}Binding`]: kind(
      g('Binding'),
      'Binding ties one object to another; for example, a pod is bound to a node by a scheduler.',
      { target: c('ObjectReference') },
      ['target'],
    ),
    [`${CORE}ConfigMap`]: kind(g('ConfigMap'), 'ConfigMap holds configuration data for pods to consume.', {
      binaryData: map(bytes),
      data: strMap(),
      immutable: bool,
    }),
    [`${CORE}Secret`]: kind(g('Secret'), 'Secret holds secret data of a certain type.', {
      data: map(bytes),
      immutable: bool,
      stringData: strMap(),
      type: str,
    }),
    [`${CORE}Service`]: kind(g('Service'), 'Service is a named abstraction of software service.', {
      spec: c('ServiceSpec'),
      status: c('ServiceStatus'),
    }),
    [`${CORE}ServiceSpec`]: obj({
      allocateLoadBalancerNodePorts: bool,
      clusterIP: str,
      clusterIPs: strs(),
      externalIPs: strs(),
      externalName: str,
      externalTrafficPolicy: str,
      healthCheckNodePort: i32,
      internalTrafficPolicy: str,
      ipFamilies: strs(),
      ipFamilyPolicy: str,
      loadBalancerClass: str,
      loadBalancerIP: str,
      loadBalancerSourceRanges: strs(),
      ports: mergeList(c('ServicePort'), 'port', { listType: 'map', mapKeys: ['port', 'protocol'] }),
      publishNotReadyAddresses: bool,
      selector: { ...strMap(), 'x-kubernetes-map-type': 'atomic' },
      sessionAffinity: str,
      sessionAffinityConfig: c('SessionAffinityConfig'),
      trafficDistribution: str,
      type: str,
    }),
    [`${CORE}ServicePort`]: obj(
      {
        appProtocol: str,
        name: str,
        nodePort: i32,
        port: i32,
        protocol: { ...str, default: 'TCP' },
        targetPort: intOrString(),
      },
      ['port'],
    ),
    [`${CORE}SessionAffinityConfig`]: obj({ clientIP: c('ClientIPConfig') }),
    [`${CORE}ClientIPConfig`]: obj({ timeoutSeconds: i32 }),
    [`${CORE}ServiceStatus`]: obj({
      conditions: mergeList(ref(`${META}Condition`), 'type', { listType: 'map', mapKeys: ['type'] }),
      loadBalancer: c('LoadBalancerStatus'),
    }),
    [`${CORE}LoadBalancerStatus`]: obj({ ingress: arr(c('LoadBalancerIngress'), { listType: 'atomic' }) }),
    [`${CORE}LoadBalancerIngress`]: obj({
      hostname: str,
      ip: str,
      ipMode: str,
      ports: arr(c('PortStatus'), { listType: 'atomic' }),
    }),
    [`${CORE}PortStatus`]: obj({ error: str, port: i32, protocol: str }, ['port', 'protocol']),
    [`${CORE}Endpoints`]: kind(
      g('Endpoints'),
      'Endpoints is a collection of endpoints that implement the actual service.',
      {
        subsets: arr(c('EndpointSubset'), { listType: 'atomic' }),
      },
    ),
    [`${CORE}EndpointSubset`]: obj({
      addresses: arr(c('EndpointAddress'), { listType: 'atomic' }),
      notReadyAddresses: arr(c('EndpointAddress'), { listType: 'atomic' }),
      ports: arr(c('EndpointPort'), { listType: 'atomic' }),
    }),
    [`${CORE}EndpointAddress`]: {
      ...obj({ hostname: str, ip: str, nodeName: str, targetRef: c('ObjectReference') }, ['ip']),
      'x-kubernetes-map-type': 'atomic',
    },
    [`${CORE}EndpointPort`]: {
      ...obj({ appProtocol: str, name: str, port: i32, protocol: str }, ['port']),
      'x-kubernetes-map-type': 'atomic',
    },
    [`${CORE}ObjectReference`]: {
      ...obj({
        apiVersion: str,
        fieldPath: str,
        kind: str,
        name: str,
        namespace: str,
        resourceVersion: str,
        uid: str,
      }),
      'x-kubernetes-map-type': 'atomic',
    },
    [`${CORE}Event`]: kind(
      g('Event'),
      'Event is a report of an event somewhere in the cluster.',
      {
        action: str,
        count: i32,
        eventTime: microTime(),
        firstTimestamp: time(),
        involvedObject: c('ObjectReference'),
        lastTimestamp: time(),
        message: str,
        reason: str,
        related: c('ObjectReference'),
        reportingComponent: str,
        reportingInstance: str,
        series: c('EventSeries'),
        source: c('EventSource'),
        type: str,
      },
      ['metadata', 'involvedObject'],
    ),
    [`${CORE}EventSeries`]: obj({ count: i32, lastObservedTime: microTime() }),
    [`${CORE}EventSource`]: obj({ component: str, host: str }),
    [`${CORE}ServiceAccount`]: kind(
      g('ServiceAccount'),
      'ServiceAccount binds together a name, secrets and image pull secrets.',
      {
        automountServiceAccountToken: bool,
        imagePullSecrets: arr(c('LocalObjectReference'), { listType: 'atomic' }),
        secrets: mergeList(c('ObjectReference'), 'name', { listType: 'map', mapKeys: ['name'] }),
      },
    ),
  };
}

function appsSchemas(): Record<string, Schema> {
  const a = (n: string): Schema => ref(APPS + n);
  const g = (k: string): [string, string, string] => ['apps', 'v1', k];
  const template = (): Schema =>
    ref(`${CORE}PodTemplateSpec`, 'Template describes the pods that will be created.');
  const condition = (extra: Record<string, Schema> = {}): Schema =>
    obj({ lastTransitionTime: time(), message: str, reason: str, status: str, type: str, ...extra }, [
      'type',
      'status',
    ]);
  const conditions = (name: string): Schema =>
    mergeList(a(name), 'type', { listType: 'map', mapKeys: ['type'] });
  return {
    [`${APPS}Deployment`]: kind(
      g('Deployment'),
      'Deployment enables declarative updates for Pods and ReplicaSets.',
      {
        spec: a('DeploymentSpec'),
        status: a('DeploymentStatus'),
      },
    ),
    [`${APPS}DeploymentSpec`]: obj(
      {
        minReadySeconds: i32,
        paused: bool,
        progressDeadlineSeconds: i32,
        replicas: d(
          i32,
          'Number of desired pods. This is a pointer to distinguish between explicit zero and not specified. Defaults to 1.',
        ),
        revisionHistoryLimit: i32,
        selector: ref(
          `${META}LabelSelector`,
          "Label selector for pods. It must match the pod template's labels.",
        ),
        strategy: strategy(
          ref(
            `${APPS}DeploymentStrategy`,
            'The deployment strategy to use to replace existing pods with new ones.',
          ),
          'retainKeys',
        ),
        template: template(),
      },
      ['selector', 'template'],
      'DeploymentSpec is the specification of the desired behavior of the Deployment.',
    ),
    [`${APPS}DeploymentStrategy`]: obj({ rollingUpdate: a('RollingUpdateDeployment'), type: str }),
    [`${APPS}RollingUpdateDeployment`]: obj({ maxSurge: intOrString(), maxUnavailable: intOrString() }),
    [`${APPS}DeploymentStatus`]: obj({
      availableReplicas: i32,
      collisionCount: i32,
      conditions: conditions('DeploymentCondition'),
      observedGeneration: i64,
      readyReplicas: i32,
      replicas: i32,
      unavailableReplicas: i32,
      updatedReplicas: i32,
    }),
    [`${APPS}DeploymentCondition`]: condition({ lastUpdateTime: time() }),
    [`${APPS}ReplicaSet`]: kind(
      g('ReplicaSet'),
      'ReplicaSet ensures that a specified number of pod replicas are running at any given time.',
      {
        spec: a('ReplicaSetSpec'),
        status: a('ReplicaSetStatus'),
      },
    ),
    [`${APPS}ReplicaSetSpec`]: obj(
      { minReadySeconds: i32, replicas: i32, selector: labelSelector(), template: template() },
      ['selector'],
    ),
    [`${APPS}ReplicaSetStatus`]: obj(
      {
        availableReplicas: i32,
        conditions: conditions('ReplicaSetCondition'),
        fullyLabeledReplicas: i32,
        observedGeneration: i64,
        readyReplicas: i32,
        replicas: i32,
      },
      ['replicas'],
    ),
    [`${APPS}ReplicaSetCondition`]: condition(),
    [`${APPS}DaemonSet`]: kind(g('DaemonSet'), 'DaemonSet represents the configuration of a daemon set.', {
      spec: a('DaemonSetSpec'),
      status: a('DaemonSetStatus'),
    }),
    [`${APPS}DaemonSetSpec`]: obj(
      {
        minReadySeconds: i32,
        revisionHistoryLimit: i32,
        selector: labelSelector(),
        template: template(),
        updateStrategy: a('DaemonSetUpdateStrategy'),
      },
      ['selector', 'template'],
    ),
    [`${APPS}DaemonSetUpdateStrategy`]: obj({ rollingUpdate: a('RollingUpdateDaemonSet'), type: str }),
    [`${APPS}RollingUpdateDaemonSet`]: obj({ maxSurge: intOrString(), maxUnavailable: intOrString() }),
    [`${APPS}DaemonSetStatus`]: obj(
      {
        collisionCount: i32,
        conditions: conditions('DaemonSetCondition'),
        currentNumberScheduled: i32,
        desiredNumberScheduled: i32,
        numberAvailable: i32,
        numberMisscheduled: i32,
        numberReady: i32,
        numberUnavailable: i32,
        observedGeneration: i64,
        updatedNumberScheduled: i32,
      },
      ['currentNumberScheduled', 'numberMisscheduled', 'desiredNumberScheduled', 'numberReady'],
    ),
    [`${APPS}DaemonSetCondition`]: condition(),
    [`${APPS}ControllerRevision`]: kind(
      g('ControllerRevision'),
      'ControllerRevision implements an immutable snapshot of state data.',
      { data: ref(RAW), revision: i64 },
      ['revision'],
    ),
  };
}

function otherSchemas(): Record<string, Schema> {
  const b = (n: string): Schema => ref(BATCH + n);
  const x = (n: string): Schema => ref(APIEXT + n);
  const COORD = 'io.k8s.api.coordination.v1.';
  const EVENTS = 'io.k8s.api.events.v1.';
  const AUTHZ = 'io.k8s.api.authorization.v1.';
  const SCALE = 'io.k8s.api.autoscaling.v1.';
  const jsonSchemaProps = (): Schema => x('JSONSchemaProps');
  const anyJson: Schema = { description: 'Any JSON value.' };
  return {
    [`${COORD}Lease`]: kind(['coordination.k8s.io', 'v1', 'Lease'], 'Lease defines a lease concept.', {
      spec: ref(`${COORD}LeaseSpec`),
    }),
    [`${COORD}LeaseSpec`]: obj({
      acquireTime: microTime(),
      holderIdentity: str,
      leaseDurationSeconds: i32,
      leaseTransitions: i32,
      preferredHolder: str,
      renewTime: microTime(),
      strategy: str,
    }),
    [`${BATCH}Job`]: kind(['batch', 'v1', 'Job'], 'Job represents the configuration of a single job.', {
      spec: b('JobSpec'),
      status: b('JobStatus'),
    }),
    [`${BATCH}JobSpec`]: obj(
      {
        activeDeadlineSeconds: i64,
        backoffLimit: i32,
        backoffLimitPerIndex: i32,
        completionMode: str,
        completions: i32,
        managedBy: str,
        manualSelector: bool,
        maxFailedIndexes: i32,
        parallelism: i32,
        podFailurePolicy: b('PodFailurePolicy'),
        podReplacementPolicy: str,
        selector: labelSelector(),
        successPolicy: b('SuccessPolicy'),
        suspend: bool,
        template: ref(`${CORE}PodTemplateSpec`),
        ttlSecondsAfterFinished: i32,
      },
      ['template'],
    ),
    [`${BATCH}PodFailurePolicy`]: obj({ rules: arr(b('PodFailurePolicyRule'), { listType: 'atomic' }) }, [
      'rules',
    ]),
    [`${BATCH}PodFailurePolicyRule`]: obj(
      {
        action: str,
        onExitCodes: b('PodFailurePolicyOnExitCodesRequirement'),
        onPodConditions: arr(b('PodFailurePolicyOnPodConditionsPattern'), { listType: 'atomic' }),
      },
      ['action'],
    ),
    [`${BATCH}PodFailurePolicyOnExitCodesRequirement`]: obj(
      { containerName: str, operator: str, values: arr(i32, { listType: 'set' }) },
      ['operator', 'values'],
    ),
    [`${BATCH}PodFailurePolicyOnPodConditionsPattern`]: obj({ status: str, type: str }, ['type', 'status']),
    [`${BATCH}SuccessPolicy`]: obj({ rules: arr(b('SuccessPolicyRule'), { listType: 'atomic' }) }, ['rules']),
    [`${BATCH}SuccessPolicyRule`]: obj({ succeededCount: i32, succeededIndexes: str }),
    [`${BATCH}JobStatus`]: obj({
      active: i32,
      completedIndexes: str,
      completionTime: time(),
      conditions: arr(b('JobCondition'), { listType: 'atomic', key: 'type', strategy: 'merge' }),
      failed: i32,
      failedIndexes: str,
      ready: i32,
      startTime: time(),
      succeeded: i32,
      terminating: i32,
      uncountedTerminatedPods: b('UncountedTerminatedPods'),
    }),
    [`${BATCH}JobCondition`]: obj(
      {
        lastProbeTime: time(),
        lastTransitionTime: time(),
        message: str,
        reason: str,
        status: str,
        type: str,
      },
      ['type', 'status'],
    ),
    [`${BATCH}UncountedTerminatedPods`]: obj({
      failed: arr(str, { listType: 'set' }),
      succeeded: arr(str, { listType: 'set' }),
    }),
    [`${EVENTS}Event`]: kind(
      ['events.k8s.io', 'v1', 'Event'],
      'Event is a report of an event somewhere in the cluster.',
      {
        action: str,
        deprecatedCount: i32,
        deprecatedFirstTimestamp: time(),
        deprecatedLastTimestamp: time(),
        deprecatedSource: ref(`${CORE}EventSource`),
        eventTime: microTime(),
        note: str,
        reason: str,
        regarding: ref(`${CORE}ObjectReference`),
        related: ref(`${CORE}ObjectReference`),
        reportingController: str,
        reportingInstance: str,
        series: ref(`${EVENTS}EventSeries`),
        type: str,
      },
      ['eventTime'],
    ),
    [`${EVENTS}EventSeries`]: obj({ count: i32, lastObservedTime: microTime() }, [
      'count',
      'lastObservedTime',
    ]),
    [`${AUTHZ}SelfSubjectAccessReview`]: kind(
      ['authorization.k8s.io', 'v1', 'SelfSubjectAccessReview'],
      'SelfSubjectAccessReview checks whether the current user can perform an action.',
      { spec: ref(`${AUTHZ}SelfSubjectAccessReviewSpec`), status: ref(`${AUTHZ}SubjectAccessReviewStatus`) },
      ['spec'],
    ),
    [`${AUTHZ}SelfSubjectAccessReviewSpec`]: obj({
      nonResourceAttributes: ref(`${AUTHZ}NonResourceAttributes`),
      resourceAttributes: ref(`${AUTHZ}ResourceAttributes`),
    }),
    [`${AUTHZ}NonResourceAttributes`]: obj({ path: str, verb: str }),
    [`${AUTHZ}ResourceAttributes`]: obj({
      group: str,
      name: str,
      namespace: str,
      resource: str,
      subresource: str,
      verb: str,
      version: str,
    }),
    [`${AUTHZ}SubjectAccessReviewStatus`]: obj(
      { allowed: bool, denied: bool, evaluationError: str, reason: str },
      ['allowed'],
    ),
    [`${SCALE}Scale`]: kind(
      ['autoscaling', 'v1', 'Scale'],
      'Scale represents a scaling request for a resource.',
      {
        spec: ref(`${SCALE}ScaleSpec`),
        status: ref(`${SCALE}ScaleStatus`),
      },
    ),
    [`${SCALE}ScaleSpec`]: obj({ replicas: i32 }),
    [`${SCALE}ScaleStatus`]: obj({ replicas: i32, selector: str }, ['replicas']),
    [`${APIEXT}CustomResourceDefinition`]: kind(
      ['apiextensions.k8s.io', 'v1', 'CustomResourceDefinition'],
      'CustomResourceDefinition represents a resource that should be exposed on the API server.',
      { spec: x('CustomResourceDefinitionSpec'), status: x('CustomResourceDefinitionStatus') },
      ['spec'],
    ),
    [`${APIEXT}CustomResourceDefinitionSpec`]: obj(
      {
        conversion: x('CustomResourceConversion'),
        group: str,
        names: x('CustomResourceDefinitionNames'),
        preserveUnknownFields: bool,
        scope: str,
        versions: arr(x('CustomResourceDefinitionVersion'), { listType: 'atomic' }),
      },
      ['group', 'names', 'scope', 'versions'],
    ),
    [`${APIEXT}CustomResourceConversion`]: obj(
      { strategy: str, webhook: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      ['strategy'],
    ),
    [`${APIEXT}CustomResourceDefinitionNames`]: obj(
      {
        categories: strs(),
        kind: str,
        listKind: str,
        plural: str,
        shortNames: strs(),
        singular: str,
      },
      ['plural', 'kind'],
    ),
    [`${APIEXT}CustomResourceDefinitionVersion`]: obj(
      {
        additionalPrinterColumns: arr(x('CustomResourceColumnDefinition'), { listType: 'atomic' }),
        deprecated: bool,
        deprecationWarning: str,
        name: str,
        schema: x('CustomResourceValidation'),
        selectableFields: arr(x('SelectableField'), { listType: 'atomic' }),
        served: bool,
        storage: bool,
        subresources: x('CustomResourceSubresources'),
      },
      ['name', 'served', 'storage'],
    ),
    [`${APIEXT}CustomResourceColumnDefinition`]: obj(
      { description: str, format: str, jsonPath: str, name: str, priority: i32, type: str },
      ['name', 'type', 'jsonPath'],
    ),
    [`${APIEXT}SelectableField`]: obj({ jsonPath: str }, ['jsonPath']),
    [`${APIEXT}CustomResourceValidation`]: obj({ openAPIV3Schema: jsonSchemaProps() }),
    [`${APIEXT}CustomResourceSubresources`]: obj({
      scale: x('CustomResourceSubresourceScale'),
      status: { type: 'object', description: 'Enables the status subresource.' },
    }),
    [`${APIEXT}CustomResourceSubresourceScale`]: obj(
      { labelSelectorPath: str, specReplicasPath: str, statusReplicasPath: str },
      ['specReplicasPath', 'statusReplicasPath'],
    ),
    [`${APIEXT}CustomResourceDefinitionStatus`]: obj({
      acceptedNames: x('CustomResourceDefinitionNames'),
      conditions: arr(x('CustomResourceDefinitionCondition'), { listType: 'map', mapKeys: ['type'] }),
      storedVersions: strs(),
    }),
    [`${APIEXT}CustomResourceDefinitionCondition`]: obj(
      { lastTransitionTime: time(), message: str, reason: str, status: str, type: str },
      ['type', 'status'],
    ),
    [`${APIEXT}JSONSchemaProps`]: obj({
      $ref: str,
      $schema: str,
      additionalItems: anyJson,
      additionalProperties: anyJson,
      allOf: arr(jsonSchemaProps(), { listType: 'atomic' }),
      anyOf: arr(jsonSchemaProps(), { listType: 'atomic' }),
      default: anyJson,
      definitions: map(jsonSchemaProps()),
      dependencies: map(anyJson),
      description: str,
      enum: arr(anyJson, { listType: 'atomic' }),
      example: anyJson,
      exclusiveMaximum: bool,
      exclusiveMinimum: bool,
      externalDocs: obj({ description: str, url: str }),
      format: str,
      id: str,
      items: anyJson,
      maxItems: i64,
      maxLength: i64,
      maxProperties: i64,
      maximum: num,
      minItems: i64,
      minLength: i64,
      minProperties: i64,
      minimum: num,
      multipleOf: num,
      not: jsonSchemaProps(),
      nullable: bool,
      oneOf: arr(jsonSchemaProps(), { listType: 'atomic' }),
      pattern: str,
      patternProperties: map(jsonSchemaProps()),
      properties: map(jsonSchemaProps()),
      required: strs(),
      title: str,
      type: str,
      uniqueItems: bool,
      'x-kubernetes-embedded-resource': bool,
      'x-kubernetes-int-or-string': bool,
      'x-kubernetes-list-map-keys': strs(),
      'x-kubernetes-list-type': str,
      'x-kubernetes-map-type': str,
      'x-kubernetes-preserve-unknown-fields': bool,
      'x-kubernetes-validations': arr(x('ValidationRule'), {
        listType: 'map',
        mapKeys: ['rule'],
        key: 'rule',
        strategy: 'merge',
      }),
    }),
    [`${APIEXT}ValidationRule`]: obj(
      { fieldPath: str, message: str, messageExpression: str, optionalOldSelf: bool, reason: str, rule: str },
      ['rule'],
    ),
  };
}

let builtinCache: Readonly<Record<string, Schema>> | undefined;

/** Every built-in schema, keyed by Kubernetes definition name (built once). */
export function builtinSchemas(): Readonly<Record<string, Schema>> {
  builtinCache ??= Object.freeze({
    ...metaSchemas(),
    ...podSchemas(),
    ...coreSchemas(),
    ...appsSchemas(),
    ...otherSchemas(),
  });
  return builtinCache;
}

const GROUP_PACKAGES: Readonly<Record<string, string>> = {
  '': 'io.k8s.api.core',
  'apiextensions.k8s.io': 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions',
  'apiregistration.k8s.io': 'io.k8s.kube-aggregator.pkg.apis.apiregistration',
};

/**
 * The definition name of a kind in `components.schemas`: `io.k8s.api.apps.v1.Deployment` for built-ins,
 * the reversed group for custom resources (`com.example.stable.v1.CronTab`), as Kubernetes names them.
 */
export function definitionName(gvk: GroupVersionKind, custom = false): string {
  if (custom) return `${gvk.group.split('.').reverse().join('.')}.${gvk.version}.${gvk.kind}`;
  const pkg = GROUP_PACKAGES[gvk.group] ?? `io.k8s.api.${gvk.group.split('.')[0]}`;
  return `${pkg}.${gvk.version}.${gvk.kind}`;
}

// ---- Documents --------------------------------------------------------------------------------------

export interface OpenApiOptions extends DiscoveryOptions {
  /** A custom resource version's `openAPIV3Schema` from its CRD (undefined: accept any fields). */
  readonly customSchema?: (rt: ResourceType) => Schema | undefined;
  /** Declare `application/apply-patch+yaml` on PATCH (only when server-side apply is served). */
  readonly serverSideApply?: boolean;
  /** `info.version` of each document; default 'v1.32.0'. */
  readonly serverVersion?: string;
}

export interface OpenApiDocument {
  openapi: '3.0.0';
  info: { title: string; version: string };
  paths: Record<string, Schema>;
  components: { schemas: Record<string, Schema> };
}

export interface OpenApiIndex {
  paths: Record<string, { serverRelativeURL: string }>;
}

/** The index key of a group-version: `api/v1` or `apis/{group}/{version}`. */
export function openapiPrefix(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

/** Every served group-version's index key, core first, in first-seen order. */
export function openapiPrefixes(resources: readonly ResourceType[]): string[] {
  const seen = new Set<string>();
  const sorted = [...resources].sort((a, b) => (a.group === '' ? 0 : 1) - (b.group === '' ? 0 : 1));
  for (const rt of sorted) seen.add(openapiPrefix(rt.group, rt.version));
  return [...seen];
}

/** JSON with object keys sorted, so equal content always serializes (and hashes) the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A content hash (upper-case hex SHA-512, like Kubernetes'): equal for equal content, whatever the key order. */
export function openapiHash(doc: unknown): string {
  return createHash('sha512').update(canonicalJson(doc)).digest('hex').toUpperCase();
}

/** `/openapi/v3`: every served group-version with its document's URL, the hash making it cacheable. */
export function openapiV3Index(
  resources: readonly ResourceType[],
  options: OpenApiOptions = {},
): OpenApiIndex {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const prefix of openapiPrefixes(resources)) {
    const doc = openapiV3Document(resources, prefix, options);
    if (doc === undefined) continue;
    paths[prefix] = { serverRelativeURL: `/openapi/v3/${prefix}?hash=${openapiHash(doc)}` };
  }
  return { paths };
}

function parsePrefix(prefix: string): { group: string; version: string } | undefined {
  const parts = prefix.replace(/^\/+|\/+$/g, '').split('/');
  if (parts.length === 2 && parts[0] === 'api' && parts[1] !== '') return { group: '', version: parts[1]! };
  if (parts.length === 3 && parts[0] === 'apis' && parts[1] !== '' && parts[2] !== '') {
    return { group: parts[1]!, version: parts[2]! };
  }
  return undefined;
}

const COMMON_PARAMS = {
  pretty: param('pretty', 'query', str, "If 'true', the output is pretty printed."),
  name: param('name', 'path', str, 'Name of the object.', true),
  namespace: param(
    'namespace',
    'path',
    str,
    'Object name and auth scope, such as for teams and projects.',
    true,
  ),
};

function param(
  name: string,
  where: 'query' | 'path',
  schema: Schema,
  description: string,
  required = false,
): Schema {
  return {
    name,
    in: where,
    description,
    ...(required ? { required: true } : {}),
    schema: where === 'query' && schema['type'] === 'string' ? { ...schema, uniqueItems: true } : schema,
  };
}

const LIST_PARAMS: Schema[] = [
  param('allowWatchBookmarks', 'query', bool, 'Request watch events with type BOOKMARK.'),
  param('continue', 'query', str, 'The continue token from a previous paged list.'),
  param('fieldSelector', 'query', str, 'Restrict the returned objects by their fields.'),
  param('labelSelector', 'query', str, 'Restrict the returned objects by their labels.'),
  param('limit', 'query', { type: 'integer' }, 'Maximum number of objects to return in one page.'),
  param('resourceVersion', 'query', str, 'Which resource versions the request may be served from.'),
  param('resourceVersionMatch', 'query', str, 'How resourceVersion is applied to list calls.'),
  param('sendInitialEvents', 'query', bool, 'Start a watch with synthetic events for the current state.'),
  param('timeoutSeconds', 'query', { type: 'integer' }, 'Timeout for the list or watch call.'),
  param(
    'watch',
    'query',
    bool,
    'Watch for changes and return them as a stream of add, update and remove events.',
  ),
];
const DRY_RUN = param('dryRun', 'query', str, "When present ('All'), modifications are not persisted.");
const FIELD_MANAGER = param(
  'fieldManager',
  'query',
  str,
  'Name of the actor making the change (for managed fields).',
);
const FIELD_VALIDATION = param(
  'fieldValidation',
  'query',
  str,
  'How the server handles unknown or duplicate fields in the object: Ignore, Warn or Strict.',
);
const WRITE_PARAMS = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
const PATCH_PARAMS = [
  ...WRITE_PARAMS,
  param('force', 'query', bool, 'Force an apply request to take over conflicting fields.'),
];
const DELETE_PARAMS: Schema[] = [
  DRY_RUN,
  param('gracePeriodSeconds', 'query', { type: 'integer' }, 'Seconds before the object is deleted.'),
  param(
    'ignoreStoreReadErrorWithClusterBreakingPotential',
    'query',
    bool,
    'Delete objects that cannot be read from storage (unsafe).',
  ),
  param('orphanDependents', 'query', bool, 'Deprecated: use propagationPolicy.'),
  param(
    'propagationPolicy',
    'query',
    str,
    'Whether and how garbage collection is performed: Orphan, Background or Foreground.',
  ),
];
const DELETECOLLECTION_PARAMS = [
  ...DELETE_PARAMS,
  ...LIST_PARAMS.filter((p) => p['name'] !== 'watch' && p['name'] !== 'allowWatchBookmarks'),
];

const MEDIA = ['application/json', 'application/yaml'] as const;

function content(name: string): Schema {
  const out: Schema = {};
  for (const m of MEDIA) out[m] = { schema: { $ref: REF_PREFIX + name } };
  return out;
}

interface OperationSpec {
  readonly method: 'get' | 'put' | 'post' | 'patch' | 'delete';
  readonly action: string;
  readonly operationId: string;
  readonly gvk: GroupVersionKind;
  /** Definition name of the response (and request body for post/put); absent for untyped subresources. */
  readonly schema?: string;
  readonly params?: readonly Schema[];
  readonly patchTypes?: readonly string[];
  readonly created?: boolean;
}

function operation(spec: OperationSpec, tag: string): Schema {
  const ok: Schema =
    spec.schema === undefined ? { description: 'OK' } : { description: 'OK', content: content(spec.schema) };
  const responses: Schema = { '200': ok, '401': { description: 'Unauthorized' } };
  if (spec.created === true) {
    responses['201'] = { ...ok, description: 'Created' };
    responses['202'] = { ...ok, description: 'Accepted' };
  }
  const op: Schema = {
    description: `${spec.action} ${spec.gvk.kind}`,
    operationId: spec.operationId,
    tags: [tag],
    ...(spec.params === undefined || spec.params.length === 0 ? {} : { parameters: [...spec.params] }),
    responses,
    'x-kubernetes-action': spec.action,
    'x-kubernetes-group-version-kind': {
      group: spec.gvk.group,
      version: spec.gvk.version,
      kind: spec.gvk.kind,
    },
  };
  if ((spec.method === 'post' || spec.method === 'put') && spec.schema !== undefined) {
    op['requestBody'] = {
      content: { '*/*': { schema: { $ref: REF_PREFIX + spec.schema } } },
      required: true,
    };
  }
  if (spec.method === 'patch') {
    const types: Schema = {};
    for (const t of spec.patchTypes ?? []) types[t] = { schema: { $ref: `${REF_PREFIX}${META}Patch` } };
    op['requestBody'] = { content: types, required: true };
  }
  if (spec.method === 'delete') {
    op['requestBody'] = { content: { '*/*': { schema: { $ref: `${REF_PREFIX}${META}DeleteOptions` } } } };
  }
  return op;
}

const VERB_METHOD: Readonly<Record<string, OperationSpec['method']>> = {
  get: 'get',
  update: 'put',
  patch: 'patch',
  create: 'post',
  delete: 'delete',
};

function pathsFor(rt: ResourceType, options: OpenApiOptions, schemaName: string): Record<string, Schema> {
  const paths: Record<string, Schema> = {};
  const gvk: GroupVersionKind = { group: rt.group, version: rt.version, kind: rt.kind };
  const tag = `${rt.group === '' ? 'core' : rt.group.split('.')[0]}_${rt.version}`;
  const root = rt.group === '' ? `/api/${rt.version}` : `/apis/${rt.group}/${rt.version}`;
  const base = rt.namespaced ? `${root}/namespaces/{namespace}` : root;
  const collection = `${base}/${rt.plural}`;
  const item = `${collection}/{name}`;
  const scopeParams = rt.namespaced
    ? [COMMON_PARAMS.namespace, COMMON_PARAMS.pretty]
    : [COMMON_PARAMS.pretty];
  const itemParams = [COMMON_PARAMS.name, ...scopeParams];
  const ns = rt.namespaced ? 'Namespaced' : '';
  const patchTypes = [
    'application/json-patch+json',
    'application/merge-patch+json',
    // kubectl apply uses a strategic merge patch only when the PATCH operation declares it.
    ...(rt.custom ? [] : ['application/strategic-merge-patch+json']),
    ...(options.serverSideApply === true ? ['application/apply-patch+yaml'] : []),
  ];
  const listName = definitionName({ group: rt.group, version: rt.version, kind: rt.listKind }, rt.custom);
  const has = (verb: string): boolean => rt.verbs.includes(verb);
  const pathItem = (params: Schema[], ops: Record<string, Schema>): Schema | undefined =>
    Object.keys(ops).length === 0 ? undefined : { ...ops, parameters: params };
  const put = (path: string, value: Schema | undefined): void => {
    if (value !== undefined) paths[path] = value;
  };

  const collectionOps: Record<string, Schema> = {};
  if (has('list')) {
    collectionOps['get'] = operation(
      {
        method: 'get',
        action: 'list',
        operationId: `list${ns}${rt.kind}`,
        gvk,
        schema: listName,
        params: LIST_PARAMS,
      },
      tag,
    );
  }
  if (has('create')) {
    collectionOps['post'] = operation(
      {
        method: 'post',
        action: 'post',
        operationId: `create${ns}${rt.kind}`,
        gvk,
        schema: schemaName,
        params: WRITE_PARAMS,
        created: true,
      },
      tag,
    );
  }
  if (has('deletecollection')) {
    collectionOps['delete'] = operation(
      {
        method: 'delete',
        action: 'deletecollection',
        operationId: `deletecollection${ns}${rt.kind}`,
        gvk,
        schema: `${META}Status`,
        params: DELETECOLLECTION_PARAMS,
      },
      tag,
    );
  }
  put(collection, pathItem(scopeParams, collectionOps));
  if (rt.namespaced && has('list')) {
    put(`${root}/${rt.plural}`, {
      get: operation(
        {
          method: 'get',
          action: 'list',
          operationId: `list${rt.kind}ForAllNamespaces`,
          gvk,
          schema: listName,
          params: LIST_PARAMS,
        },
        tag,
      ),
      parameters: [COMMON_PARAMS.pretty],
    });
  }

  const itemOps: Record<string, Schema> = {};
  if (has('get')) {
    itemOps['get'] = operation(
      { method: 'get', action: 'get', operationId: `read${ns}${rt.kind}`, gvk, schema: schemaName },
      tag,
    );
  }
  if (has('update')) {
    itemOps['put'] = operation(
      {
        method: 'put',
        action: 'put',
        operationId: `replace${ns}${rt.kind}`,
        gvk,
        schema: schemaName,
        params: WRITE_PARAMS,
        created: true,
      },
      tag,
    );
  }
  if (has('patch')) {
    itemOps['patch'] = operation(
      {
        method: 'patch',
        action: 'patch',
        operationId: `patch${ns}${rt.kind}`,
        gvk,
        schema: schemaName,
        params: PATCH_PARAMS,
        patchTypes,
        created: true,
      },
      tag,
    );
    // The response of a patch is the object, like get.
    (itemOps['patch'] as Schema)['responses'] = {
      '200': { description: 'OK', content: content(schemaName) },
      '201': { description: 'Created', content: content(schemaName) },
      '401': { description: 'Unauthorized' },
    };
  }
  if (has('delete')) {
    itemOps['delete'] = operation(
      {
        method: 'delete',
        action: 'delete',
        operationId: `delete${ns}${rt.kind}`,
        gvk,
        schema: `${META}Status`,
        params: DELETE_PARAMS,
      },
      tag,
    );
  }
  put(item, pathItem(itemParams, itemOps));

  for (const sub of subresourcesOf(rt, options)) {
    const subGvk = sub.kind ?? gvk;
    const subSchema =
      sub.kind === undefined
        ? schemaName
        : definitionName(sub.kind) in builtinSchemas()
          ? definitionName(sub.kind)
          : undefined;
    const suffix = sub.name.charAt(0).toUpperCase() + sub.name.slice(1);
    const ops: Record<string, Schema> = {};
    for (const verb of sub.verbs) {
      const method = VERB_METHOD[verb];
      if (method === undefined) continue;
      const action = method === 'get' ? 'get' : method;
      const spec: OperationSpec = {
        method,
        action,
        operationId: `${verb === 'get' ? 'read' : verb === 'update' ? 'replace' : verb}${ns}${rt.kind}${suffix}`,
        gvk: subGvk,
        ...(subSchema === undefined ? {} : { schema: subSchema }),
        params: method === 'patch' ? PATCH_PARAMS : method === 'put' || method === 'post' ? WRITE_PARAMS : [],
        ...(method === 'patch' ? { patchTypes } : {}),
        created: method !== 'get',
      };
      ops[method] = operation(spec, tag);
    }
    put(`${item}/${sub.name}`, pathItem(itemParams, ops));
  }
  return paths;
}

const TYPE_META_PROPS: Record<string, Schema> = { ...TYPE_META };

/** A custom resource's schema: its CRD's openAPIV3Schema with apiVersion, kind, metadata and its GVK. */
export function customResourceSchema(rt: ResourceType, openAPIV3Schema: Schema | undefined): Schema {
  const base: Schema = openAPIV3Schema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  const props = base['properties'];
  const properties: Record<string, JsonValue> =
    typeof props === 'object' && props !== null && !Array.isArray(props) ? { ...props } : {};
  return {
    ...base,
    type: 'object',
    properties: { ...properties, ...TYPE_META_PROPS, metadata: objectMeta() },
    'x-kubernetes-group-version-kind': gvkExt(rt.group, rt.version, rt.kind),
  };
}

function customListSchema(rt: ResourceType, itemName: string): Schema {
  return list([rt.group, rt.version, rt.listKind], itemName);
}

/** Names referenced by $ref anywhere inside a value. */
function collectRefs(value: JsonValue, out: Set<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) collectRefs(v, out);
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith(REF_PREFIX))
        out.add(v.slice(REF_PREFIX.length));
      else collectRefs(v, out);
    }
  }
}

function genericSchema(rt: ResourceType): Schema {
  return {
    type: 'object',
    properties: { ...TYPE_META_PROPS, metadata: objectMeta() },
    'x-kubernetes-preserve-unknown-fields': true,
    'x-kubernetes-group-version-kind': gvkExt(rt.group, rt.version, rt.kind),
  };
}

/**
 * `/openapi/v3/{prefix}` (prefix `api/v1` or `apis/{group}/{version}`): the OpenAPI 3.0 document of one
 * group-version, or undefined when nothing is served there.
 */
export function openapiV3Document(
  resources: readonly ResourceType[],
  prefix: string,
  options: OpenApiOptions = {},
): OpenApiDocument | undefined {
  const gv = parsePrefix(prefix);
  if (gv === undefined) return undefined;
  const served = resources.filter((rt) => rt.group === gv.group && rt.version === gv.version);
  if (served.length === 0) return undefined;
  const builtins = builtinSchemas();
  const own: Record<string, Schema> = {};
  const paths: Record<string, Schema> = {};
  for (const rt of served) {
    const name = definitionName(rt, rt.custom);
    const listName = definitionName({ group: rt.group, version: rt.version, kind: rt.listKind }, rt.custom);
    if (rt.custom) own[name] = customResourceSchema(rt, options.customSchema?.(rt));
    else if (!(name in builtins)) own[name] = genericSchema(rt);
    if (!rt.virtual)
      own[listName] = rt.custom
        ? customListSchema(rt, name)
        : list([rt.group, rt.version, rt.listKind], name);
    Object.assign(paths, pathsFor(rt, options, name));
  }
  // Keep the schemas the paths and own schemas reach, and nothing else.
  const schemas: Record<string, Schema> = {};
  const pending = new Set<string>();
  collectRefs(paths, pending);
  collectRefs(own, pending);
  for (const name of Object.keys(own)) pending.add(name);
  while (pending.size > 0) {
    const [name] = pending;
    pending.delete(name!);
    if (name === undefined || name in schemas) continue;
    const schema = own[name] ?? builtins[name];
    if (schema === undefined) continue;
    schemas[name] = schema;
    const refs = new Set<string>();
    collectRefs(schema, refs);
    for (const r of refs) if (!(r in schemas)) pending.add(r);
  }
  const sorted: Record<string, Schema> = {};
  for (const name of Object.keys(schemas).sort()) sorted[name] = schemas[name]!;
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: options.serverVersion ?? 'v1.32.0' },
    paths,
    components: { schemas: sorted },
  };
}

// ---- Field validation -------------------------------------------------------------------------------

/** The schema of a kind in a document, found by its x-kubernetes-group-version-kind. */
export function schemaForKind(doc: OpenApiDocument, gvk: GroupVersionKind): Schema | undefined {
  for (const schema of Object.values(doc.components.schemas)) {
    const ext = schema['x-kubernetes-group-version-kind'];
    if (!Array.isArray(ext)) continue;
    for (const e of ext) {
      if (typeof e !== 'object' || e === null || Array.isArray(e)) continue;
      if (e['group'] === gvk.group && e['version'] === gvk.version && e['kind'] === gvk.kind) return schema;
    }
  }
  return undefined;
}

function resolve(doc: OpenApiDocument, schema: Schema): Schema {
  let current = schema;
  for (let depth = 0; depth < 32; depth++) {
    const direct = current['$ref'];
    const allOf = current['allOf'];
    const first = Array.isArray(allOf) && allOf.length === 1 ? allOf[0] : undefined;
    const target =
      typeof direct === 'string'
        ? direct
        : typeof first === 'object' &&
            first !== null &&
            !Array.isArray(first) &&
            typeof first['$ref'] === 'string'
          ? first['$ref']
          : undefined;
    if (target === undefined) return current;
    const next = doc.components.schemas[target.slice(REF_PREFIX.length)];
    if (next === undefined) return current;
    current = next;
  }
  return current;
}

function isSchema(v: JsonValue | undefined): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Fields of `value` that the kind's schema does not declare (as `.spec.replicass`, `.spec.containers[0].imagee`),
 * for `fieldValidation=Strict`/`Warn`. Empty when the kind is unknown or everything is declared; parts
 * under `x-kubernetes-preserve-unknown-fields` or untyped objects are not checked.
 */
export function findUnknownFields(doc: OpenApiDocument, gvk: GroupVersionKind, value: unknown): string[] {
  const root = schemaForKind(doc, gvk);
  const out: string[] = [];
  if (root === undefined) return out;
  const walk = (schemaIn: Schema, v: unknown, path: string, depth: number): void => {
    if (depth > 64) return;
    const schema = resolve(doc, schemaIn);
    if (schema['x-kubernetes-preserve-unknown-fields'] === true) return;
    if (Array.isArray(v)) {
      const items = schema['items'];
      if (isSchema(items)) {
        for (const [i, e] of v.entries()) walk(items, e, `${path}[${i}]`, depth + 1);
      }
      return;
    }
    if (typeof v !== 'object' || v === null) return;
    const props = schema['properties'];
    const additional = schema['additionalProperties'];
    for (const [k, child] of Object.entries(v)) {
      const childPath = `${path}.${k}`;
      if (isSchema(props) && isSchema(props[k])) walk(props[k], child, childPath, depth + 1);
      else if (isSchema(additional)) walk(additional, child, childPath, depth + 1);
      else if (isSchema(props)) out.push(childPath);
    }
  };
  walk(root, value, '', 0);
  return out;
}
