"""QCOS gateway: the HTTP side (Flask app factory, blueprints, auth, persistence)."""

from __future__ import annotations

import logging
import secrets
from typing import Any, Mapping

from flask import Flask, g, request

__version__ = "1.0.0"

log = logging.getLogger("gateway.access")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the gateway app.

    ``config`` may hold ``QCOS_SETTINGS`` (a :class:`gateway.config.Settings`)
    and ``QCOS_EXECUTOR_OBJECT`` (an executor to use instead of the configured
    one), plus any Flask setting; without it everything comes from the
    environment (:meth:`Settings.from_env`). Opens no connection.
    """
    from gateway import openapi
    from gateway.api import account, admin, health, jobs
    from gateway.config import Settings
    from gateway.errors import register_error_handlers
    from gateway.runtime import Runtime

    app = Flask(__name__)
    app.config.update(config or {})
    settings = app.config.get("QCOS_SETTINGS") or Settings.from_env()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.extensions["qcos"] = Runtime.from_settings(settings, executor=app.config.get("QCOS_EXECUTOR_OBJECT"))

    @app.before_request
    def _assign_request_id() -> None:
        g.request_id = "req_" + secrets.token_hex(8)

    @app.after_request
    def _tag_response(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        # %r escapes control characters: a path cannot forge or break log lines.
        log.info("%s %s %r %s", g.get("request_id", "-"), request.method, request.path, response.status_code)
        return response

    # The API key is looked up before the rate limiter runs: its key and limit depend on the caller.
    from gateway import ratelimit
    from gateway.auth import authenticate_request

    app.before_request(authenticate_request)
    ratelimit.init_app(app)

    register_error_handlers(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(jobs.blueprint)
    app.register_blueprint(account.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(openapi.docs)
    if settings.bench_endpoint:
        from gateway.api import bench

        app.register_blueprint(bench.blueprint)
    return app
