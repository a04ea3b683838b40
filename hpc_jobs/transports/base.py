"""The transport boundary: run an argv list, get exit status and output back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


class TransportError(RuntimeError):
    """The command could not be run at all (missing binary, timeout, lost connection).

    A command that ran and exited non-zero is *not* a transport error: it
    comes back as a :class:`CommandResult` for the command's parser to judge.
    """


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one command: ``returncode`` and decoded ``stdout``/``stderr`` text."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Transport(Protocol):
    """Runs argv lists; never a shell string."""

    def run(self, argv: Sequence[str], *, timeout: float = 30.0) -> CommandResult:
        """Run ``argv``; ``timeout`` in seconds. Raises :class:`TransportError`."""
        ...
