"""The SDK's one exception hierarchy, and the mapping from the gateway's
``error_code`` to it (:func:`error_from_response`, the only place that
decides which class an error answer becomes).

Every error answer of the gateway is ``{"detail", "error_code",
"request_id"}``; each becomes an :class:`APIError` subclass carrying those
three plus the HTTP status and, for 429/503, ``retry_after`` seconds::

    QCOSError
    ├── ConfigurationError        no gateway URL
    ├── ConnectionFailed          the gateway could not be reached
    ├── JobTimeout                a wait ran out (also a TimeoutError)
    └── APIError                  an error answer of the gateway
        ├── AuthError             AUTH_REQUIRED, AUTH_INVALID
        │   └── AdminRequired     ADMIN_REQUIRED
        ├── InvalidRequest        INVALID_REQUEST, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE
        ├── CircuitInvalid        CIRCUIT_INVALID (line, column, circuit index)
        ├── QuotaExceeded         QUOTA_EXCEEDED (403 tier limit; 429 daily limit with retry_after)
        ├── RateLimited           RATE_LIMITED (retry_after)
        ├── NotFound              NOT_FOUND
        │   ├── JobNotFound       JOB_NOT_FOUND
        │   └── BatchNotFound     BATCH_NOT_FOUND
        ├── Conflict              JOB_ID_CONFLICT, METHOD_NOT_ALLOWED
        ├── JobFailed             JOB_FAILED (job_id, reason)
        ├── ServiceUnavailable    SERVICE_UNAVAILABLE, any 503 (retry_after)
        └── ServerError           INTERNAL_ERROR, any other 5xx
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx


class QCOSError(Exception):
    """Base class of every exception the SDK raises."""


class ConfigurationError(QCOSError):
    """The client lacks a setting it needs (the gateway URL)."""


class ConnectionFailed(QCOSError):
    """The gateway could not be reached, or the connection broke.

    ``request_sent`` is False when the request certainly never reached the
    gateway (connection refused, connect timeout): retrying it is always safe.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class JobTimeout(QCOSError, TimeoutError):
    """A wait for a job or batch ran out before it finished; ``job_id`` names it."""

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class APIError(QCOSError):
    """An error answer of the gateway.

    Attributes: ``status_code`` (HTTP status), ``error_code`` (the gateway's
    code, e.g. ``"CIRCUIT_INVALID"``), ``detail`` (its readable reason),
    ``request_id`` (``req_...``, for the operator's logs; None if absent),
    ``retry_after`` (seconds from the ``Retry-After`` header, or None).
    """

    def __init__(self, detail: str, *, status_code: int, error_code: str, request_id: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{error_code}: {detail}")
        self.detail = detail
        self.status_code = status_code
        self.error_code = error_code
        self.request_id = request_id
        self.retry_after = retry_after


class AuthError(APIError):
    """No API key (``AUTH_REQUIRED``) or an unknown, revoked or disabled one (``AUTH_INVALID``)."""


class AdminRequired(AuthError):
    """An ``/admin`` endpoint was called without an admin key."""


class InvalidRequest(APIError):
    """The request itself is malformed: a bad parameter, body or media type."""


class CircuitInvalid(APIError):
    """The OpenQASM program cannot run.

    ``line`` and ``column`` (1-based) locate the problem where the gateway
    names them; ``index`` is the circuit's position in a batch submission
    (the detail starts ``circuits[<index>]: ``); each is None otherwise.
    """

    _INDEX = re.compile(r"^circuits\[(\d+)\]: ")
    _POSITION = re.compile(r"\bline (\d+)(?:, column (\d+))?")

    def __init__(self, detail: str, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        index = self._INDEX.match(detail)
        self.index: int | None = int(index.group(1)) if index else None
        position = self._POSITION.search(detail)
        self.line: int | None = int(position.group(1)) if position else None
        self.column: int | None = int(position.group(2)) if position and position.group(2) else None


class QuotaExceeded(APIError):
    """The tier's limit: too many qubits or shots (403), or the daily job
    limit used up (429, ``retry_after`` = seconds to the next 00:00 UTC)."""


class RateLimited(APIError):
    """Too many requests; ``retry_after`` says how many seconds to wait."""


class NotFound(APIError):
    """No such endpoint or resource."""


class JobNotFound(NotFound):
    """No such job for this key (another user's job is not found either)."""


class BatchNotFound(NotFound):
    """No such batch for this key."""


class Conflict(APIError):
    """The request conflicts with existing state, e.g. a custom ``job_id`` already used for another job."""


class JobFailed(APIError):
    """The job ran and failed, or was cancelled; ``job_id`` and ``reason`` say which and why."""

    _DETAIL = re.compile(r"^Job (?P<job_id>\S+) failed: (?P<reason>.*)\Z", re.S)

    def __init__(self, detail: str, *, job_id: str | None = None, reason: str | None = None, **kwargs) -> None:
        kwargs.setdefault("status_code", 409)
        kwargs.setdefault("error_code", "JOB_FAILED")
        super().__init__(detail, **kwargs)
        match = self._DETAIL.match(detail)
        self.job_id = job_id or (match["job_id"] if match else None)
        self.reason = reason or (match["reason"] if match else detail)

    @classmethod
    def of(cls, job_id: str, reason: str | None) -> JobFailed:
        """The exception for a job known to be ``failed`` with ``reason`` (from ``/status`` or a batch)."""
        reason = reason or "no reason given"
        return cls(f"Job {job_id} failed: {reason}", job_id=job_id, reason=reason)


class ServiceUnavailable(APIError):
    """The scheduler or the database cannot be reached right now (503); nothing was kept."""


class ServerError(APIError):
    """An unexpected server failure (500 and other 5xx)."""


_BY_CODE: dict[str, type[APIError]] = {
    "AUTH_REQUIRED": AuthError,
    "AUTH_INVALID": AuthError,
    "ADMIN_REQUIRED": AdminRequired,
    "INVALID_REQUEST": InvalidRequest,
    "PAYLOAD_TOO_LARGE": InvalidRequest,
    "UNSUPPORTED_MEDIA_TYPE": InvalidRequest,
    "CIRCUIT_INVALID": CircuitInvalid,
    "QUOTA_EXCEEDED": QuotaExceeded,
    "RATE_LIMITED": RateLimited,
    "NOT_FOUND": NotFound,
    "JOB_NOT_FOUND": JobNotFound,
    "BATCH_NOT_FOUND": BatchNotFound,
    "JOB_ID_CONFLICT": Conflict,
    "METHOD_NOT_ALLOWED": Conflict,
    "JOB_FAILED": JobFailed,
    "SERVICE_UNAVAILABLE": ServiceUnavailable,
    "INTERNAL_ERROR": ServerError,
}

# Answers without a recognised error_code (a proxy's HTML page, a newer code).
_BY_STATUS: dict[int, tuple[type[APIError], str]] = {
    400: (InvalidRequest, "INVALID_REQUEST"),
    401: (AuthError, "AUTH_INVALID"),
    403: (AuthError, "FORBIDDEN"),
    404: (NotFound, "NOT_FOUND"),
    409: (Conflict, "CONFLICT"),
    429: (RateLimited, "RATE_LIMITED"),
    503: (ServiceUnavailable, "SERVICE_UNAVAILABLE"),
}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an
    HTTP date, RFC 9110); None when absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error answer (status ≥ 400) of the gateway."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail")
    if not isinstance(detail, str):
        text = response.text.strip().replace("\n", " ")
        detail = text[:200] or response.reason_phrase or f"HTTP {response.status_code}"
    code = body.get("error_code")
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None:
        cls, fallback = _BY_STATUS.get(response.status_code, (None, None))
        if cls is None:
            cls, fallback = (ServerError, "INTERNAL_ERROR") if response.status_code >= 500 else (APIError, "ERROR")
        code = code if isinstance(code, str) else fallback
    request_id = body.get("request_id") or response.headers.get("X-Request-ID")
    return cls(detail, status_code=response.status_code, error_code=code, request_id=request_id,
               retry_after=parse_retry_after(response.headers.get("Retry-After")))


def connection_failed(exc: httpx.TransportError, url: str) -> ConnectionFailed:
    """The SDK's exception for an httpx transport failure talking to ``url``."""
    sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    reason = str(exc) or exc.__class__.__name__
    return ConnectionFailed(f"cannot reach the QCOS gateway at {url}: {reason}", request_sent=sent)
