"""The embedded executor: real batch scripts as local processes, Slurm's state names."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hpc_jobs.executors.base import ExecutorError
from hpc_jobs.executors.local import LocalExecutor
from hpc_jobs.workdir import SCRIPT_FILE, STDOUT_FILE


def _work_dir(root: Path, name: str, body: str) -> Path:
    path = root / name
    path.mkdir()
    (path / SCRIPT_FILE).write_text("#!/bin/bash\n" + body + "\n")
    return path


def _wait_state(executor, job_id, states, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        observation = executor.observe([job_id]).get(job_id)
        if observation and observation.state in states:
            return observation
        time.sleep(0.05)
    raise AssertionError(f"{job_id} never reached {states}: {observation}")


@pytest.fixture
def executor(tmp_path):
    return LocalExecutor(tmp_path / "registry", slots=1)


def test_a_script_that_exits_zero_completes(executor, tmp_path):
    job_id = executor.submit(_work_dir(tmp_path, "ok", "echo hello"), job_name="qcos-ok")
    assert job_id.startswith("local-")
    observation = _wait_state(executor, job_id, {"COMPLETED", "FAILED"})
    assert (observation.state, observation.exit_code) == ("COMPLETED", "0:0")
    assert (tmp_path / "ok" / STDOUT_FILE).read_text() == "hello\n"


def test_a_failing_script_reports_its_exit_status(executor, tmp_path):
    job_id = executor.submit(_work_dir(tmp_path, "bad", "exit 3"), job_name="qcos-bad")
    observation = _wait_state(executor, job_id, {"COMPLETED", "FAILED"})
    assert (observation.state, observation.exit_code) == ("FAILED", "3:0")


def test_jobs_wait_pending_for_a_free_slot_and_can_be_cancelled(executor, tmp_path):
    running = executor.submit(_work_dir(tmp_path, "long", "sleep 30"), job_name="qcos-long")
    _wait_state(executor, running, {"RUNNING"})
    waiting = executor.submit(_work_dir(tmp_path, "next", "echo next"), job_name="qcos-next")
    time.sleep(0.5)
    assert executor.observe([waiting])[waiting].state == "PENDING"

    executor.cancel([running])
    assert _wait_state(executor, running, {"CANCELLED"}).state == "CANCELLED"
    # The slot is free again: the waiting job runs to completion.
    assert _wait_state(executor, waiting, {"COMPLETED"}).state == "COMPLETED"


def test_a_job_cancelled_while_pending_never_runs(executor, tmp_path):
    blocker = executor.submit(_work_dir(tmp_path, "block", "sleep 2"), job_name="qcos-block")
    _wait_state(executor, blocker, {"RUNNING"})
    marker = tmp_path / "ran"
    victim = executor.submit(_work_dir(tmp_path, "victim", f"touch {marker}"), job_name="qcos-victim")
    executor.cancel([victim])
    _wait_state(executor, blocker, {"COMPLETED"})
    assert _wait_state(executor, victim, {"CANCELLED", "COMPLETED"}).state == "CANCELLED"
    time.sleep(0.3)
    assert not marker.exists()


def test_unknown_ids_are_absent_not_errors(executor):
    assert executor.observe(["local-0123abcd", "1234", "../../etc"]) == {}


def test_ping_is_false_when_the_registry_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert LocalExecutor(tmp_path / "registry").ping() is True
    assert LocalExecutor(blocker / "registry").ping() is False
    with pytest.raises(ExecutorError):
        LocalExecutor(blocker / "registry").submit(tmp_path, job_name="qcos-x")



def test_a_free_slot_is_used_while_another_job_runs(tmp_path):
    executor = LocalExecutor(tmp_path / "registry", slots=2)
    long = executor.submit(_work_dir(tmp_path, "long", "sleep 20"), job_name="qcos-long")
    _wait_state(executor, long, {"RUNNING"})
    quick = [executor.submit(_work_dir(tmp_path, f"quick{i}", "true"), job_name=f"qcos-quick{i}") for i in range(4)]
    for job_id in quick:
        assert _wait_state(executor, job_id, {"COMPLETED"}, timeout=15).state == "COMPLETED"
    assert executor.observe([long])[long].state == "RUNNING"
    executor.cancel([long])


def test_the_partition_is_this_machine_with_its_cpus_and_memory(tmp_path):
    import os

    (row,) = LocalExecutor(tmp_path / "registry", slots=2).partitions()
    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1 << 20)
    assert (row.partition, row.cpus, row.memory_mb, row.state) == ("local", "2", str(total_mb), "idle")
