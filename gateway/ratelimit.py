"""Request rate limits per API key (by tier) and per client address, on Flask-Limiter.

Who is counted, and against what (every route of a caller shares one budget):

- a request to a view that requires a key (:func:`gateway.auth.require_api_key`)
  with a valid key: under ``key:<SHA-256 of the key>`` (never the key itself),
  with the owner's tier's ``requests_per_minute`` and ``requests_per_day``
  from ``runtime.tiers`` (``deploy/tiers.toml``; ``-1``: no such limit). The
  tier is read from the database on every request, so a tier change applies
  from the next request on;
- everything else (``GET /`` and other routes without a key, and requests
  with a missing or invalid key): under ``addr:<client address>``, with
  ``QCOS_ANON_RATE_LIMIT``. The address is ``REMOTE_ADDR``, or with
  ``QCOS_TRUSTED_PROXIES=n`` the n-th address from the right of
  ``X-Forwarded-For`` (werkzeug's ``ProxyFix``).

Windows are fixed (``limits``' ``fixed-window`` strategy): a window opens
with the first counted request and lasts one minute or one day (86,400 s)
from then; it is not aligned to clock minutes or UTC midnight. Refused
requests count too.

Headers (every limited response, 429 included): ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` (after this request) and ``X-RateLimit-Reset``
(epoch seconds, rounded up) describe the one limit closest to being
exhausted: the fewest requests remaining, and among equals the later reset.
A 429 also carries ``Retry-After`` (seconds, at least 1). This deliberately
differs from Flask-Limiter's own headers (the shortest window unless another
is breached), which would show a free key 7 of 10 left for the minute while
only 2 of its 100 for the day remain. Responses no limit applies to (a tier
without limits, unknown routes) carry none of them.

Storage: ``QCOS_RATELIMIT_STORAGE_URI``. ``memory://`` counts inside one
process, so ``deploy/gunicorn.conf.py`` runs a single worker process then;
``redis://`` is shared by all workers (increments are atomic Lua scripts).

A storage outage never answers 500: each process falls back to counting in
its own memory with the same limits (Flask-Limiter's
``in_memory_fallback_enabled``; limits are then per worker process, up to
``workers`` times looser), logs "Rate limit storage unreachable", and checks
the storage again after 1, 2, 4 … 32 s, switching back when it answers.
Any other limiter error is logged and the request goes through
(``swallow_errors``): an outage of the limiter must not become one of the API.
``GET /`` reports such an outage (``degraded: ["rate_limiter"]``) from
:class:`StorageCheck`, a PING reused for ``QCOS_RATELIMIT_CHECK_TTL`` seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

from flask import Flask, Response, current_app, g, request
from flask_limiter import ApplicationLimit, Limiter
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.tiers import UNLIMITED, Tier

log = logging.getLogger(__name__)

EXTENSION = "qcos_ratelimit"
# Seconds a Redis connect or command may take before the request counts in
# memory instead: a rate-limit check must never hold a request for long.
_REDIS_TIMEOUT_SECONDS = 0.5
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")


def tier_limits(tier: Tier) -> str:
    """A tier's request limits in ``limits`` notation: ``"10/minute;100/day"``,
    ``"300/minute"`` (no day limit), or ``""`` (unlimited)."""
    parts = []
    if tier.requests_per_minute != UNLIMITED:
        parts.append(f"{tier.requests_per_minute}/minute")
    if tier.requests_per_day != UNLIMITED:
        parts.append(f"{tier.requests_per_day}/day")
    return ";".join(parts)


def caller_key() -> str:
    """The storage identity of the caller: ``key:<sha256 hex>`` or ``addr:<address>``."""
    key_hash = g.get("api_key_hash")
    if key_hash:
        return "key:" + key_hash
    return "addr:" + (request.remote_addr or "unknown")


def caller_limits() -> str:
    """The limits (``limits`` notation) for the current caller; see the module docstring."""
    runtime = current_app.extensions["qcos"]
    user = g.get("user")
    if g.get("api_key_hash") and user is not None:
        tier = runtime.tiers.get(user.tier)
        if tier is not None:
            return tier_limits(tier)
        # A tier removed from the tiers file must not make its users unlimited.
        log.warning("user %s has tier %r, which the tiers file does not define; using QCOS_ANON_RATE_LIMIT",
                    user.id, user.tier)
    return runtime.settings.anon_rate_limit


def _storage_options(uri: str) -> dict:
    if uri.partition(":")[0] in _REDIS_SCHEMES:
        return {"socket_connect_timeout": _REDIS_TIMEOUT_SECONDS, "socket_timeout": _REDIS_TIMEOUT_SECONDS}
    return {}


def _add_headers(response: Response) -> Response:
    limiter: Limiter = current_app.extensions[EXTENSION]
    limits = limiter.current_limits if limiter.enabled else []
    if not limits:
        return response
    try:
        windows = [(limit, limit.window) for limit in limits]
    except Exception:  # noqa: BLE001 - storage gone mid-request; the next request falls back
        log.warning("rate limit storage unreachable; response sent without X-RateLimit headers", exc_info=True)
        return response
    limit, window = min(windows, key=lambda pair: (pair[1].remaining, -pair[1].reset_time))
    reset = math.ceil(window.reset_time)
    response.headers["X-RateLimit-Limit"] = str(limit.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(window.remaining)
    response.headers["X-RateLimit-Reset"] = str(reset)
    # Only for the limiter's own 429: a daily job quota's 429 has its own Retry-After.
    if any(checked.breached for checked in limits):
        response.headers["Retry-After"] = str(max(1, math.ceil(window.reset_time - time.time())))
    return response


class StorageCheck:
    """Whether the limiter's shared storage (Redis) answers, for ``GET /``
    and ``/metrics`` without a storage call per request.

    :meth:`up` runs ``storage.check()`` (a PING, bounded by the 0.5 s Redis
    timeout) and reuses its answer, success or failure, for ``ttl`` seconds
    in this process. While one thread checks, the others take the previous
    answer rather than wait or ping as well. ``clock``: monotonic seconds.
    """

    def __init__(self, storage, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._storage = storage
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._up = True
        self._checked_at = float("-inf")

    def up(self) -> bool:
        """True when the last check (at most ``ttl`` seconds old) reached the storage."""
        if self._clock() - self._checked_at < self._ttl or not self._lock.acquire(blocking=False):
            return self._up
        try:
            if self._clock() - self._checked_at >= self._ttl:  # not just done by another thread
                self._up = bool(self._storage.check())
                self._checked_at = self._clock()
            return self._up
        finally:
            self._lock.release()


def init_app(app: Flask) -> Limiter:
    """Bind rate limiting to ``app`` (after ``app.extensions["qcos"]`` is set).

    Register :func:`gateway.auth.authenticate_request` as a ``before_request``
    hook *before* calling this: the limiter's hook, added here, needs
    ``g.user`` and ``g.api_key_hash``. Returns the :class:`Limiter`, also in
    ``app.extensions["qcos_ratelimit"]``. With shared storage, sets the
    runtime's ``ratelimit_check`` (:class:`StorageCheck`). Opens no connection.
    """
    runtime = app.extensions["qcos"]
    settings = runtime.settings
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=0, x_host=0, x_port=0,
                                x_prefix=0)
    # One Limiter per app rather than one per module: Flask-Limiter keeps its
    # storage and settings on the instance, and tests build many apps with
    # different storages in one process.
    limiter = Limiter(
        key_func=caller_key,
        application_limits=[ApplicationLimit(limit_provider=caller_limits, scope="api")],
        strategy="fixed-window",
        storage_uri=settings.ratelimit_storage_uri,
        storage_options=_storage_options(settings.ratelimit_storage_uri),
        key_prefix=settings.ratelimit_key_prefix,
        headers_enabled=False,
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        enabled=settings.ratelimit_enabled,
    )
    limiter.init_app(app)
    if settings.ratelimit_enabled and not settings.ratelimit_storage_is_process_local:
        runtime.ratelimit_check = StorageCheck(limiter.storage, settings.ratelimit_check_ttl_seconds)
    app.after_request(_add_headers)
    app.extensions[EXTENSION] = limiter
    return limiter
