"""``GET /``: health of the gateway, its database and its scheduler."""

from __future__ import annotations

from flask import Blueprint, current_app

from gateway import estimates
from gateway.errors import ServiceUnavailable
from gateway.openapi import api_spec, responses
from gateway.schemas import HealthResponse

blueprint = Blueprint("health", __name__)


@blueprint.get("/")
@api_spec.validate(operation_id="health", resp=responses({200: HealthResponse}, (429, 503)), tags=["health"], security=[])
def health():
    """No authentication, so load balancers and monitors can call it.

    ``queue_connected``: the poller's last scheduler call answered, and
    that call is recent (:func:`gateway.estimates.scheduler_connected`); no
    scheduler call happens in the request. ``status`` is ``healthy`` when
    connected and ``degraded`` when not; an unreachable database is a 503
    (a successful check is reused for ``QCOS_DB_PING_TTL`` seconds, a failed
    one never).
    """
    from gateway import __version__

    runtime = current_app.extensions["qcos"]
    if not runtime.db_check.reachable():
        raise ServiceUnavailable("The job database is unavailable")
    connected = estimates.scheduler_connected(runtime)
    body = HealthResponse(status="healthy" if connected else "degraded", version=__version__, queue_connected=connected)
    return body
