"""Accepting jobs and reading them back: the gateway's job service.

The submission path reads as a story, each step in one place:

1. **accept** (here): validate the circuit and size it (nothing stored yet;
   a bad circuit is a 400), check it against the caller's tier (403), then
   in one transaction insert the job row ``queued`` and count it against
   the daily limit (429, see :mod:`gateway.quotas`). That is all a
   request does: no scheduler call, no file written, so a scheduler that is
   down or slow never refuses or delays a submission.
2. **plan packs** and 3. **submit exactly once**: :mod:`gateway.dispatcher`.
4. **observe** and 5. **ingest**: :mod:`gateway.poller`.

A stored job is always dispatched: the row is the queue.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Sequence

from sqlalchemy import bindparam, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway import estimates, metrics
from gateway.errors import ApiError, BatchNotFound, CircuitInvalid, JobIdConflict, JobNotFound
from gateway.models import Batch, Job, Pack, User, utcnow
from gateway.notify import notify_jobs_changed
from gateway.quotas import (
    check_job_size,
    counter_params,
    counter_upsert,
    daily_limit_reached,
    reserve_daily_jobs,
    tier_of,
)
from gateway.runtime import Runtime
from gateway.schemas import ExecuteRequest
from gateway.tiers import Tier
from hpc_jobs.circuits import CircuitError, ValidationBudget, load_circuit, simulates_shot_by_shot, summarize
from hpc_jobs.lifecycle import JobStatus
from hpc_jobs.packing import PackState, dispatch_class, simulation_seconds
from hpc_jobs.sizing import JobResources, SizingError, size_job

log = logging.getLogger(__name__)

_LIVE = (JobStatus.QUEUED.value, JobStatus.PROCESSING.value)


def request_fingerprint(request: ExecuteRequest) -> str:
    """SHA-256 of the canonical body (qasm and shots), to tell a retry from a clash."""
    canonical = json.dumps({"qasm": request.qasm, "shots": request.shots}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Submission:
    """The stored job and whether this request created it (False: idempotent repeat)."""

    job: Job
    created: bool


@dataclass(frozen=True)
class JobPlan:
    """A validated submission: the caller's tier, the circuit's size, the
    resources it needs alone, its dispatch class (which jobs it may share a
    pack with) and its simulation estimate without start-up, in seconds."""

    tier: Tier
    num_qubits: int
    resources: JobResources
    dispatch_class: str
    runtime_seconds: int


def plan_job(runtime: Runtime, user: User, request: ExecuteRequest, *,
             budget: ValidationBudget | None = None) -> JobPlan:
    """Validate the circuit, check the tier's per-job limits and size the job.

    ``budget``: validation cost units shared with the other circuits of a
    batch (:class:`hpc_jobs.circuits.ValidationBudget`).

    Raises :class:`CircuitInvalid` for a circuit that is invalid or cannot fit
    the cluster profile's largest allocation (the message says needed vs
    available memory), :class:`QuotaExceeded` (403) over the tier's limits.
    Stores nothing.
    """
    try:
        circuit = load_circuit(request.qasm, budget=budget)
    except CircuitError as exc:
        raise CircuitInvalid(f"Invalid circuit: {exc}") from None
    summary = summarize(circuit)
    tier = tier_of(runtime.tiers, user.tier)
    check_job_size(tier, num_qubits=summary.num_qubits, shots=request.shots)
    try:
        resources = size_job(runtime.profile, num_qubits=summary.num_qubits, num_operations=summary.size,
                             shots=request.shots, clifford=summary.is_clifford,
                             shot_by_shot=simulates_shot_by_shot(circuit), partitions=tier.slurm.partitions)
    except SizingError as exc:
        raise CircuitInvalid(f"The circuit cannot run on this cluster: {exc}") from None
    runtime_seconds = simulation_seconds(resources)
    # One tier per pack: its account, QOS and nice apply to the whole batch job.
    klass = dispatch_class(runtime.profile, resources, runtime.settings.pack_limits, runtime_seconds=runtime_seconds,
                           slurm_options=[tier.name])
    return JobPlan(tier, summary.num_qubits, resources, klass, runtime_seconds)


def _job_values(runtime: Runtime, user: User, request: ExecuteRequest, plan: JobPlan, *, job_id: str,
                batch_id: str | None, now: datetime) -> dict:
    """A new ``queued`` job's column values (always the keys of :data:`_STORED_COLUMNS`)."""
    return {
        "id": job_id, "user_id": user.id, "status": JobStatus.QUEUED.value, "qasm": request.qasm,
        "shots": request.shots, "num_qubits": plan.num_qubits, "request_hash": request_fingerprint(request),
        "executor": runtime.executor.name, "cluster_profile": runtime.profile.name,
        "work_dir": str(runtime.work_dirs.path_for(job_id)), "seed": secrets.randbelow(2**31),
        "dispatch_class": plan.dispatch_class, "resources": dict(vars(plan.resources)),
        "runtime_seconds": plan.runtime_seconds, "batch_id": batch_id, "dispatch_count": 0, "cancel_pending": False,
        "estimated_time_seconds": estimates.estimated_seconds(runtime, plan), "created_at": now,
    }


#: What a submission stores of a job; the other columns stay NULL until dispatch.
_STORED_COLUMNS = ("id", "user_id", "status", "qasm", "shots", "num_qubits", "request_hash", "executor",
                   "cluster_profile", "work_dir", "seed", "dispatch_class", "resources", "runtime_seconds",
                   "batch_id", "dispatch_count", "cancel_pending", "estimated_time_seconds", "created_at")


@functools.cache
def _counted_insert():
    """PostgreSQL: count one job (:func:`gateway.quotas.counter_upsert`) and
    insert its row in ONE statement, so the counter row's lock is held only
    while it and its commit run; returns the job's id, or no row when the
    daily limit refused it. Parameters: the upsert's and ``job_<column>``."""
    reserved = counter_upsert("postgresql").cte("reserved")
    table = Job.__table__
    columns = [table.c[name] for name in _STORED_COLUMNS]
    # Casts: PostgreSQL cannot infer the types of parameters in a SELECT list.
    row = select(*[cast(bindparam(f"job_{c.name}", type_=c.type), c.type) for c in columns]).select_from(reserved)
    return insert(table).from_select(columns, row).returning(table.c.id)


def _store_counted(runtime: Runtime, plan: JobPlan, values: dict, now: datetime) -> None:
    """Insert one job row and count it against the daily limit, atomically
    (see :mod:`gateway.quotas`). Raises :class:`DailyQuotaExceeded` (nothing
    stored) or ``IntegrityError`` when its id is taken."""
    db = runtime.db
    params = counter_params(user_id=values["user_id"], tier=plan.tier, now=now, count=1)
    if db.is_postgresql:
        # One statement, committed by itself.
        if db.fetch_one(_counted_insert(), {**params, **{f"job_{k}": v for k, v in values.items()}}) is None:
            raise daily_limit_reached(plan.tier, 1, now)
        return
    with db.transaction() as session:
        session.execute(insert(Job), [values])
        reserve_daily_jobs(session, user_id=values["user_id"], tier=plan.tier, now=now)


def submit(runtime: Runtime, user: User, request: ExecuteRequest) -> Submission:
    """Validate and store one circuit, ``queued`` for the dispatcher.

    Raises :class:`CircuitInvalid` (400), :class:`QuotaExceeded` (403, or
    429 for the daily limit) or :class:`JobIdConflict` (409). Calls no
    scheduler.
    """
    if request.job_id is not None:
        # A retry of a job that exists answers at once, even at the daily limit.
        with runtime.db.session() as session:
            existing = session.get(Job, request.job_id)
        if existing is not None:
            return Submission(_existing_for_retry(runtime, user, request.job_id, request_fingerprint(request)),
                              created=False)
    plan = plan_job(runtime, user, request)
    now = utcnow()
    values = _job_values(runtime, user, request, plan, job_id=request.job_id or str(uuid.uuid4()), batch_id=None,
                         now=now)
    try:
        _store_counted(runtime, plan, values, now)
    except IntegrityError:
        return Submission(_existing_for_retry(runtime, user, values["id"], values["request_hash"]), created=False)
    runtime.job_counts.forget(user.id)
    job = Job(**values)
    metrics.job_accepted(plan.tier.name)
    log.info("job %s accepted: %d qubits, %d shots, class %s", job.id, job.num_qubits, job.shots,
             job.dispatch_class, extra={"job_id": job.id, "user_id": user.id})
    return Submission(job, created=True)


@dataclass(frozen=True)
class BatchSubmission:
    """A stored batch, its jobs in request order, and whether this request created it."""

    batch: Batch
    jobs: list[Job]
    created: bool


def submit_batch(runtime: Runtime, user: User, requests: Sequence[ExecuteRequest]) -> BatchSubmission:
    """Validate every circuit, then store them all as one batch, or nothing.

    Every circuit is validated before anything is stored, all within
    ``QCOS_BATCH_VALIDATION_UNITS`` cost units together; the first invalid
    one is a :class:`CircuitInvalid` (or :class:`QuotaExceeded`) whose detail
    starts ``circuits[<index>]: ``. The daily quota counts each circuit, all
    or none (429). Custom job_ids must be unused (409 names the index) and
    distinct; a repeat of a whole batch whose every circuit carries its
    job_id answers the existing batch (``created`` False).
    """
    fingerprints = [request_fingerprint(r) for r in requests]
    first_index: dict[str, int] = {}
    for index, request in enumerate(requests):
        if request.job_id is None:
            continue
        if request.job_id in first_index:
            # Name the circuit that repeats an id: the earlier one is where the id belongs.
            raise JobIdConflict(f"circuits[{index}]: job_id {request.job_id} is already given to "
                                f"circuits[{first_index[request.job_id]}] in this batch")
        first_index[request.job_id] = index
    ids = list(first_index)
    if ids:
        repeat = _existing_batch(runtime, user, requests, fingerprints)
        if repeat is not None:
            return repeat
    plans = []
    # The whole batch shares one validation budget, so its cost is bounded whatever its circuits hold.
    budget = ValidationBudget(runtime.settings.batch_validation_units)
    for index, request in enumerate(requests):
        try:
            plans.append(plan_job(runtime, user, request, budget=budget))
        except ApiError as exc:
            exc.detail = f"circuits[{index}]: {exc.detail}"
            raise
    now = utcnow()
    batch = Batch(id="batch_" + secrets.token_hex(12), user_id=user.id, count=len(requests), created_at=now)
    # One microsecond apart, so request order is creation order: GET /batches and the
    # dispatcher's oldest-first order both keep the order the circuits were sent in.
    jobs = [Job(**_job_values(runtime, user, request, plan, job_id=request.job_id or str(uuid.uuid4()),
                              batch_id=batch.id, now=now + timedelta(microseconds=index)))
            for index, (request, plan) in enumerate(zip(requests, plans))]
    try:
        with runtime.db.transaction() as session:
            session.add(batch)
            session.flush()
            session.add_all(jobs)
            session.flush()
            # Last: the counter row stays locked until the commit.
            reserve_daily_jobs(session, user_id=user.id, tier=plans[0].tier, now=now, count=len(jobs))
    except IntegrityError:
        if ids:
            # The same batch sent twice at once: the other request stored it first.
            repeat = _existing_batch(runtime, user, requests, fingerprints)
            if repeat is not None:
                return repeat
        taken = _taken_index(runtime, requests)
        where = f"circuits[{taken}]: job_id {requests[taken].job_id}" if taken is not None else "a job_id"
        raise JobIdConflict(f"{where} is already in use by a different job; choose another job_id") from None
    runtime.job_counts.forget(user.id)
    for _ in jobs:
        metrics.job_accepted(plans[0].tier.name)
    log.info("batch %s accepted: %d jobs", batch.id, len(jobs), extra={"user_id": user.id})
    return BatchSubmission(batch, jobs, created=True)


def _existing_batch(runtime: Runtime, user: User, requests: Sequence[ExecuteRequest],
                    fingerprints: list[str]) -> BatchSubmission | None:
    """The stored batch this request repeats, if every circuit names its
    job_id and each matches a job of one batch of this user; a partial
    match is a 409."""
    ids = [r.job_id for r in requests]
    with runtime.db.session() as session:
        found = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_([i for i in ids if i])))}
        if not found:
            return None
        batch_ids = {job.batch_id for job in found.values()}
        same = (None not in ids and len(found) == len(ids) and len(batch_ids) == 1 and None not in batch_ids
                and all(found[i].user_id == user.id and found[i].request_hash == f for i, f in zip(ids, fingerprints)))
        if not same:
            index = next(i for i, r in enumerate(requests) if r.job_id in found)
            job = found[requests[index].job_id]
            if job.user_id == user.id and job.request_hash == fingerprints[index]:
                # The same circuit sent again, but not as a whole batch that can be answered again.
                raise JobIdConflict(f"circuits[{index}]: job_id {job.id} is already used by this circuit in an "
                                    "earlier batch; a batch is answered again only when it is repeated whole, "
                                    "every circuit with its job_id")
            raise JobIdConflict(f"circuits[{index}]: job_id {requests[index].job_id} is already in use by a "
                                "different job; choose another job_id")
        batch = session.get(Batch, batch_ids.pop())
        if batch is None or batch.count != len(ids):
            raise JobIdConflict("these job_ids belong to a different batch; choose other job_ids")
        return BatchSubmission(batch, [found[i] for i in ids], created=False)


def _taken_index(runtime: Runtime, requests: Sequence[ExecuteRequest]) -> int | None:
    ids = [r.job_id for r in requests]
    with runtime.db.session() as session:
        taken = set(session.scalars(select(Job.id).where(Job.id.in_([i for i in ids if i]))))
    return next((i for i, job_id in enumerate(ids) if job_id in taken), None)


@dataclass(frozen=True)
class BatchView:
    """A batch with its jobs in submission order and their counts per status."""

    batch: Batch
    jobs: list[Job]
    counts: dict[str, int]

    @property
    def done(self) -> bool:
        return self.counts[JobStatus.QUEUED.value] == 0 and self.counts[JobStatus.PROCESSING.value] == 0


def get_batch(runtime: Runtime, user: User, batch_id: str) -> BatchView:
    """The caller's batch ``batch_id``; :class:`BatchNotFound` for a missing batch or another user's."""
    with runtime.db.session() as session:
        batch = session.scalar(select(Batch).where(Batch.id == batch_id, Batch.user_id == user.id))
        if batch is None:
            raise BatchNotFound(batch_id)
        jobs = list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.created_at, Job.id)))
    counts = {status.value: 0 for status in JobStatus}
    for job in jobs:
        counts[job.status] += 1
    return BatchView(batch, jobs, counts)


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
    """Cancel a job: mark it ``failed`` with ``reason``.

    ``user``: the owner (a user cancels only their own jobs); ``None`` for an
    admin, who may cancel any job. Idempotent: a job that is already final is
    returned unchanged. The status change is one conditional UPDATE
    (``WHERE status IN ('queued', 'processing')``), so a job cancelled while
    pending can never turn ``completed`` afterwards: every later update
    requires a live status. A job already in a pack is flagged
    ``cancel_pending``: the poller then leaves the marker that makes the pack
    runner skip it, and scancels a pack left with nothing to run. No
    scheduler call here. Raises :class:`JobNotFound`.
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
            .where(Job.id == job_id, Job.status.in_(_LIVE))
            .values(status=JobStatus.FAILED.value, error=reason, completed_at=now,
                    cancel_pending=Job.pack_id.is_not(None))
        ).rowcount
        notify_jobs_changed(session, [job_id])
    if changed:
        metrics.job_cancelled("user" if user is not None else "admin")
    with runtime.db.session() as session:
        return session.get(Job, job_id)


@dataclass(frozen=True)
class JobPage:
    """One page of a user's jobs, newest first; ``total`` counts all matches."""

    jobs: list[Job]
    total: int


def list_jobs(runtime: Runtime, user: User, *, status: str | None, limit: int, offset: int) -> JobPage:
    """The user's jobs, newest first, optionally of one status."""
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

    The script shown is the one the job would get as a pack of its own.
    Runs ``sbatch --test-only`` where the executor can (Slurm): its answer
    (start estimate and partition, or Slurm's refusal) is in
    ``slurm_test_only``. Raises what :func:`plan_job` raises; the daily limit
    is not consumed.
    """
    from hpc_jobs.executors.base import ExecutorError
    from hpc_jobs.packing import pack_job_name
    from hpc_jobs.rendering import render_sbatch
    from hpc_jobs.staging import PackMember
    from hpc_jobs.transports.base import TransportError
    from hpc_jobs.workdir import RunParameters

    plan = plan_job(runtime, user, request)
    job_id = request.job_id or f"dry-run-{uuid.uuid4().hex[:12]}"
    pack_id = f"pack-dry-run-{uuid.uuid4().hex[:8]}"
    profile = runtime.profile
    script = render_sbatch(profile, job_id=pack_id, work_dir=runtime.work_dirs.pack_path_for(pack_id),
                           resources=plan.resources)
    test_only = None
    if hasattr(runtime.executor, "test_only"):
        params = RunParameters(job_id=job_id, shots=request.shots, seed=0, **plan.resources.run_options())
        try:
            with runtime.work_dirs.scratch() as scratch:
                staged = scratch.stage_pack(pack_id=pack_id, members=[PackMember(job_id, request.qasm, params)],
                                            profile=profile, resources=plan.resources)
                estimate = runtime.executor.test_only(staged, job_name=pack_job_name(pack_id))
            test_only = {"accepted": True, "start": estimate.start.isoformat() if estimate.start else None,
                         "partition": estimate.partition, "nodes": estimate.nodes}
        except (ExecutorError, TransportError, OSError) as exc:
            test_only = {"accepted": False, "error": str(exc)}
    return {
        "dry_run": True, "job_id": job_id, "num_qubits": plan.num_qubits, "shots": request.shots,
        "estimated_time_seconds": estimates.estimated_seconds(runtime, plan),
        "sbatch_script": script, "slurm_test_only": test_only, "resources": dict(vars(plan.resources)),
    }


def whole_seconds(delta) -> int | None:
    """A ``timedelta`` in whole seconds; ``None`` stays ``None``."""
    return None if delta is None else int(delta.total_seconds())


def live_queue(runtime: Runtime) -> list:
    """The scheduler's live queue (one squeue call) joined with our packs and
    their jobs (two queries) as :class:`gateway.schemas.QueueEntry`; other
    people's Slurm jobs have no ``pack_id``. Raises :class:`ExecutorError`."""
    from gateway.schemas import QueueEntry

    rows = runtime.executor.queue()
    ids = [row.job_id for row in rows]
    packs: dict[str, Pack] = {}
    members: dict[str, list[tuple[str, str]]] = {}
    if ids:
        with runtime.db.session() as session:
            # Live packs are few (QCOS_MAX_LIVE_SLURM_JOBS); match ids here, cluster suffix aside.
            for pack in session.scalars(select(Pack).where(
                    Pack.executor == runtime.executor.name, Pack.state != PackState.ENDED.value,
                    Pack.scheduler_job_id.is_not(None))):
                packs[pack.scheduler_job_id.partition(";")[0]] = pack
            if packs:
                by_pack = {pack.id: key for key, pack in packs.items()}
                for job_id, user_id, pack_id in session.execute(
                        select(Job.id, Job.user_id, Job.pack_id).where(Job.pack_id.in_(list(by_pack)))
                        .order_by(Job.created_at, Job.id)):
                    members.setdefault(by_pack[pack_id], []).append((job_id, user_id))
    entries = []
    for row in rows:
        pack = packs.get(row.job_id)
        jobs = members.get(row.job_id, [])
        users = sorted({user_id for _, user_id in jobs})
        entries.append(QueueEntry(
            slurm_job_id=row.job_id, pack_id=pack.id if pack else None,
            job_id=jobs[0][0] if len(jobs) == 1 else None, user_id=users[0] if len(users) == 1 else None,
            job_ids=[job_id for job_id, _ in jobs], user_ids=users, name=row.name, partition=row.partition,
            state=row.state, reason=row.reason, elapsed_seconds=whole_seconds(row.elapsed), node_list=row.node_list))
    return entries
