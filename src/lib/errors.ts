/** Stable error codes, one table for the whole project. A code is never reused for another meaning. */
export const ErrorCodes = {
  KEDGE_STORE_KEY_EXISTS: 'The key already exists in the store',
  KEDGE_STORE_NOT_FOUND: 'The key does not exist in the store',
  KEDGE_STORE_CONFLICT: 'The key changed since the expected revision',
  KEDGE_STORE_COMPACTED: 'The requested revision was compacted away',
  KEDGE_STORE_FUTURE_REVISION: 'The requested revision is newer than the store',
  KEDGE_STORE_CLOSED: 'The store is closed',
  KEDGE_STORE_INVALID: 'A store argument is invalid',
  KEDGE_STORE_WATCH_OVERFLOW: 'A watcher fell too far behind and was closed',
  KEDGE_STORE_CORRUPT: 'The store holds data it cannot read',
  KEDGE_CONFIG_INVALID: 'A configuration option is invalid',
  KEDGE_SELECTOR_INVALID: 'A label or field selector cannot be parsed',
  KEDGE_PATCH_INVALID: 'A patch cannot be parsed or applied',
  KEDGE_PATCH_TEST_FAILED: 'A JSON patch test operation failed',
  KEDGE_PROTOBUF_INVALID: 'A protobuf body cannot be decoded',
  KEDGE_PROTOBUF_UNSUPPORTED: 'A protobuf body holds a kind kedge cannot decode',
  KEDGE_SCHEMA_INVALID: 'An object does not match its schema',
  KEDGE_JSONPATH_INVALID: 'A JSONPath expression cannot be parsed',
  KEDGE_PKI_INVALID: 'A certificate, key or request is invalid',
  KEDGE_API_STATUS: 'A Kubernetes API request failed with a Status',
  KEDGE_STORE_LOCKED: 'The store file is in use by another store',
  KEDGE_CRD_VERSION_NOT_FOUND: 'A CustomResourceDefinition does not define the requested version',
  KEDGE_PROTOCOL_INVALID: 'A cloud-edge protocol frame is malformed or too large',
  KEDGE_QUANTITY_INVALID: 'A resource quantity cannot be parsed',
  KEDGE_AGENT_SYNC_INVALID: 'A sync batch from the hub cannot be applied',
  KEDGE_AGENT_JOIN_FAILED: 'The node could not join the cluster',
  KEDGE_AGENT_CA_MISMATCH: 'The server CA does not match the hash in the join token',
  KEDGE_AGENT_RUNTIME: 'The pod runtime failed',
  KEDGE_AGENT_STREAM: 'A log or exec stream of a pod cannot be served (context.reason says why)',
  KEDGE_CRI_CALL_FAILED: 'A call to the container runtime (CRI) failed',
  KEDGE_CRI_IMAGE_PULL: 'A container image could not be pulled',
  KEDGE_CRI_POD_INVALID: 'A pod spec holds a value the CRI runtime cannot run',
  KEDGE_WORKLOAD_INVALID: 'A workload spec holds a value its controller cannot use',
  KEDGE_DEVICE_CRD: 'The device CRDs could not be installed or served',
  KEDGE_MQTT_PAYLOAD_INVALID: 'A device twin MQTT payload is malformed',
  KEDGE_MQTT_BROKER: 'The MQTT broker could not be started or reached',
  KEDGE_MAPPER_INVALID: 'A device config or property visitor cannot be used by its mapper',
  KEDGE_MAPPER_UNKNOWN_PROTOCOL: 'No mapper is registered for a device protocol',
  KEDGE_MAPPER_DUPLICATE: 'A mapper for this protocol is already registered',
  KEDGE_MAPPER_WRITE_REFUSED: 'A desired value cannot be written to a device property',
  KEDGE_MAPPER_DEVICE_OFFLINE: 'The device does not answer',
  KEDGE_MODBUS_REQUEST_INVALID: 'A Modbus request has an address, quantity or value out of range',
  KEDGE_MODBUS_FRAME_INVALID: 'A Modbus TCP frame is malformed or does not match its request',
  KEDGE_MODBUS_EXCEPTION: 'A Modbus device answered with an exception response',
  KEDGE_MODBUS_TIMEOUT: 'A Modbus device did not answer in time',
  KEDGE_MODBUS_DISCONNECTED: 'The connection to a Modbus device failed or closed',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** Base of every error kedge throws on purpose; `code` is stable, `context` names the values involved. */
export class KedgeError extends Error {
  readonly code: ErrorCode;
  readonly context: Readonly<Record<string, unknown>>;
  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KedgeError';
    this.code = code;
    this.context = Object.freeze({ ...(options.context ?? {}) });
  }
}

export function isKedgeError(err: unknown, code?: ErrorCode): err is KedgeError {
  return err instanceof KedgeError && (code === undefined || err.code === code);
}
