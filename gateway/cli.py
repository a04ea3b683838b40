"""The ``qcos`` command: database, users and the poller.

    qcos db upgrade
    qcos users create --email EMAIL --tier free|pro|enterprise
    qcos users ensure-demo
    qcos poller [--once]
"""

from __future__ import annotations

import logging
import sys

import click

from gateway.config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _prepare_state(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.work_root.mkdir(parents=True, exist_ok=True)


@click.group()
def main() -> None:
    """QCOS gateway administration."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (idempotent)."""
    from gateway.migrations import upgrade_database

    settings = _settings()
    _prepare_state(settings)
    upgrade_database(settings.database_url)
    click.echo("database schema is up to date")


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--tier", default="free", show_default=True)
def users_create(email: str, tier: str) -> None:
    """Create a user and print their API key (shown only this once)."""
    from gateway.accounts import AccountError, create_user
    from gateway.db import Database

    database = Database(_settings().database_url)
    try:
        with database.transaction() as session:
            created = create_user(session, email=email, tier=tier)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user_id: {created.user_id}\nemail:   {created.email}\ntier:    {created.tier}")
    click.echo(f"api_key: {created.api_key}\n(store it now: it is not shown again)")


@users.command("ensure-demo")
@click.option("--email", default="demo@example.com", show_default=True)
@click.option("--tier", default="pro", show_default=True)
def users_ensure_demo(email: str, tier: str) -> None:
    """Create a demo user if no user exists yet, printing its key once."""
    from sqlalchemy import func, select

    from gateway.accounts import create_user
    from gateway.db import Database
    from gateway.models import User

    database = Database(_settings().database_url)
    with database.transaction() as session:
        if session.scalar(select(func.count()).select_from(User)):
            click.echo("users exist already; no demo user created (qcos users create makes more)")
            return
        created = create_user(session, email=email, tier=tier)
    click.echo("")
    click.echo(f"  Demo user {created.email} ({created.tier} tier) created. Its API key, shown only now:")
    click.echo(f"  export QCOS_API_KEY={created.api_key}")
    click.echo("")


@main.command("poller")
@click.option("--once", is_flag=True, help="run a single cycle and exit")
def poller(once: bool) -> None:
    """Turn Slurm (or local) job states into job statuses, until stopped."""
    from gateway.poller import run_cycle, run_forever
    from gateway.runtime import Runtime

    settings = _settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _prepare_state(settings)
    runtime = Runtime.from_settings(settings)
    if once:
        updates = run_cycle(runtime)
        click.echo(f"{len(updates)} live jobs checked")
        return
    run_forever(runtime)


if __name__ == "__main__":
    sys.exit(main())
