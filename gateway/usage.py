"""Usage of completed jobs per user and UTC calendar month: one computation for
``GET /user/usage``, the admin page and ``qcos admin usage-export``, so the
three always agree.

- ``jobs_executed``: jobs whose completion falls in the month;
- ``total_shots``: their shots;
- ``total_qubits_hours``: Σ ``num_qubits`` × execution hours, execution hours
  being the simulator's ``execution_time_seconds`` / 3600, rounded to 6
  decimals; summed in a fixed order (completion time, job id) so every caller
  gets the same float;
- ``daily``: completed jobs per UTC day, newest first, days without jobs
  left out.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Job
from gateway.quotas import utc_day
from gateway.schemas import PERIOD_REGEX
from hpc_jobs.lifecycle import JobStatus

_PERIOD = re.compile(PERIOD_REGEX)


class PeriodError(ValueError):
    """A period that is not a month ``YYYY-MM`` from 1970-01 on."""


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of the UTC month ``period`` (``"2024-01"``), aware
    datetimes. Raises :class:`PeriodError`."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise PeriodError("period must be a month from 1970-01 on, as YYYY-MM, e.g. 2024-01")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    try:
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    except ValueError:  # 9999-12 has no following month in datetime's range
        raise PeriodError("period is out of range") from None
    return start, end


@dataclass
class MonthlyUsage:
    """One user's usage in one month; see the module docstring for the fields."""

    user_id: str
    period: str
    jobs_executed: int = 0
    total_shots: int = 0
    total_qubits_hours: float = 0.0
    daily: list[tuple[str, int]] = field(default_factory=list)


def monthly_usage(session: Session, period: str, *, user_id: str | None = None) -> dict[str, MonthlyUsage]:
    """Usage in ``period`` by user id: every user with a completed job in it,
    or only ``user_id``. Users without completed jobs are absent. Raises
    :class:`PeriodError`."""
    start, end = period_bounds(period)
    conditions = [Job.status == JobStatus.COMPLETED.value, Job.completed_at >= start, Job.completed_at < end]
    if user_id is not None:
        conditions.append(Job.user_id == user_id)
    rows = session.execute(
        select(Job.user_id, Job.completed_at, Job.shots, Job.num_qubits, Job.execution_time_seconds)
        .where(*conditions).order_by(Job.user_id, Job.completed_at, Job.id)
    ).all()
    by_user: dict[str, list] = {}
    for row in rows:
        by_user.setdefault(row.user_id, []).append(row)
    usage = {}
    for owner, jobs in by_user.items():
        per_day = Counter(utc_day(job.completed_at).isoformat() for job in jobs)
        qubit_seconds = 0.0
        for job in jobs:
            qubit_seconds += job.num_qubits * (job.execution_time_seconds or 0.0)
        usage[owner] = MonthlyUsage(
            user_id=owner, period=period, jobs_executed=len(jobs), total_shots=sum(job.shots for job in jobs),
            total_qubits_hours=round(qubit_seconds / 3600, 6),
            daily=sorted(per_day.items(), reverse=True),
        )
    return usage


def user_usage(session: Session, user_id: str, period: str) -> MonthlyUsage:
    """``user_id``'s usage in ``period`` (zeros when none). Raises :class:`PeriodError`."""
    return monthly_usage(session, period, user_id=user_id).get(user_id) or MonthlyUsage(user_id, period)
