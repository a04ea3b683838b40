/**
 * Errors of the QCOS client.
 *
 * Every error answer of the API has the shape
 * `{"detail": "...", "error_code": "...", "request_id": "req_..."}`; it
 * becomes an {@link ApiError}, or the subclass that its `error_code` names
 * (see {@link apiErrorFrom}), so callers can `catch` by kind:
 *
 * ```ts
 * try { await client.execute(qasm) }
 * catch (e) { if (e instanceof RateLimitedError) await sleep(e.retryAfter! * 1000) }
 * ```
 */

/** Base class of everything this package throws. */
export class QcosError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The gateway could not be reached, or did not answer in time. */
export class QcosConnectionError extends QcosError {}

/** {@link Client.waitForResult} or {@link Client.waitForBatch} ran out of time; the job goes on. */
export class WaitTimeoutError extends QcosError {}

/** What {@link ApiError} is built from: the HTTP status, the error body and headers. */
export interface ApiErrorInit {
  /** HTTP status code, e.g. 404. */
  status: number;
  /** The API's `error_code`, e.g. `JOB_NOT_FOUND`; `HTTP_<status>` for an answer that was not the API's JSON. */
  errorCode: string;
  /** Human-readable reason. */
  detail: string;
  /** The gateway's `request_id` (also in its log), or null. */
  requestId: string | null;
  /** Seconds from the `Retry-After` header, or null when absent. */
  retryAfter: number | null;
}

/** An error answer of the API. */
export class ApiError extends QcosError {
  readonly status: number;
  readonly errorCode: string;
  readonly detail: string;
  readonly requestId: string | null;
  /** Seconds to wait before retrying (the `Retry-After` header), or null. */
  readonly retryAfter: number | null;

  constructor(init: ApiErrorInit) {
    super(`${init.errorCode} (HTTP ${init.status}): ${init.detail}` +
      (init.requestId ? ` [${init.requestId}]` : ""));
    this.status = init.status;
    this.errorCode = init.errorCode;
    this.detail = init.detail;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }
}

/** `AUTH_REQUIRED` or `AUTH_INVALID` (401): no API key, or an unknown, revoked or disabled one. */
export class AuthenticationError extends ApiError {}

/** `ADMIN_REQUIRED` (403). */
export class PermissionDeniedError extends ApiError {}

/** `QUOTA_EXCEEDED`: 403 for more qubits or shots than the tier allows; 429 (with `retryAfter`) for the daily job limit. */
export class QuotaExceededError extends ApiError {}

/** `RATE_LIMITED` (429): too many requests; `retryAfter` says how many seconds to wait. */
export class RateLimitedError extends ApiError {}

/** `INVALID_REQUEST` (400): a malformed body or parameter. */
export class InvalidRequestError extends ApiError {}

/** `CIRCUIT_INVALID` (400): the OpenQASM program cannot run; `line` and `column` (1-based) where the gateway names them. */
export class CircuitInvalidError extends ApiError {
  readonly line: number | null;
  readonly column: number | null;

  constructor(init: ApiErrorInit) {
    super(init);
    const where = /\bline (\d+)(?:, column (\d+))?/.exec(init.detail);
    this.line = where ? Number(where[1]) : null;
    this.column = where?.[2] ? Number(where[2]) : null;
  }
}

/** `JOB_NOT_FOUND` or `BATCH_NOT_FOUND` (404); another user's job is not found either. */
export class NotFoundError extends ApiError {}

/** `JOB_NOT_FOUND` (404). */
export class JobNotFoundError extends NotFoundError {}

/** `BATCH_NOT_FOUND` (404). */
export class BatchNotFoundError extends NotFoundError {}

/** `JOB_ID_CONFLICT` (409): the custom `job_id` already names a different job. */
export class JobIdConflictError extends ApiError {}

/** `JOB_FAILED` (409): results were asked of a job that failed; `detail` (also `reason`) says why. */
export class JobFailedError extends ApiError {
  get reason(): string {
    return this.detail;
  }
}

/** `SERVICE_UNAVAILABLE` (503): the scheduler or database is unreachable; nothing was kept. */
export class ServiceUnavailableError extends ApiError {}

const BY_CODE: Record<string, new (init: ApiErrorInit) => ApiError> = {
  AUTH_REQUIRED: AuthenticationError,
  AUTH_INVALID: AuthenticationError,
  ADMIN_REQUIRED: PermissionDeniedError,
  QUOTA_EXCEEDED: QuotaExceededError,
  RATE_LIMITED: RateLimitedError,
  INVALID_REQUEST: InvalidRequestError,
  CIRCUIT_INVALID: CircuitInvalidError,
  JOB_NOT_FOUND: JobNotFoundError,
  BATCH_NOT_FOUND: BatchNotFoundError,
  JOB_ID_CONFLICT: JobIdConflictError,
  JOB_FAILED: JobFailedError,
  SERVICE_UNAVAILABLE: ServiceUnavailableError,
};

/** The {@link ApiError} subclass for `init.errorCode` ({@link ApiError} itself for other codes). */
export function apiErrorFrom(init: ApiErrorInit): ApiError {
  const Kind = BY_CODE[init.errorCode] ?? ApiError;
  return new Kind(init);
}
