"""Run commands on this machine as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Mapping, Sequence

from hpc_jobs.metrics import observe_command
from hpc_jobs.transports.base import CommandResult, TransportError

#: Seconds to wait for the pipes to close once a timed-out command's process group was killed.
_REAP_SECONDS = 5.0


class LocalTransport:
    """Runs each argv as a subprocess (no shell), output captured.

    Each command runs in a process group (session) of its own, so a command
    past its timeout is killed together with every process it started (a
    site wrapper's ``squeue``), not only the first one.

    ``env``: extra environment variables for every command (e.g. ``SLURM_CONF``).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(env) if env else None

    @observe_command
    def run(self, argv: Sequence[str], *, timeout: float = 30.0) -> CommandResult:
        env = {**os.environ, **self._env} if self._env else None
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise TransportError(f"command not found: {argv[0]}") from exc
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(process)
            raise TransportError(f"{argv[0]} did not answer within {timeout:g} s") from exc
        except BaseException:
            _kill_group(process)
            raise
        return CommandResult(
            argv=tuple(argv),
            returncode=process.returncode,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
        )


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the command's process group, then reap it (bounded: a process
    that left the group may still hold the pipes)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    try:
        process.communicate(timeout=_REAP_SECONDS)
    except subprocess.TimeoutExpired:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        process.wait()
