"""Request and response bodies of the API (pydantic models).

Field names, types and defaults follow the API reference. Timestamps are
ISO 8601 UTC with a ``Z`` suffix, to the second.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt, StrictStr

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


class ExecuteQuery(BaseModel):
    """``POST /execute`` query: ``dry_run=true`` validates, sizes and renders without creating a job."""

    dry_run: bool = False


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


class ResultCounts(BaseModel):
    counts: dict[str, int]


class ResultsCompleted(BaseModel):
    """``GET /results`` of a completed job: only the counts (the rest is in ``/status``)."""

    job_id: str
    status: Literal["completed"]
    result: ResultCounts


class ResultsPending(BaseModel):
    """``GET /results`` of a queued or processing job, the reference's pending shape."""

    job_id: str
    status: Literal["pending"]
    message: str


class ResultsResponse(RootModel[ResultsCompleted | ResultsPending]):
    """Either shape of ``GET /results``."""


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


class ErrorResponse(BaseModel):
    """Every error answer: a readable ``detail``, a stable ``error_code`` and the ``request_id``."""

    detail: str
    error_code: str
    request_id: str


class ResultsQuery(BaseModel):
    """``GET /results/{job_id}`` query: ``wait`` for completion up to ``timeout`` seconds
    (capped server-side by ``QCOS_RESULTS_MAX_WAIT``)."""

    wait: bool = False
    timeout: int = Field(default=30, ge=0)


#: A UTC calendar month, ``YYYY-MM``, from 1970-01.
PERIOD_REGEX = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"


class UsageQuery(BaseModel):
    """``GET /user/usage`` query: ``period`` is a UTC month, ``YYYY-MM`` (default: the current month)."""

    period: str | None = Field(default=None, pattern=PERIOD_REGEX)


class JobSummary(BaseModel):
    job_id: str
    status: Literal["queued", "processing", "completed", "failed"]
    num_qubits: int
    shots: int
    created_at: str
    completed_at: str | None
    error: str | None


class JobListQuery(BaseModel):
    """``GET /jobs`` query: optional ``status`` filter, ``limit`` 1–100 (default 20), ``offset`` ≥ 0."""

    status: Literal["queued", "processing", "completed", "failed"] | None = None
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)


class JobListResponse(BaseModel):
    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class QueueEntry(BaseModel):
    """One live scheduler job; ``job_id``/``user_id`` are null for jobs that are not ours."""

    slurm_job_id: str
    job_id: str | None
    user_id: str | None
    name: str
    partition: str
    state: str
    reason: str | None
    elapsed_seconds: int | None
    node_list: str | None


class AdminQueueResponse(BaseModel):
    executor: str
    jobs: list[QueueEntry]


class PartitionEntry(BaseModel):
    partition: str
    is_default: bool
    available: str
    time_limit_seconds: int | None
    node_count: int
    state: str
    node_list: str
    cpus_per_node: str
    memory_mb_per_node: str
    reason: str | None


class AdminClusterResponse(BaseModel):
    executor: str
    partitions: list[PartitionEntry]


class DryRunResponse(BaseModel):
    """``POST /execute?dry_run=true``: what would be submitted; nothing is stored."""

    dry_run: Literal[True]
    job_id: str
    num_qubits: int
    shots: int
    estimated_time_seconds: int
    sbatch_script: str
    slurm_test_only: dict | None
    resources: dict | None = None


class LivenessResponse(BaseModel):
    """``GET /healthz``: the process answers (nothing else is checked)."""

    status: Literal["alive"]


class ReadinessResponse(BaseModel):
    """``GET /readyz`` when ready: each check is ``ok``."""

    status: Literal["ready"]
    checks: dict[str, Literal["ok", "unavailable"]]


class NotReadyResponse(BaseModel):
    """``GET /readyz`` answering 503: the error format plus the checks, each
    ``ok`` or ``unavailable``."""

    status: Literal["not_ready"]
    checks: dict[str, Literal["ok", "unavailable"]]
    detail: str
    error_code: str
    request_id: str
