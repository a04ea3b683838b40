"""Shared fixtures: databases (SQLite and PostgreSQL), settings, app, users."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text

from gateway.config import Settings
from gateway.migrations import upgrade_database
from tests.browser import chromium  # noqa: F401 - fixture
from tests.components import POSTGRES_URL, missing
from tests.slurm_fixtures import *  # noqa: F401,F403 - slurm_cluster fixture
from tests.sshd_fixtures import sshd_server  # noqa: F401 - fixture

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "qasmbench"
BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'


def _postgres_admin_engine():
    engine = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        engine.dispose()
        missing("PostgreSQL", f"cannot connect to {POSTGRES_URL} ({exc.__class__.__name__})")
    return engine


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    engine = _postgres_admin_engine()
    name = "qcos_test_" + secrets.token_hex(6)
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = engine.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database of each supported kind, migrated to the newest schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'qcos.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade_database(url)
    return url


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """Settings of an embedded gateway (local executor) on ``database_url``."""
    base = Settings.from_env({"QCOS_STATE_DIR": str(tmp_path / "state"), "QCOS_DATABASE_URL": database_url})
    base.work_root.mkdir(parents=True)
    return base.model_copy(update={"poll_interval_seconds": 0.2})


@pytest.fixture
def app(settings):
    from gateway import create_app

    app = create_app({"QCOS_SETTINGS": settings, "TESTING": True})
    yield app
    app.extensions["qcos"].close()


@pytest.fixture
def runtime(app):
    return app.extensions["qcos"]


@pytest.fixture
def client(app):
    return app.test_client()


def make_user(runtime, *, email=None, tier="pro"):
    """Create a user directly in the database; returns (user_id, api_key)."""
    from gateway.accounts import create_user

    with runtime.db.transaction() as session:
        created = create_user(session, email=email or f"{secrets.token_hex(4)}@example.org", tier=tier,
                              tiers=runtime.tiers)
    return created.user_id, created.api_key


@pytest.fixture
def api_key(runtime):
    return make_user(runtime)[1]
