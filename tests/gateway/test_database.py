"""Schema migrations and per-process engines."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
from sqlalchemy import text

from gateway.db import Database, connection_budget, server_connection_limits
from gateway.migrations import current_tables, upgrade_database


def test_migrations_create_the_schema_and_are_idempotent(database_url):
    assert {"users", "api_keys", "jobs", "alembic_version"} <= current_tables(database_url)
    upgrade_database(database_url)  # a second run changes nothing and does not fail
    assert {"users", "api_keys", "jobs"} <= current_tables(database_url)


def test_the_jobs_the_daily_counters_missed_are_kept_in_jobs_total(tmp_path):
    """Migration 0005: jobs stored before the counters (or not counted by them) stay in jobs_total."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0004")
    database = Database(url)
    with database.engine.begin() as connection:
        for user, email in (("user_a", "a@example.org"), ("user_b", "b@example.org")):
            connection.execute(text("INSERT INTO users (id, email, tier, is_active, created_at) "
                                    "VALUES (:id, :email, 'free', true, '2026-01-01')"), {"id": user, "email": email})
        for index in range(5):
            connection.execute(text(
                "INSERT INTO jobs (id, user_id, status, qasm, shots, num_qubits, request_hash, executor, "
                "cluster_profile, work_dir, created_at, estimated_time_seconds, seed, dispatch_class, runtime_seconds, dispatch_count) VALUES "
                "(:id, 'user_a', 'completed', 'x', 1, 1, '-', 'local', 'dev', '/w', '2026-01-01', 1, 0, '', 1, 0)"),
                {"id": f"job{index}"})
        connection.execute(text("INSERT INTO daily_usage (user_id, day, jobs) VALUES ('user_a', '2026-01-01', 2), "
                                "('user_b', '2026-01-01', 1)"))
    upgrade_database(url)
    with database.engine.connect() as connection:
        uncounted = dict(connection.execute(text("SELECT id, uncounted_jobs FROM users")).all())
    database.dispose()
    assert uncounted == {"user_a": 3, "user_b": 0}


def test_a_forked_child_builds_its_own_engine(database_url):
    database = Database(database_url)
    with database.session() as session:
        session.execute(text("SELECT 1"))
    parent_engine = database.engine
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's pool
        try:
            child_engine = database.engine
            with database.session() as session:
                session.execute(text("SELECT 1"))
            os.write(write, b"1" if child_engine is not parent_engine else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    # The parent's connections still work after the child used its own.
    with database.session() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
    assert database.engine is parent_engine


class TestConnectionPool:
    """PostgreSQL: each process holds at most pool_size + max_overflow connections;
    a request waits (up to QCOS_DB_POOL_TIMEOUT) for one instead of opening more."""

    @pytest.fixture
    def one_connection_app(self, tmp_path, postgres_url):
        from gateway import create_app
        from gateway.config import Settings
        from gateway.migrations import upgrade_database

        upgrade_database(postgres_url)
        settings = Settings.from_env({"QCOS_STATE_DIR": str(tmp_path / "state"), "QCOS_DATABASE_URL": postgres_url,
                                      "QCOS_RATELIMIT_ENABLED": "false", "QCOS_DB_POOL_SIZE": "1",
                                      "QCOS_DB_POOL_TIMEOUT": "1", "QCOS_AUTH_CACHE_TTL": "0"})
        app = create_app({"QCOS_SETTINGS": settings, "TESTING": True})
        yield app
        app.extensions["qcos"].close()

    def test_a_request_waits_for_the_busy_connection(self, one_connection_app):
        from tests.conftest import make_user

        runtime = one_connection_app.extensions["qcos"]
        key = make_user(runtime)[1]
        held = runtime.db.engine.connect()
        threading.Timer(0.4, held.close).start()
        started = time.monotonic()
        response = one_connection_app.test_client().get("/user/me", headers={"X-API-Key": key})
        assert response.status_code == 200
        assert 0.3 < time.monotonic() - started < 1.0
        assert runtime.db.engine.pool.checkedout() == 0 and runtime.db.engine.pool.size() == 1

    def test_a_request_that_waited_too_long_is_a_json_503(self, one_connection_app):
        from tests.conftest import make_user

        runtime = one_connection_app.extensions["qcos"]
        key = make_user(runtime)[1]
        with runtime.db.engine.connect():
            started = time.monotonic()
            response = one_connection_app.test_client().get("/user/me", headers={"X-API-Key": key})
        assert response.status_code == 503
        assert response.get_json()["error_code"] == "SERVICE_UNAVAILABLE"
        assert 0.9 < time.monotonic() - started < 3


class TestConnectionBudget:
    def test_the_formula_counts_pools_listeners_and_other_processes(self):
        budget = connection_budget(gateways=2, workers=4, pool_size=5, max_overflow=2, other_processes=2,
                                   max_connections=100, reserved=3)
        # 2 x 4 x (5 + 2 + 1) + 2 x (5 + 2)
        assert (budget.needed, budget.available, budget.fits) == (78, 94, True)
        too_many = connection_budget(gateways=3, workers=4, pool_size=5, max_overflow=2, other_processes=2,
                                     max_connections=100, reserved=3)
        assert too_many.needed == 110 and not too_many.fits

    def test_the_servers_limits_are_read(self, postgres_url):
        database = Database(postgres_url)
        try:
            max_connections, reserved = server_connection_limits(database.engine)
        finally:
            database.dispose()
        assert max_connections >= 1 and reserved >= 0
@pytest.fixture
def open_umask():
    """umask 000 for the test: modes must not depend on the service's umask."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_files_are_readable_by_the_service_user_only(tmp_path, open_umask):
    url = f"sqlite:///{tmp_path / 'qcos.db'}"
    upgrade_database(url)
    database = Database(url)
    with database.transaction() as session:  # writes: the -wal and -shm files exist now
        session.execute(text("CREATE TABLE probe (x INTEGER)"))
        session.execute(text("INSERT INTO probe VALUES (1)"))
    files = [tmp_path / name for name in ("qcos.db", "qcos.db-wal", "qcos.db-shm")]
    assert all(path.exists() for path in files)
    assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}
    database.dispose()


def test_an_existing_world_readable_sqlite_file_is_made_private(tmp_path, open_umask):
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    for name in ("old.db", "old.db-wal"):
        (tmp_path / name).touch()
        (tmp_path / name).chmod(0o644)
    with Database(url).session() as session:
        session.execute(text("SELECT 1"))
    assert (_mode(path), _mode(tmp_path / "old.db-wal")) == (0o600, 0o600)


def test_the_state_dir_is_private_whatever_the_umask(tmp_path, open_umask):
    from gateway.config import Settings

    fresh = Settings.from_env({"QCOS_STATE_DIR": str(tmp_path / "new" / "state")})
    fresh.prepare_dirs()
    assert _mode(fresh.state_dir) == 0o700 and _mode(fresh.work_root) == 0o700
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    Settings.from_env({"QCOS_STATE_DIR": str(existing)}).prepare_dirs()
    assert _mode(existing) == 0o700
