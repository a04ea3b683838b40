"""The Slurm executor: work dirs in, Slurm jobs out, through a transport.

Every scheduler call is one command object from :mod:`hpc_jobs.slurm.commands`
run by a :class:`~hpc_jobs.transports.base.Transport` (local subprocess or
SSH), so this module holds only the policy: which commands, how many, and
how their answers combine.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Collection, Sequence, TypeVar

from hpc_jobs.executors.base import ExecutorError, JobObservation
from hpc_jobs.slurm.commands import (
    Sacct,
    SacctRow,
    Sbatch,
    SbatchTestOnly,
    Scancel,
    ScontrolPing,
    Sinfo,
    SinfoRow,
    SlurmCommand,
    Squeue,
    SqueueAll,
    SqueueRow,
    SqueueStart,
    StartEstimate,
)
from hpc_jobs.transports.base import Transport, TransportError
from hpc_jobs.workdir import SCRIPT_FILE, STDERR_FILE, STDOUT_FILE

__all__ = ["SlurmExecutor"]

T = TypeVar("T")


class SlurmExecutor:
    """Runs work dirs as Slurm batch jobs (implements :class:`~hpc_jobs.executors.base.Executor`).

    ``transport`` runs the Slurm client commands; the work dir paths must be
    valid where those commands run (and on the compute nodes).
    ``extra_sbatch_args``: sbatch options added to every submission, each
    one argv element (``("--partition=debug", "--account=qcos")``).
    ``timeout``: seconds allowed for one Slurm command.
    """

    name = "slurm"

    def __init__(
        self,
        transport: Transport,
        *,
        extra_sbatch_args: Sequence[str] = (),
        timeout: float = 30.0,
    ) -> None:
        self._transport = transport
        self._extra_sbatch_args = tuple(extra_sbatch_args)
        self._timeout = timeout

    def _run(self, command: SlurmCommand[T], *, timeout: float | None = None) -> T:
        try:
            result = self._transport.run(command.argv(), timeout=timeout or self._timeout)
        except TransportError as exc:
            raise ExecutorError(f"could not run {command.argv()[0]}: {exc}", retryable=True) from exc
        return command.parse(result)

    def _sbatch(self, cls: type[Sbatch], work_dir: Path, job_name: str) -> Sbatch:
        work_dir = Path(work_dir)
        return cls(
            script=work_dir / SCRIPT_FILE,
            job_name=job_name,
            chdir=work_dir,
            output=work_dir / STDOUT_FILE,
            error=work_dir / STDERR_FILE,
            extra_args=self._extra_sbatch_args,
        )

    def submit(self, work_dir: Path, *, job_name: str) -> str:
        """Submit ``work_dir/job.sbatch``; returns Slurm's job id (``"1234"``).

        stdout/stderr go to ``work_dir/stdout.log``/``stderr.log``. Raises
        ``ValueError`` for a job name outside ``[A-Za-z0-9._-]{1,128}`` and
        :class:`ExecutorError` when sbatch refuses or cannot reach Slurm.
        """
        return self._run(self._sbatch(Sbatch, work_dir, job_name)).slurm_job_id

    def test_only(self, work_dir: Path, *, job_name: str) -> StartEstimate:
        """Ask ``sbatch --test-only`` whether and when the job would start.

        Submits nothing. Raises ``ValueError`` for a bad job name and
        :class:`ExecutorError` when Slurm would refuse the job.
        """
        return self._run(self._sbatch(SbatchTestOnly, work_dir, job_name))  # type: ignore[return-value]

    def observe(self, scheduler_job_ids: Collection[str]) -> dict[str, JobObservation]:
        """States of ``scheduler_job_ids``: one squeue call, then at most one
        sacct call for the ids squeue did not list.

        squeue (the controller's live view) wins for jobs it reports;
        finished jobs come from sacct with their exit code. An id known to
        neither is absent from the result. sacct can trail squeue by a
        moment, so a job that just left squeue may still read ``RUNNING``
        (or be absent) until slurmdbd has its end record. Only the ids asked for are
        returned (array tasks or het components of them are not).
        Raises :class:`ExecutorError`, or ``ValueError`` for a malformed id;
        no call at all for an empty set.
        """
        wanted = set(scheduler_job_ids)
        if not wanted:
            return {}
        observed: dict[str, JobObservation] = {}
        for job_id, row in self._run(Squeue(wanted)).items():
            if job_id in wanted:
                observed[job_id] = _from_squeue(row)
        missing = wanted - observed.keys()
        if missing:
            for job_id, row in self._run(Sacct(job_ids=missing)).items():
                if job_id in missing:
                    observed[job_id] = _from_sacct(row)
        return observed

    def observe_by_name(
        self, job_names: Collection[str], *, since: str = "now-7days"
    ) -> dict[str, list[JobObservation]]:
        """Jobs per name, found by one sacct call (to recover a lost job id).

        ``since``: how far back to look, in sacct ``--starttime`` syntax.
        Returns ``{name: [observation, ...]}`` oldest first by job id; names
        without jobs are absent. A job that ended in the last second or two
        may be missing: slurmdbd can store its end before its eligible time,
        and sacct's time-window queries skip jobs without one. Raises
        ``ValueError`` for a bad name and
        :class:`ExecutorError`; no call at all for an empty set.
        """
        names = set(job_names)
        if not names:
            return {}
        found: dict[str, list[tuple[int, JobObservation]]] = {}
        for row in self._run(Sacct(job_names=names, start_time=since)).values():
            if row.name in names:
                order = int(row.job_id_raw) if row.job_id_raw.isdigit() else -1
                found.setdefault(row.name, []).append((order, _from_sacct(row)))
        return {name: [obs for _, obs in sorted(items, key=lambda t: t[0])] for name, items in found.items()}

    def cancel(self, scheduler_job_ids: Collection[str]) -> None:
        """scancel the jobs in one call; jobs already finished or unknown are fine.

        Raises :class:`ExecutorError`; no call at all for an empty set.
        """
        if scheduler_job_ids:
            self._run(Scancel(set(scheduler_job_ids)))

    def expected_start(self, scheduler_job_id: str) -> datetime | None:
        """When Slurm expects a pending job to start (``squeue --start``), as naive
        controller-local time; ``None`` when it has no estimate. One call."""
        return self._run(SqueueStart(scheduler_job_id))

    def queue(self) -> list[SqueueRow]:
        """The live queue (every job squeue shows this account), one call.
        Raises :class:`ExecutorError`."""
        return list(self._run(SqueueAll()).values())

    def partitions(self) -> list[SinfoRow]:
        """Partitions and node states (sinfo), one call. Raises :class:`ExecutorError`."""
        return self._run(Sinfo())

    def ping(self) -> bool:
        """True when ``scontrol ping`` reports a controller UP; never raises."""
        try:
            # A health check must answer quickly even when slurmctld hangs.
            return self._run(ScontrolPing(), timeout=min(self._timeout, 10.0))
        except Exception:  # noqa: BLE001 - a health check answers, it does not fail
            return False


def _from_squeue(row: SqueueRow) -> JobObservation:
    return JobObservation(
        scheduler_job_id=row.job_id, state=row.state, reason=row.reason, source="squeue"
    )


def _from_sacct(row: SacctRow) -> JobObservation:
    return JobObservation(
        scheduler_job_id=row.job_id,
        state=row.state,
        reason=row.reason,
        exit_code=row.exit_code,
        source="sacct",
    )
