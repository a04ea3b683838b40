"""``GET /``: ``degraded`` names the sources that are down (scheduler, accounting,
rate limiter), from the poller's record and a cached storage check only."""

from __future__ import annotations

import secrets
import socket
import time
from datetime import timedelta

import pytest

from gateway import estimates
from gateway.models import QueueModel, utcnow
from gateway.poller import refresh_queue_model, service_cycle
from gateway.ratelimit import EXTENSION
from tests.components import REDIS_URL, redis_client

HEALTHY = {"status": "healthy", "version": "1.0.0", "queue_connected": True}
#: Nothing listens on port 1: a connection is refused at once.
CLOSED_REDIS = "redis://127.0.0.1:1/0"


def _poll(runtime) -> None:
    """One poller cycle (dispatch, observe, record), then forget the per-process cache of its record."""
    service_cycle(runtime)
    estimates._cache.clear()


def _app(settings, **overrides):
    from gateway import create_app

    app = create_app({"QCOS_SETTINGS": settings.model_copy(update=overrides), "TESTING": True})
    return app


@pytest.fixture
def closed_redis_app(settings):
    app = _app(settings, ratelimit_storage_uri=CLOSED_REDIS)
    yield app
    app.extensions["qcos"].close()


def test_a_healthy_gateway_answers_exactly_the_references_example(client, runtime):
    _poll(runtime)
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_json() == HEALTHY  # no "degraded" key at all


def test_without_a_scheduler_answer_the_scheduler_is_degraded(client):
    # No poller has run: nothing says the scheduler answered.
    assert client.get("/").get_json() == {"status": "degraded", "version": "1.0.0", "queue_connected": False,
                                          "degraded": ["scheduler"]}


def test_a_failed_sacct_recorded_by_the_poller_is_degraded_accounting(client, runtime, mocker):
    mocker.patch.object(runtime.executor, "accounting_ping", return_value=False)  # slurmdbd down
    _poll(runtime)
    assert client.get("/").get_json() == {"status": "degraded", "version": "1.0.0", "queue_connected": True,
                                          "degraded": ["accounting"]}
    mocker.stopall()
    mocker.patch.object(runtime.executor, "accounting_ping", return_value=True)
    _poll(runtime)
    assert client.get("/").get_json() == HEALTHY


def test_the_local_executor_has_no_accounting_to_report(client, runtime):
    _poll(runtime)
    with runtime.db.session() as session:
        assert session.get(QueueModel, runtime.executor.name).accounting_connected is None
    assert "degraded" not in client.get("/").get_json()


def test_an_old_accounting_failure_is_not_reported_as_current(client, runtime):
    # A poller that stopped long ago: only the scheduler (queue_connected) says so.
    refresh_queue_model(runtime, scheduler_ok=True, accounting_ok=False, pending_start=None,
                        now=utcnow() - timedelta(hours=1))
    estimates._cache.clear()
    assert client.get("/").get_json()["degraded"] == ["scheduler"]


def test_every_source_down_is_listed_in_order(closed_redis_app):
    runtime = closed_redis_app.extensions["qcos"]
    refresh_queue_model(runtime, scheduler_ok=False, accounting_ok=False, pending_start=None, now=utcnow())
    estimates._cache.clear()
    body = closed_redis_app.test_client().get("/").get_json()
    assert body["degraded"] == ["scheduler", "accounting", "rate_limiter"] and body["status"] == "degraded"


def test_unreachable_rate_limit_storage_is_degraded_rate_limiter(closed_redis_app):
    runtime = closed_redis_app.extensions["qcos"]
    _poll(runtime)
    response = closed_redis_app.test_client().get("/")
    assert response.status_code == 200  # limits fall back to memory: the gateway still serves
    assert response.get_json() == {"status": "degraded", "version": "1.0.0", "queue_connected": True,
                                   "degraded": ["rate_limiter"]}


def test_no_scheduler_or_sacct_call_happens_in_the_request(client, runtime, mocker):
    _poll(runtime)
    calls = [mocker.patch.object(runtime.executor, name, side_effect=AssertionError(f"{name} in a request"))
             for name in ("ping", "accounting_ping", "observe")]
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert all(call.call_count == 0 for call in calls)


class TestRateLimitStorageCheck:
    def test_memory_storage_has_nothing_to_check(self, runtime):
        assert runtime.ratelimit_check is None

    def test_disabled_limits_check_nothing(self, settings):
        app = _app(settings, ratelimit_storage_uri=CLOSED_REDIS, ratelimit_enabled=False)
        assert app.extensions["qcos"].ratelimit_check is None
        app.extensions["qcos"].close()

    @pytest.mark.parametrize("storage", ["up", "down"])
    def test_one_ping_per_process_within_the_ttl_whatever_the_requests(self, settings, mocker, storage):
        prefix = "qcos-test-" + secrets.token_hex(6)  # counters of this test only
        if storage == "up":
            redis_client().close()
        app = _app(settings, ratelimit_storage_uri=REDIS_URL if storage == "up" else CLOSED_REDIS,
                   ratelimit_check_ttl_seconds=3600, ratelimit_key_prefix=prefix)
        runtime = app.extensions["qcos"]
        _poll(runtime)
        check = mocker.spy(app.extensions[EXTENSION].storage, "check")
        client = app.test_client()
        try:
            answers = [client.get("/") for _ in range(25)]
            assert {answer.status_code for answer in answers} == {200}
            assert check.call_count == 1  # a failure is reused as a success is
            assert all(answer.get_json() == answers[0].get_json() for answer in answers)
            assert ("degraded" in answers[0].get_json()) is (storage == "down")
        finally:
            runtime.close()
            if storage == "up":
                client_ = redis_client()
                for key in client_.scan_iter(match=f"*{prefix}*"):
                    client_.delete(key)
                client_.close()

    def test_a_failure_is_kept_no_longer_than_the_ttl(self, settings, mocker):
        app = _app(settings, ratelimit_storage_uri=CLOSED_REDIS, ratelimit_check_ttl_seconds=0.2)
        check = mocker.spy(app.extensions[EXTENSION].storage, "check")
        storage = app.extensions["qcos"].ratelimit_check
        assert storage.up() is False and check.call_count == 1
        time.sleep(0.25)
        assert storage.up() is False and check.call_count == 2
        app.extensions["qcos"].close()

    def test_recovery_shows_after_the_ttl(self, settings):
        """A Redis of this test's own (redis-server on a free port) that is
        down, then started: ``rate_limiter`` leaves ``degraded`` once the
        failed check is older than ``QCOS_RATELIMIT_CHECK_TTL``."""
        import shutil
        import subprocess

        import redis

        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        ttl = 0.5
        app = _app(settings, ratelimit_storage_uri=f"redis://127.0.0.1:{port}/0", ratelimit_check_ttl_seconds=ttl)
        runtime = app.extensions["qcos"]
        client = app.test_client()
        _poll(runtime)
        assert client.get("/").get_json()["degraded"] == ["rate_limiter"]
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    redis.Redis(port=port, socket_connect_timeout=0.5).ping()
                    break
                except redis.RedisError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.05)
            started = time.monotonic()
            while (body := client.get("/").get_json()) != HEALTHY:
                assert time.monotonic() - started < ttl + 2, body
                time.sleep(0.05)
        finally:
            server.terminate()
            server.wait(timeout=20)
            runtime.close()
