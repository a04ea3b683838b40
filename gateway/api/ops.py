"""What orchestrators and monitoring call: ``/healthz``, ``/readyz``, ``/metrics``.

None of them is rate limited (probes and scrapes come often, from few
addresses) and none needs an API key. ``/metrics`` may be restricted with
``QCOS_METRICS_TOKEN`` (a bearer token Prometheus sends, compared in
constant time) and ``QCOS_METRICS_ALLOWED_NETWORKS`` (client addresses,
after ``QCOS_TRUSTED_PROXIES``); with both set, both must hold.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy import text

from gateway import estimates, metrics
from gateway.errors import AuthInvalid, AuthRequired, Forbidden
from gateway.openapi import api_spec, responses
from gateway.schemas import LivenessResponse, NotReadyResponse, ReadinessResponse

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
@api_spec.validate(operation_id="liveness", resp=responses({200: LivenessResponse}), tags=["health"], security=[])
def healthz():
    """Liveness: the process serves requests. Touches neither the database nor
    the scheduler, so an outage of those never gets the gateway restarted."""
    return LivenessResponse(status="alive").model_dump()


@blueprint.get("/readyz")
@api_spec.validate(operation_id="readiness", resp=responses({200: ReadinessResponse, 503: NotReadyResponse}),
                   tags=["health"], security=[])
def readyz():
    """Readiness: the database answers ``SELECT 1`` and the scheduler its
    the poller's last scheduler call (:func:`gateway.estimates.scheduler_connected`; no scheduler call here).
    503 with the error format, ``status: not_ready`` and which check failed."""
    runtime = current_app.extensions["qcos"]
    checks = {"database": "ok", "scheduler": "ok"}
    try:
        with runtime.db.session() as session:
            session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "unavailable" here
        checks["database"] = "unavailable"
    try:
        if not estimates.scheduler_connected(runtime):
            checks["scheduler"] = "unavailable"
    except Exception:  # noqa: BLE001
        checks["scheduler"] = "unavailable"
    if all(value == "ok" for value in checks.values()):
        return ReadinessResponse(status="ready", checks=checks).model_dump()
    failed = ", ".join(name for name, value in checks.items() if value != "ok")
    body = NotReadyResponse(status="not_ready", checks=checks, detail=f"Not ready: {failed} unavailable",
                            error_code="SERVICE_UNAVAILABLE", request_id=g.get("request_id", "req_unknown"))
    return body.model_dump(), 503, {"Retry-After": "10"}


def _check_metrics_access(settings) -> None:
    if settings.metrics_allowed_networks:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            address = None
        if address is None or not any(address in ipaddress.ip_network(net) for net in
                                      settings.metrics_allowed_networks):
            raise Forbidden("Metrics are not served to this address (QCOS_METRICS_ALLOWED_NETWORKS)")
    if settings.metrics_token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthRequired("Metrics need Authorization: Bearer <QCOS_METRICS_TOKEN>")
        if not hmac.compare_digest(presented.strip().encode(), settings.metrics_token.encode()):
            raise AuthInvalid("Invalid metrics token")


@blueprint.get("/metrics")
def prometheus_metrics():
    """Prometheus text format: every process's metrics (multiprocess mode) and
    the scrape-time gauges; see :mod:`gateway.metrics`. 401/403 when restricted."""
    runtime = current_app.extensions["qcos"]
    _check_metrics_access(runtime.settings)
    body, content_type = metrics.exposition(runtime)
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
