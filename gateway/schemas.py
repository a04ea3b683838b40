"""Request and response bodies of the API (pydantic models).

Field names, types and defaults follow the API reference. Timestamps are
ISO 8601 UTC with a ``Z`` suffix, to the second.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, StrictInt, StrictStr
from pydantic.json_schema import SkipJsonSchema

#: Custom job ids: 1–64 characters, letters, digits, ``_``, ``-``, ``.``,
#: starting with a letter or digit. They become a folder name and part of
#: the Slurm job name, so nothing else is allowed.
JOB_ID_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_SHOTS = 1024
#: Absolute ceiling on shots, whatever the tier (the largest tier allows 10⁶).
MAX_SHOTS_CEILING = 10_000_000


def _without_byte_order_mark(value: object) -> object:
    # Editors on Windows start files with U+FEFF; it is not part of the program,
    # and qiskit.qasm2 would call it a non-ASCII byte at line 1, column 1.
    return value.removeprefix("\ufeff") if isinstance(value, str) else value


class ExecuteRequest(BaseModel):
    """``POST /execute`` body: ``qasm`` (OpenQASM 2.0 text), ``shots`` (≥ 1,
    default 1024), optional ``job_id``. Unknown fields are refused, so a typo
    like ``shot`` is an error instead of a silent default. One byte order mark
    at the start of ``qasm`` is dropped, whichever form of body carried it:
    every form (JSON, the program as the body, a form, a batch) passes here."""

    model_config = ConfigDict(extra="forbid")

    qasm: Annotated[StrictStr, BeforeValidator(_without_byte_order_mark)] = Field(min_length=1)
    shots: StrictInt = Field(default=DEFAULT_SHOTS, ge=1, le=MAX_SHOTS_CEILING)
    job_id: StrictStr | None = Field(default=None, pattern=JOB_ID_REGEX)


class BatchRequest(BaseModel):
    """``POST /batches`` body: ``circuits``, each an :class:`ExecuteRequest`
    (1 … ``QCOS_BATCH_MAX_CIRCUITS``, checked by the endpoint)."""

    model_config = ConfigDict(extra="forbid")

    circuits: list[ExecuteRequest] = Field(min_length=1)


class BatchResponse(BaseModel):
    """``POST /batches`` answer: the batch id and its job ids in request order."""

    batch_id: str
    job_ids: list[str]
    count: int
    status: Literal["queued", "exists"] = Field(
        description="queued: this request stored the batch (201); exists: it repeats a stored batch (200)")
    estimated_time_seconds: int


class BatchJob(BaseModel):
    """One job of a batch: ``result`` is ``{"counts": ...}`` once completed."""

    job_id: str
    status: str
    error: str | None
    result: dict | None


class BatchStatusResponse(BaseModel):
    """``GET /batches/{batch_id}``: counts per status, ``done`` once no job
    is queued or processing, and every job in request order."""

    batch_id: str
    created_at: str
    count: int
    counts: dict[str, int]
    done: bool
    jobs: list[BatchJob]


class ExecuteQuery(BaseModel):
    """``POST /execute`` query: ``dry_run=true`` validates, sizes and renders without creating a job.
    ``shots`` and ``job_id`` are for a circuit sent as the body itself or as a form, never with JSON."""

    dry_run: bool = False
    shots: int | None = Field(default=None, ge=1, le=MAX_SHOTS_CEILING,
                              description="With a text/plain, application/vnd.openqasm or form body only "
                                          f"(default {DEFAULT_SHOTS}); a JSON body carries its own.")
    job_id: str | None = Field(default=None, pattern=JOB_ID_REGEX,
                               description="With a text/plain, application/vnd.openqasm or form body only.")


class ExecuteForm(BaseModel):
    """``POST /execute`` as a form (``multipart/form-data``, e.g. ``curl -F qasm=@bell.qasm -F shots=1024``,
    or ``application/x-www-form-urlencoded``): the fields of :class:`ExecuteRequest`, ``qasm`` a file
    or a text field (UTF-8)."""

    model_config = ConfigDict(extra="forbid")

    qasm: str = Field(min_length=1, json_schema_extra={"format": "binary"})
    shots: int = Field(default=DEFAULT_SHOTS, ge=1, le=MAX_SHOTS_CEILING)
    job_id: str | None = Field(default=None, pattern=JOB_ID_REGEX)


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


#: The sources ``GET /`` names in ``degraded``: the Slurm controller (squeue,
#: scontrol ping), accounting (sacct, slurmdbd), shared rate-limit storage (Redis).
DegradedSource = Literal["scheduler", "accounting", "rate_limiter"]


class HealthResponse(BaseModel):
    """``GET /``. ``degraded`` is absent when every source answers, so a
    healthy gateway answers exactly as the reference's example."""

    status: Literal["healthy", "degraded"]
    version: str
    queue_connected: bool
    # Absent or a non-empty list, never null: the view dumps with exclude_none.
    degraded: Annotated[list[DegradedSource], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="The sources that are down, when any is: `scheduler` (the poller's last scheduler call "
                          "failed, as `queue_connected` false), `accounting` (its last sacct call failed: "
                          "slurmdbd down; jobs still run), `rate_limiter` (shared rate-limit storage unreachable: "
                          "limits count per gateway process meanwhile). Absent when all are up.",
        json_schema_extra=lambda schema: schema.pop("default", None))


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


class ErrorCode(StrEnum):
    """Every ``error_code`` the API answers (:mod:`gateway.errors` raises them;
    the README's error table says when)."""

    INVALID_REQUEST = "INVALID_REQUEST"
    CIRCUIT_INVALID = "CIRCUIT_INVALID"
    AUTH_REQUIRED = "AUTH_REQUIRED"
    AUTH_INVALID = "AUTH_INVALID"
    ADMIN_REQUIRED = "ADMIN_REQUIRED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    BATCH_NOT_FOUND = "BATCH_NOT_FOUND"
    JOB_ID_CONFLICT = "JOB_ID_CONFLICT"
    JOB_FAILED = "JOB_FAILED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    HTTP_ERROR = "HTTP_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class ErrorResponse(BaseModel):
    """Every error answer: a readable ``detail``, a stable ``error_code`` and the ``request_id``
    (also in the ``X-Request-ID`` header)."""

    detail: str
    error_code: ErrorCode
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
    """One live scheduler job. For our packs: ``pack_id`` and the jobs it runs
    (``job_ids``, ``user_ids``); ``job_id``/``user_id`` when there is only one.
    Null or empty for Slurm jobs that are not ours."""

    slurm_job_id: str
    pack_id: str | None = None
    job_id: str | None
    user_id: str | None
    job_ids: list[str] = []
    user_ids: list[str] = []
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


class SlurmTestOnly(BaseModel):
    """``sbatch --test-only``'s answer in a dry run. Accepted: ``start`` (the
    controller's local time, ISO 8601 without zone), ``partition``, ``nodes``
    (a Slurm host list). Refused, or Slurm unreachable: ``error``."""

    accepted: bool
    start: str | None = None
    partition: str | None = None
    nodes: str | None = None
    error: str | None = None


class DryRunResources(BaseModel):
    """What the job would ask Slurm for (:class:`hpc_jobs.sizing.JobResources`):
    the ``#SBATCH`` values (``mem`` per node and ``time_limit`` in Slurm's
    syntax), the simulation method, precision and device, ``state_bytes``
    (memory of the simulated state, bytes) and ``estimated_runtime_seconds``."""

    model_config = ConfigDict(extra="allow")

    method: str
    precision: str
    device: str
    custatevec: bool
    partition: str
    nodes: int
    ntasks_per_node: int
    cpus_per_task: int
    gpus_per_node: int
    mem: str
    time_limit: str
    state_bytes: int
    estimated_runtime_seconds: int


class DryRunResponse(BaseModel):
    """``POST /execute?dry_run=true``: what would be submitted; nothing is stored.
    ``slurm_test_only`` is null where the executor has no test-only submission (local)."""

    dry_run: Literal[True]
    job_id: str
    num_qubits: int
    shots: int
    estimated_time_seconds: int
    sbatch_script: str
    slurm_test_only: SlurmTestOnly | None
    resources: DryRunResources | None = None


class ExecuteOkResponse(RootModel[DryRunResponse | ExecuteResponse]):
    """``POST /execute``'s 200: a dry run's answer (``?dry_run=true``), or the
    earlier submission answered again for a repeated custom ``job_id``."""


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
