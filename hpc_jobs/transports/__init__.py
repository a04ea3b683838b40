"""Transports run a Slurm command's argv somewhere: here, or on a login node.

A transport knows nothing about Slurm; the commands in :mod:`hpc_jobs.slurm`
know nothing about where they run.
"""

from hpc_jobs.transports.base import CommandResult, Transport, TransportError
from hpc_jobs.transports.local import LocalTransport

__all__ = ["CommandResult", "LocalTransport", "SSHTransport", "Transport", "TransportError"]


def __getattr__(name: str):
    # paramiko costs ~0.2 s to import; only SSH deployments should pay it.
    if name == "SSHTransport":
        from hpc_jobs.transports.ssh import SSHTransport

        return SSHTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
