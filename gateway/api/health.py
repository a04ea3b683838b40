"""``GET /``: health of the gateway, its database, its scheduler and rate limiter."""

from __future__ import annotations

from flask import Blueprint, current_app

from gateway import estimates
from gateway.errors import ServiceUnavailable
from gateway.openapi import api_spec, responses
from gateway.schemas import HealthResponse

blueprint = Blueprint("health", __name__)


def degraded_sources(runtime) -> list[str]:
    """The sources that are down, in a fixed order, from cached checks only:
    ``scheduler`` (:func:`gateway.estimates.scheduler_connected`),
    ``accounting`` (:func:`gateway.estimates.accounting_connected` is False:
    the poller's last sacct call failed; never for the local executor) and
    ``rate_limiter`` (shared rate-limit storage did not answer its PING,
    :class:`gateway.ratelimit.StorageCheck`; never with ``memory://``)."""
    down = []
    if not estimates.scheduler_connected(runtime):
        down.append("scheduler")
    if estimates.accounting_connected(runtime) is False:
        down.append("accounting")
    if runtime.ratelimit_check is not None and not runtime.ratelimit_check.up():
        down.append("rate_limiter")
    return down


@blueprint.get("/")
@api_spec.validate(operation_id="health", resp=responses({200: HealthResponse}, (429, 503)), tags=["health"], security=[])
def health():
    """No authentication, so load balancers and monitors can call it.

    ``queue_connected``: the poller's last scheduler call answered, and
    that call is recent (:func:`gateway.estimates.scheduler_connected`); no
    scheduler call happens in the request. ``degraded`` lists the sources
    that are down (:func:`degraded_sources`), and is absent when none is;
    ``status`` is ``healthy`` without it and ``degraded`` with it. An
    unreachable database is a 503 (a successful check is reused for
    ``QCOS_DB_PING_TTL`` seconds, a failed one never).
    """
    from gateway import __version__

    runtime = current_app.extensions["qcos"]
    if not runtime.db_check.reachable():
        raise ServiceUnavailable("The job database is unavailable")
    down = degraded_sources(runtime)
    body = HealthResponse(status="degraded" if down else "healthy", version=__version__,
                          queue_connected="scheduler" not in down, degraded=down or None)
    return body.model_dump(exclude_none=True)
