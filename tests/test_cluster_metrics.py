"""Slurm command and SSH metrics, recorded where commands run (hpc_jobs.metrics)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client import REGISTRY

from hpc_jobs.transports.base import TransportError
from hpc_jobs.transports.local import LocalTransport


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def fake_slurm(tmp_path):
    """A PATH holding a ``squeue`` that fails, an ``sinfo`` that hangs and an ``sprio`` that works."""
    programs = {"squeue": "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
                "sinfo": "exec /bin/sleep 5", "sprio": "echo ok"}
    for name, body in programs.items():
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return LocalTransport(env={"PATH": str(tmp_path)})


def test_each_command_is_counted_and_timed_under_its_program_name(fake_slurm):
    before = (_value("qcos_slurm_commands_total", command="sprio"),
              _value("qcos_slurm_command_duration_seconds_count", command="sprio"),
              _value("qcos_slurm_command_errors_total", command="sprio", kind="exit_status"))
    assert fake_slurm.run(["sprio", "--long"]).stdout == "ok\n"
    after = (_value("qcos_slurm_commands_total", command="sprio"),
             _value("qcos_slurm_command_duration_seconds_count", command="sprio"),
             _value("qcos_slurm_command_errors_total", command="sprio", kind="exit_status"))
    assert [b - a for a, b in zip(before, after)] == [1, 1, 0]


def test_a_non_zero_exit_is_an_exit_status_error(fake_slurm):
    before = _value("qcos_slurm_command_errors_total", command="squeue", kind="exit_status")
    assert fake_slurm.run(["squeue", "-j", "1"]).returncode == 1
    assert _value("qcos_slurm_command_errors_total", command="squeue", kind="exit_status") - before == 1


def test_a_command_that_cannot_run_or_overruns_is_a_transport_error(fake_slurm):
    before = {name: _value("qcos_slurm_command_errors_total", command=name, kind="transport")
              for name in ("sinfo", "scancel")}
    with pytest.raises(TransportError):
        fake_slurm.run(["sinfo"], timeout=0.2)
    with pytest.raises(TransportError):
        fake_slurm.run(["scancel", "1"])  # not on this PATH
    assert {name: _value("qcos_slurm_command_errors_total", command=name, kind="transport") - before[name]
            for name in before} == {"sinfo": 1, "scancel": 1}


def test_programs_that_are_not_slurm_commands_share_one_label():
    before = _value("qcos_slurm_commands_total", command="other")
    LocalTransport().run(["/bin/true"])
    LocalTransport().run(["env"])
    assert _value("qcos_slurm_commands_total", command="other") - before == 2
    assert REGISTRY.get_sample_value("qcos_slurm_commands_total", {"command": "/bin/true"}) is None


def test_the_runner_and_the_cluster_side_stay_free_of_what_they_must_not_import():
    """The runner runs in a slim container: no prometheus_client, Flask or SQLAlchemy.
    hpc_jobs as a whole never imports the gateway or Flask."""
    code = ("import sys, hpc_jobs.runner; bad = {'prometheus_client', 'flask', 'sqlalchemy', 'gateway'} & "
            "{m.split('.')[0] for m in sys.modules}; assert not bad, bad; "
            "import hpc_jobs.metrics, hpc_jobs.accounting, hpc_jobs.poller, hpc_jobs.executors.slurm, "
            "hpc_jobs.transports.ssh; bad = {'flask', 'gateway'} & {m.split('.')[0] for m in sys.modules}; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
