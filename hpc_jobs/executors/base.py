"""What every executor (Slurm, local) offers the gateway and the poller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Protocol, Sequence

if TYPE_CHECKING:
    from hpc_jobs.slurm.commands import SinfoRow, SqueueRow


class ExecutorError(RuntimeError):
    """The scheduler refused or could not take a request (sbatch error, unreachable).

    ``str(exc)`` is a message fit for an operator log; it never contains a
    secret. ``retryable`` is True when the scheduler was unreachable or busy
    rather than refusing this particular job.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class SubmissionUnconfirmed(ExecutorError):
    """sbatch may have created the job but its answer is unknown (exit 0
    without a recognisable id, a timeout, a lost connection). The job must
    be looked up by its name, never submitted again blindly."""


@dataclass(frozen=True)
class JobObservation:
    """One scheduler job as seen in one poll.

    ``scheduler_job_id``: Slurm's job id as a string (``"1234"``; never an
    int, never matched by prefix). ``state``: the raw Slurm state name
    (``"PENDING"``, ``"CANCELLED by 1000"``...), interpreted only by
    :mod:`hpc_jobs.lifecycle`. ``reason``: Slurm's reason field, if any.
    ``exit_code``: ``"<status>:<signal>"`` as sacct prints it, if known.
    ``source``: which query saw it (``"squeue"``, ``"sacct"``, ``"local"``).
    ``expected_start``: Slurm's expected start of a pending job (naive
    controller-local time), if it has one.
    """

    scheduler_job_id: str
    state: str
    reason: str | None = None
    exit_code: str | None = None
    source: str = "squeue"
    expected_start: datetime | None = None


class Observations(dict):
    """``{scheduler_job_id: JobObservation}`` from one observe call.

    ``complete`` is False when a source failed (sacct with slurmdbd down):
    then a job missing from the answer is known only to have left the live
    queue, not how it ended. ``accounting_ok``: whether the
    accounting query of this call (sacct) answered; ``None`` when the call
    made none (the controller knew every job, or there is no accounting).
    """

    complete: bool = True
    accounting_ok: bool | None = None


class Executor(Protocol):
    """Submits prepared work dirs and reports on their jobs.

    The work dir already holds the circuit, ``params.json`` and the rendered
    script (:mod:`hpc_jobs.workdir`) when :meth:`submit` is called.
    """

    name: str

    def submit(self, work_dir: Path, *, job_name: str, extra_args: Sequence[str] = ()) -> str:
        """Start the batch script of ``work_dir``; returns the scheduler job id
        (``"<id>;<cluster>"`` where Slurm named a cluster).

        ``extra_args``: further sbatch options for this job (account, QOS,
        comment). Raises :class:`SubmissionUnconfirmed` when the job may
        exist although no id came back, :class:`ExecutorError` otherwise.
        """
        ...

    def observe(self, scheduler_job_ids: Collection[str]) -> Observations:
        """States of the given jobs, in a bounded number of scheduler calls
        (never one per job). Jobs the scheduler no longer knows are absent.
        Raises :class:`ExecutorError` when the scheduler cannot be asked at all.
        """
        ...

    def find_by_name(self, job_names: Collection[str], *, since: datetime) -> dict[str, str]:
        """``{job_name: scheduler_job_id}`` of the named jobs the scheduler
        knows (live or finished since ``since``, aware UTC), in a bounded
        number of calls. Raises :class:`ExecutorError` when it cannot tell.
        """
        ...

    def cancel(self, scheduler_job_ids: Collection[str]) -> None:
        """Ask the scheduler to cancel these jobs (one call). Raises :class:`ExecutorError`."""
        ...

    def ping(self) -> bool:
        """A cheap liveness check of the scheduler; never raises."""
        ...

    def accounting_ping(self) -> bool | None:
        """A cheap check that the scheduler's accounting (slurmdbd, through
        sacct) answers; ``None`` for an executor without accounting. Never raises."""
        ...

    def queue(self) -> list[SqueueRow]:
        """The scheduler's live queue, one call (for admins). Raises :class:`ExecutorError`."""
        ...

    def partitions(self) -> list[SinfoRow]:
        """Partitions and node states, one call (for admins). Raises :class:`ExecutorError`."""
        ...
