"""Transports run a Slurm command's argv somewhere: here, or on a login node.

A transport knows nothing about Slurm; the commands in :mod:`hpc_jobs.slurm`
know nothing about where they run.
"""

from hpc_jobs.transports.base import CommandResult, Transport, TransportError
from hpc_jobs.transports.local import LocalTransport

__all__ = ["CommandResult", "LocalTransport", "Transport", "TransportError"]
