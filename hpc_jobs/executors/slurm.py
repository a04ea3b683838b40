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

from hpc_jobs.executors.base import ExecutorError, JobObservation, Observations, SubmissionUnconfirmed
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
    SqueueByName,
    SqueueRow,
    StartEstimate,
)
from hpc_jobs.transports.base import Transport, TransportError
from hpc_jobs.workdir import SCRIPT_FILE, STDERR_FILE, STDOUT_FILE

__all__ = ["ACCOUNTING_CHECK_JOB_NAME", "SlurmExecutor"]

T = TypeVar("T")

#: The job name :meth:`SlurmExecutor.accounting_ping` asks sacct about: no
#: job is ever named so, so slurmdbd answers with nothing, cheaply.
ACCOUNTING_CHECK_JOB_NAME = "qcos-accounting-check"


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

    def _sbatch(self, cls: type[Sbatch], work_dir: Path, job_name: str, extra_args: Sequence[str] = ()) -> Sbatch:
        work_dir = Path(work_dir)
        return cls(
            script=work_dir / SCRIPT_FILE,
            job_name=job_name,
            chdir=work_dir,
            output=work_dir / STDOUT_FILE,
            error=work_dir / STDERR_FILE,
            extra_args=(*self._extra_sbatch_args, *extra_args),
        )

    def submit(self, work_dir: Path, *, job_name: str, extra_args: Sequence[str] = ()) -> str:
        """Submit ``work_dir/job.sbatch``; returns Slurm's job id (``"1234"``,
        or ``"1234;cluster"`` when sbatch named a cluster).

        stdout/stderr go to ``work_dir/stdout.log``/``stderr.log``. Raises
        ``ValueError`` for a job name outside ``[A-Za-z0-9._-]{1,128}``,
        :class:`SubmissionUnconfirmed` when sbatch may have created the job
        without telling its id (no id in its answer, a timeout, a lost
        connection), and :class:`ExecutorError` when sbatch refused the job
        (``retryable`` for a busy or unreachable controller).
        """
        command = self._sbatch(Sbatch, work_dir, job_name, extra_args)
        try:
            result = self._transport.run(command.argv(), timeout=self._timeout)
        except TransportError as exc:
            # The command may have reached slurmctld before the connection or clock ran out.
            raise SubmissionUnconfirmed(f"sbatch gave no answer: {exc}") from exc
        submitted = command.parse(result)
        return f"{submitted.slurm_job_id};{submitted.cluster}" if submitted.cluster else submitted.slurm_job_id

    def test_only(self, work_dir: Path, *, job_name: str) -> StartEstimate:
        """Ask ``sbatch --test-only`` whether and when the job would start.

        Submits nothing. Raises ``ValueError`` for a bad job name and
        :class:`ExecutorError` when Slurm would refuse the job.
        """
        return self._run(self._sbatch(SbatchTestOnly, work_dir, job_name))  # type: ignore[return-value]

    def observe(self, scheduler_job_ids: Collection[str]) -> Observations:
        """States of ``scheduler_job_ids``: per cluster named in the ids
        (``"1234;cluster"``, usually none), one squeue call, then at most one
        sacct call for the ids squeue did not list.

        squeue (the controller's live view) wins for jobs it reports;
        finished jobs come from sacct with their exit code. An id known to
        neither is absent from the result. sacct can trail squeue by a
        moment, so a job that just left squeue may still read ``RUNNING``
        (or be absent) until slurmdbd has its end record. When sacct fails
        (accounting disabled, slurmdbd down) the squeue answers are still
        returned, with ``complete`` False. ``accounting_ok`` says whether
        sacct answered (``None``: squeue listed every id, so sacct was not
        asked). Raises :class:`ExecutorError` when squeue fails,
        ``ValueError`` for a malformed id; no call at all for an empty set.
        """
        observed = Observations()
        by_cluster: dict[str | None, dict[str, str]] = {}
        for full_id in set(scheduler_job_ids):
            job_id, _, cluster = full_id.partition(";")
            by_cluster.setdefault(cluster or None, {})[job_id] = full_id
        for cluster, wanted in by_cluster.items():
            where = {"clusters": cluster} if cluster else {}
            for job_id, row in self._run(Squeue(wanted.keys(), **where)).items():
                if job_id in wanted:
                    observed[wanted[job_id]] = _from_squeue(row, wanted[job_id])
            missing = {job_id for job_id, full in wanted.items() if full not in observed}
            if not missing:
                continue
            try:
                rows = self._run(Sacct(job_ids=missing, **where))
            except ExecutorError:
                observed.complete = False
                observed.accounting_ok = False
                continue
            if observed.accounting_ok is None:
                observed.accounting_ok = True
            for job_id, row in rows.items():
                if job_id in missing:
                    observed[wanted[job_id]] = _from_sacct(row, wanted[job_id])
        return observed

    def find_by_name(self, job_names: Collection[str], *, since: datetime) -> dict[str, str]:
        """``{job_name: slurm_job_id}`` for the named jobs: the live queue
        (one squeue call) and sacct since ``since`` (one call), newest id
        per name. Raises :class:`ExecutorError` when either call fails,
        since a job missing from a failed source may exist.
        """
        names = set(job_names)
        if not names:
            return {}
        found: dict[str, list[int]] = {}
        for row in self._run(SqueueByName(names)).values():
            if row.name in names and row.array_job_id.isdigit():
                found.setdefault(row.name, []).append(int(row.array_job_id))
        local_since = since.astimezone().strftime("%Y-%m-%dT%H:%M:%S")
        for row in self._run(Sacct(job_names=names, start_time=local_since)).values():
            if row.name in names and row.job_id_raw.isdigit():
                found.setdefault(row.name, []).append(int(row.job_id_raw))
        return {name: str(max(ids)) for name, ids in found.items()}

    def cancel(self, scheduler_job_ids: Collection[str]) -> None:
        """scancel the jobs, one call per cluster named in the ids; jobs
        already finished or unknown are fine.

        Raises :class:`ExecutorError`; no call at all for an empty set.
        """
        by_cluster: dict[str | None, set[str]] = {}
        for full_id in scheduler_job_ids:
            job_id, _, cluster = full_id.partition(";")
            by_cluster.setdefault(cluster or None, set()).add(job_id)
        for cluster, ids in by_cluster.items():
            self._run(Scancel(ids, **({"clusters": cluster} if cluster else {})))

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

    def accounting_ping(self) -> bool:
        """True when sacct answers (one call, for a job name no job has, since
        now: slurmdbd answers with nothing); False when it fails, e.g. with
        slurmdbd down. Never raises."""
        try:
            self._run(Sacct(job_names=[ACCOUNTING_CHECK_JOB_NAME], start_time="now"),
                      timeout=min(self._timeout, 10.0))
        except Exception:  # noqa: BLE001 - a health check answers, it does not fail
            return False
        return True


def _from_squeue(row: SqueueRow, full_id: str) -> JobObservation:
    return JobObservation(
        scheduler_job_id=full_id, state=row.state, reason=row.reason, source="squeue",
        expected_start=row.start_time if row.state == "PENDING" else None,
    )


def _from_sacct(row: SacctRow, full_id: str) -> JobObservation:
    return JobObservation(
        scheduler_job_id=full_id,
        state=row.state,
        reason=row.reason,
        exit_code=row.exit_code,
        source="sacct",
    )
