"""``GET /bench/trivial``: a constant JSON answer, the baseline of ``tests.bench_http``.

Registered only with ``QCOS_BENCH_ENDPOINT=true``: it goes through the same
app, hooks and gunicorn settings as every route, so the ratio of a route's
throughput to this one's is the cost of the route's own work.
"""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("bench", __name__)


@blueprint.get("/bench/trivial")
def trivial():
    """``{"status": "ok"}``; no key, no database."""
    return {"status": "ok"}
