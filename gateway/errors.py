"""The API's one exception hierarchy and its JSON error format.

Every error answer has the reference's shape::

    {"detail": "...", "error_code": "...", "request_id": "req_..."}

The reference's codes (AUTH_REQUIRED, AUTH_INVALID, RATE_LIMITED,
QUOTA_EXCEEDED, CIRCUIT_INVALID, JOB_NOT_FOUND, JOB_FAILED) are used where
they apply; the codes the reference does not list (INVALID_REQUEST,
JOB_ID_CONFLICT, NOT_FOUND, METHOD_NOT_ALLOWED, FORBIDDEN, PAYLOAD_TOO_LARGE,
UNSUPPORTED_MEDIA_TYPE, REQUEST_TIMEOUT, SERVICE_UNAVAILABLE, INTERNAL_ERROR, BATCH_NOT_FOUND) are
documented
in the README.
"""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException, RequestTimeout

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON with ``status_code`` and ``error_code``."""

    status_code = 500
    error_code = "INTERNAL_ERROR"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class InvalidRequest(ApiError):
    """The body or a parameter is malformed (not the circuit itself)."""

    status_code = 400
    error_code = "INVALID_REQUEST"


class CircuitInvalid(ApiError):
    """The OpenQASM program cannot be run: syntax, unknown gate, size bound."""

    status_code = 400
    error_code = "CIRCUIT_INVALID"


class AuthRequired(ApiError):
    status_code = 401
    error_code = "AUTH_REQUIRED"

    def __init__(self, detail: str = "No API key provided: send it in X-API-Key or Authorization: Bearer") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="qcos"'})


class AuthInvalid(ApiError):
    status_code = 401
    error_code = "AUTH_INVALID"

    def __init__(self, detail: str = "Invalid API key") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="qcos", error="invalid_token"'})


class AdminRequired(ApiError):
    """A valid key without the admin role called an /admin endpoint."""

    status_code = 403
    error_code = "ADMIN_REQUIRED"

    def __init__(self, detail: str = "This endpoint needs an admin API key") -> None:
        super().__init__(detail)


class Forbidden(ApiError):
    """The caller may not use this endpoint from where it is (``/metrics``
    outside ``QCOS_METRICS_ALLOWED_NETWORKS``)."""

    status_code = 403
    error_code = "FORBIDDEN"


class QuotaExceeded(ApiError):
    """A job asks for more than the caller's tier allows (qubits, shots): 403."""

    status_code = 403
    error_code = "QUOTA_EXCEEDED"


class DailyQuotaExceeded(QuotaExceeded):
    """The tier's daily job limit is used up: 429, with Retry-After until the next UTC midnight."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class UnsupportedMediaType(ApiError):
    """The body is not sent as JSON."""

    status_code = 415
    error_code = "UNSUPPORTED_MEDIA_TYPE"


class PayloadTooLarge(ApiError):
    """The body is over ``QCOS_MAX_BODY_BYTES``."""

    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"


class ClientReadTimeout(RequestTimeout):
    """The client stopped sending its request: its headers did not arrive
    within ``QCOS_CLIENT_READ_TIMEOUT`` seconds, or its body paused longer.
    408 ``REQUEST_TIMEOUT``, and the connection is closed.

    Raised by the gunicorn worker (:mod:`gateway.gunicorn_worker`) from a read
    of the request, so from ``request.get_data()`` and the like while a view
    reads the body. A werkzeug ``HTTPException``, not an ``OSError``: werkzeug
    turns ``OSError`` while reading into a 400 "client disconnected", and the
    views re-raise ``HTTPException`` as it is.
    """


class JobNotFound(ApiError):
    status_code = 404
    error_code = "JOB_NOT_FOUND"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job {job_id} not found")


class BatchNotFound(ApiError):
    status_code = 404
    error_code = "BATCH_NOT_FOUND"

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"Batch {batch_id} not found")


class JobIdConflict(ApiError):
    """A custom job_id already names a different job."""

    status_code = 409
    error_code = "JOB_ID_CONFLICT"


class JobFailed(ApiError):
    """Results were asked for a job whose execution failed (409: the job's state, not the request, is at fault)."""

    status_code = 409
    error_code = "JOB_FAILED"


class ServiceUnavailable(ApiError):
    """The scheduler or the database cannot be reached right now."""

    status_code = 503
    error_code = "SERVICE_UNAVAILABLE"

    def __init__(self, detail: str, *, retry_after: int = 30) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


_HTTP_CODES = {
    400: "INVALID_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    # Flask-Limiter's RateLimitExceeded is a werkzeug TooManyRequests; its
    # Retry-After and X-RateLimit-* headers are added by gateway.ratelimit.
    429: "RATE_LIMITED",
}


def error_response(status_code: int, error_code: str, detail: str, headers: dict[str, str] | None = None):
    """The JSON error response of the reference's format."""
    response = jsonify(detail=detail, error_code=error_code, request_id=g.get("request_id", "req_unknown"))
    response.status_code = status_code
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer every error, including Flask's own and unexpected ones, as JSON."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status_code, exc.error_code, exc.detail, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = exc.code or 500
        headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
        detail = exc.description or exc.name
        if code == 404:
            detail = "No such endpoint"
        elif code == 405:
            detail = "Method not allowed on this endpoint"
        elif code == 429:
            detail = f"Rate limit of {exc.description} exceeded; retry after the seconds in Retry-After"
        return error_response(code, _HTTP_CODES.get(code, "HTTP_ERROR"), detail, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if database_unavailable(exc):
            log.error("database unavailable in request %s: %s", g.get("request_id", "-"), exc.__class__.__name__)
            return error_response(503, "SERVICE_UNAVAILABLE", "The job database is unavailable; retry later",
                                  {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
        log.exception("unexpected error in request %s", g.get("request_id", "-"))
        return error_response(500, "INTERNAL_ERROR", "Internal server error")


#: Retry-After of a 503 for an unreachable database: a restart or failover takes seconds.
DATABASE_RETRY_AFTER_SECONDS = 5


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be used right now (answered 503):
    a connection refused or lost (``OperationalError``, an invalidated
    connection, ``InterfaceError`` on a closed one), or no pooled connection
    free within ``QCOS_DB_POOL_TIMEOUT`` (``sqlalchemy.exc.TimeoutError``)."""
    from sqlalchemy import exc as sa

    if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.TimeoutError)):
        return True
    return isinstance(exc, sa.DBAPIError) and exc.connection_invalidated
