"""Poll cycles: scheduler observations become statuses, results, and reasons."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.models import utcnow
from hpc_jobs.executors.base import JobObservation
from hpc_jobs.executors.local import LocalExecutor
from hpc_jobs.lifecycle import JobStatus
from hpc_jobs.poller import LiveJob, poll_cycle
from hpc_jobs.workdir import ERROR_FILE, RESULT_FILE, SCRIPT_FILE


def _finished_job(executor, root: Path, name: str, script: str, *, shots=10, files=None) -> LiveJob:
    work_dir = root / name
    work_dir.mkdir()
    (work_dir / SCRIPT_FILE).write_text("#!/bin/bash\n" + script + "\n")
    for file_name, content in (files or {}).items():
        (work_dir / file_name).write_text(content)
    job_id = executor.submit(work_dir, job_name=f"qcos-{name}")
    deadline = time.monotonic() + 20
    while executor.observe([job_id])[job_id].state not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return LiveJob(name, job_id, JobStatus.PROCESSING, work_dir, shots, utcnow())


@pytest.fixture
def executor(tmp_path):
    return LocalExecutor(tmp_path / "registry")


def _cycle(executor, jobs, grace=60.0, now=None):
    return {u.job_id: u for u in poll_cycle(executor, jobs, now=now or utcnow(), missing_grace_seconds=grace)}


def test_completed_job_brings_its_result(executor, tmp_path):
    result = {"counts": {"0": 4, "1": 6}, "num_qubits": 1, "shots": 10}
    job = _finished_job(executor, tmp_path, "good", "true", files={RESULT_FILE: json.dumps(result)})
    update = _cycle(executor, [job])["good"]
    assert update.status is JobStatus.COMPLETED and update.result == result and update.seen


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({}, "without writing a result"),
        ({RESULT_FILE: "{broken"}, "unreadable result"),
        ({RESULT_FILE: json.dumps({"counts": {}})}, "without counts"),
        ({RESULT_FILE: json.dumps({"counts": {"0": 3}})}, "sum to 3, not to the 10 shots"),
    ],
)
def test_exit_zero_without_a_valid_result_is_a_failure(executor, tmp_path, files, reason):
    job = _finished_job(executor, tmp_path, "hollow", "true", files=files)
    update = _cycle(executor, [job])["hollow"]
    assert update.status is JobStatus.FAILED and reason in update.error and update.result is None


def test_failed_job_gets_the_runners_reason(executor, tmp_path):
    job = _finished_job(executor, tmp_path, "err", "exit 1",
                        files={ERROR_FILE: json.dumps({"error": "simulation failed: Insufficient memory"})})
    assert _cycle(executor, [job])["err"].error == "simulation failed: Insufficient memory"


def test_failed_job_without_runner_reason_says_exit_code_and_last_stderr_line(executor, tmp_path):
    job = _finished_job(executor, tmp_path, "crash", "echo first >&2; echo 'module not found' >&2; exit 7")
    error = _cycle(executor, [job])["crash"].error
    assert "exit code 7:0" in error and "module not found" in error and "first" not in error


def test_missing_job_keeps_its_status_during_the_grace_period_then_fails(executor, tmp_path):
    lost = LiveJob("lost", "local-00000000", JobStatus.QUEUED, tmp_path, 10, utcnow() - timedelta(seconds=30))
    early = _cycle(executor, [lost], grace=60)["lost"]
    assert early.status is JobStatus.QUEUED and not early.seen and early.error is None
    late = _cycle(executor, [lost], grace=10)["lost"]
    assert late.status is JobStatus.FAILED and "neither squeue nor sacct" in late.error


def test_one_observe_call_for_all_jobs(executor, tmp_path, mocker):
    spy = mocker.spy(executor, "observe")
    jobs = [LiveJob(f"j{i}", f"local-{i:08x}", JobStatus.QUEUED, tmp_path, 1, utcnow()) for i in range(50)]
    _cycle(executor, jobs)
    assert spy.call_count == 1 and len(spy.call_args.args[0]) == 50


def test_no_jobs_no_scheduler_call(executor, mocker):
    spy = mocker.spy(executor, "observe")
    assert poll_cycle(executor, [], now=utcnow(), missing_grace_seconds=1) == []
    assert spy.call_count == 0


class _ReportsState:
    """Stands in for a scheduler state that the local cluster cannot produce."""

    name = "stub"

    def __init__(self, state):
        self.state = state

    def observe(self, ids):
        return {i: JobObservation(i, self.state) for i in ids}


@pytest.mark.parametrize(
    ("current", "state", "expected"),
    [
        (JobStatus.QUEUED, "RUNNING", JobStatus.PROCESSING),
        (JobStatus.PROCESSING, "REQUEUED", JobStatus.QUEUED),
        (JobStatus.PROCESSING, "SUSPENDED", JobStatus.PROCESSING),
        (JobStatus.QUEUED, "A_STATE_FROM_THE_FUTURE", JobStatus.QUEUED),
        (JobStatus.PROCESSING, "PREEMPTED", JobStatus.FAILED),
    ],
)
def test_states_move_jobs_through_the_lifecycle_table(tmp_path, current, state, expected):
    job = LiveJob("j", "1", current, tmp_path, 1, utcnow())
    update = poll_cycle(_ReportsState(state), [job], now=utcnow(), missing_grace_seconds=1)[0]
    assert update.status is expected and update.slurm_state == state
