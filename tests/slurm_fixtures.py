"""Fixtures for tests that need the real dev Slurm cluster (``make slurm-up``).

Imported by ``tests/conftest.py`` so any test module can ask for
``slurm_cluster``. Tests using it should carry ``@pytest.mark.slurm``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from hpc_jobs.slurm.commands import ScontrolPing
from hpc_jobs.transports.base import TransportError
from hpc_jobs.transports.local import LocalTransport
from tests.components import missing

__all__ = ["AccountingOutage", "slurm_cluster"]


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


class AccountingOutage:
    """A transport to the dev cluster whose ``sacct``, while ``down`` is
    set, cannot reach slurmdbd, as when slurmdbd is stopped; every other
    command (squeue, sbatch, scancel) reaches slurmctld as usual.

    The outage is real from sacct's side without stopping the shared
    slurmdbd: sacct runs with a copy of slurm.conf (in ``folder``) whose
    ``AccountingStoragePort`` is 1, where nothing listens, and fails with
    slurmdbd-down's own "Connection refused". ``sacct_calls`` counts the
    sacct commands run, up or down.
    """

    def __init__(self, folder: Path) -> None:
        conf = Path(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf").read_text()
        conf, found = re.subn(r"(?mi)^AccountingStoragePort=.*$", "AccountingStoragePort=1", conf)
        if not found:
            conf += "\nAccountingStoragePort=1\n"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "slurm.conf").write_text(conf)
        self._up = LocalTransport()
        self._down = LocalTransport(env={"SLURM_CONF": str(folder / "slurm.conf")})
        self.down = False
        self.sacct_calls = 0

    def run(self, argv, *, timeout: float = 30.0):
        if argv[0] == "sacct":
            self.sacct_calls += 1
            if self.down:
                return self._down.run(argv, timeout=timeout)
        return self._up.run(argv, timeout=timeout)


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
