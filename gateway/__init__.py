"""QCOS gateway: the HTTP side (Flask app factory, blueprints, auth, persistence)."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Mapping

from flask import Flask, g, request

__version__ = "1.0.0"

log = logging.getLogger("gateway.access")

#: Headers a browser page on an allowed origin may send and read (``QCOS_CORS_ORIGINS``).
CORS_REQUEST_HEADERS = ("Content-Type", "X-API-Key", "Authorization")
CORS_EXPOSED_HEADERS = ("X-Request-ID", "Location", "Retry-After", "X-RateLimit-Limit",
                        "X-RateLimit-Remaining", "X-RateLimit-Reset")
#: Seconds a browser may cache a preflight answer.
CORS_MAX_AGE = 600


class GatewayFlask(Flask):
    """Flask, with two answers of its own.

    A panic in Rust code that a view calls (Qiskit, through pyo3) arrives as
    ``pyo3_runtime.PanicException``, a ``BaseException`` that Flask does not
    handle: it would end the gunicorn worker and every request in flight on
    it. Here it becomes an ordinary error, answered 500 ``INTERNAL_ERROR``.

    ``OPTIONS`` on a route answers ``204 No Content`` with ``Allow`` (Flask
    answers an empty ``text/html`` 200); with ``QCOS_CORS_ORIGINS`` set,
    Flask-CORS adds the preflight headers for allowed origins.
    """

    def dispatch_request(self):
        from hpc_jobs.circuits import is_rust_panic

        try:
            return super().dispatch_request()
        except Exception:
            raise
        except BaseException as exc:
            if not is_rust_panic(exc):
                raise
            raise RuntimeError(f"panic in Rust code: {exc}") from exc

    def make_default_options_response(self):
        response = super().make_default_options_response()
        response.status_code = 204
        response.headers.pop("Content-Type", None)
        return response


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the gateway app.

    ``config`` may hold ``QCOS_SETTINGS`` (a :class:`gateway.config.Settings`)
    and ``QCOS_EXECUTOR_OBJECT`` (an executor to use instead of the configured
    one), plus any Flask setting; without it everything comes from the
    environment (:meth:`Settings.from_env`). Opens no connection.
    """
    from gateway import logs, metrics, openapi
    from gateway.api import account, admin, admin_pages, batches, health, jobs, ops
    from gateway.config import Settings
    from gateway.errors import InvalidRequest, register_error_handlers
    from gateway.runtime import Runtime

    app = GatewayFlask(__name__)
    app.config.update(config or {})
    settings = app.config.get("QCOS_SETTINGS") or Settings.from_env()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # A form's text field (curl -F qasm="<bell.qasm") may be as large as any body (werkzeug's default: 500 kB).
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_body_bytes
    app.json.sort_keys = False
    logs.configure_logging(settings.log_level, settings.log_format)
    metrics.instrument_database_pools()
    app.extensions["qcos"] = Runtime.from_settings(settings, executor=app.config.get("QCOS_EXECUTOR_OBJECT"))

    @app.before_request
    def _assign_request_id() -> None:
        g.request_started = time.perf_counter()
        g.request_id = "req_" + secrets.token_hex(8)
        logs.clear()
        # A job id from the URL (bounded: it is the caller's text) tags the request's lines.
        job_id = (request.view_args or {}).get("job_id")
        logs.bind(request_id=g.request_id, job_id=job_id[:64] if isinstance(job_id, str) else None)

    @app.before_request
    def _refuse_nul_in_the_url() -> None:
        # Path and query values reach database lookups; PostgreSQL refuses NUL in text.
        if "\x00" in request.path or any("\x00" in key + value for key, value in request.args.items(multi=True)):
            raise InvalidRequest("The URL contains a NUL character (%00)")

    if settings.cors_origins:
        from flask_cors import CORS

        CORS(app, origins=list(settings.cors_origins), methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
             allow_headers=list(CORS_REQUEST_HEADERS), expose_headers=list(CORS_EXPOSED_HEADERS),
             max_age=CORS_MAX_AGE, supports_credentials=False)

    @app.after_request
    def _tag_response(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else None
        metrics.observe_request(route, request.method, response.status_code, seconds)
        user = g.get("user")
        # The one access line of the request (gunicorn's own access log is off).
        # %r escapes control characters: a path cannot forge or break log lines.
        log.info("%s %s %r %s %.1fms", g.get("request_id", "-"), request.method, request.path,
                 response.status_code, seconds * 1000,
                 extra={"method": request.method, "path": request.path, "route": route,
                        "status": response.status_code, "duration_ms": round(seconds * 1000, 3),
                        "remote_addr": request.remote_addr, **({"user_id": user.id} if user is not None else {})})
        return response

    @app.teardown_request
    def _forget_log_context(_exc) -> None:
        logs.clear()

    # The API key is looked up before the rate limiter runs: its key and limit depend on the caller.
    from gateway import ratelimit
    from gateway.auth import authenticate_request

    app.before_request(authenticate_request)

    @app.before_request
    def _tag_user() -> None:
        if g.get("user") is not None:
            logs.bind(user_id=g.user.id)

    limiter = ratelimit.init_app(app)
    # Probes and scrapes come often from few addresses; they must never be refused.
    limiter.exempt(ops.blueprint)

    register_error_handlers(app)
    admin_pages.init_app(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(jobs.blueprint)
    app.register_blueprint(batches.blueprint)
    app.register_blueprint(account.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(admin_pages.blueprint)
    app.register_blueprint(openapi.docs)
    if settings.bench_endpoint:
        from gateway.api import bench

        app.register_blueprint(bench.blueprint)
    app.register_blueprint(openapi.swagger_ui)
    return app
