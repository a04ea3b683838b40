"""The pyslurm executor: the Slurm executor's job, through libslurm instead of commands.

For a gateway that runs on a login node next to a ``libslurm`` that matches
the installed `pyslurm <https://pyslurm.github.io/>`_: pyslurm's version is
the Slurm version it was built for (PyPI ``pyslurm`` 25.11.x ↔ Slurm 25.11),
and its C structures must match the library's. Debian 12's Slurm is 22.05,
so the dev cluster cannot use it; :class:`PyslurmExecutor` refuses to start
on a mismatch rather than crash in C later.

Calls (pyslurm 25.11 API): ``JobSubmitDescription(...).submit()`` (one RPC,
``#SBATCH`` lines read with ``load_sbatch_options``), ``Jobs.load()`` (one
RPC for the whole controller view, so :meth:`observe` costs one call however
many jobs it asks about), ``pyslurm.db.Jobs.load(JobFilter(ids=...))`` for
jobs the controller has already forgotten (one slurmdbd call), and
``Job(id).cancel()``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from hpc_jobs.executors.base import ExecutorError, JobObservation, Observations
from hpc_jobs.executors.slurm import ACCOUNTING_CHECK_JOB_NAME
from hpc_jobs.slurm.commands import (
    SinfoRow,
    SqueueRow,
    validate_job_id,
    validate_job_name,
)
from hpc_jobs.transports.base import Transport, TransportError
from hpc_jobs.transports.local import LocalTransport
from hpc_jobs.workdir import SCRIPT_FILE, STDERR_FILE, STDOUT_FILE

__all__ = ["PyslurmExecutor", "PyslurmUnavailable", "major_minor"]

_VERSION = re.compile(r"(\d+)\.(\d+)")


class PyslurmUnavailable(ExecutorError):
    """pyslurm cannot be used here: not installed, or built for another Slurm."""


def major_minor(text: str) -> str | None:
    """``"25.11"`` from ``"25.11.2"`` or ``"slurm 25.11.0"``; ``None`` if there is no version."""
    match = _VERSION.search(text or "")
    return f"{match[1]}.{match[2]}" if match else None


class PyslurmExecutor:
    """Runs work dirs as Slurm batch jobs through pyslurm (implements
    :class:`~hpc_jobs.executors.base.Executor`).

    ``transport`` runs ``scontrol --version`` once, at construction, to
    compare the installed Slurm with pyslurm's version. ``module``: the
    pyslurm module to use (tests pass a fake); by default it is imported.

    Raises :class:`PyslurmUnavailable` when pyslurm cannot be imported, when
    ``scontrol --version`` cannot be read, or when the two major.minor
    versions differ; the message names both.
    """

    name = "pyslurm"

    def __init__(self, *, transport: Transport | None = None, module: ModuleType | None = None) -> None:
        if module is None:
            try:
                module = importlib.import_module("pyslurm")
            except ImportError as exc:
                raise PyslurmUnavailable(
                    f"pyslurm is not installed or does not load ({exc}); install the pyslurm release "
                    "matching this cluster's Slurm (pip install 'pyslurm==<major>.<minor>.*')"
                ) from None
        self._pyslurm = module
        pyslurm_version = str(getattr(module, "__version__", "") or "")
        transport = transport or LocalTransport()
        try:
            result = transport.run(["scontrol", "--version"], timeout=10.0)
        except TransportError as exc:
            raise PyslurmUnavailable(f"cannot ask for the Slurm version (scontrol --version): {exc}") from None
        slurm_version = result.stdout.strip() or result.stderr.strip()
        ours, theirs = major_minor(pyslurm_version), major_minor(slurm_version)
        if ours is None or theirs is None or ours != theirs:
            raise PyslurmUnavailable(
                f"pyslurm {pyslurm_version or '(unknown version)'} is built for Slurm {ours or '?'}, "
                f"but this cluster runs {slurm_version or '(no answer from scontrol --version)'}; "
                f"install pyslurm {theirs or '<major>.<minor>'}.x or use the slurm executor"
            )
        self.slurm_version = slurm_version

    def _rpc(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except ExecutorError:
            raise
        except Exception as exc:  # pyslurm.RPCError and friends
            message = str(exc) or type(exc).__name__
            retryable = any(
                marker in message.lower()
                for marker in ("unable to contact", "timed out", "temporarily", "connection refused")
            )
            raise ExecutorError(f"pyslurm {what} failed: {message}", retryable=retryable) from exc

    def submit(self, work_dir: Path, *, job_name: str, extra_args: Sequence[str] = ()) -> str:
        """Submit ``work_dir/job.sbatch`` with its ``#SBATCH`` options; returns the job id.

        ``extra_args`` (``--account=…``, ``--qos=…``, ``--comment=…``,
        ``--wckey=…``) set the description's fields of those names. Raises
        ``ValueError`` for a bad job name or an option it cannot map and
        :class:`ExecutorError` when the controller refuses the job.
        """
        validate_job_name(job_name)
        work_dir = Path(work_dir)
        description = self._pyslurm.JobSubmitDescription(
            name=job_name,
            script=str(work_dir / SCRIPT_FILE),
            working_directory=str(work_dir),
            standard_output=str(work_dir / STDOUT_FILE),
            standard_error=str(work_dir / STDERR_FILE),
            **_description_fields(extra_args),
        )
        # pyslurm reads #SBATCH lines only when asked; the options given
        # above (as on sbatch's command line) win over the script's.
        self._rpc("reading the batch script", description.load_sbatch_options, overwrite=False)
        return str(self._rpc("submission", description.submit))

    def observe(self, scheduler_job_ids: Collection[str]) -> Observations:
        """States of the jobs: one ``Jobs.load()``, then one database query for
        ids the controller no longer holds. Absent: ids neither knows.

        A failed database query (slurmdbd down) keeps the controller's
        answers, with ``complete`` and ``accounting_ok`` False, as the
        slurm executor does when sacct fails. Raises :class:`ExecutorError`
        when the controller cannot be asked; no call at all for an empty set."""
        wanted = {validate_job_id(j) for j in scheduler_job_ids}
        observed = Observations()
        if not wanted:
            return observed
        for job in self._rpc("Jobs.load", self._pyslurm.Jobs.load).values():
            job_id = str(job.id)
            if job_id in wanted:
                observed[job_id] = _observation(job, source="pyslurm")
        missing = sorted(wanted - observed.keys(), key=lambda j: int(re.match(r"\d+", j).group()))
        database = getattr(self._pyslurm, "db", None)
        if missing and database is not None:
            plain = [int(j) for j in missing if j.isdigit()]
            if plain:
                try:
                    found = self._rpc("db.Jobs.load", database.Jobs.load, database.JobFilter(ids=plain))
                except ExecutorError:
                    observed.complete = False
                    observed.accounting_ok = False
                    return observed
                observed.accounting_ok = True
                for job in found:
                    job_id = str(job.id)
                    if job_id in wanted and job_id not in observed:
                        observed[job_id] = _observation(job, source="pyslurm-db")
        return observed

    def find_by_name(self, job_names: Collection[str], *, since: datetime) -> dict[str, str]:
        """``{job_name: job id}`` among the controller's live jobs (one
        ``Jobs.load()``) and, where pyslurm has it, the accounting database."""
        names, found = set(job_names), {}
        for job in self._rpc("Jobs.load", self._pyslurm.Jobs.load).values():
            if str(getattr(job, "name", "")) in names:
                found[str(job.name)] = max(found.get(str(job.name), 0), int(job.id))
        database = getattr(self._pyslurm, "db", None)
        if database is not None and names - found.keys():
            for job in self._rpc("db.Jobs.load", database.Jobs.load,
                                 database.JobFilter(names=sorted(names), start_time=since)):
                if str(getattr(job, "name", "")) in names:
                    found[str(job.name)] = max(found.get(str(job.name), 0), int(job.id))
        return {name: str(job_id) for name, job_id in found.items()}

    def cancel(self, scheduler_job_ids: Collection[str]) -> None:
        """Cancel the jobs (one RPC each: libslurm has no batch cancel);
        jobs already finished are fine. Raises :class:`ExecutorError`."""
        for job_id in sorted({validate_job_id(j) for j in scheduler_job_ids}):
            if job_id.isdigit():
                self._rpc("cancel", self._pyslurm.Job(int(job_id)).cancel)

    def ping(self) -> bool:
        """True when the controller answers a job listing; never raises."""
        try:
            self._pyslurm.Jobs.load()
        except Exception:  # noqa: BLE001 - a health check answers, it does not fail
            return False
        return True

    def accounting_ping(self) -> bool | None:
        """True when the accounting database answers a query for a job name
        no job has (one ``db.Jobs.load``); ``None`` where this pyslurm has no
        ``db`` module; never raises."""
        database = getattr(self._pyslurm, "db", None)
        if database is None:
            return None
        try:
            database.Jobs.load(database.JobFilter(names=[ACCOUNTING_CHECK_JOB_NAME]))
        except Exception:  # noqa: BLE001 - a health check answers, it does not fail
            return False
        return True

    def queue(self) -> list[SqueueRow]:
        """The controller's live jobs (one ``Jobs.load()``), as squeue rows."""
        rows = []
        for job in self._rpc("Jobs.load", self._pyslurm.Jobs.load).values():
            rows.append(SqueueRow(
                job_id=str(job.id), state=str(job.state), reason=_text(getattr(job, "state_reason", None)),
                partition=str(getattr(job, "partition", "") or ""), elapsed=None, time_limit=None,
                start_time=None, submit_time=None, node_list=_text(getattr(job, "allocated_nodes", None)),
                array_job_id=str(getattr(job, "array_id", None) or job.id),
                array_task_id=_text(getattr(job, "array_task_id", None)), name=str(getattr(job, "name", "") or ""),
            ))
        return rows

    def partitions(self) -> list[SinfoRow]:
        """Not offered through pyslurm here; raises :class:`ExecutorError` (use sinfo)."""
        raise ExecutorError("the pyslurm executor does not list partitions; use the slurm executor's sinfo")


#: sbatch options the gateway passes per job, and the pyslurm
#: ``JobSubmitDescription`` fields they set.
_SBATCH_FIELDS = {"--account": "account", "--qos": "qos", "--comment": "comment", "--wckey": "wckey",
                  "--partition": "partition", "--nice": "nice"}


def _description_fields(extra_args: Sequence[str]) -> dict[str, str]:
    fields = {}
    for arg in extra_args:
        option, _, value = arg.partition("=")
        if option not in _SBATCH_FIELDS or not value:
            raise ValueError(f"the pyslurm executor cannot pass sbatch option {arg!r}")
        fields[_SBATCH_FIELDS[option]] = value
    return fields


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return None if text in ("", "None", "N/A") else text


def _observation(job: Any, *, source: str) -> JobObservation:
    exit_code = getattr(job, "exit_code", None)
    signal = getattr(job, "exit_code_signal", None)
    return JobObservation(
        scheduler_job_id=str(job.id),
        state=str(job.state),
        reason=_text(getattr(job, "state_reason", None)),
        exit_code=None if exit_code is None else f"{exit_code}:{signal or 0}",
        source=source,
    )
