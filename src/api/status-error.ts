import { KedgeError } from '../lib/errors.ts';
import type { Status, StatusReason } from './meta.ts';

/**
 * An API failure carried as a meta/v1 Status: what the API server answers and what clients throw.
 * `httpCode` and `reason` are those Kubernetes uses (404 NotFound, 409 Conflict/AlreadyExists, 410 Expired...).
 */
export class ApiError extends KedgeError {
  readonly httpCode: number;
  readonly reason: StatusReason;
  readonly details: Status['details'] | undefined;
  constructor(
    httpCode: number,
    reason: StatusReason,
    message: string,
    details?: Status['details'],
    cause?: unknown,
  ) {
    super('KEDGE_API_STATUS', message, cause === undefined ? {} : { cause });
    this.name = 'ApiError';
    this.httpCode = httpCode;
    this.reason = reason;
    this.details = details;
  }

  toStatus(): Status {
    const status: Status = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.httpCode,
    };
    if (this.details !== undefined) status.details = this.details;
    return status;
  }

  /** Rebuild from a Status received over the wire. */
  static fromStatus(status: Partial<Status>, fallbackCode = 500): ApiError {
    return new ApiError(
      typeof status.code === 'number' ? status.code : fallbackCode,
      status.reason ?? 'InternalError',
      status.message ?? 'unknown error',
      status.details,
    );
  }
}

export function isApiError(err: unknown, httpCode?: number): err is ApiError {
  return err instanceof ApiError && (httpCode === undefined || err.httpCode === httpCode);
}
