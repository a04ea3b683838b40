"""The poller process (``qcos poller``): dispatches, observes and ingests.

Its loop (:func:`run_forever`) runs, every ``QCOS_DISPATCH_INTERVAL``
seconds, the dispatcher (:mod:`gateway.dispatcher`), the pending cancels
(:func:`cancel_cycle`) and an ingest of the progress of running packs; and,
every ``QCOS_POLL_INTERVAL`` seconds, one scheduler observation of every
live pack (:func:`poll_cycle` with ``observe=True``).

Cost per cycle is independent of the number of jobs that did not change:
one query for the live packs, one scheduler observation for all of them,
one progress read per running pack, and writes only for what changed (the
jobs the progress slices finished and the packs' new offsets, in one
transaction for all packs; a pack's state; a pack's timers when they start
or stop). Every write is conditional on
the state it was decided from, so several pollers only repeat each other.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath

from sqlalchemy import bindparam, func, or_, select, update

from gateway import dispatcher, metrics
from gateway.models import Job, Pack, QueueModel, utcnow
from gateway.notify import notify_jobs_changed
from gateway.runtime import Runtime
from hpc_jobs import workdir
from hpc_jobs.executors.base import ExecutorError, Observations
from hpc_jobs.lifecycle import JobStatus, failure_class
from hpc_jobs.packing import PackState
from hpc_jobs.poller import JobOutcome, Progress, checked_result, judge_pack, outcome_from_files, read_progress

log = logging.getLogger(__name__)

_LIVE_JOB = (JobStatus.QUEUED.value, JobStatus.PROCESSING.value)
_OBSERVED_PACK = (PackState.SUBMITTED.value, PackState.RUNNING.value)
#: A job left unfinished by a pack that died runs in one more pack, then fails.
MAX_DISPATCHES = 2


@dataclass
class CycleReport:
    """What one poll cycle did: jobs finished, packs ended, scheduler reached.

    ``scheduler_ok``/``accounting_ok``: whether the controller (squeue or
    its ping) and accounting (sacct) answered this cycle; ``None`` when not
    asked (no observation; an executor without accounting).
    """

    finished_jobs: int = 0
    ended_packs: list[str] = field(default_factory=list)
    requeued_jobs: int = 0
    scheduler_ok: bool | None = None
    accounting_ok: bool | None = None
    pending_start: datetime | None = None


def poll_cycle(runtime: Runtime, *, observe: bool = True, now: datetime | None = None) -> CycleReport:
    """Ingest every live pack's progress and, with ``observe``, ask the
    scheduler about all of them at once. Raises nothing for a scheduler
    that cannot be asked (``scheduler_ok`` False then); database errors
    propagate to the loop.

    With ``observe``, accounting is checked too: by the observation's own
    sacct call when it made one, else by one cheap
    :meth:`~hpc_jobs.executors.base.Executor.accounting_ping` (so at most one
    extra sacct per ``QCOS_POLL_INTERVAL``, and only when no live job needed
    sacct)."""
    now = now or utcnow()
    report = CycleReport()
    with runtime.db.session() as session:
        packs = list(session.scalars(select(Pack).where(
            Pack.executor == runtime.executor.name, Pack.state.in_(_OBSERVED_PACK))))
    if not packs:
        metrics.set_packs_running(0)
        if observe:
            report.scheduler_ok = runtime.executor.ping()
            report.accounting_ok = runtime.executor.accounting_ping()
        return report
    metrics.set_packs_running(sum(1 for p in packs if p.state == PackState.RUNNING.value))
    observations: Observations | None = None
    if observe:
        ids = [p.scheduler_job_id for p in packs if p.scheduler_job_id]
        try:
            observations = runtime.executor.observe(ids)
        except ExecutorError as exc:
            log.warning("scheduler unavailable this cycle: %s", exc)
            report.scheduler_ok = False
        else:
            report.scheduler_ok = True
            report.accounting_ok = observations.accounting_ok
            starts = [o.expected_start.astimezone() for o in observations.values() if o.expected_start is not None]
            report.pending_start = min(starts, default=None)
        if report.accounting_ok is None:
            report.accounting_ok = runtime.executor.accounting_ping()
    slices = _read_slices(runtime, packs)
    report.finished_jobs += _ingest(runtime, slices, now)
    for pack, progress, _ in slices:
        observation = observations.get(pack.scheduler_job_id) if observations is not None else None
        _poll_pack(runtime, pack, progress, observation, observations, now, report)
    return report


def _read_slices(runtime: Runtime, packs: list[Pack]) -> list[tuple[Pack, Progress, int]]:
    """Each pack's progress since its offset, one read per pack: ``(pack,
    progress, bytes consumed)``. A pack whose file cannot be read this cycle
    is left out (the next cycle retries)."""
    slices = []
    for pack in packs:
        try:
            data = runtime.work_dirs.read_from(PurePath(pack.work_dir) / workdir.PROGRESS_FILE, pack.progress_offset)
        except Exception as exc:  # noqa: BLE001 - an unreadable file system this cycle; the next one retries
            log.warning("cannot read the progress of pack %s: %s", pack.id, exc)
            continue
        records, consumed = workdir.complete_lines(data or b"")
        slices.append((pack, read_progress(records), consumed))
    return slices


def _poll_pack(runtime: Runtime, pack: Pack, progress: Progress, observation, observations: Observations | None,
               now: datetime, report: CycleReport) -> None:
    started = progress.started or pack.state == PackState.RUNNING.value
    finished = progress.finished or pack.runner_finished
    if progress.finished and not pack.runner_finished:
        _set_pack(runtime, pack, runner_finished=True)
    if observations is None:
        # No scheduler answer this cycle: progress alone can still start a pack.
        if started and pack.state == PackState.SUBMITTED.value:
            _mark_running(runtime, pack, now)
        return
    verdict = judge_pack(observation, complete=observations.complete, finished=finished, started=started,
                         missing_since=pack.missing_since, unknown_since=pack.unknown_state_since, now=now,
                         missing_grace=runtime.settings.missing_grace_seconds,
                         unknown_grace=runtime.settings.unknown_state_grace_seconds)
    if verdict.unknown_state:
        log.warning("pack %s: Slurm state %r is unknown to QCOS; giving it %g s", pack.id, verdict.unknown_state,
                    runtime.settings.unknown_state_grace_seconds)
    if verdict.ended:
        if verdict.cancel and pack.scheduler_job_id:
            # Slurm still holds the job: ending the pack alone would leave it
            # running beside the new pack of its jobs, outside the live-pack cap.
            try:
                runtime.executor.cancel([pack.scheduler_job_id])
            except ExecutorError as exc:
                log.warning("pack %s: scancel of %s failed (%s); ending it next cycle", pack.id,
                            pack.scheduler_job_id, exc)
                return
        # A state QCOS does not know says nothing a second batch job would
        # fix: its jobs end now, with the reason, rather than run again.
        requeued = _end(runtime, pack, verdict.reason, observation, now, retry=not verdict.cancel)
        if requeued is not None:
            report.requeued_jobs += requeued
            report.ended_packs.append(pack.id)
        return
    changes = {}
    if verdict.missing_since != pack.missing_since:
        changes["missing_since"] = verdict.missing_since
    if verdict.unknown_since != pack.unknown_state_since:
        changes["unknown_state_since"] = verdict.unknown_since
    if observation is not None and observation.state[:64] != pack.slurm_state:
        changes["slurm_state"] = observation.state[:64]
    if changes:
        _set_pack(runtime, pack, **changes)
    if verdict.running and pack.state == PackState.SUBMITTED.value:
        _mark_running(runtime, pack, now)


def _set_pack(runtime: Runtime, pack: Pack, **values) -> None:
    with runtime.db.transaction() as session:
        session.execute(update(Pack).where(Pack.id == pack.id, Pack.state == pack.state).values(**values))
    for key, value in values.items():
        setattr(pack, key, value)


def _mark_running(runtime: Runtime, pack: Pack, now: datetime) -> None:
    """The pack holds resources: it and its waiting jobs become running/processing (two UPDATEs)."""
    with runtime.db.transaction() as session:
        changed = session.execute(update(Pack).where(Pack.id == pack.id, Pack.state == PackState.SUBMITTED.value)
                                  .values(state=PackState.RUNNING.value, started_at=now)).rowcount
        if changed:
            session.execute(update(Job).where(Job.pack_id == pack.id, Job.status == JobStatus.QUEUED.value)
                            .values(status=JobStatus.PROCESSING.value, started_at=now))
    pack.state = PackState.RUNNING.value


def _ingest(runtime: Runtime, slices: list[tuple[Pack, Progress, int]], now: datetime) -> int:
    """Write the outcomes of every pack's progress slice and advance the
    packs' offsets, in one transaction of at most three statements whatever
    the number of packs; returns the jobs that became final. Only a job
    still live in the pack that reported it is written."""
    slices = [(pack, progress, consumed) for pack, progress, consumed in slices if progress.outcomes or consumed]
    if not slices:
        return 0
    reported = {o.job_id: (pack.id, o) for pack, progress, _ in slices for o in progress.outcomes if not o.skipped}
    offsets = [{"b_pack": pack.id, "b_old": pack.progress_offset, "b_new": pack.progress_offset + consumed}
               for pack, _, consumed in slices if consumed]
    rows = []
    with runtime.db.transaction() as session:
        if reported:
            live = session.execute(select(Job.id, Job.shots, Job.pack_id).where(
                Job.id.in_(list(reported)), Job.status.in_(_LIVE_JOB))).all()
            rows = [{**_job_values(reported[job_id][1], shots, now), "b_pack": pack_id}
                    for job_id, shots, pack_id in live if reported[job_id][0] == pack_id]
            if rows:
                session.connection().execute(_FINAL_UPDATE.where(_jobs.c.pack_id == bindparam("b_pack")), rows)
                notify_jobs_changed(session, [row["b_id"] for row in rows])
        if offsets:
            session.connection().execute(_OFFSET_UPDATE, offsets)
    for pack, _, consumed in slices:
        pack.progress_offset += consumed
    _count_outcomes(rows, None)
    slurm_ids = {pack.id: pack.scheduler_job_id for pack, _, _ in slices}
    for row in rows:
        log.info("job %s %s%s", row["b_id"], row["b_status"], f": {row['b_error']}" if row["b_error"] else "",
                 extra={"job_id": row["b_id"], "slurm_job_id": slurm_ids.get(row["b_pack"])})
    return len(rows)


def _count_outcomes(rows: list[dict], slurm_state: str | None, *, lost: int = 0) -> None:
    """Job outcome metrics of rows just made final (failures in the runner
    are ``runner``; ``lost`` jobs failed with their pack's ``slurm_state``)."""
    for row in rows:
        if row["b_status"] == JobStatus.COMPLETED.value:
            metrics.job_completed()
        else:
            metrics.job_failed("runner")
    for _ in range(lost):
        metrics.job_failed(failure_class(slurm_state))


_jobs = Job.__table__
#: One executemany per progress slice: each job's own final values, only while it is still live.
_FINAL_UPDATE = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id"),
           or_(_jobs.c.status == JobStatus.QUEUED.value, _jobs.c.status == JobStatus.PROCESSING.value))
    .values(status=bindparam("b_status"), result=bindparam("b_result"), error=bindparam("b_error"),
            execution_time_seconds=bindparam("b_time"), completed_at=bindparam("b_now"),
            started_at=func.coalesce(_jobs.c.started_at, bindparam("b_started")))
)
_packs = Pack.__table__
#: One executemany per cycle: each pack's new progress offset, only from the offset it was read at.
_OFFSET_UPDATE = (
    update(_packs)
    .where(_packs.c.id == bindparam("b_pack"), _packs.c.progress_offset == bindparam("b_old"))
    .values(progress_offset=bindparam("b_new"))
)


def _job_values(outcome: JobOutcome, shots: int, now: datetime) -> dict:
    status, result, error = outcome.status, outcome.result, outcome.error
    if status is JobStatus.COMPLETED:
        problem = checked_result(result, shots)
        if problem:
            status, result, error = JobStatus.FAILED, None, problem
    seconds = result.get("execution_time_seconds") if result else None
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        seconds = None
    return {"b_id": outcome.job_id, "b_status": status.value, "b_result": result, "b_error": error,
            "b_time": seconds, "b_now": now, "b_started": now}


def _end(runtime: Runtime, pack: Pack, reason: str | None, observation, now: datetime, *,
         retry: bool = True) -> int | None:
    """Close a pack whose batch job is over. Its jobs without a progress line
    get their outcome files read (all of them, and the pack's stderr when it
    exited cleanly, in one read: one SFTP session over SSH); the rest run
    once more in a new pack (``MAX_DISPATCHES``, and ``retry``) or fail with
    the pack's reason. Returns the jobs sent back to
    the queue, or ``None`` when the pack was not ended: its files could not
    be read this cycle (the next one tries again), or another poller ended
    it first."""
    with runtime.db.session() as session:
        leftovers = list(session.execute(select(Job.id, Job.work_dir, Job.shots, Job.dispatch_count).where(
            Job.pack_id == pack.id, Job.status.in_(_LIVE_JOB))))
    paths = [PurePath(job.work_dir) / name for job in leftovers for name in (workdir.RESULT_FILE, workdir.ERROR_FILE)]
    if leftovers and reason is None:  # a clean exit with jobs left: stderr may say why, in the same read
        paths.append(PurePath(pack.work_dir) / workdir.STDERR_FILE)
    try:
        texts = runtime.work_dirs.read_texts(paths) if paths else []
    except Exception as exc:  # noqa: BLE001 - an unreachable file system this cycle; the next one retries
        log.warning("pack %s: cannot read its jobs' outcome files (%s); ending it next cycle", pack.id, exc)
        return None
    found, again, failed = [], [], []
    for index, job in enumerate(leftovers):
        outcome = outcome_from_files(job.id, texts[2 * index], texts[2 * index + 1])
        if outcome is not None:
            found.append(_job_values(outcome, job.shots, now))
        elif retry and job.dispatch_count < MAX_DISPATCHES:
            again.append(job.id)
        else:
            failed.append(job.id)
    why = reason or _clean_exit_reason(texts[-1] if leftovers else None)
    with runtime.db.transaction() as session:
        ended = session.execute(update(Pack).where(Pack.id == pack.id, Pack.state == pack.state).values(
            state=PackState.ENDED.value, ended_at=now, error=why if (again or failed or reason) else None,
            slurm_state=(observation.state[:64] if observation is not None else pack.slurm_state))).rowcount
        if not ended:
            return None
        if found:
            session.connection().execute(_FINAL_UPDATE.where(_jobs.c.pack_id == pack.id), found)
        if again:
            session.execute(update(Job).where(Job.id.in_(again), Job.pack_id == pack.id, Job.status.in_(_LIVE_JOB))
                            .values(status=JobStatus.QUEUED.value, pack_id=None, scheduler_job_id=None,
                                    submitted_at=None, started_at=None))
        if failed:
            session.execute(update(Job).where(Job.id.in_(failed), Job.pack_id == pack.id, Job.status.in_(_LIVE_JOB))
                            .values(status=JobStatus.FAILED.value, completed_at=now,
                                    error=f"{why} (the job's second batch job; it is not retried again)"
                                    if retry else why))
        notify_jobs_changed(session, [row["b_id"] for row in found] + failed)
    _count_outcomes(found, None, lost=0)
    _count_outcomes([], observation.state if observation is not None else None, lost=len(failed))
    if again or failed:
        log.warning("pack %s ended (%s): %d jobs queued again, %d failed", pack.id, why, len(again), len(failed),
                    extra={"slurm_job_id": pack.scheduler_job_id})
    else:
        log.info("pack %s ended", pack.id)
    return len(again)


def _clean_exit_reason(stderr: str | None) -> str:
    """Why jobs were left by a batch job that exited cleanly, with the last line of its stderr."""
    reason = "the batch job ended before running this job"
    if stderr and stderr.strip():
        reason += "; last stderr line: " + stderr.strip().splitlines()[-1][:300]
    return reason


def cancel_cycle(runtime: Runtime) -> int:
    """Tell running packs about cancelled jobs: leave each job's ``cancelled``
    marker (one batch of writes), scancel packs with nothing left to run (one
    call), clear the flags. Returns the jobs handled.

    Jobs of a pack still ``submitting`` wait for the next cycles: sbatch has
    not answered, so there is no id to scancel, and the pack's staging may
    still replace a marker left now."""
    with runtime.db.session() as session:
        pending = list(session.execute(
            select(Job.id, Job.work_dir, Job.pack_id, Pack.state, Pack.scheduler_job_id)
            .join(Pack, Pack.id == Job.pack_id)
            .where(Job.cancel_pending.is_(True), Job.executor == runtime.executor.name,
                   Pack.state != PackState.SUBMITTING.value)))
        if not pending:
            return 0
        pack_ids = {row.pack_id for row in pending}
        still_live = set(session.scalars(select(Job.pack_id).where(
            Job.pack_id.in_(pack_ids), Job.status.in_(_LIVE_JOB)).distinct()))
    active = [row for row in pending if row.state in _OBSERVED_PACK]
    try:
        runtime.work_dirs.mark_cancelled([PurePath(row.work_dir) for row in active])
        empty = {row.scheduler_job_id for row in active
                 if row.pack_id not in still_live and row.scheduler_job_id}
        if empty:
            runtime.executor.cancel(sorted(empty))
    except Exception as exc:  # noqa: BLE001 - retried next cycle: the flags stay set
        log.warning("cancel of %d jobs not delivered yet: %s", len(pending), exc)
        return 0
    with runtime.db.transaction() as session:
        session.execute(update(Job).where(Job.id.in_([row.id for row in pending])).values(cancel_pending=False))
    return len(pending)


def refresh_queue_model(runtime: Runtime, *, scheduler_ok: bool | None, pending_start: datetime | None,
                        now: datetime, accounting_ok: bool | None = None) -> None:
    """Update this executor's :class:`QueueModel` row (see
    :mod:`gateway.estimates`): one aggregate query, and a write only when a
    figure changed or the scheduler check is 10 s old. ``accounting_ok``
    ``None`` keeps the recorded ``accounting_connected`` (``None`` in a new
    row: no accounting known)."""
    with runtime.db.session() as session:
        waiting = {klass: int(total) for klass, total in session.execute(
            select(Job.dispatch_class, func.sum(Job.runtime_seconds)).where(
                Job.executor == runtime.executor.name, Job.status == JobStatus.QUEUED.value, Job.pack_id.is_(None))
            .group_by(Job.dispatch_class))}
        live = dispatcher.live_pack_count(runtime)
        row = session.get(QueueModel, runtime.executor.name)
    pending = max(0, int((pending_start - now).total_seconds())) if pending_start else 0
    connected = row.scheduler_connected if (row is not None and scheduler_ok is None) else bool(scheduler_ok)
    accounting = row.accounting_connected if (row is not None and accounting_ok is None) else accounting_ok
    values = dict(waiting=waiting, live_packs=live, max_live_packs=runtime.settings.max_live_slurm_jobs,
                  pending_start_seconds=pending, scheduler_connected=connected, accounting_connected=accounting)
    stale_check = row is None or row.checked_at is None or (now - row.checked_at).total_seconds() >= 10
    if row is not None and not stale_check and all(getattr(row, k) == v for k, v in values.items()):
        return
    with runtime.db.transaction() as session:
        if row is None:
            session.add(QueueModel(executor=runtime.executor.name, updated_at=now,
                                   checked_at=now if scheduler_ok is not None else None, **values))
        else:
            extra = {"checked_at": now} if scheduler_ok is not None else {}
            session.execute(update(QueueModel).where(QueueModel.executor == runtime.executor.name)
                            .values(updated_at=now, **values, **extra))


def mark_scheduler_unreachable(runtime: Runtime, *, now: datetime) -> None:
    """Record a failed scheduler call in this executor's :class:`QueueModel`
    row (``scheduler_connected`` false as of ``now``); one UPDATE, nothing
    when the row does not exist yet."""
    with runtime.db.transaction() as session:
        session.execute(update(QueueModel).where(QueueModel.executor == runtime.executor.name)
                        .values(scheduler_connected=False, checked_at=now))


def service_cycle(runtime: Runtime, *, observe: bool = True) -> CycleReport:
    """One iteration of :func:`run_forever`: dispatch, deliver cancels, ingest
    progress and (with ``observe``) ask the scheduler and refresh the queue
    model."""
    dispatched = dispatcher.dispatch_cycle(runtime)
    if dispatched.scheduler_unreachable:
        # Tell GET / now, not after this cycle's squeue meets the same fault.
        mark_scheduler_unreachable(runtime, now=utcnow())
    cancel_cycle(runtime)
    with metrics.poll_cycle():
        report = poll_cycle(runtime, observe=observe)
    if observe:
        refresh_queue_model(runtime, scheduler_ok=report.scheduler_ok, pending_start=report.pending_start,
                            now=utcnow(), accounting_ok=report.accounting_ok)
    return report


def run_forever(runtime: Runtime, *, stop: threading.Event | None = None) -> None:
    """Dispatch, cancel and ingest every ``QCOS_DISPATCH_INTERVAL`` seconds and
    observe the scheduler every ``QCOS_POLL_INTERVAL`` seconds, until
    ``stop`` is set or SIGTERM/SIGINT. A failing cycle (scheduler or
    database unreachable) is logged and the next one runs on schedule; the
    process never dies of a transient error."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    settings = runtime.settings
    log.info("poller started: executor %s, dispatch every %g s, scheduler every %g s", runtime.executor.name,
             settings.dispatch_interval_seconds, settings.poll_interval_seconds)
    next_observe = 0.0
    while not stop.is_set():
        tick = time.monotonic()
        observe = tick >= next_observe
        try:
            service_cycle(runtime, observe=observe)
            if observe:
                next_observe = tick + settings.poll_interval_seconds
        except Exception:  # noqa: BLE001 - keep going; the next cycle may succeed
            log.exception("poller cycle failed")
        stop.wait(max(0.0, settings.dispatch_interval_seconds - (time.monotonic() - tick)))
    log.info("poller stopped")
