"""Submitting jobs and reading them back: the gateway's job service.

Submission order, so a failure anywhere leaves nothing half-written:

1. validate the circuit (nothing stored yet; a bad circuit is a 400) and
   check it against the caller's tier (qubits, shots: 403 QUOTA_EXCEEDED);
2. in one transaction, count the job against the daily limit (429
   QUOTA_EXCEEDED, see :mod:`gateway.quotas`) and insert the job row (this
   claims the job_id; a concurrent duplicate loses on the primary key and is
   answered idempotently or with a 409);
3. write the work dir and call sbatch;
4. on a scheduler error, delete the row and the work dir, give the daily
   job back and answer 503;
   otherwise record the Slurm job id.

A crash between 2 and 4 leaves a row without a Slurm job id; the poller
fails it after the grace period with a reason that says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from gateway.errors import CircuitInvalid, JobIdConflict, JobNotFound, ServiceUnavailable
from gateway.models import Job, User, utcnow
from gateway.notify import notify_jobs_changed
from gateway.quotas import check_job_size, release_daily_job, reserve_daily_job, tier_of, utc_day
from gateway.runtime import Runtime
from gateway.schemas import ExecuteRequest
from gateway.tiers import Tier
from hpc_jobs.circuits import CircuitError, load_circuit, simulates_shot_by_shot, summarize
from hpc_jobs.executors.base import ExecutorError
from hpc_jobs.lifecycle import JobStatus
from hpc_jobs.rendering import slurm_job_name
from hpc_jobs.sizing import JobResources, SizingError, size_job
from hpc_jobs.transports.base import TransportError
from hpc_jobs.workdir import RunParameters

log = logging.getLogger(__name__)


def request_fingerprint(request: ExecuteRequest) -> str:
    """SHA-256 of the canonical body (qasm and shots), to tell a retry from a clash."""
    canonical = json.dumps({"qasm": request.qasm, "shots": request.shots}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Submission:
    """The stored job and whether this request created it (False: idempotent repeat)."""

    job: Job
    created: bool


def submit(runtime: Runtime, user: User, request: ExecuteRequest) -> Submission:
    """Validate, store and submit one circuit. See the module docstring for the order.

    Raises :class:`CircuitInvalid` (400), :class:`QuotaExceeded` (403, or
    429 for the daily limit), :class:`JobIdConflict` (409) or
    :class:`ServiceUnavailable` (503, nothing kept).
    """
    fingerprint = request_fingerprint(request)
    if request.job_id is not None:
        # A retry of a job that exists answers at once, even at the daily limit.
        with runtime.db.session() as session:
            existing = session.get(Job, request.job_id)
        if existing is not None:
            return Submission(_existing_for_retry(runtime, user, request.job_id, fingerprint), created=False)
    plan = plan_job(runtime, user, request)
    tier, resources = plan.tier, plan.resources
    job_id = request.job_id or str(uuid.uuid4())
    profile = runtime.profile
    work_dir = runtime.work_dirs.path_for(job_id)
    estimate = _clamp_seconds(resources.estimated_runtime_seconds)
    job = Job(
        id=job_id, user_id=user.id, status=JobStatus.QUEUED.value, qasm=request.qasm, shots=request.shots,
        num_qubits=plan.num_qubits, request_hash=fingerprint, executor=runtime.executor.name,
        cluster_profile=profile.name, work_dir=str(work_dir), estimated_time_seconds=estimate,
        created_at=utcnow(),
    )
    try:
        with runtime.db.transaction() as session:
            reserve_daily_job(session, user_id=user.id, tier=tier, now=job.created_at)
            session.add(job)
    except IntegrityError:
        return Submission(_existing_for_retry(runtime, user, job_id, fingerprint), created=False)

    params = RunParameters(job_id=job_id, shots=request.shots, seed=secrets.randbelow(2**31),
                           **resources.run_options())
    try:
        runtime.work_dirs.stage(job_id=job_id, qasm=request.qasm, params=params, profile=profile,
                                resources=resources)
        scheduler_job_id = runtime.executor.submit(work_dir, job_name=slurm_job_name(job_id))
    except Exception as exc:
        # Whatever went wrong, the job must not stay half-written.
        log.error("submission of job %s failed: %s", job_id, exc)
        try:
            runtime.work_dirs.remove(work_dir)
        except (OSError, TransportError) as cleanup:
            log.warning("could not remove the work dir of job %s: %s", job_id, cleanup)
        with runtime.db.transaction() as session:
            session.execute(delete(Job).where(Job.id == job_id))
            release_daily_job(session, user_id=user.id, day=utc_day(job.created_at))
        if isinstance(exc, (ExecutorError, OSError, TransportError)):
            raise ServiceUnavailable("The scheduler did not accept the job; nothing was stored. Retry later.") from None
        raise

    now = utcnow()
    # The queue's own view: Slurm's expected start (squeue --start), when it has one yet.
    wait = _expected_wait_seconds(runtime, scheduler_job_id)
    if wait:
        job.estimated_time_seconds = _clamp_seconds(wait + resources.estimated_runtime_seconds)
    with runtime.db.transaction() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(scheduler_job_id=scheduler_job_id, submitted_at=now,
                                                       estimated_time_seconds=job.estimated_time_seconds)
        )
    job.scheduler_job_id, job.submitted_at = scheduler_job_id, now
    log.info("job %s submitted as %s job %s", job_id, runtime.executor.name, scheduler_job_id)
    return Submission(job, created=True)


#: Estimates are hints; keep them within a 32-bit column (about 68 years).
_MAX_ESTIMATE_SECONDS = 2**31 - 1


def _clamp_seconds(seconds: int) -> int:
    return max(1, min(int(seconds), _MAX_ESTIMATE_SECONDS))


def _expected_wait_seconds(runtime: Runtime, scheduler_job_id: str) -> int | None:
    """Seconds until Slurm expects the job to start, or ``None`` (unknown, or
    an executor without a queue estimate). Never raises: it is only a hint."""
    expected_start = getattr(runtime.executor, "expected_start", None)
    if expected_start is None:
        return None
    try:
        start = expected_start(scheduler_job_id)
    except ExecutorError as exc:
        log.info("no start estimate for %s: %s", scheduler_job_id, exc)
        return None
    if start is None:
        return None
    return max(0, int((start - datetime.now()).total_seconds()))


@dataclass(frozen=True)
class JobPlan:
    """A validated submission: the caller's tier, the circuit's size and the resources it needs."""

    tier: Tier
    num_qubits: int
    resources: JobResources


def plan_job(runtime: Runtime, user: User, request: ExecuteRequest) -> JobPlan:
    """Validate the circuit, check the tier's per-job limits and size the job.

    Raises :class:`CircuitInvalid` for a circuit that is invalid or cannot fit
    the cluster profile's largest allocation (the message says needed vs
    available memory), :class:`QuotaExceeded` (403) over the tier's limits.
    Stores nothing.
    """
    try:
        circuit = load_circuit(request.qasm)
    except CircuitError as exc:
        raise CircuitInvalid(f"Invalid circuit: {exc}") from None
    summary = summarize(circuit)
    tier = tier_of(runtime.tiers, user.tier)
    check_job_size(tier, num_qubits=summary.num_qubits, shots=request.shots)
    try:
        resources = size_job(runtime.profile, num_qubits=summary.num_qubits, num_operations=summary.size,
                             shots=request.shots, clifford=summary.is_clifford,
                             shot_by_shot=simulates_shot_by_shot(circuit))
    except SizingError as exc:
        raise CircuitInvalid(f"The circuit cannot run on this cluster: {exc}") from None
    return JobPlan(tier, summary.num_qubits, resources)


def _existing_for_retry(runtime: Runtime, user: User, job_id: str, fingerprint: str) -> Job:
    with runtime.db.session() as session:
        existing = session.get(Job, job_id)
    if existing is not None and existing.user_id == user.id and existing.request_hash == fingerprint:
        return existing
    # Another user's job or a different body: say only that the id is taken.
    raise JobIdConflict(f"job_id {job_id} is already in use by a different job; choose another job_id")


class JobView(NamedTuple):
    """What the API shows of a job, read-only (attributes named as on :class:`Job`)."""

    id: str
    user_id: str
    status: str
    result: dict | None
    error: str | None
    created_at: datetime
    completed_at: datetime | None


#: The columns of :class:`JobView`, in its order.
_JOB_VIEW = select(Job.id, Job.user_id, Job.status, Job.result, Job.error, Job.created_at, Job.completed_at).where(
    Job.id == bindparam("job_id"))


def get_job(runtime: Runtime, user: User, job_id: str) -> JobView:
    """The caller's job ``job_id`` as a :class:`JobView` (not an ORM instance:
    one lean query, the hot path of ``/status`` and ``/results``; none for a
    final job read before, see :mod:`gateway.jobcache`). :class:`JobNotFound`
    for a missing job or another user's."""
    job = runtime.final_jobs.get(job_id)
    if job is None:
        row = runtime.db.fetch_one(_JOB_VIEW, {"job_id": job_id})
        job = None if row is None else JobView(*row)
        if job is not None and JobStatus(job.status).is_final:
            runtime.final_jobs.put(job)
    if job is None or job.user_id != user.id:
        raise JobNotFound(job_id)
    return job


def wait_for_final(runtime: Runtime, user: User, job_id: str, timeout: float) -> JobView:
    """The job once it is final, or as it is after ``timeout`` seconds, or at
    once when the process is shutting down.

    The job is re-read when a writer announces its change
    (:func:`gateway.notify.notify_jobs_changed`, PostgreSQL LISTEN/NOTIFY),
    and at least every 10 s; without notifications (SQLite, or the listener
    reconnecting) every 0.1 s growing to 1 s. Each read is its own short
    query: no transaction or connection is held while waiting, only this
    thread. At most ``QCOS_MAX_WAITING_REQUESTS`` requests of a process wait
    at once; beyond that the job is answered as it is now (the client polls
    again).
    """
    if not runtime.waiting_slots.acquire(blocking=False):
        # Every waiting slot of this process is taken: answer at once rather
        # than let long polls starve other requests of threads.
        return get_job(runtime, user, job_id)
    try:
        runtime.start_listening()
        deadline = time.monotonic() + timeout
        # Watch before reading: a change committed after the read still wakes this thread.
        with runtime.job_waiters.watch(job_id) as watch:
            while True:
                job = get_job(runtime, user, job_id)
                remaining = deadline - time.monotonic()
                if JobStatus(job.status).is_final or remaining <= 0 or watch.stopping:
                    return job
                watch.wait(remaining, listening=runtime.listening)
    finally:
        runtime.waiting_slots.release()


def cancel_job(runtime: Runtime, job_id: str, *, user: User | None, reason: str) -> Job:
    """Cancel a job: mark it ``failed`` with ``reason``, then scancel it.

    ``user``: the owner (a user cancels only their own jobs); ``None`` for an
    admin, who may cancel any job. Idempotent: a job that is already final is
    returned unchanged. The status change is one conditional UPDATE
    (``WHERE status IN ('queued', 'processing')``), so a job cancelled while
    pending can never turn ``completed`` afterwards: the poller's own update
    requires the status it read. A scheduler that cannot be reached is
    logged; the job stays cancelled here and the poller ignores its end.
    Raises :class:`JobNotFound`.
    """
    query = select(Job).where(Job.id == job_id)
    if user is not None:
        query = query.where(Job.user_id == user.id)
    now = utcnow()
    with runtime.db.transaction() as session:
        job = session.scalar(query)
        if job is None:
            raise JobNotFound(job_id)
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_([JobStatus.QUEUED.value, JobStatus.PROCESSING.value]))
            .values(status=JobStatus.FAILED.value, error=reason, completed_at=now)
        ).rowcount
        notify_jobs_changed(session, [job_id])
    if changed and job.scheduler_job_id and job.executor == runtime.executor.name:
        try:
            runtime.executor.cancel([job.scheduler_job_id])
        except ExecutorError as exc:
            log.warning("scancel of job %s (%s) failed: %s", job_id, job.scheduler_job_id, exc)
    with runtime.db.session() as session:
        return session.get(Job, job_id)


@dataclass(frozen=True)
class JobPage:
    """One page of a user's jobs, newest first; ``total`` counts all matches."""

    jobs: list[Job]
    total: int


def list_jobs(runtime: Runtime, user: User, *, status: str | None, limit: int, offset: int) -> JobPage:
    """The user's jobs, newest first, optionally of one status."""
    from sqlalchemy import func

    conditions = [Job.user_id == user.id]
    if status is not None:
        conditions.append(Job.status == status)
    with runtime.db.read_session() as session:
        total = session.scalar(select(func.count()).select_from(Job).where(*conditions))
        jobs = list(session.scalars(
            select(Job).where(*conditions).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
        ))
    return JobPage(jobs, total)


def dry_run(runtime: Runtime, user: User, request: ExecuteRequest) -> dict:
    """Validate, size and render a submission without creating a job.

    Runs ``sbatch --test-only`` where the executor can (Slurm): its answer
    (start estimate and partition, or Slurm's refusal) is in
    ``slurm_test_only``. Raises what :func:`plan_job` raises; the daily limit
    is not consumed.
    """
    from hpc_jobs.rendering import render_sbatch

    plan = plan_job(runtime, user, request)
    job_id = request.job_id or f"dry-run-{uuid.uuid4().hex[:12]}"
    profile = runtime.profile
    script = render_sbatch(profile, job_id=job_id, work_dir=runtime.work_dirs.path_for(job_id),
                           resources=plan.resources)
    test_only = None
    if hasattr(runtime.executor, "test_only"):
        params = RunParameters(job_id=job_id, shots=request.shots, seed=0, **plan.resources.run_options())
        try:
            with runtime.work_dirs.scratch() as scratch:
                staged = scratch.stage(job_id=job_id, qasm=request.qasm, params=params, profile=profile,
                                       resources=plan.resources)
                estimate = runtime.executor.test_only(staged, job_name=slurm_job_name(job_id))
            test_only = {"accepted": True, "start": estimate.start.isoformat() if estimate.start else None,
                         "partition": estimate.partition, "nodes": estimate.nodes}
        except (ExecutorError, TransportError, OSError) as exc:
            test_only = {"accepted": False, "error": str(exc)}
    return {
        "dry_run": True, "job_id": job_id, "num_qubits": plan.num_qubits, "shots": request.shots,
        "estimated_time_seconds": _clamp_seconds(plan.resources.estimated_runtime_seconds),
        "sbatch_script": script, "slurm_test_only": test_only, "resources": dict(vars(plan.resources)),
    }


def whole_seconds(delta) -> int | None:
    """A ``timedelta`` in whole seconds; ``None`` stays ``None``."""
    return None if delta is None else int(delta.total_seconds())


def live_queue(runtime: Runtime) -> list:
    """The scheduler's live queue (one squeue call) joined with our jobs (one
    query) as :class:`gateway.schemas.QueueEntry`; other people's Slurm jobs
    have no ``job_id``. Raises :class:`ExecutorError`."""
    from gateway.schemas import QueueEntry

    rows = runtime.executor.queue()
    ids = [row.job_id for row in rows]
    ours: dict[str, tuple[str, str]] = {}
    if ids:
        with runtime.db.session() as session:
            for job_id, user_id, scheduler_id in session.execute(
                select(Job.id, Job.user_id, Job.scheduler_job_id).where(
                    Job.scheduler_job_id.in_(ids), Job.executor == runtime.executor.name)
            ):
                ours[scheduler_id] = (job_id, user_id)
    return [
        QueueEntry(slurm_job_id=row.job_id, job_id=ours.get(row.job_id, (None, None))[0],
                   user_id=ours.get(row.job_id, (None, None))[1], name=row.name, partition=row.partition,
                   state=row.state, reason=row.reason, elapsed_seconds=whole_seconds(row.elapsed),
                   node_list=row.node_list)
        for row in rows
    ]
