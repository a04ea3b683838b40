"""``GET /user/me``, ``GET /user/usage`` and ``GET /pricing``."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request
from sqlalchemy import bindparam, func, select

from gateway.auth import require_api_key
from gateway.errors import InvalidRequest
from gateway.models import DailyUsage, User, utcnow
from gateway.openapi import AUTH_ERRORS, api_spec, responses
from gateway.quotas import tier_of, utc_day
from gateway.schemas import PricingResponse, UsageQuery, UsageResponse, UserResponse
from gateway.usage import PeriodError, user_usage

blueprint = Blueprint("account", __name__)


@blueprint.get("/pricing")
@api_spec.validate(operation_id="getPricing", resp=responses({200: PricingResponse}, (429,)), tags=["account"],
                   security=[])
def pricing():
    """The tiers of ``deploy/tiers.toml`` (or ``QCOS_TIERS_FILE``), in file order; no authentication."""
    tiers = current_app.extensions["qcos"].tiers
    return PricingResponse(tiers=[tier.pricing() for tier in tiers.values()]).model_dump()


#: Jobs counted today and all jobs of a user, in one round trip; built once (no per-request cache key).
#: ``jobs_total`` sums the user's daily counters (one row per day, see :attr:`gateway.models.User.uncounted_jobs`).
_JOB_COUNTS = select(
    func.coalesce(select(DailyUsage.jobs).where(DailyUsage.user_id == bindparam("user_id"),
                                                DailyUsage.day == bindparam("day")).scalar_subquery(), 0),
    select(User.uncounted_jobs).where(User.id == bindparam("user_id")).scalar_subquery()
    + func.coalesce(select(func.sum(DailyUsage.jobs)).where(DailyUsage.user_id == bindparam("user_id"))
                    .scalar_subquery(), 0),
)


@blueprint.get("/user/me")
@api_spec.validate(operation_id="getMe", resp=responses({200: UserResponse}, (403, *AUTH_ERRORS)), tags=["account"])
@require_api_key
def me():
    """The caller's account, tier limits and job counts (``jobs_today``: UTC
    day); counts may be up to ``QCOS_JOB_COUNT_CACHE_TTL`` seconds old, see
    :class:`gateway.quotas.JobCountCache`."""
    runtime = current_app.extensions["qcos"]
    user = g.user
    tier = tier_of(runtime.tiers, user.tier)
    day = utc_day(utcnow())
    today, total = runtime.job_counts.read(
        user.id, day, lambda: runtime.db.fetch_one(_JOB_COUNTS, {"user_id": user.id, "day": day}))
    return UserResponse(
        user_id=user.id, email=user.email, tier=tier.name, daily_job_limit=tier.daily_job_limit,
        max_qubits=tier.max_qubits, max_shots=tier.max_shots, jobs_today=today, jobs_total=total,
    )


@blueprint.get("/user/usage")
@api_spec.validate(operation_id="getUsage", query=UsageQuery, resp=responses({200: UsageResponse}, (400, *AUTH_ERRORS)),
                   tags=["account"])
@require_api_key
def usage():
    """Usage of completed jobs in one UTC calendar month (``?period=YYYY-MM``, default: this month).

    ``jobs_executed``: jobs that completed in the period. ``total_shots``:
    their shots. ``total_qubits_hours``: Σ num_qubits × execution hours,
    execution hours being the simulator's ``execution_time_seconds`` / 3600
    (rounded to 6 decimals). ``daily_usage``: completed jobs per UTC day,
    newest first, days without jobs left out. Computed by
    :func:`gateway.usage.user_usage`, as the admin page and CSV export are.
    """
    runtime = current_app.extensions["qcos"]
    period = request.args.get("period")
    if period is None:
        period = utcnow().strftime("%Y-%m")
    try:
        with runtime.db.read_session() as session:
            used = user_usage(session, g.user.id, period)
    except PeriodError as exc:
        raise InvalidRequest(str(exc)) from None
    return UsageResponse(
        user_id=g.user.id,
        period=period,
        jobs_executed=used.jobs_executed,
        total_shots=used.total_shots,
        total_qubits_hours=used.total_qubits_hours,
        daily_usage=[{"date": day, "jobs": jobs} for day, jobs in used.daily],
    ).model_dump()
