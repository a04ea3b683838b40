"""Schema migrations and per-process engines."""

from __future__ import annotations

import os

from sqlalchemy import text

from gateway.db import Database
from gateway.migrations import current_tables, upgrade_database


def test_migrations_create_the_schema_and_are_idempotent(database_url):
    assert {"users", "api_keys", "jobs", "alembic_version"} <= current_tables(database_url)
    upgrade_database(database_url)  # a second run changes nothing and does not fail
    assert {"users", "api_keys", "jobs"} <= current_tables(database_url)


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
