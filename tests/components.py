"""Real components the tests need, and how their absence is reported.

Locally a missing component (PostgreSQL, the Slurm cluster) skips the tests
that need it, with a hint; under ``CI=true`` it fails them, so CI can never
pass by skipping.
"""

from __future__ import annotations

import os

import pytest

REDIS_URL = os.environ.get("QCOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("QCOS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(component: str, hint: str) -> None:
    """Fail (CI) or skip (elsewhere) the current test for a missing component."""
    message = f"{component} is not available: {hint}"
    if in_ci():
        pytest.fail(message + " (CI=true: real components are required)")
    pytest.skip(message)


def redis_client():
    """A connected client of the Redis at ``REDIS_URL``; fails (CI) or skips the test without one."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        missing("Redis", f"cannot connect to {REDIS_URL} ({exc.__class__.__name__})")
    return client
