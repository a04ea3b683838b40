"""What every executor (Slurm, local) offers the gateway and the poller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Protocol

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


@dataclass(frozen=True)
class JobObservation:
    """One scheduler job as seen in one poll.

    ``scheduler_job_id``: Slurm's job id as a string (``"1234"``; never an
    int, never matched by prefix). ``state``: the raw Slurm state name
    (``"PENDING"``, ``"CANCELLED by 1000"``...), interpreted only by
    :mod:`hpc_jobs.lifecycle`. ``reason``: Slurm's reason field, if any.
    ``exit_code``: ``"<status>:<signal>"`` as sacct prints it, if known.
    ``source``: which query saw it (``"squeue"``, ``"sacct"``, ``"local"``).
    """

    scheduler_job_id: str
    state: str
    reason: str | None = None
    exit_code: str | None = None
    source: str = "squeue"


class Executor(Protocol):
    """Submits prepared work dirs and reports on their jobs.

    The work dir already holds the circuit, ``params.json`` and the rendered
    script (:mod:`hpc_jobs.workdir`) when :meth:`submit` is called.
    """

    name: str

    def submit(self, work_dir: Path, *, job_name: str) -> str:
        """Start the batch script of ``work_dir``; returns the scheduler job id.

        Raises :class:`ExecutorError`.
        """
        ...

    def observe(self, scheduler_job_ids: Collection[str]) -> dict[str, JobObservation]:
        """States of the given jobs, in a bounded number of scheduler calls
        (never one per job). Jobs the scheduler no longer knows are absent.
        Raises :class:`ExecutorError` when the scheduler cannot be asked.
        """
        ...

    def cancel(self, scheduler_job_ids: Collection[str]) -> None:
        """Ask the scheduler to cancel these jobs (one call). Raises :class:`ExecutorError`."""
        ...

    def ping(self) -> bool:
        """A cheap liveness check of the scheduler; never raises."""
        ...

    def queue(self) -> list[SqueueRow]:
        """The scheduler's live queue, one call (for admins). Raises :class:`ExecutorError`."""
        ...

    def partitions(self) -> list[SinfoRow]:
        """Partitions and node states, one call (for admins). Raises :class:`ExecutorError`."""
        ...
