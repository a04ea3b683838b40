"""The embedded default executor: runs the rendered batch script on this machine.

It mirrors the Slurm executor so the gateway and poller need no special case:
:meth:`LocalExecutor.submit` returns an id (``local-<hex>``), :meth:`observe`
reports the Slurm state names ``PENDING`` → ``RUNNING`` → ``COMPLETED`` /
``FAILED`` / ``CANCELLED``, which :mod:`hpc_jobs.lifecycle` maps like any
Slurm state. Jobs outlive the gateway process that started them: each one is
run by a detached launcher (:mod:`hpc_jobs.executors.local_launch`) that
records its progress in a registry folder::

    <registry>/<id>/work_dir   path of the job's work dir
    <registry>/<id>/pid        launcher pid, once it runs
    <registry>/<id>/started    present once the batch script started
    <registry>/<id>/exit       the script's exit status (negative: killed by that signal)
    <registry>/<id>/cancelled  present after cancel()

At most ``slots`` scripts run at once (default: the CPU count); the others
wait for a slot, in state ``PENDING``, as they would in a Slurm queue.
"""

from __future__ import annotations

import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Collection, Sequence

from hpc_jobs.executors.base import ExecutorError, JobObservation, Observations
from hpc_jobs.slurm.commands import SinfoRow, SqueueRow

_ID_PREFIX = "local-"


class LocalExecutor:
    """Executor that runs batch scripts as local subprocesses (no Slurm needed).

    ``registry``: a folder this executor owns (created if missing).
    ``slots``: how many jobs may run at once.
    """

    name = "local"

    def __init__(self, registry: Path, *, slots: int | None = None) -> None:
        self.registry = Path(registry)
        self.slots = max(1, slots or os.cpu_count() or 1)

    def _entry(self, job_id: str) -> Path:
        if not job_id.startswith(_ID_PREFIX) or not job_id[len(_ID_PREFIX):].isalnum():
            raise ExecutorError(f"not a local job id: {job_id!r}")
        return self.registry / job_id

    def submit(self, work_dir: Path, *, job_name: str, extra_args: Sequence[str] = ()) -> str:
        """Start ``work_dir/job.sbatch`` under a detached launcher; returns ``local-<hex>``.

        ``extra_args`` (sbatch options) mean nothing here and are ignored.
        Raises :class:`ExecutorError` if the registry cannot be written or the
        launcher cannot be started.
        """
        job_id = _ID_PREFIX + secrets.token_hex(8)
        entry = self.registry / job_id
        try:
            self.registry.mkdir(parents=True, exist_ok=True, mode=0o700)
            entry.mkdir(mode=0o700)
            (entry / "work_dir").write_text(str(Path(work_dir).resolve()), encoding="utf-8")
            (entry / "job_name").write_text(job_name, encoding="utf-8")
        except OSError as exc:
            raise ExecutorError(f"cannot write the local job registry: {exc}") from exc
        argv = [
            sys.executable, "-m", "hpc_jobs.executors.local_launch",
            str(entry), str(Path(work_dir).resolve()), str(self.registry / ".slots"), str(self.slots),
        ]
        try:
            # The launcher forks and returns at once, so waiting here reaps it
            # and leaves no zombie in a long-lived gunicorn worker.
            launched = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ExecutorError(f"cannot start the local launcher: {exc}") from exc
        if launched.returncode != 0:
            raise ExecutorError(
                "the local launcher failed: " + launched.stderr.decode("utf-8", "replace")[-500:]
            )
        return job_id

    def observe(self, scheduler_job_ids: Collection[str]) -> Observations:
        """States of the given local jobs, read from the registry (no subprocess)."""
        seen = Observations()
        for job_id in scheduler_job_ids:
            try:
                entry = self._entry(job_id)
            except ExecutorError:
                continue
            if not entry.is_dir():
                continue
            seen[job_id] = self._observe_entry(job_id, entry)
        return seen

    def _observe_entry(self, job_id: str, entry: Path) -> JobObservation:
        cancelled = (entry / "cancelled").exists()
        exit_file = entry / "exit"
        if exit_file.exists():
            status = int(exit_file.read_text().strip() or "1")
            exit_code = f"{status}:0" if status >= 0 else f"0:{-status}"
            if cancelled:
                return JobObservation(job_id, "CANCELLED", "cancelled by user", exit_code, "local")
            state = "COMPLETED" if status == 0 else "FAILED"
            return JobObservation(job_id, state, None, exit_code, "local")
        pid = _read_pid(entry / "pid")
        if pid is not None and not _alive(pid):
            # The launcher died without recording an exit status (machine
            # reboot, kill -9): Slurm would call that a node failure.
            state = "CANCELLED" if cancelled else "NODE_FAIL"
            return JobObservation(job_id, state, "the local launcher is gone", None, "local")
        if (entry / "started").exists():
            return JobObservation(job_id, "RUNNING", None, None, "local")
        if cancelled:
            return JobObservation(job_id, "CANCELLED", "cancelled by user", None, "local")
        return JobObservation(job_id, "PENDING", "Resources", None, "local")

    def find_by_name(self, job_names: Collection[str], *, since: datetime) -> dict[str, str]:
        """``{job_name: local id}`` of registry entries with those names (newest wins)."""
        names, found = set(job_names), {}
        for entry in sorted(self.registry.glob(f"{_ID_PREFIX}*"), key=lambda e: e.stat().st_mtime):
            try:
                name = (entry / "job_name").read_text(encoding="utf-8")
            except OSError:
                continue
            if name in names:
                found[name] = entry.name
        return found

    def cancel(self, scheduler_job_ids: Collection[str]) -> None:
        """Mark the jobs cancelled and signal their process groups (SIGTERM)."""
        for job_id in scheduler_job_ids:
            entry = self._entry(job_id)
            if not entry.is_dir():
                continue
            (entry / "cancelled").touch()
            pid = _read_pid(entry / "pid")
            if pid is not None and _alive(pid):
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def queue(self) -> list[SqueueRow]:
        """The local jobs not yet finished, shaped like squeue rows (partition ``local``)."""
        rows = []
        for entry in sorted(self.registry.glob(f"{_ID_PREFIX}*")):
            observation = self._observe_entry(entry.name, entry)
            if observation.state not in ("PENDING", "RUNNING"):
                continue
            started = entry / "started"
            elapsed = None
            if started.exists():
                elapsed = timedelta(seconds=int(time.time() - started.stat().st_mtime))
            name = (entry / "job_name").read_text(encoding="utf-8") if (entry / "job_name").exists() else ""
            rows.append(SqueueRow(
                job_id=entry.name, state=observation.state, reason=observation.reason, partition="local",
                elapsed=elapsed, time_limit=None, start_time=None, submit_time=None,
                node_list=platform.node() if observation.state == "RUNNING" else None,
                array_job_id=entry.name, array_task_id=None, name=name,
            ))
        return rows

    def partitions(self) -> list[SinfoRow]:
        """This machine as the single partition ``local``, ``slots`` CPUs."""
        busy = sum(1 for row in self.queue() if row.state == "RUNNING")
        state = "idle" if busy == 0 else ("allocated" if busy >= self.slots else "mixed")
        return [SinfoRow(partition="local", is_default=True, available="up", time_limit=None, node_count=1,
                         state=state, node_list=platform.node(), cpus=str(self.slots), memory_mb=_memory_mb(), reason=None)]

    def ping(self) -> bool:
        """True when the registry folder is writable (the local "scheduler" is up)."""
        try:
            self.registry.mkdir(parents=True, exist_ok=True, mode=0o700)
            return os.access(self.registry, os.W_OK)
        except OSError:
            return False

    def accounting_ping(self) -> None:
        """None: local jobs have no accounting database to be down."""
        return None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); /proc tells it apart on Linux.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _memory_mb() -> str:
    """This machine's physical memory in MiB, as sinfo prints ``%m``; ``""`` where unknown."""
    try:
        return str(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1 << 20))
    except (OSError, ValueError):
        return ""


__all__ = ["LocalExecutor"]
