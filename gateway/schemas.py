"""Request and response bodies of the API (pydantic models).

Field names, types and defaults follow the API reference. Timestamps are
ISO 8601 UTC with a ``Z`` suffix, to the second.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

#: Custom job ids: 1–64 characters, letters, digits, ``_``, ``-``, ``.``,
#: starting with a letter or digit. They become a folder name and part of
#: the Slurm job name, so nothing else is allowed.
JOB_ID_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_SHOTS = 1024
#: Absolute ceiling on shots, whatever the tier (the largest tier allows 10⁶).
MAX_SHOTS_CEILING = 10_000_000


class ExecuteRequest(BaseModel):
    """``POST /execute`` body: ``qasm`` (OpenQASM 2.0 text), ``shots`` (≥ 1,
    default 1024), optional ``job_id``. Unknown fields are refused, so a typo
    like ``shot`` is an error instead of a silent default."""

    model_config = ConfigDict(extra="forbid")

    qasm: StrictStr = Field(min_length=1)
    shots: StrictInt = Field(default=DEFAULT_SHOTS, ge=1, le=MAX_SHOTS_CEILING)
    job_id: StrictStr | None = Field(default=None, pattern=JOB_ID_REGEX)


class ExecuteResponse(BaseModel):
    job_id: str
    status: str
    message: str
    estimated_time_seconds: int


class JobResult(BaseModel):
    """What the runner measured: ``counts`` maps bitstrings (Qiskit order,
    c[0] rightmost, registers separated by spaces) to occurrences summing to
    ``shots``; ``execution_time_seconds`` is the simulator's own time."""

    model_config = ConfigDict(extra="allow")

    counts: dict[str, int]
    num_qubits: int
    shots: int
    execution_time_seconds: float
    backend: str
    device: str


class StatusResponse(BaseModel):
    job_id: str
    status: Literal["queued", "processing", "completed", "failed"]
    result: JobResult | None
    error: str | None
    created_at: str
    completed_at: str | None


class ResultsCompleted(BaseModel):
    job_id: str
    status: Literal["completed"]
    result: dict[str, Any]


class ResultsPending(BaseModel):
    job_id: str
    status: Literal["pending"]
    message: str


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded"]
    version: str
    queue_connected: bool


def iso_utc(moment: datetime | None) -> str | None:
    """``2024-01-15T10:30:00Z`` for an aware datetime; ``None`` stays ``None``."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class TierInfo(BaseModel):
    name: str
    price_monthly: int | None
    daily_job_limit: int
    max_qubits: int
    max_shots: int


class PricingResponse(BaseModel):
    tiers: list[TierInfo]


class UserResponse(BaseModel):
    user_id: str
    email: str
    tier: str
    daily_job_limit: int
    max_qubits: int
    max_shots: int
    jobs_today: int
    jobs_total: int


class DailyUsageEntry(BaseModel):
    date: str
    jobs: int


class UsageResponse(BaseModel):
    user_id: str
    period: str
    jobs_executed: int
    total_shots: int
    total_qubits_hours: float
    daily_usage: list[DailyUsageEntry]
