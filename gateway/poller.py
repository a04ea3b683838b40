"""The poller process (``qcos poller``): applies scheduler states to stored jobs.

Each cycle loads the live jobs (``queued``/``processing``) in one query, asks
the executor about all of them at once (:func:`hpc_jobs.poller.poll_cycle`),
and writes each change with a conditional UPDATE (``WHERE status = <the
status we read>``), so a change made meanwhile by another process (a second
poller, a cancellation) is never overwritten. Several pollers may run; they
only repeat each other's work.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from gateway.models import Job, utcnow
from gateway.notify import notify_jobs_changed
from gateway.runtime import Runtime
from hpc_jobs.executors.base import ExecutorError
from hpc_jobs.lifecycle import JobStatus
from hpc_jobs.poller import JobUpdate, LiveJob, poll_cycle
from hpc_jobs.rendering import slurm_job_name

log = logging.getLogger(__name__)

_LIVE = (JobStatus.QUEUED.value, JobStatus.PROCESSING.value)


def run_cycle(runtime: Runtime) -> list[JobUpdate]:
    """One poll cycle; returns the updates it applied (changed or not).

    Only jobs submitted through this poller's executor are polled, so a
    gateway moved from the local executor to Slurm leaves the old jobs alone.

    Raises :class:`ExecutorError` when the scheduler cannot be asked.
    """
    now = utcnow()
    with runtime.db.session() as session:
        rows = session.execute(
            select(Job.id, Job.scheduler_job_id, Job.status, Job.work_dir, Job.shots, Job.submitted_at,
                   Job.created_at, Job.last_seen_at).where(Job.status.in_(_LIVE), Job.executor == runtime.executor.name)
        ).all()
    live, unsubmitted = [], []
    for row in rows:
        if row.scheduler_job_id is None:
            unsubmitted.append(row)
            continue
        live.append(LiveJob(row.id, row.scheduler_job_id, JobStatus(row.status), Path(row.work_dir), row.shots,
                            row.submitted_at or row.created_at, row.last_seen_at))
    _recover_or_fail_unsubmitted(runtime, unsubmitted, now)
    updates = poll_cycle(runtime.executor, live, now=now,
                         missing_grace_seconds=runtime.settings.missing_grace_seconds,
                         read_text=runtime.work_dirs.read_text)
    for change in updates:
        _apply(runtime, change, now)
    return updates


#: A row still without a Slurm id after this long lost its sbatch answer
#: (the gateway stopped mid-submission) rather than being in the middle of one.
RECOVERY_AFTER = timedelta(seconds=30)


def _recover_or_fail_unsubmitted(runtime: Runtime, rows, now) -> None:
    """Rows without a Slurm job id: find their batch job by name (the job name
    carries the job_id; one sacct call for all of them) and adopt it, or fail
    the row once the grace period is over."""
    stale = [row for row in rows if now - row.created_at > RECOVERY_AFTER]
    observe_by_name = getattr(runtime.executor, "observe_by_name", None)
    if stale and observe_by_name is not None:
        names = {slurm_job_name(row.id): row for row in stale}
        # Only jobs submitted since these rows were written (controller-local
        # time, as sacct wants it): an older job of the same name is not theirs.
        since = (min(row.created_at for row in stale) - timedelta(minutes=5)).astimezone()
        try:
            found = observe_by_name(list(names), since=since.strftime("%Y-%m-%dT%H:%M:%S"))
        except ExecutorError as exc:
            log.warning("could not look up unsubmitted jobs by name: %s", exc)
            found = {}
        for name, observations in found.items():
            row = names[name]
            newest = observations[-1].scheduler_job_id
            with runtime.db.transaction() as session:
                adopted = session.execute(
                    update(Job).where(Job.id == row.id, Job.scheduler_job_id.is_(None))
                    .values(scheduler_job_id=newest, submitted_at=now)
                ).rowcount
            if adopted:
                log.info("job %s recovered: Slurm job %s found by its name", row.id, newest)
        stale = [row for row in stale if slurm_job_name(row.id) not in found]
    grace = timedelta(seconds=runtime.settings.missing_grace_seconds)
    for row in stale:
        if now - row.created_at > grace:
            with runtime.db.transaction() as session:
                session.execute(
                    update(Job).where(Job.id == row.id, Job.status == row.status, Job.scheduler_job_id.is_(None))
                    .values(status=JobStatus.FAILED.value, completed_at=now,
                            error="the job never reached the scheduler (the gateway stopped during submission)")
                )
                notify_jobs_changed(session, [row.id])


def _apply(runtime: Runtime, change: JobUpdate, now) -> None:
    values: dict = {}
    if change.seen:
        values["last_seen_at"] = now
    if change.slurm_state:
        values["slurm_state"] = change.slurm_state[:64]
    if change.status is not change.old_status:
        values["status"] = change.status.value
        if change.status is JobStatus.PROCESSING:
            values["started_at"] = now
        if change.status.is_final:
            values["completed_at"] = now
            values["result"] = change.result
            if change.result is not None:
                values["execution_time_seconds"] = _float_or_none(change.result.get("execution_time_seconds"))
            values["error"] = change.error
            log.info("job %s %s%s", change.job_id, change.status.value,
                     f": {change.error}" if change.error else "")
    if not values:
        return
    with runtime.db.transaction() as session:
        session.execute(
            update(Job).where(Job.id == change.job_id, Job.status == change.old_status.value).values(**values)
        )
        if "status" in values:
            notify_jobs_changed(session, [change.job_id])


def _float_or_none(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def run_forever(runtime: Runtime, *, stop: threading.Event | None = None) -> None:
    """Poll every ``QCOS_POLL_INTERVAL`` seconds until ``stop`` is set or SIGTERM/SIGINT.

    A failing cycle (scheduler or database unreachable) is logged and the
    next one runs on schedule; the poller never dies of a transient error.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    interval = runtime.settings.poll_interval_seconds
    log.info("poller started: executor %s, every %g s", runtime.executor.name, interval)
    while not stop.is_set():
        try:
            run_cycle(runtime)
        except ExecutorError as exc:
            log.warning("scheduler unavailable this cycle: %s", exc)
        except Exception:  # noqa: BLE001 - keep polling; the next cycle may succeed
            log.exception("poll cycle failed")
        stop.wait(interval)
    log.info("poller stopped")
