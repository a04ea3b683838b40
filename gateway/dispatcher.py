"""The dispatcher: waiting jobs → packs → sbatch, exactly once.

Runs inside the ``qcos poller`` process (:func:`gateway.poller.run_forever`),
one cycle every ``QCOS_DISPATCH_INTERVAL`` seconds. Several may run against
one database:

- **Plan** (:func:`plan_cycle`): while fewer than ``QCOS_MAX_LIVE_SLURM_JOBS``
  packs hold a Slurm job, take waiting jobs in fair order (round-robin
  across users, oldest first; :mod:`hpc_jobs.packing`) and *claim* them
  into a new pack row, ``planned``, in one transaction. The claim locks the
  rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and re-checks
  ``pack_id IS NULL`` in the UPDATE everywhere, so two dispatchers never
  take the same job.
- **Submit** (:func:`submit_cycle`): a planned pack is moved to
  ``submitting`` (a conditional UPDATE: only one dispatcher wins), its work
  dirs are written and sbatch runs with the pack's unique job name. Slurm's
  id is then recorded (``submitted``). A refusal fails the pack's jobs with
  Slurm's own reason.
- **Recover** (:func:`recover_cycle`): a pack left ``submitting`` for
  ``QCOS_SUBMIT_RECOVERY`` seconds (the dispatcher died around sbatch, sbatch
  answered without an id, timed out, or hit a transient error) is looked up
  by name, all such packs in one squeue and one sacct call: found, its id
  is adopted; not found, it is planned again after a backoff. Such a pack
  ends the cycle's submissions: with the scheduler down, every further
  sbatch would cost another command timeout. Nothing is
  submitted twice: a pack is only ever resubmitted after Slurm said it does
  not know its name. ``QCOS_SUBMIT_RECOVERY`` must exceed the Slurm command
  timeout (30 s) so a slow sbatch is not taken for a lost one.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from gateway import metrics
from gateway.models import Job, Pack, User, utcnow
from gateway.notify import notify_jobs_changed
from gateway.runtime import Runtime
from gateway.tiers import Tier
from hpc_jobs.accounting import AccountingError, sbatch_accounting_args
from hpc_jobs.executors.base import ExecutorError, SubmissionUnconfirmed
from hpc_jobs.lifecycle import JobStatus
from hpc_jobs.packing import Candidate, PackState, pack_job_name, plan_packs, size_pack
from hpc_jobs.sizing import JobResources
from hpc_jobs.staging import PackMember
from hpc_jobs.transports.base import TransportError
from hpc_jobs.workdir import RunParameters

log = logging.getLogger(__name__)

_QUEUED = JobStatus.QUEUED.value
_LIVE_PACK_STATES = [s.value for s in PackState if s.holds_slurm_job]
#: Longest pause before a pack whose submission failed transiently is tried again.
MAX_BACKOFF_SECONDS = 300


class _ClaimLost(Exception):
    """Another dispatcher claimed some of the chosen jobs first."""


@dataclass
class DispatchReport:
    """What one dispatcher cycle did (for logs, tests and benchmarks)."""

    planned: list[str]
    submitted: list[str]
    refused: list[str]
    recovered: list[str]
    #: An sbatch found the scheduler unreachable or busy (the poller reports it at once).
    scheduler_unreachable: bool = False


def dispatch_cycle(runtime: Runtime, *, now: datetime | None = None) -> DispatchReport:
    """Recover, plan and submit once. Raises nothing the next cycle cannot retry
    except database errors (the caller logs them)."""
    now = now or utcnow()
    report = DispatchReport([], [], [], [])
    report.recovered = recover_cycle(runtime, now=now)
    report.planned = plan_cycle(runtime, now=now)
    report.submitted, report.refused, report.scheduler_unreachable = _submit_due(runtime, now=utcnow())
    return report


def live_pack_count(runtime: Runtime) -> int:
    """Packs of this executor that hold (or may hold) a Slurm job."""
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(Pack).where(
            Pack.executor == runtime.executor.name, Pack.state.in_(_LIVE_PACK_STATES))) or 0


def plan_cycle(runtime: Runtime, *, now: datetime) -> list[str]:
    """Claim waiting jobs into new ``planned`` packs; returns their ids."""
    settings = runtime.settings
    free = settings.max_live_slurm_jobs - live_pack_count(runtime)
    if free <= 0:
        return []
    candidates = _candidates(runtime, limit=settings.pack_max_jobs * free)
    if not candidates:
        return []
    planned = []
    for pack in plan_packs(candidates, settings.pack_limits, now=now, max_packs=free, busy_users=_busy_users(runtime)):
        try:
            pack_id = _claim(runtime, pack.dispatch_class, pack.job_ids, now)
        except (_ClaimLost, OperationalError) as exc:
            # Lost a race (or SQLite's single writer said busy): the next cycle plans afresh.
            log.debug("pack claim lost: %s", exc)
            break
        if pack_id:
            planned.append(pack_id)
    return planned


def _busy_users(runtime: Runtime) -> set[str]:
    """Users with jobs in packs that hold a Slurm job (one query): they yield
    free slots to users with none (:func:`hpc_jobs.packing.fair_order`)."""
    with runtime.db.session() as session:
        return set(session.scalars(
            select(Job.user_id).join(Pack, Pack.id == Job.pack_id)
            .where(Pack.executor == runtime.executor.name, Pack.state.in_(_LIVE_PACK_STATES)).distinct()))


def _candidates(runtime: Runtime, *, limit: int) -> list[Candidate]:
    """Waiting jobs with their rank among their user's waiting jobs, the
    ``limit`` first in fair order (one query with a window function)."""
    rank = func.row_number().over(partition_by=Job.user_id, order_by=(Job.created_at, Job.id)).label("rank")
    waiting = (select(Job.id, Job.user_id, Job.created_at, Job.dispatch_class, Job.runtime_seconds, rank)
               .where(Job.executor == runtime.executor.name, Job.status == _QUEUED, Job.pack_id.is_(None))
               .subquery())
    query = (select(waiting).where(waiting.c.rank <= limit)
             .order_by(waiting.c.rank, waiting.c.created_at, waiting.c.id).limit(limit))
    with runtime.db.session() as session:
        return [Candidate(row.id, row.user_id, row.created_at, row.dispatch_class, row.runtime_seconds, row.rank)
                for row in session.execute(query)]


def _claim(runtime: Runtime, dispatch_class: str, job_ids: tuple[str, ...], now: datetime) -> str | None:
    """Insert a ``planned`` pack holding ``job_ids`` (those still waiting);
    returns its id, or ``None`` when none is still waiting. Raises
    :class:`_ClaimLost` when another dispatcher took some meanwhile."""
    pack_id = "pack-" + secrets.token_hex(8)
    with runtime.db.transaction() as session:
        query = select(Job.id, Job.resources).where(Job.id.in_(job_ids), Job.status == _QUEUED,
                                                     Job.pack_id.is_(None))
        if not runtime.db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        rows = {row.id: row.resources for row in session.execute(query)}
        chosen = [job_id for job_id in job_ids if job_id in rows]
        if not chosen:
            return None
        tier = _tier_of_pack(runtime, session, chosen)
        resources = size_pack(runtime.profile, [JobResources(**rows[job_id]) for job_id in chosen],
                              tier.slurm.partitions if tier else ())
        session.add(Pack(
            id=pack_id, executor=runtime.executor.name, cluster_profile=runtime.profile.name,
            dispatch_class=dispatch_class, job_name=pack_job_name(pack_id), state=PackState.PLANNED.value,
            work_dir=str(runtime.work_dirs.pack_path_for(pack_id)), job_count=len(chosen),
            resources=_as_dict(resources), progress_offset=0, runner_finished=False, submit_attempts=0, created_at=now,
        ))
        session.flush()
        claimed = session.execute(
            update(Job).where(Job.id.in_(chosen), Job.status == _QUEUED, Job.pack_id.is_(None))
            .values(pack_id=pack_id, dispatch_count=Job.dispatch_count + 1)
        ).rowcount
        if claimed != len(chosen):
            raise _ClaimLost(f"{len(chosen) - claimed} of {len(chosen)} jobs were taken meanwhile")
    log.info("pack %s planned: %d jobs (%s)", pack_id, len(chosen), dispatch_class)
    return pack_id


def _tier_of_pack(runtime: Runtime, session, job_ids) -> Tier | None:
    """The tier of a pack's jobs (one per pack: it is part of the dispatch
    class); ``None`` for a tier the site no longer has."""
    name = session.scalar(select(User.tier).join(Job, Job.user_id == User.id).where(Job.id.in_(job_ids)).limit(1))
    return runtime.tiers.get(name)


def _accounting_args(runtime: Runtime, pack_id: str, job_ids: list[str]) -> list[str]:
    """sbatch options saying whom the pack is for (``--comment``, ``--wckey``)
    and the tier's own account, QOS and nice (:mod:`hpc_jobs.accounting`)."""
    with runtime.db.session() as session:
        rows = session.execute(select(User.id, User.tier).join(Job, Job.user_id == User.id)
                               .where(Job.pack_id == pack_id).distinct()).all()
    tier_name = rows[0].tier if rows else "unknown"
    tier = runtime.tiers.get(tier_name)
    return sbatch_accounting_args(tier=tier_name, scheduling=tier.slurm if tier else None,
                                  user_ids=sorted({row.id for row in rows}), job_ids=job_ids)


def _as_dict(resources: JobResources) -> dict:
    import dataclasses

    return dataclasses.asdict(resources)


def submit_cycle(runtime: Runtime, *, now: datetime) -> tuple[list[str], list[str]]:
    """Submit the due ``planned`` packs, oldest first, until one does not go
    through; returns (submitted, refused) pack ids."""
    submitted, refused, _ = _submit_due(runtime, now=now)
    return submitted, refused


def _submit_due(runtime: Runtime, *, now: datetime) -> tuple[list[str], list[str], bool]:
    """:func:`submit_cycle`, and whether the scheduler was unreachable.

    The first pack whose sbatch answer is unknown or that found the scheduler
    unreachable ends the cycle: the next sbatch would most likely meet the
    same fault and cost another command timeout, holding up the poller's
    ingest and its report of the outage; the other packs wait for the next cycle.
    """
    with runtime.db.session() as session:
        due = list(session.scalars(
            select(Pack).where(Pack.executor == runtime.executor.name, Pack.state == PackState.PLANNED.value,
                               (Pack.not_before.is_(None)) | (Pack.not_before <= now))
            .order_by(Pack.created_at)))
    submitted, refused = [], []
    for pack in due:
        outcome = submit_pack(runtime, pack)
        if outcome == "submitted":
            submitted.append(pack.id)
        elif outcome == "refused":
            refused.append(pack.id)
        elif outcome in ("unconfirmed", "unreachable"):
            return submitted, refused, outcome == "unreachable"
    return submitted, refused, False


def submit_pack(runtime: Runtime, pack: Pack) -> str:
    """Claim a planned pack, write its work dirs and sbatch it. Returns
    ``"submitted"``, ``"refused"`` (its jobs failed with Slurm's reason),
    ``"unconfirmed"`` (sbatch's answer is lost: left for recovery),
    ``"unreachable"`` (the scheduler or the login node could not be reached,
    was busy, or did not answer in time: left for recovery too), ``"empty"``
    or ``"taken"`` (another dispatcher claimed it)."""
    started = utcnow()
    with runtime.db.transaction() as session:
        taken = session.execute(
            update(Pack).where(Pack.id == pack.id, Pack.state == PackState.PLANNED.value)
            .values(state=PackState.SUBMITTING.value, submit_started_at=started,
                    submit_attempts=Pack.submit_attempts + 1)
        ).rowcount
    if not taken:
        return "taken"
    with runtime.db.session() as session:
        jobs = list(session.execute(
            select(Job.id, Job.qasm, Job.shots, Job.seed, Job.resources).where(
                Job.pack_id == pack.id, Job.status == _QUEUED).order_by(Job.created_at, Job.id)))
    if not jobs:
        _end_pack(runtime, pack.id, PackState.SUBMITTING, error="every job was cancelled before submission")
        return "empty"
    members = [PackMember(job.id, job.qasm, RunParameters(job_id=job.id, shots=job.shots, seed=job.seed,
                                                          **JobResources(**job.resources).run_options()))
               for job in jobs]
    try:
        work_dir = runtime.work_dirs.stage_pack(pack_id=pack.id, members=members, profile=runtime.profile,
                                                resources=JobResources(**pack.resources))
        scheduler_job_id = runtime.executor.submit(work_dir, job_name=pack.job_name,
                                                   extra_args=_accounting_args(runtime, pack.id, [j.id for j in jobs]))
    except SubmissionUnconfirmed as exc:
        log.warning("pack %s: %s; it will be looked up by name", pack.id, exc)
        # A timeout or a lost connection, not an answer without an id.
        return "unreachable" if isinstance(exc.__cause__, TransportError) else "unconfirmed"
    except AccountingError as exc:
        _end_pack(runtime, pack.id, PackState.SUBMITTING, error=f"the tier's Slurm settings are invalid: {exc}",
                  fail_jobs=True)
        return "refused"
    except TransportError as exc:
        # Nothing reached sbatch; recovery finds no such name and plans it again.
        log.warning("pack %s could not be staged: %s", pack.id, exc)
        return "unreachable"
    except OSError as exc:
        log.warning("pack %s could not be staged: %s", pack.id, exc)
        return "unconfirmed"
    except ExecutorError as exc:
        if exc.retryable:
            log.warning("pack %s: scheduler busy or unreachable (%s); it will be looked up by name", pack.id, exc)
            return "unreachable"
        reason = f"the scheduler refused the batch job: {exc}"
        log.error("pack %s refused: %s", pack.id, exc)
        _end_pack(runtime, pack.id, PackState.SUBMITTING, error=reason, fail_jobs=True)
        return "refused"
    now = utcnow()
    with runtime.db.transaction() as session:
        recorded = session.execute(
            update(Pack).where(Pack.id == pack.id, Pack.state == PackState.SUBMITTING.value,
                               Pack.submit_started_at == started)
            .values(state=PackState.SUBMITTED.value, scheduler_job_id=scheduler_job_id, submitted_at=now)
        ).rowcount
        if recorded:
            session.execute(update(Job).where(Job.pack_id == pack.id)
                            .values(scheduler_job_id=scheduler_job_id, submitted_at=now))
    if not recorded:
        # Recovery decided meanwhile that this sbatch never happened and planned
        # the pack again: this Slurm job would run its jobs twice.
        log.error("pack %s: sbatch answered %s after recovery replanned it; cancelling that job",
                  pack.id, scheduler_job_id)
        try:
            runtime.executor.cancel([scheduler_job_id])
        except ExecutorError as exc:
            log.error("could not cancel the duplicate Slurm job %s: %s", scheduler_job_id, exc)
        return "taken"
    metrics.pack_submitted(len(jobs))
    log.info("pack %s submitted as %s job %s (%d jobs)", pack.id, runtime.executor.name, scheduler_job_id,
             len(jobs), extra={"slurm_job_id": scheduler_job_id})
    return "submitted"


def _end_pack(runtime: Runtime, pack_id: str, state: PackState, *, error: str, fail_jobs: bool = False) -> None:
    now = utcnow()
    with runtime.db.transaction() as session:
        ended = session.execute(update(Pack).where(Pack.id == pack_id, Pack.state == state.value)
                                .values(state=PackState.ENDED.value, ended_at=now, error=error)).rowcount
        if ended and fail_jobs:
            failed = session.scalars(update(Job).where(Job.pack_id == pack_id, Job.status == _QUEUED)
                                     .values(status=JobStatus.FAILED.value, error=error, completed_at=now)
                                     .returning(Job.id)).all()
            notify_jobs_changed(session, failed)


def backoff_seconds(attempts: int, base: float) -> float:
    """Pause before a pack's next sbatch after ``attempts`` unconfirmed ones:
    ``base × 2^(attempts−1)``, at most :data:`MAX_BACKOFF_SECONDS`."""
    return min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempts - 1))


def recover_cycle(runtime: Runtime, *, now: datetime) -> list[str]:
    """Settle packs left ``submitting`` past ``QCOS_SUBMIT_RECOVERY``: adopt
    the Slurm job found by name, or plan the pack again. Returns the ids of
    packs it settled. A scheduler that cannot answer leaves them for later."""
    stale_before = now - timedelta(seconds=runtime.settings.submit_recovery_seconds)
    with runtime.db.session() as session:
        stale = list(session.scalars(select(Pack).where(
            Pack.executor == runtime.executor.name, Pack.state == PackState.SUBMITTING.value,
            Pack.submit_started_at < stale_before)))
    if not stale:
        return []
    since = min(p.created_at for p in stale) - timedelta(minutes=5)
    try:
        found = runtime.executor.find_by_name([p.job_name for p in stale], since=since)
    except ExecutorError as exc:
        log.warning("cannot look up %d unconfirmed packs by name yet: %s", len(stale), exc)
        return []
    settled = []
    for pack in stale:
        scheduler_job_id = found.get(pack.job_name)
        with runtime.db.transaction() as session:
            guard = update(Pack).where(Pack.id == pack.id, Pack.state == PackState.SUBMITTING.value,
                                       Pack.submit_started_at == pack.submit_started_at)
            if scheduler_job_id:
                changed = session.execute(guard.values(state=PackState.SUBMITTED.value,
                                                       scheduler_job_id=scheduler_job_id, submitted_at=now)).rowcount
                if changed:
                    session.execute(update(Job).where(Job.pack_id == pack.id)
                                    .values(scheduler_job_id=scheduler_job_id, submitted_at=now))
                    log.info("pack %s recovered: Slurm job %s found by its name", pack.id, scheduler_job_id)
            else:
                delay = backoff_seconds(pack.submit_attempts, runtime.settings.dispatch_interval_seconds * 4)
                changed = session.execute(guard.values(state=PackState.PLANNED.value,
                                                       not_before=now + timedelta(seconds=delay))).rowcount
                if changed:
                    log.info("pack %s never reached the scheduler; submitting it again in %.0f s", pack.id, delay)
        if changed:
            settled.append(pack.id)
    return settled
