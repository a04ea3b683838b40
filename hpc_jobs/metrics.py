"""Prometheus metrics of the cluster side: Slurm commands and SSH connections.

Recorded where commands run (the transports), so every Slurm command the
gateway, the poller or the dispatcher issues is counted, whichever executor
asked for it. :mod:`gateway.metrics` lists these with the gateway's own
metrics and serves them. Names follow ``qcos_<what>_<unit>``.

prometheus_client keeps values in process memory, or in files under
``PROMETHEUS_MULTIPROC_DIR`` when that variable is set before the first
import (several gunicorn workers, and the poller on the same host): see
:mod:`gateway.metrics`. The batch-job runner (:mod:`hpc_jobs.runner`) never
imports this module.
"""

from __future__ import annotations

import functools
import os
import time
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from hpc_jobs.transports.base import CommandResult

__all__ = [
    "SLURM_COMMANDS",
    "SLURM_COMMAND_DURATION",
    "SLURM_COMMAND_ERRORS",
    "SSH_CONNECTIONS_OPENED",
    "SSH_RECONNECTS",
    "command_label",
    "observe_command",
]

#: Programs counted under their own name; anything else is ``other``, so a
#: label never takes an unbounded set of values.
KNOWN_COMMANDS = frozenset({"sbatch", "squeue", "sacct", "scancel", "scontrol", "sinfo", "srun", "salloc",
                            "sacctmgr", "sprio", "sshare", "sreport", "sstat"})

SLURM_COMMANDS = Counter(
    "qcos_slurm_commands", "Slurm commands run (any outcome), by program name.", ["command"])
SLURM_COMMAND_DURATION = Histogram(
    "qcos_slurm_command_duration_seconds", "Wall time of one Slurm command, from start to exit status, seconds.",
    ["command"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
SLURM_COMMAND_ERRORS = Counter(
    "qcos_slurm_command_errors",
    "Slurm commands that failed: kind=transport (could not run, timed out, connection lost) or "
    "kind=exit_status (ran and exited non-zero; squeue/sacct asked about unknown ids also land here).",
    ["command", "kind"])
SSH_CONNECTIONS_OPENED = Counter(
    "qcos_ssh_connections_opened", "SSH connections to the login node opened by this process (first one included).")
SSH_RECONNECTS = Counter(
    "qcos_ssh_reconnects", "SSH connections opened to replace a lost one (every connection after a process's first).")


def command_label(argv: Sequence[str | os.PathLike[str]]) -> str:
    """The ``command`` label of an argv: its program's base name when it is a
    known Slurm command, else ``other``."""
    name = os.path.basename(os.fspath(argv[0])) if argv else ""
    return name if name in KNOWN_COMMANDS else "other"


F = TypeVar("F", bound=Callable[..., "CommandResult"])


def observe_command(run: F) -> F:
    """Decorator for a transport's ``run(self, argv, *, timeout)``: counts the
    command, times it, and counts a :class:`TransportError` (re-raised) or a
    non-zero exit status as an error of that command."""
    # Here, not at the top: the transports import this module while their package loads.
    from hpc_jobs.transports.base import TransportError

    @functools.wraps(run)
    def observed(self, argv, *args, **kwargs):
        command = command_label(argv)
        SLURM_COMMANDS.labels(command).inc()
        started = time.perf_counter()
        try:
            result = run(self, argv, *args, **kwargs)
        except TransportError:
            SLURM_COMMAND_ERRORS.labels(command, "transport").inc()
            raise
        finally:
            SLURM_COMMAND_DURATION.labels(command).observe(time.perf_counter() - started)
        if result.returncode != 0:
            SLURM_COMMAND_ERRORS.labels(command, "exit_status").inc()
        return result

    return observed  # type: ignore[return-value]
