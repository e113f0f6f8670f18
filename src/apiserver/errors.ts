import { invalidMessage, type FieldError as SchemaFieldError } from '../api/crd/index.ts';
import type { Status, StatusCause } from '../api/meta.ts';
import type { ResourceType } from '../api/resource.ts';
import { ApiError } from '../api/status-error.ts';
import { isKedgeError } from '../lib/errors.ts';

export { ApiError } from '../api/status-error.ts';

/** `pods` or `deployments.apps`: how Kubernetes names a resource in messages. */
export function qualifiedResource(rt: Pick<ResourceType, 'group' | 'plural'>): string {
  return rt.group === '' ? rt.plural : `${rt.plural}.${rt.group}`;
}

function detailsOf(rt: Pick<ResourceType, 'group' | 'plural'>, name: string): Status['details'] {
  return { name, group: rt.group, kind: rt.plural };
}

export const apiErrors = {
  notFound(rt: Pick<ResourceType, 'group' | 'plural'>, name: string): ApiError {
    return new ApiError(404, 'NotFound', `${qualifiedResource(rt)} "${name}" not found`, detailsOf(rt, name));
  },
  alreadyExists(rt: Pick<ResourceType, 'group' | 'plural'>, name: string): ApiError {
    return new ApiError(
      409,
      'AlreadyExists',
      `${qualifiedResource(rt)} "${name}" already exists`,
      detailsOf(rt, name),
    );
  },
  conflict(rt: Pick<ResourceType, 'group' | 'plural'>, name: string, why: string): ApiError {
    return new ApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualifiedResource(rt)} "${name}": ${why}`,
      detailsOf(rt, name),
    );
  },
  staleUpdate(rt: Pick<ResourceType, 'group' | 'plural'>, name: string): ApiError {
    return apiErrors.conflict(
      rt,
      name,
      'the object has been modified; please apply your changes to the latest version and try again',
    );
  },
  invalid(
    rt: Pick<ResourceType, 'group' | 'kind'>,
    name: string,
    causes: ReadonlyArray<FieldError | SchemaFieldError>,
  ): ApiError {
    const kind = rt.group === '' ? rt.kind : `${rt.kind}.${rt.group}`;
    const all = causes.map(toSchemaFieldError);
    return new ApiError(422, 'Invalid', invalidMessage(kind, name, all), {
      name,
      group: rt.group,
      kind: rt.kind,
      causes: all.map((c) => ({ reason: c.type, message: c.message, field: c.field })),
    });
  },
  badRequest(message: string, causes?: StatusCause[]): ApiError {
    return new ApiError(400, 'BadRequest', message, causes === undefined ? undefined : { causes });
  },
  methodNotAllowed(message: string): ApiError {
    return new ApiError(405, 'MethodNotAllowed', message);
  },
  notAcceptable(message: string): ApiError {
    return new ApiError(406, 'NotAcceptable', message);
  },
  unsupportedMediaType(contentType: string, accepted: readonly string[]): ApiError {
    return new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
      {
        causes: [
          {
            reason: 'UnsupportedMediaType',
            message: `unsupported media type ${JSON.stringify(contentType)}`,
          },
        ],
      },
    );
  },
  gone(message: string): ApiError {
    return new ApiError(410, 'Expired', message);
  },
  tooLarge(limit: number): ApiError {
    return new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`);
  },
  unauthorized(): ApiError {
    return new ApiError(401, 'Unauthorized', 'Unauthorized');
  },
  forbidden(
    user: string,
    verb: string,
    resource: string,
    group: string,
    namespace: string | undefined,
    why = '',
  ): ApiError {
    const scope = namespace === undefined ? 'at the cluster scope' : `in the namespace "${namespace}"`;
    const what = `User "${user}" cannot ${verb} resource "${resource}" in API group "${group}" ${scope}`;
    return new ApiError(403, 'Forbidden', why === '' ? what : `${what}: ${why}`);
  },
  internal(err: unknown): ApiError {
    const message = err instanceof Error ? err.message : String(err);
    return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`, undefined, err);
  },
  timeout(message: string): ApiError {
    return new ApiError(504, 'Timeout', message);
  },
};

export type FieldErrorType =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueDuplicate'
  | 'FieldValueForbidden'
  | 'FieldValueTooLong'
  | 'FieldValueTypeInvalid';

/** One validation failure found by the API's own checks; `message` is the detail after the value. */
export interface FieldError {
  readonly type: FieldErrorType;
  readonly field: string;
  readonly value?: unknown;
  /** Text after the value, e.g. `must be no more than 63 characters`. */
  readonly detail?: string;
}

/** Both shapes end as the api layer's field error (complete message), as Status causes carry them. */
function toSchemaFieldError(e: FieldError | SchemaFieldError): SchemaFieldError {
  if ('message' in e) return e;
  return { field: e.field, type: e.type, message: formatFieldErrorDetail(e) };
}

const LEAD: Record<FieldErrorType, string> = {
  FieldValueRequired: 'Required value',
  FieldValueInvalid: 'Invalid value',
  FieldValueNotSupported: 'Unsupported value',
  FieldValueDuplicate: 'Duplicate value',
  FieldValueForbidden: 'Forbidden',
  FieldValueTooLong: 'Too long',
  FieldValueTypeInvalid: 'Invalid value',
};

function formatFieldErrorDetail(e: FieldError): string {
  let text = LEAD[e.type];
  if (e.value !== undefined && e.type !== 'FieldValueRequired' && e.type !== 'FieldValueForbidden') {
    text += `: ${typeof e.value === 'string' ? JSON.stringify(e.value) : JSON.stringify(e.value)}`;
  }
  if (e.detail !== undefined && e.detail !== '') text += `: ${e.detail}`;
  return text;
}

export function formatFieldError(e: FieldError): string {
  return `${e.field}: ${formatFieldErrorDetail(e)}`;
}

/** Map store and library errors to API errors; anything unexpected becomes a 500 without leaking internals. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (isKedgeError(err)) {
    switch (err.code) {
      case 'KEDGE_STORE_COMPACTED':
        return apiErrors.gone(err.message);
      case 'KEDGE_SELECTOR_INVALID':
      case 'KEDGE_PATCH_INVALID':
      case 'KEDGE_PROTOBUF_INVALID':
      case 'KEDGE_JSONPATH_INVALID':
        return apiErrors.badRequest(err.message);
      case 'KEDGE_PATCH_TEST_FAILED':
        return new ApiError(422, 'Invalid', err.message);
      case 'KEDGE_PROTOBUF_UNSUPPORTED':
        return new ApiError(415, 'UnsupportedMediaType', err.message);
      case 'KEDGE_STORE_FUTURE_REVISION':
        return new ApiError(504, 'Timeout', `Too large resource version: ${err.message}`, {
          causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
          retryAfterSeconds: 1,
        });
      default:
        break;
    }
  }
  return apiErrors.internal(err);
}
