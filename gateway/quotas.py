"""Tier quotas on jobs: qubits and shots per job, jobs per UTC day.

The daily limit is enforced on a per-user, per-UTC-day counter row
(:class:`gateway.models.DailyUsage`) with one conditional upsert
(:func:`counter_upsert`)::

    INSERT INTO daily_usage (user_id, day, jobs) VALUES (:user_id, :day, :count)
    ON CONFLICT (user_id, day) DO UPDATE SET jobs = daily_usage.jobs + :count
     WHERE daily_usage.jobs <= :room
    RETURNING jobs

(``room`` = limit − count), which returns no row when the jobs would pass
the limit. It runs in the same transaction that inserts the jobs, so a job
is stored if and only if it is counted. The database's row lock serialises
concurrent submissions of one user (on PostgreSQL the waiting statement
re-reads the committed count; on SQLite writers are serialised), so N
simultaneous submissions with k jobs left create exactly k jobs, across any
number of workers and gateway hosts. A refused submission rolls back and
leaves no row behind.

That lock is held until the transaction commits, so the counting statement
comes last: a single submission on PostgreSQL is one statement, the upsert
as a CTE feeding the job's ``INSERT`` (see :func:`gateway.jobs.submit`),
which holds the lock only while that statement and its commit run.
"""

from __future__ import annotations

import functools
import threading
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable

from sqlalchemy import Integer, bindparam, select
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


#: ``room`` of an unlimited tier: any count fits (the column is a 32-bit integer).
_NO_LIMIT_ROOM = 2**31 - 1


@functools.cache
def counter_upsert(dialect_name: str):
    """The conditional upsert of the module docstring for ``"postgresql"``
    or ``"sqlite"``, with bind parameters ``user_id``, ``day``, ``count`` and
    ``room`` (see :func:`counter_params`); it returns one row (``jobs``, the
    new count) when counted, none when refused. Built once per dialect."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    count = bindparam("count", type_=Integer)
    return (
        insert(DailyUsage).values(user_id=bindparam("user_id"), day=bindparam("day"), jobs=count)
        .on_conflict_do_update(index_elements=[DailyUsage.user_id, DailyUsage.day],
                               set_={"jobs": DailyUsage.jobs + count},
                               where=DailyUsage.jobs <= bindparam("room", type_=Integer))
        .returning(DailyUsage.jobs)
    )


def counter_params(*, user_id: str, tier: Tier, now: datetime, count: int) -> dict:
    """Parameters of :func:`counter_upsert` for counting ``count`` jobs of
    ``user_id`` on the UTC day of ``now``. Raises :class:`DailyQuotaExceeded`
    at once when ``count`` alone passes the tier's limit."""
    if tier.daily_job_limit == UNLIMITED:
        room = _NO_LIMIT_ROOM
    else:
        room = tier.daily_job_limit - count
        if room < 0:
            raise daily_limit_reached(tier, count, now)
    return {"user_id": user_id, "day": utc_day(now), "count": count, "room": room}


def reserve_daily_jobs(session: Session, *, user_id: str, tier: Tier, now: datetime, count: int = 1) -> None:
    """Count ``count`` more jobs for today inside the caller's transaction,
    all or none; put it last before the commit (see the module docstring).

    Raises :class:`DailyQuotaExceeded` (429) when they would pass the tier's
    ``daily_job_limit``; the caller's transaction must then roll back.
    ``-1`` is unlimited (still counted, for ``jobs_today`` and ``jobs_total``).
    """
    params = counter_params(user_id=user_id, tier=tier, now=now, count=count)
    if session.execute(counter_upsert(session.get_bind().dialect.name), params).first() is None:
        raise daily_limit_reached(tier, count, now)


def daily_limit_reached(tier: Tier, count: int, now: datetime) -> DailyQuotaExceeded:
    """The 429 for ``count`` jobs that would pass ``tier``'s daily limit, with
    ``Retry-After`` at the next UTC midnight."""
    wanted = "a job" if count == 1 else f"{count} jobs"
    return DailyQuotaExceeded(
        f"Daily job limit reached: the {tier.name} tier allows daily_job_limit={tier.daily_job_limit} "
        f"jobs per UTC day, and {wanted} would pass it",
        retry_after=seconds_until_next_utc_day(now),
    )


def jobs_on(session: Session, *, user_id: str, day: date) -> int:
    """Jobs counted for ``user_id`` on UTC ``day``."""
    return session.scalar(
        select(DailyUsage.jobs).where(DailyUsage.user_id == user_id, DailyUsage.day == day)
    ) or 0


class JobCountCache:
    """``(jobs_today, jobs_total)`` of users as ``GET /user/me`` shows them,
    kept per process for ``ttl`` seconds (``QCOS_JOB_COUNT_CACHE_TTL``); at
    most ``maxsize`` users.

    The daily limit is never enforced on these (it is the database counter's
    conditional upsert, exact); they are what a user reads. A submission
    through this process calls :meth:`forget` for its user, so a client that
    submits and then reads through the same process sees its jobs counted;
    through another process or gateway host the counts may be up to ``ttl``
    seconds old. Entries are per UTC day: a cached count of yesterday is
    never shown today. Thread-safe; a read that started before a
    :meth:`forget` of its user is not stored (the ``generation`` it passes to
    :meth:`put` is stale). ``ttl`` 0 caches nothing.
    """

    def __init__(self, ttl: float, *, maxsize: int = 10_000) -> None:
        from cachetools import TTLCache

        self.ttl = ttl
        self._entries: TTLCache[str, tuple[date, int, int]] = TTLCache(maxsize=maxsize, ttl=ttl or 1)
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str, day: date) -> tuple[int, int] | None:
        """The cached ``(jobs_today, jobs_total)`` of ``user_id`` on ``day``, or ``None``."""
        if not self.ttl:
            return None
        with self._lock:
            entry = self._entries.get(user_id)
        if entry is None or entry[0] != day:
            return None
        return entry[1], entry[2]

    def read(self, user_id: str, day: date, load: Callable[[], tuple[int, int]]) -> tuple[int, int]:
        """The cached counts, or ``load()``'s (then kept, unless a submission raced the load)."""
        counts = self.get(user_id, day)
        if counts is None:
            generation = self.generation(user_id)
            counts = load()
            self.put(user_id, day, counts, generation)
        return counts

    def generation(self, user_id: str) -> int:
        """Pass to :meth:`put` what this returned before the read."""
        return self._generations.get(user_id, 0)

    def put(self, user_id: str, day: date, counts: tuple[int, int], generation: int) -> None:
        """Keep ``counts`` read on ``day``, unless ``user_id`` was forgotten since ``generation``."""
        if not self.ttl:
            return
        with self._lock:
            if self._generations.get(user_id, 0) == generation:
                self._entries[user_id] = (day, counts[0], counts[1])

    def forget(self, user_id: str) -> None:
        """``user_id`` submitted jobs: read its counts afresh next time."""
        if not self.ttl:
            return
        with self._lock:
            self._generations[user_id] = self._generations.get(user_id, 0) + 1
            self._entries.pop(user_id, None)
