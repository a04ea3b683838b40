"""``GET /user/me``, ``GET /user/usage`` and ``GET /pricing``."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone

from flask import Blueprint, current_app, g, request
from sqlalchemy import bindparam, func, select

from gateway.auth import require_api_key
from gateway.errors import InvalidRequest
from gateway.models import DailyUsage, Job, utcnow
from gateway.openapi import AUTH_ERRORS, api_spec, responses
from gateway.quotas import tier_of, utc_day
from gateway.schemas import PricingResponse, UsageQuery, UsageResponse, UserResponse
from hpc_jobs.lifecycle import JobStatus

blueprint = Blueprint("account", __name__)

from gateway.schemas import PERIOD_REGEX

_PERIOD = re.compile(PERIOD_REGEX)


@blueprint.get("/pricing")
@api_spec.validate(resp=responses({200: PricingResponse}, (429,)), tags=["account"], security=[],
                   skip_validation=True)
def pricing():
    """The tiers of ``deploy/tiers.toml`` (or ``QCOS_TIERS_FILE``), in file order; no authentication."""
    tiers = current_app.extensions["qcos"].tiers
    return PricingResponse(tiers=[tier.pricing() for tier in tiers.values()]).model_dump()


#: Jobs counted today and all jobs of a user, in one round trip; built once (no per-request cache key).
_JOB_COUNTS = select(
    func.coalesce(select(DailyUsage.jobs).where(DailyUsage.user_id == bindparam("user_id"),
                                                DailyUsage.day == bindparam("day")).scalar_subquery(), 0),
    select(func.count()).select_from(Job).where(Job.user_id == bindparam("user_id")).scalar_subquery(),
)


@blueprint.get("/user/me")
@api_spec.validate(resp=responses({200: UserResponse}, (403, *AUTH_ERRORS)), tags=["account"], skip_validation=True)
@require_api_key
def me():
    """The caller's account, tier limits and job counts (``jobs_today``: UTC day)."""
    runtime = current_app.extensions["qcos"]
    user = g.user
    tier = tier_of(runtime.tiers, user.tier)
    today, total = runtime.db.fetch_one(_JOB_COUNTS, {"user_id": user.id, "day": utc_day(utcnow())})
    return UserResponse(
        user_id=user.id, email=user.email, tier=tier.name, daily_job_limit=tier.daily_job_limit,
        max_qubits=tier.max_qubits, max_shots=tier.max_shots, jobs_today=today, jobs_total=total,
    )


def _period_bounds(period: str) -> tuple[datetime, datetime]:
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise InvalidRequest("period must be a month from 1970-01 on, as YYYY-MM, e.g. 2024-01")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    try:
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    except ValueError:  # 9999-12 has no following month in datetime's range
        raise InvalidRequest("period is out of range") from None
    return start, end


@blueprint.get("/user/usage")
@api_spec.validate(query=UsageQuery, resp=responses({200: UsageResponse}, (400, *AUTH_ERRORS)), tags=["account"],
                   skip_validation=True)
@require_api_key
def usage():
    """Usage of completed jobs in one UTC calendar month (``?period=YYYY-MM``, default: this month).

    ``jobs_executed``: jobs that completed in the period. ``total_shots``:
    their shots. ``total_qubits_hours``: Σ num_qubits × execution hours,
    execution hours being the simulator's ``execution_time_seconds`` / 3600
    (rounded to 6 decimals). ``daily_usage``: completed jobs per UTC day,
    newest first, days without jobs left out.
    """
    runtime = current_app.extensions["qcos"]
    period = request.args.get("period")
    if period is None:
        period = utcnow().strftime("%Y-%m")
    start, end = _period_bounds(period)
    with runtime.db.read_session() as session:
        rows = session.execute(
            select(Job.completed_at, Job.shots, Job.num_qubits, Job.execution_time_seconds).where(
                Job.user_id == g.user.id,
                Job.status == JobStatus.COMPLETED.value,
                Job.completed_at >= start,
                Job.completed_at < end,
            )
        ).all()
    per_day = Counter(utc_day(row.completed_at).isoformat() for row in rows)
    qubit_hours = sum(row.num_qubits * (row.execution_time_seconds or 0.0) for row in rows) / 3600
    return UsageResponse(
        user_id=g.user.id,
        period=period,
        jobs_executed=len(rows),
        total_shots=sum(row.shots for row in rows),
        total_qubits_hours=round(qubit_hours, 6),
        daily_usage=[{"date": day, "jobs": jobs} for day, jobs in sorted(per_day.items(), reverse=True)],
    ).model_dump()
