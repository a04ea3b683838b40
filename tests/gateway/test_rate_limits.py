"""Request rate limits (gateway/ratelimit.py) through the Flask test client.

Each behaviour runs on the in-memory storage and on the local Redis
(``QCOS_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``; every test
gets its own key prefix and deletes its keys). Without Redis the Redis cases
skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import secrets
import socket
import time

import pytest

from gateway.accounts import issue_key, set_tier
from gateway.config import ConfigError, Settings
from gateway.models import User
from gateway.ratelimit import EXTENSION, tier_limits
from tests.components import REDIS_URL, redis_client
from tests.conftest import make_user

FREE_TIERS = """
[[tier]]
name = "free"
daily_job_limit = 10
max_qubits = 20
max_shots = 10000
requests_per_minute = {minute}
requests_per_day = {day}
"""


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: the limiter does not care which database authenticated the
    caller (tests/gateway/test_api.py covers authentication on both)."""
    from gateway.migrations import upgrade_database

    url = f"sqlite:///{tmp_path / 'qcos.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
def redis_url():
    redis_client().close()
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
def storage(request):
    """``(storage URI, key prefix)``; Redis keys under the prefix are deleted afterwards."""
    prefix = "qcos-test-" + secrets.token_hex(6)
    if request.param == "memory":
        yield "memory://", prefix
        return
    import redis

    url = request.getfixturevalue("redis_url")
    yield url, prefix
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"*/{prefix}/*"):
        client.delete(key)
    client.close()


@pytest.fixture
def make_app(settings, storage):
    """``make_app(**settings_overrides)`` → a gateway app on this test's storage."""
    from gateway import create_app

    uri, prefix = storage

    def make(**overrides):
        configured = settings.model_copy(update={"ratelimit_storage_uri": uri, "ratelimit_key_prefix": prefix, **overrides})
        return create_app({"QCOS_SETTINGS": configured, "TESTING": True})

    return make


def _status(client, key):
    return client.get("/status/none", headers={"X-API-Key": key})


def _assert_counted(response, limit: int, remaining: int) -> None:
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    assert int(response.headers["X-RateLimit-Reset"]) >= time.time()


def _assert_rate_limited(response, *, max_retry_after: int = 60) -> dict:
    assert response.status_code == 429
    body = response.get_json()
    assert set(body) == {"detail", "error_code", "request_id"}
    assert body["error_code"] == "RATE_LIMITED"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert 1 <= int(response.headers["Retry-After"]) <= max_retry_after
    assert response.headers["X-RateLimit-Remaining"] == "0"
    return body


def _tiers_file(tmp_path, minute: int, day: int):
    path = tmp_path / f"tiers-{minute}-{day}.toml"
    path.write_text(FREE_TIERS.format(minute=minute, day=day))
    return path


class TestKeyedByApiKey:
    def test_headers_are_present_and_decrease(self, make_app):
        app = make_app()
        key = make_user(app.extensions["qcos"], tier="pro")[1]
        client = app.test_client()
        for remaining in (59, 58, 57):
            response = _status(client, key)
            assert response.status_code == 404
            _assert_counted(response, 60, remaining)

    def test_free_key_gets_exactly_ten_requests_a_minute(self, make_app):
        app = make_app()
        key = make_user(app.extensions["qcos"], tier="free")[1]
        client = app.test_client()
        for remaining in range(9, -1, -1):
            response = _status(client, key)
            assert response.status_code == 404, response.get_json()
            _assert_counted(response, 10, remaining)
        body = _assert_rate_limited(_status(client, key))
        assert "10 per 1 minute" in body["detail"]
        # Every route shares the key's budget.
        _assert_rate_limited(client.post("/execute", json={}, headers={"X-API-Key": key}))

    def test_another_429_keeps_its_own_retry_after(self, make_app):
        app = make_app()
        key = make_user(app.extensions["qcos"], tier="free")[1]

        @app.get("/quota-test")
        def _quota_test():
            return {}, 429, {"Retry-After": "5000"}

        # Limited by address (the view needs no key), counted, not breached.
        response = app.test_client().get("/quota-test", headers={"X-API-Key": key})
        assert response.headers["Retry-After"] == "5000"
        _assert_counted(response, 60, 59)

    def test_keys_have_independent_budgets(self, make_app):
        app = make_app()
        runtime = app.extensions["qcos"]
        user_id, first = make_user(runtime, tier="free")
        other_user_key = make_user(runtime, tier="free")[1]
        with runtime.db.transaction() as session:
            second = issue_key(session, session.get(User, user_id))
        client = app.test_client()
        for _ in range(10):
            _status(client, first)
        _assert_rate_limited(_status(client, first))
        _assert_counted(_status(client, second), 10, 9)
        _assert_counted(_status(client, other_user_key), 10, 9)

    def test_tier_change_applies_on_the_next_request(self, make_app):
        app = make_app()
        runtime = app.extensions["qcos"]
        user_id, key = make_user(runtime, tier="free")
        client = app.test_client()
        for _ in range(10):
            _status(client, key)
        _assert_rate_limited(_status(client, key))
        with runtime.db.transaction() as session:
            set_tier(session, user_id, "pro", runtime.tiers)
        response = _status(client, key)
        assert response.status_code == 404
        _assert_counted(response, 60, 59)

    def test_storage_keys_hold_the_key_hash_never_the_key(self, make_app, storage):
        from gateway.accounts import hash_api_key

        app = make_app()
        key = make_user(app.extensions["qcos"], tier="free")[1]
        _status(app.test_client(), key)
        limiter = app.extensions[EXTENSION]
        if storage[0] == "memory://":
            names = list(limiter.storage.storage)
        else:
            names = [name.decode() for name in limiter.storage.storage.scan_iter(match=f"*/{storage[1]}/*")]
        assert names and all(key not in name for name in names)
        assert any(hash_api_key(key) in name for name in names)


class TestLimitsComeFromTheTiers:
    def test_limit_strings_of_the_shipped_tiers(self, runtime):
        assert tier_limits(runtime.tiers["free"]) == "10/minute;100/day"
        assert tier_limits(runtime.tiers["pro"]) == "60/minute;1000/day"
        # requests_per_day = -1: no day limit at all, not a huge one.
        assert tier_limits(runtime.tiers["enterprise"]) == "300/minute"

    @pytest.mark.parametrize("tier, applied", [
        ("free", ["10 per 1 minute", "100 per 1 day"]),
        ("pro", ["60 per 1 minute", "1000 per 1 day"]),
        ("enterprise", ["300 per 1 minute"]),
    ])
    def test_limits_applied_per_tier(self, make_app, tier, applied):
        app = make_app()
        key = make_user(app.extensions["qcos"], tier=tier)[1]
        seen = []

        @app.after_request
        def _record(response):
            seen.append([str(limit.limit) for limit in app.extensions[EXTENSION].current_limits])
            return response

        response = _status(app.test_client(), key)
        assert seen == [applied]
        assert response.headers["X-RateLimit-Limit"] == applied[0].split()[0]

    def test_a_tier_without_limits_is_never_limited(self, make_app, tmp_path):
        app = make_app(tiers_file=_tiers_file(tmp_path, -1, -1))
        key = make_user(app.extensions["qcos"], tier="free")[1]
        _assert_never_limited(app.test_client(), key)

    def test_headers_describe_the_limit_closest_to_exhaustion(self, make_app, tmp_path):
        app = make_app(tiers_file=_tiers_file(tmp_path, 5, 3))
        key = make_user(app.extensions["qcos"], tier="free")[1]
        client = app.test_client()
        for remaining in (2, 1, 0):
            _assert_counted(_status(client, key), 3, remaining)
        response = _status(client, key)
        # The day is exhausted: retry in about a day, not in a minute.
        _assert_rate_limited(response, max_retry_after=86_400)
        assert int(response.headers["Retry-After"]) > 86_000
        assert response.headers["X-RateLimit-Limit"] == "3"

    def test_minute_limit_shown_while_it_is_the_tighter_one(self, make_app, tmp_path):
        app = make_app(tiers_file=_tiers_file(tmp_path, 2, 50))
        key = make_user(app.extensions["qcos"], tier="free")[1]
        client = app.test_client()
        _assert_counted(_status(client, key), 2, 1)
        _assert_counted(_status(client, key), 2, 0)
        _assert_rate_limited(_status(client, key))


class TestKeyedByAddress:
    def test_unauthenticated_routes_share_one_budget_per_address(self, make_app):
        app = make_app(anon_rate_limit="3/minute")
        client = app.test_client()
        for remaining in (2, 1):
            response = client.get("/")
            assert response.status_code == 200
            _assert_counted(response, 3, remaining)
        _assert_counted(client.get("/pricing"), 3, 0)
        _assert_rate_limited(client.get("/"))
        _assert_rate_limited(client.get("/openapi.json"))
        other = client.get("/", environ_base={"REMOTE_ADDR": "192.0.2.7"})
        assert other.status_code == 200
        _assert_counted(other, 3, 2)

    def test_missing_or_invalid_keys_are_limited_by_address(self, make_app):
        app = make_app(anon_rate_limit="2/minute")
        key = make_user(app.extensions["qcos"], tier="free")[1]
        client = app.test_client()
        assert client.get("/status/x").get_json()["error_code"] == "AUTH_REQUIRED"
        assert _status(client, "qcos_nope").get_json()["error_code"] == "AUTH_INVALID"
        _assert_rate_limited(_status(client, "qcos_guess"))
        # A valid key from the same address has its own budget.
        _assert_counted(_status(client, key), 10, 9)

    def test_preflights_count_against_the_address_not_the_key(self, make_app):
        app = make_app(anon_rate_limit="2/minute", cors_origins=["https://app.example.org"])
        key = make_user(app.extensions["qcos"], tier="free")[1]
        client = app.test_client()
        preflight = {"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "X-API-Key, Content-Type"}
        first = client.options("/execute", headers=preflight)
        assert first.status_code in (200, 204) and first.headers["Access-Control-Allow-Origin"]
        _assert_counted(first, 2, 1)
        # The browser's real request, with the key, has the key's whole budget.
        _assert_counted(_status(client, key), 10, 9)

    def test_a_key_sent_to_an_open_route_is_not_looked_up(self, make_app):
        app = make_app(anon_rate_limit="2/minute")
        key = make_user(app.extensions["qcos"], tier="pro")[1]
        client = app.test_client()
        _assert_counted(client.get("/", headers={"X-API-Key": key}), 2, 1)
        _assert_counted(client.get("/", headers={"X-API-Key": "qcos_nope"}), 2, 0)

    def test_forwarded_for_is_ignored_without_trusted_proxies(self, make_app):
        app = make_app(anon_rate_limit="2/minute")
        client = app.test_client()
        for address in ("198.51.100.1", "198.51.100.2"):
            assert client.get("/", headers={"X-Forwarded-For": address}).status_code == 200
        _assert_rate_limited(client.get("/", headers={"X-Forwarded-For": "198.51.100.3"}))

    def test_forwarded_for_names_the_client_behind_trusted_proxies(self, make_app):
        app = make_app(anon_rate_limit="2/minute", trusted_proxies=1)
        client = app.test_client()
        for _ in range(2):
            assert client.get("/", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
        _assert_rate_limited(client.get("/", headers={"X-Forwarded-For": "198.51.100.1"}))
        assert client.get("/", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200
        # With one trusted proxy only the address it appended counts: a
        # client cannot pick its own by sending X-Forwarded-For itself.
        spoofed = client.get("/", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
        _assert_rate_limited(spoofed)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestStorageOutage:
    def test_unreachable_redis_falls_back_to_memory_limits(self, settings):
        from gateway import create_app

        configured = settings.model_copy(update={"ratelimit_storage_uri": f"redis://127.0.0.1:{_unused_port()}/0"})
        app = create_app({"QCOS_SETTINGS": configured, "TESTING": True})
        key = make_user(app.extensions["qcos"], tier="free")[1]
        client = app.test_client()
        assert client.get("/").status_code == 200
        for remaining in range(9, -1, -1):
            response = _status(client, key)
            assert response.status_code == 404
            _assert_counted(response, 10, remaining)
        _assert_rate_limited(_status(client, key))

    @pytest.mark.parametrize("storage", ["redis"], indirect=True)
    def test_redis_outage_mid_run_then_recovery(self, make_app):
        import redis

        app = make_app()
        key = make_user(app.extensions["qcos"], tier="pro")[1]
        client = app.test_client()
        for remaining in (59, 58, 57):
            _assert_counted(_status(client, key), 60, remaining)
        redis_client = app.extensions[EXTENSION].storage.storage
        pool = redis_client.connection_pool
        redis_client.connection_pool = redis.ConnectionPool.from_url(f"redis://127.0.0.1:{_unused_port()}/0")
        try:
            for _ in range(5):
                response = _status(client, key)
                assert response.status_code == 404
                assert response.headers["X-RateLimit-Limit"] == "60"
        finally:
            redis_client.connection_pool = pool
        # The limiter probes Redis again after 1, 2, 4 … s; once back it
        # continues Redis's count (3 before the outage, so 56 remain after the
        # next request) instead of the fallback's.
        deadline = time.monotonic() + 10
        while _status(client, key).headers["X-RateLimit-Remaining"] != "56":
            assert time.monotonic() < deadline, "the limiter did not return to Redis"
            time.sleep(0.3)


class TestSettings:
    def test_defaults(self):
        settings = Settings.from_env({})
        assert settings.ratelimit_enabled is True
        assert settings.ratelimit_storage_uri == "memory://"
        assert settings.ratelimit_storage_is_process_local
        assert settings.anon_rate_limit == "60/minute"
        assert settings.trusted_proxies == 0

    def test_redis_storage_is_shared(self):
        settings = Settings.from_env({"QCOS_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
                                      "QCOS_RATELIMIT_KEY_PREFIX": "site-a", "QCOS_TRUSTED_PROXIES": "2",
                                      "QCOS_ANON_RATE_LIMIT": "5/second;100/hour"})
        assert not settings.ratelimit_storage_is_process_local
        assert (settings.ratelimit_key_prefix, settings.trusted_proxies) == ("site-a", 2)
        assert settings.anon_rate_limit == "5/second;100/hour"

    @pytest.mark.parametrize("name, value", [
        ("QCOS_ANON_RATE_LIMIT", "lots"),
        ("QCOS_TRUSTED_PROXIES", "-1"),
        ("QCOS_TRUSTED_PROXIES", "1.5"),
        ("QCOS_RATELIMIT_ENABLED", "maybe"),
    ])
    def test_bad_values_are_refused(self, name, value):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})

    def test_disabled_means_no_limits_and_no_headers(self, make_app):
        app = make_app(ratelimit_enabled=False)
        key = make_user(app.extensions["qcos"], tier="free")[1]
        _assert_never_limited(app.test_client(), key)


def _assert_never_limited(client, key) -> None:
    """15 requests, more than any tier's minute allows: none refused, no headers."""
    for _ in range(15):
        response = _status(client, key)
        assert response.status_code == 404
        assert "X-RateLimit-Limit" not in response.headers
