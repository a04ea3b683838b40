"""One poll cycle: scheduler observations → status updates for live jobs.

The cycle asks the executor about *all* live jobs at once (for Slurm: one
``squeue`` and at most one ``sacct`` call, see
:meth:`hpc_jobs.executors.slurm.SlurmExecutor.observe`), maps each state
through :mod:`hpc_jobs.lifecycle`, reads the result (or the failure reason)
of finished jobs from their work dirs, and returns the updates. Applying them
to the database is the caller's business (``gateway.poller``), which keeps
this package free of SQLAlchemy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

from hpc_jobs import workdir
from hpc_jobs.executors.base import Executor, JobObservation
from hpc_jobs.lifecycle import JobStatus, can_transition, status_for_slurm_state

log = logging.getLogger(__name__)

#: Reads a work dir file; ``None`` when it does not exist. Local file systems
#: (a shared cluster file system mounted here) by default; SFTP for SSH.
ReadText = Callable[[Path], "str | None"]


def read_local_text(path: Path) -> str | None:
    """Read a UTF-8 file, or ``None`` when it does not exist."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class LiveJob:
    """A job the gateway still considers unfinished (``queued``/``processing``).

    Times are timezone-aware UTC. ``last_seen_at``: when the scheduler last
    reported the job (``None``: never yet).
    """

    job_id: str
    scheduler_job_id: str
    status: JobStatus
    work_dir: Path
    shots: int
    submitted_at: datetime
    last_seen_at: datetime | None = None


@dataclass(frozen=True)
class JobUpdate:
    """What one cycle learned about one job.

    ``status`` equals ``old_status`` when only bookkeeping changed (the job
    was seen again, its Slurm state changed within the same status).
    ``result``: the runner's ``result.json`` for a completed job. ``error``:
    a readable reason for a failed one. ``seen``: the scheduler reported it.
    """

    job_id: str
    old_status: JobStatus
    status: JobStatus
    slurm_state: str | None
    seen: bool
    result: dict[str, Any] | None = None
    error: str | None = None


def poll_cycle(
    executor: Executor,
    jobs: Sequence[LiveJob],
    *,
    now: datetime,
    missing_grace_seconds: float,
    read_text: ReadText = read_local_text,
) -> list[JobUpdate]:
    """Observe ``jobs`` in one executor call and decide their new statuses.

    A job missing from the scheduler's answer is *not* finished: it keeps its
    status until ``missing_grace_seconds`` have passed since it was last seen
    (or submitted), then fails with a reason that says so. Raises
    :class:`hpc_jobs.executors.base.ExecutorError` when the scheduler cannot
    be asked at all; the caller retries next cycle.
    """
    if not jobs:
        return []
    observations = executor.observe([job.scheduler_job_id for job in jobs])
    updates = []
    for job in jobs:
        observation = observations.get(job.scheduler_job_id)
        if observation is None:
            updates.append(_missing(job, now, missing_grace_seconds))
        else:
            updates.append(_observed(job, observation, read_text))
    return updates


def _missing(job: LiveJob, now: datetime, grace: float) -> JobUpdate:
    since = job.last_seen_at or job.submitted_at
    if now - since <= timedelta(seconds=grace):
        return JobUpdate(job.job_id, job.status, job.status, None, seen=False)
    reason = (
        f"the scheduler lost track of the job: batch job {job.scheduler_job_id} was in "
        f"neither squeue nor sacct for {grace:g} s"
    )
    return JobUpdate(job.job_id, job.status, JobStatus.FAILED, None, seen=False, error=reason)


def _observed(job: LiveJob, observation: JobObservation, read_text: ReadText) -> JobUpdate:
    try:
        status, reason = status_for_slurm_state(observation.state)
    except KeyError:
        log.warning("unknown Slurm state %r of job %s; keeping %s", observation.state, job.job_id, job.status.value)
        return JobUpdate(job.job_id, job.status, job.status, observation.state, seen=True)
    if not can_transition(job.status, status):
        return JobUpdate(job.job_id, job.status, job.status, observation.state, seen=True)
    if status is JobStatus.COMPLETED:
        result, error = _read_result(job, read_text)
        if result is None:
            return JobUpdate(job.job_id, job.status, JobStatus.FAILED, observation.state, True, error=error)
        return JobUpdate(job.job_id, job.status, JobStatus.COMPLETED, observation.state, True, result=result)
    if status is JobStatus.FAILED:
        error = _failure_reason(job, observation, reason, read_text)
        return JobUpdate(job.job_id, job.status, JobStatus.FAILED, observation.state, True, error=error)
    return JobUpdate(job.job_id, job.status, status, observation.state, seen=True)


def _read_result(job: LiveJob, read_text: ReadText) -> tuple[dict[str, Any] | None, str | None]:
    """The validated ``result.json`` of a job whose batch script exited 0, or a reason why not."""
    text = read_text(job.work_dir / workdir.RESULT_FILE)
    if text is None:
        runner_error = _runner_error(job, read_text)
        return None, runner_error or "the batch job finished without writing a result"
    try:
        result = json.loads(text)
    except json.JSONDecodeError:
        return None, "the batch job wrote an unreadable result"
    counts = result.get("counts") if isinstance(result, dict) else None
    if not isinstance(counts, dict) or not counts:
        return None, "the batch job wrote a result without counts"
    if sum(counts.values()) != job.shots:
        return None, f"the result's counts sum to {sum(counts.values())}, not to the {job.shots} shots asked for"
    return result, None


def _runner_error(job: LiveJob, read_text: ReadText) -> str | None:
    text = read_text(job.work_dir / workdir.ERROR_FILE)
    if text is None:
        return None
    try:
        error = json.loads(text).get("error")
    except (json.JSONDecodeError, AttributeError):
        return None
    return str(error) if error else None


def _failure_reason(job: LiveJob, observation: JobObservation, reason: str | None, read_text: ReadText) -> str:
    runner_error = _runner_error(job, read_text)
    if runner_error:
        return runner_error
    parts = [reason or f"the batch job ended in state {observation.state}"]
    if observation.exit_code and observation.exit_code != "0:0":
        parts.append(f"exit code {observation.exit_code}")
    if observation.reason and observation.reason not in ("None", ""):
        parts.append(f"Slurm reason: {observation.reason}")
    stderr = read_text(job.work_dir / workdir.STDERR_FILE)
    if stderr and stderr.strip():
        parts.append("last stderr line: " + stderr.strip().splitlines()[-1][:300])
    return "; ".join(parts)
