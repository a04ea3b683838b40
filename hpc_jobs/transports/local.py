"""Run commands on this machine as subprocesses."""

from __future__ import annotations

import subprocess
from typing import Mapping, Sequence

from hpc_jobs.metrics import observe_command
from hpc_jobs.transports.base import CommandResult, TransportError


class LocalTransport:
    """Runs each argv with :func:`subprocess.run` (no shell), output captured.

    ``env``: extra environment variables for every command (e.g. ``SLURM_CONF``).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(env) if env else None

    @observe_command
    def run(self, argv: Sequence[str], *, timeout: float = 30.0) -> CommandResult:
        import os

        env = {**os.environ, **self._env} if self._env else None
        try:
            completed = subprocess.run(
                list(argv),
                capture_output=True,
                timeout=timeout,
                env=env,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise TransportError(f"command not found: {argv[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"{argv[0]} did not answer within {timeout:g} s") from exc
        return CommandResult(
            argv=tuple(argv),
            returncode=completed.returncode,
            stdout=completed.stdout.decode("utf-8", "replace"),
            stderr=completed.stderr.decode("utf-8", "replace"),
        )
