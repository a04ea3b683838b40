"""Tier quotas on jobs: qubits and shots per job, jobs per UTC day.

The daily limit is enforced on a per-user, per-UTC-day counter row
(:class:`gateway.models.DailyUsage`) with one conditional UPDATE::

    UPDATE daily_usage SET jobs = jobs + 1
     WHERE user_id = :user AND day = :today AND jobs < :limit

issued in the same transaction that inserts the job row. The database's row
lock serialises concurrent submissions of one user (on PostgreSQL the
waiting UPDATE re-reads the committed count; on SQLite writers are
serialised), so N simultaneous submissions with k jobs left create exactly k
jobs, across any number of workers and gateway hosts. A rejected submission
rolls back and leaves no row behind.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.errors import DailyQuotaExceeded, QuotaExceeded
from gateway.models import DailyUsage
from gateway.tiers import UNLIMITED, Tier


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of an aware datetime: the "day" of daily limits."""
    return moment.astimezone(timezone.utc).date()


def seconds_until_next_utc_day(moment: datetime) -> int:
    """Whole seconds from ``moment`` to the next 00:00 UTC (at least 1)."""
    next_midnight = datetime.combine(utc_day(moment) + timedelta(days=1), time(0), tzinfo=timezone.utc)
    return max(1, int((next_midnight - moment).total_seconds()) + 1)


def tier_of(tiers: dict[str, Tier], tier_name: str) -> Tier:
    """The configured tier of a user; :class:`QuotaExceeded` when the site no longer offers it."""
    try:
        return tiers[tier_name]
    except KeyError:
        raise QuotaExceeded(f"Your account's tier {tier_name!r} is not offered; ask the administrator") from None


def check_job_size(tier: Tier, *, num_qubits: int, shots: int) -> None:
    """Raise :class:`QuotaExceeded` (403) when one job is larger than ``tier`` allows."""
    if num_qubits > tier.max_qubits:
        raise QuotaExceeded(
            f"The circuit uses {num_qubits} qubits; the {tier.name} tier allows max_qubits={tier.max_qubits}"
        )
    if shots > tier.max_shots:
        raise QuotaExceeded(f"{shots} shots requested; the {tier.name} tier allows max_shots={tier.max_shots}")


def _insert_counter_row(session: Session, user_id: str, day: date) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(DailyUsage).values(user_id=user_id, day=day, jobs=0).on_conflict_do_nothing())


def reserve_daily_jobs(session: Session, *, user_id: str, tier: Tier, now: datetime, count: int = 1) -> None:
    """Count ``count`` more jobs for today inside the caller's transaction,
    all or none.

    Raises :class:`DailyQuotaExceeded` (429) when they would pass the tier's
    ``daily_job_limit``; the caller's transaction must then roll back.
    ``-1`` is unlimited (still counted, for ``jobs_today``).
    """
    day = utc_day(now)
    _insert_counter_row(session, user_id, day)
    statement = update(DailyUsage).where(DailyUsage.user_id == user_id, DailyUsage.day == day)
    if tier.daily_job_limit != UNLIMITED:
        statement = statement.where(DailyUsage.jobs <= tier.daily_job_limit - count)
    if session.execute(statement.values(jobs=DailyUsage.jobs + count)).rowcount != 1:
        wanted = "a job" if count == 1 else f"{count} jobs"
        raise DailyQuotaExceeded(
            f"Daily job limit reached: the {tier.name} tier allows daily_job_limit={tier.daily_job_limit} "
            f"jobs per UTC day, and {wanted} would pass it",
            retry_after=seconds_until_next_utc_day(now),
        )


def jobs_on(session: Session, *, user_id: str, day: date) -> int:
    """Jobs counted for ``user_id`` on UTC ``day``."""
    return session.scalar(
        select(DailyUsage.jobs).where(DailyUsage.user_id == user_id, DailyUsage.day == day)
    ) or 0
