"""What the sync and the async client share: settings from the
environment, the retry policy (tenacity), and turning answers into JSON or
exceptions. Neither sends anything here."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from qcos_sdk._version import __version__
from qcos_sdk.errors import ConfigurationError, ConnectionFailed, RateLimited, ServiceUnavailable, error_from_response

log = logging.getLogger("qcos_sdk")

URL_ENV = "QCOS_URL"
KEY_ENV = "QCOS_API_KEY"
USER_AGENT = f"qcos-sdk-python/{__version__}"


@dataclass(frozen=True)
class RetryPolicy:
    """How requests are retried after 429 ``RATE_LIMITED``, 503
    ``SERVICE_UNAVAILABLE`` and failed connections (refused, reset, or
    closed by the server as the request went out, as an idle keep-alive
    connection can be).

    ``attempts`` counts every try, the first included (1 turns retries off).
    The wait is the answer's ``Retry-After`` when it has one, else an
    exponential backoff from ``backoff`` seconds with jitter; never more than
    ``max_wait`` seconds. An answer asking for more than ``max_wait`` is not
    waited for: its error is raised at once. A 429 ``QUOTA_EXCEEDED`` (the
    daily job limit, waiting until 00:00 UTC) is never retried.

    Retrying is safe for every call the clients make: reads and cancels are
    idempotent, and each submission carries a ``job_id`` (the caller's, or
    one the SDK generates), so a repeat returns the job the first attempt
    created instead of creating another. The gateway keeps nothing of a
    request it answers 429 or 503.
    """

    attempts: int = 5
    max_wait: float = 60.0
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be 1 or more")
        if self.max_wait < 0 or self.backoff < 0:
            raise ValueError("RetryPolicy waits must be 0 or more seconds")

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, ConnectionFailed):
            return True
        if isinstance(exc, (RateLimited, ServiceUnavailable)):
            return exc.retry_after is None or exc.retry_after <= self.max_wait
        return False

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.max_wait)
        backoff = wait_exponential(multiplier=self.backoff) + wait_random(0, self.backoff)
        return min(backoff(state), self.max_wait)

    def tenacity_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying``."""
        return {
            "stop": stop_after_attempt(self.attempts),
            "wait": self.wait,
            "retry": retry_if_exception(self.should_retry),
            "before_sleep": _log_retry,
            "reraise": True,
        }


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning("%s; retrying in %.1f s (attempt %d)", exc, wait, state.attempt_number + 1)


def resolve_settings(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The gateway URL and API key: the arguments, else ``QCOS_URL`` and
    ``QCOS_API_KEY``. Raises :class:`ConfigurationError` without a URL; a
    missing key is allowed (``/``, ``/pricing`` need none)."""
    base_url = base_url or os.environ.get(URL_ENV)
    if not base_url:
        raise ConfigurationError(f"no QCOS gateway URL: set {URL_ENV} (or pass base_url=, or --url)")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(f"the gateway URL must start with http:// or https://, not {base_url!r}")
    if api_key is None:
        api_key = os.environ.get(KEY_ENV)
    api_key = api_key or None  # "" means no key
    if api_key is not None and (not api_key.isprintable() or not api_key.isascii() or not api_key.strip()):
        raise ConfigurationError(f"the API key ({KEY_ENV}) holds characters no HTTP header may carry")
    return base_url.rstrip("/"), api_key


def default_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key.strip()
    return headers


def segment(value: str) -> str:
    """``value`` as one URL path segment (job and batch ids are the caller's strings)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty id string, not {value!r}")
    return quote(value, safe="")


def decode(response: httpx.Response) -> Any:
    """The JSON body of a successful answer; raises the matching
    :class:`~qcos_sdk.errors.APIError` for an error answer."""
    if response.status_code >= 400:
        raise error_from_response(response)
    try:
        return response.json()
    except ValueError:
        raise error_from_response(response) from None


def results_params(wait_seconds: int) -> dict[str, str]:
    """Query of ``GET /results`` waiting up to ``wait_seconds`` on the server (0: answer at once)."""
    return {"wait": "true", "timeout": str(max(0, int(wait_seconds)))} if wait_seconds > 0 else {"wait": "false"}
