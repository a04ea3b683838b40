"""Fixtures for tests that need the real dev Slurm cluster (``make slurm-up``).

Imported by ``tests/conftest.py`` so any test module can ask for
``slurm_cluster``. Tests using it should carry ``@pytest.mark.slurm``.
"""

from __future__ import annotations

import pytest

from hpc_jobs.slurm.commands import ScontrolPing
from hpc_jobs.transports.base import TransportError
from hpc_jobs.transports.local import LocalTransport
from tests.components import missing

__all__ = ["slurm_cluster"]


@pytest.fixture(scope="session")
def slurm_cluster() -> LocalTransport:
    """A :class:`LocalTransport` to the running dev cluster.

    Skips the test when ``scontrol ping`` does not report a controller UP;
    fails it instead when ``CI=true``, where the cluster must be there.
    """
    transport = LocalTransport()
    command = ScontrolPing()
    try:
        result = transport.run(command.argv(), timeout=10.0)
        up = command.parse(result)
        detail = (result.stdout + result.stderr).strip().splitlines()[:1]
    except TransportError as exc:
        up, detail = False, [str(exc)]
    if not up:
        message = f"no Slurm controller answers scontrol ping ({'; '.join(detail) or 'no output'}); run `make slurm-up`"
        missing("Slurm", message)
    return transport
