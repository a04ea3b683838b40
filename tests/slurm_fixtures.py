"""Fixtures for tests that need the real dev Slurm cluster (``make slurm-up``).

Imported by ``tests/conftest.py`` so any test module can ask for
``slurm_cluster``. Tests using it should carry ``@pytest.mark.slurm``.
"""

from __future__ import annotations

import subprocess

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


def slurm_states(scheduler_job_ids: list[str], *, timeout: float = 30.0) -> dict[str, str]:
    """Slurm's own final word on batch jobs (``sacct -X``), e.g. ``{"812":
    "TIMEOUT", "813": "CANCELLED by 0"}``. Waits up to ``timeout`` seconds for
    slurmdbd to list every one of them as ended; fails the test otherwise."""
    from tests.stack import wait_until

    def ask():
        out = subprocess.run(["sacct", "-X", "-P", "--noheader", "--format=JobIDRaw,State",
                              "-j", ",".join(scheduler_job_ids)], capture_output=True, text=True, timeout=30).stdout
        states = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
        ended = all(states.get(i, "PENDING").split()[0] not in ("PENDING", "RUNNING", "COMPLETING", "SUSPENDED")
                    for i in scheduler_job_ids)
        return states if ended else None

    return wait_until(ask, timeout=timeout, what=f"sacct final states of {scheduler_job_ids}", pause=1)


def scancel_unended_packs(records) -> None:
    """scancel the Slurm jobs of a stack's packs that have not ended
    (:class:`tests.stack.Records`), so a failed test leaves the node free."""
    import sqlalchemy

    try:
        alive = [p.scheduler_job_id for p in records.packs() if p.scheduler_job_id and p.state != "ended"]
    except sqlalchemy.exc.SQLAlchemyError:  # the stack never created its tables
        return
    if alive:
        subprocess.run(["scancel", *alive], capture_output=True, timeout=30)
