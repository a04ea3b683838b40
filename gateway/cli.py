"""The ``qcos`` command: database, users, API keys and the poller.

    qcos db upgrade
    qcos users create --email EMAIL [--tier free|pro|enterprise]
    qcos users list
    qcos users set-tier USER TIER          (USER: user_id or email)
    qcos users disable USER | enable USER
    qcos users ensure-demo
    qcos keys issue USER [--admin] | list USER | revoke KEY_ID
    qcos admin queue | cluster | cancel JOB_ID
    qcos admin usage-export [--month YYYY-MM] > usage.csv
    qcos sbatch --dry-run FILE [--shots N]
    qcos poller [--once]        the dispatcher and the poller, in one process
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import click

from gateway.config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _prepare_state(settings: Settings) -> None:
    settings.prepare_dirs()


def _tiers(settings: Settings):
    from gateway.tiers import TierConfigError, load_tiers

    try:
        return load_tiers(settings.tiers_file)
    except TierConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _transaction():
    """A database transaction; account errors become clean CLI errors."""
    from gateway.accounts import AccountError
    from gateway.db import Database

    database = Database(_settings().database_url)
    try:
        with database.transaction() as session:
            yield session
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()


def _describe(user) -> str:
    state = "active" if user.is_active else "disabled"
    return f"{user.id}  {user.email}  tier={user.tier}  {state}  created={user.created_at:%Y-%m-%d}"


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
    from gateway.accounts import create_user

    tiers = _tiers(_settings())
    with _transaction() as session:
        created = create_user(session, email=email, tier=tier, tiers=tiers)
    click.echo(f"user_id: {created.user_id}\nemail:   {created.email}\ntier:    {created.tier}")
    click.echo(f"api_key: {created.api_key}\n(store it now: it is not shown again)")


@users.command("list")
def users_list() -> None:
    """All users, oldest first."""
    from gateway.accounts import list_users

    with _transaction() as session:
        for user in list_users(session):
            click.echo(_describe(user))


@users.command("set-tier")
@click.argument("user")
@click.argument("tier")
def users_set_tier(user: str, tier: str) -> None:
    """Move USER (user_id or email) to TIER."""
    from gateway.accounts import set_tier

    tiers = _tiers(_settings())
    with _transaction() as session:
        click.echo(_describe(set_tier(session, user, tier, tiers)))


@users.command("disable")
@click.argument("user")
def users_disable(user: str) -> None:
    """Disable USER: all their keys are refused from the next request on."""
    from gateway.accounts import set_active

    with _transaction() as session:
        click.echo(_describe(set_active(session, user, False)))


@users.command("enable")
@click.argument("user")
def users_enable(user: str) -> None:
    """Re-enable a disabled USER."""
    from gateway.accounts import set_active

    with _transaction() as session:
        click.echo(_describe(set_active(session, user, True)))


@users.command("ensure-demo")
@click.option("--email", default="demo@example.com", show_default=True)
@click.option("--tier", default="pro", show_default=True)
def users_ensure_demo(email: str, tier: str) -> None:
    """Create a demo user if no user exists yet, printing its key once."""
    from sqlalchemy import func, select

    from gateway.accounts import create_user
    from gateway.models import User

    tiers = _tiers(_settings())
    with _transaction() as session:
        if session.scalar(select(func.count()).select_from(User)):
            click.echo("users exist already; no demo user created (qcos users create makes more)")
            return
        created = create_user(session, email=email, tier=tier, tiers=tiers)
    click.echo("")
    click.echo(f"  Demo user {created.email} ({created.tier} tier) created. Its API key, shown only now:")
    click.echo(f"  export QCOS_API_KEY={created.api_key}")
    click.echo("")


@main.group()
def keys() -> None:
    """API keys (a user may hold several)."""


@keys.command("issue")
@click.argument("user")
@click.option("--admin", is_flag=True, help="the key may also use the /admin endpoints")
def keys_issue(user: str, admin: bool) -> None:
    """Issue another key for USER; printed once."""
    from gateway.accounts import find_user, issue_key

    with _transaction() as session:
        key = issue_key(session, find_user(session, user), admin=admin)
    click.echo(f"api_key: {key}\n(store it now: it is not shown again)")


@keys.command("list")
@click.argument("user")
def keys_list(user: str) -> None:
    """USER's keys: id, prefix, created, revoked (never the secret)."""
    from gateway.accounts import list_keys

    with _transaction() as session:
        for key in list_keys(session, user):
            revoked = f"revoked={key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if key.revoked_at else "active"
            role = "admin" if key.is_admin else "user"
            click.echo(f"{key.id}  {key.prefix}…  {role}  created={key.created_at:%Y-%m-%dT%H:%M:%SZ}  {revoked}")


@keys.command("revoke")
@click.argument("key_id", type=int)
def keys_revoke(key_id: int) -> None:
    """Revoke key KEY_ID (see `qcos keys list`); refused from the next request on."""
    from gateway.accounts import revoke_key

    with _transaction() as session:
        already = _key_revoked(session, key_id)
        key = revoke_key(session, key_id)
        click.echo(f"key {key.id} ({key.prefix}…) " + ("was already revoked" if already else "revoked"))


def _key_revoked(session, key_id: int) -> bool:
    from gateway.models import ApiKey

    key = session.get(ApiKey, key_id)
    return key is not None and key.revoked_at is not None


def _runtime():
    from gateway.runtime import Runtime

    settings = _settings()
    _prepare_state(settings)
    return Runtime.from_settings(settings)


@main.group()
def admin() -> None:
    """The scheduler's queue and cluster, cancelling any job, usage export."""


@admin.command("queue")
def admin_queue() -> None:
    """The live queue joined with gateway jobs (like GET /admin/queue)."""
    from gateway.jobs import live_queue
    from hpc_jobs.executors.base import ExecutorError

    try:
        entries = live_queue(_runtime())
    except ExecutorError as exc:
        raise click.ClickException(f"the scheduler did not answer: {exc}") from None
    headers = ("SLURM_ID", "PACK", "JOBS", "USERS", "PARTITION", "STATE", "ELAPSED", "REASON")
    rows = [(e.slurm_job_id, e.pack_id or "-", str(len(e.job_ids)), ",".join(e.user_ids) or "-", e.partition,
             e.state, "-" if e.elapsed_seconds is None else str(e.elapsed_seconds), e.reason or "")
            for e in entries]
    # Each column as wide as its widest cell: a local id (``local-`` and 16
    # hex digits) is wider than Slurm's numbers.
    widths = [max(map(len, column)) for column in zip(headers, *rows)]

    def line(cells):
        padded = [cell.rjust(width) if name in ("JOBS", "ELAPSED") else cell.ljust(width)
                  for name, cell, width in zip(headers, cells, widths)]
        return "  ".join(padded).rstrip()

    click.echo(line(headers))
    for entry, cells in zip(entries, rows):
        click.echo(line(cells))
        for job_id in entry.job_ids:
            click.echo(f"{'':<{widths[0]}}  └ {job_id}")


@admin.command("cluster")
def admin_cluster() -> None:
    """Partitions and node states (like GET /admin/cluster)."""
    from hpc_jobs.executors.base import ExecutorError

    try:
        rows = _runtime().executor.partitions()
    except ExecutorError as exc:
        raise click.ClickException(f"the scheduler did not answer: {exc}") from None
    for row in rows:
        default = "*" if row.is_default else ""
        click.echo(f"{row.partition + default:<14} {row.available:<6} nodes={row.node_count:<4} {row.state:<10} "
                   f"cpus={row.cpus:<5} mem_mb={row.memory_mb:<8} {row.node_list}")


@admin.command("cancel")
@click.argument("job_id")
def admin_cancel(job_id: str) -> None:
    """Cancel any user's job JOB_ID (idempotent)."""
    from gateway.errors import JobNotFound
    from gateway.jobs import cancel_job

    try:
        job = cancel_job(_runtime(), job_id, user=None, reason="cancelled by an administrator")
    except JobNotFound:
        raise click.ClickException(f"no job {job_id}") from None
    click.echo(f"{job.id}: {job.status}" + (f" ({job.error})" if job.error else ""))


@admin.command("usage-export")
@click.option("--month", help="UTC month as YYYY-MM (default: the current month)")
def admin_usage_export(month: str | None) -> None:
    """Usage per user in MONTH as CSV on stdout, as GET /user/usage counts it.

    One row per user (zeros for users without completed jobs that month):
    month, user_id, email, tier, active, jobs_executed, total_shots,
    total_qubits_hours.
    """
    import csv

    from gateway.accounts import list_users
    from gateway.models import utcnow
    from gateway.usage import MonthlyUsage, PeriodError, monthly_usage

    month = month or utcnow().strftime("%Y-%m")
    try:
        with _transaction() as session:
            usage = monthly_usage(session, month)
            users = list_users(session)
    except PeriodError as exc:
        raise click.ClickException(str(exc)) from None
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["month", "user_id", "email", "tier", "active", "jobs_executed", "total_shots",
                     "total_qubits_hours"])
    for user in users:
        used = usage.get(user.id) or MonthlyUsage(user.id, month)
        writer.writerow([month, user.id, _spreadsheet_safe(user.email), user.tier, str(user.is_active).lower(),
                         used.jobs_executed, used.total_shots, f"{used.total_qubits_hours:.6f}"])


def _spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP "CSV injection"):
    text starting with = + - @ or a tab gets a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@main.command("sbatch")
@click.option("--dry-run", "dry", is_flag=True, required=True, help="validate, size and render; submit nothing")
@click.option("--shots", type=click.IntRange(min=1), default=1024, show_default=True)
@click.argument("qasm_file", type=click.File("r", encoding="utf-8"))
def sbatch(dry: bool, shots: int, qasm_file) -> None:
    """Show the sbatch script QASM_FILE would run as, and Slurm's --test-only answer."""
    import json

    from gateway.errors import ApiError
    from gateway.jobs import dry_run
    from gateway.models import User
    from gateway.schemas import ExecuteRequest

    runtime = _runtime()
    # The operator is not bound by any user's tier: size against the largest one.
    largest = max(runtime.tiers.values(), key=lambda tier: (tier.max_qubits, tier.max_shots))
    operator = User(id="operator", email="operator@localhost", tier=largest.name, is_active=True)
    from pydantic import ValidationError

    try:
        answer = dry_run(runtime, operator, ExecuteRequest(qasm=qasm_file.read(), shots=shots))
    except ApiError as exc:
        raise click.ClickException(exc.detail) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(problems) from None
    click.echo(answer.pop("sbatch_script"), nl=False)
    click.echo("# " + json.dumps(answer, sort_keys=True))


@main.command("poller")
@click.option("--once", is_flag=True, help="run a single cycle and exit")
def poller(once: bool) -> None:
    """Dispatch waiting jobs in packs and turn Slurm (or local) states and the
    packs' progress into job statuses, until stopped."""
    from gateway.poller import run_forever, service_cycle
    from gateway.runtime import Runtime

    settings = _settings()
    _serve_process_logs_and_metrics(settings)
    _prepare_state(settings)
    runtime = Runtime.from_settings(settings)
    if once:
        report = service_cycle(runtime)
        click.echo(f"{report.finished_jobs} jobs finished, {len(report.ended_packs)} packs ended")
        return
    try:
        run_forever(runtime)
    finally:
        _forget_live_gauges()


def _serve_process_logs_and_metrics(settings: Settings) -> None:
    """Logs in ``QCOS_LOG_FORMAT``; metrics into ``PROMETHEUS_MULTIPROC_DIR``
    when set (a gateway on this host serves them at ``/metrics``)."""
    from gateway.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    from gateway import metrics

    metrics.instrument_database_pools()


def _forget_live_gauges() -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def run() -> None:
    """The ``qcos`` console script: :func:`main`, with an unreachable database
    reported in one line instead of a traceback."""
    from sqlalchemy.exc import OperationalError

    # What the poller, the dispatcher and the local executor's jobs write
    # (work dirs, results) belongs to the service user only, whatever the umask.
    os.umask(0o077)
    try:
        main(standalone_mode=True)
    except OperationalError as exc:
        click.echo(f"Error: the database is unreachable: {exc.orig or exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
