"""Alembic migrations of the gateway's schema, run with :func:`upgrade_database`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``database_url`` with our script location (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Bring the schema at ``database_url`` to ``revision`` (idempotent).

    On PostgreSQL, a transaction-scoped advisory lock serialises concurrent
    upgrades (two gateway hosts starting at once).
    """
    from sqlalchemy import create_engine, text

    from gateway.db import make_sqlite_file_private

    make_sqlite_file_private(database_url)
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(7423101)"))
            config = alembic_config(database_url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def current_tables(database_url: str) -> set[str]:
    """Names of the tables that exist at ``database_url`` (for checks and tests)."""
    from sqlalchemy import create_engine

    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
