"""Judging packs: scheduler observations and progress lines become decisions;
and the poller's record of accounting health, on the dev cluster."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from gateway.models import utcnow
from hpc_jobs.executors.base import JobObservation
from hpc_jobs.lifecycle import JobStatus
from hpc_jobs.poller import checked_result, judge_pack, outcome_from_files, read_progress
from hpc_jobs.workdir import append_line, complete_lines

NOW = utcnow()


def _judge(observation, *, complete=True, finished=False, started=False, missing_since=None, unknown_since=None,
           now=NOW, grace=60.0, unknown_grace=600.0):
    return judge_pack(observation, complete=complete, finished=finished, started=started,
                      missing_since=missing_since, unknown_since=unknown_since, now=now, missing_grace=grace,
                      unknown_grace=unknown_grace)


def _seen(state, **extra):
    return JobObservation("42", state, **extra)


def test_pending_pack_waits_and_running_pack_runs():
    assert not _judge(_seen("PENDING")).running and not _judge(_seen("PENDING")).ended
    assert _judge(_seen("RUNNING")).running


def test_completed_pack_ends_cleanly_and_failed_pack_says_why():
    assert _judge(_seen("COMPLETED")) .ended and _judge(_seen("COMPLETED")).reason is None
    verdict = _judge(_seen("TIMEOUT", exit_code="0:15"))
    assert verdict.ended and "time limit" in verdict.reason and "0:15" in verdict.reason


def test_a_missing_pack_is_given_up_only_after_the_grace_period():
    first = _judge(None)
    assert not first.ended and first.missing_since == NOW
    later = _judge(None, missing_since=NOW - timedelta(seconds=61))
    assert later.ended and "neither squeue nor sacct" in later.reason


def test_a_pack_gone_from_squeue_is_given_up_even_while_sacct_fails():
    # squeue answered without it: it is not live, whatever slurmdbd says (or cannot say).
    first = _judge(None, complete=False, missing_since=None)
    assert not first.ended and first.missing_since == NOW
    later = _judge(None, complete=False, missing_since=NOW - timedelta(seconds=61))
    assert later.ended and "accounting (sacct) could not say" in later.reason


def test_a_finished_runner_ends_the_pack_even_when_the_scheduler_cannot_tell():
    assert _judge(None, complete=False, finished=True).ended


def test_an_unknown_state_is_logged_once_and_ends_the_pack_after_its_grace():
    first = _judge(_seen("WEIRD_NEW_STATE"))
    assert not first.ended and first.unknown_state == "WEIRD_NEW_STATE" and first.unknown_since == NOW
    again = _judge(_seen("WEIRD_NEW_STATE"), unknown_since=NOW - timedelta(seconds=10))
    assert not again.ended and again.unknown_state is None
    late = _judge(_seen("WEIRD_NEW_STATE"), unknown_since=NOW - timedelta(seconds=601))
    assert late.ended and "unknown to QCOS" in late.reason


def test_a_pack_seen_again_clears_its_missing_timer():
    assert _judge(_seen("RUNNING"), missing_since=NOW - timedelta(seconds=5)).missing_since is None


def test_progress_lines_give_outcomes_in_order(tmp_path):
    progress = tmp_path / "progress.jsonl"
    append_line(progress, {"event": "started"})
    append_line(progress, {"job_id": "a", "outcome": "completed", "result": {"counts": {"0": 3}}})
    append_line(progress, {"job_id": "b", "outcome": "failed", "error": "bad gate"})
    append_line(progress, {"job_id": "c", "outcome": "skipped"})
    data = progress.read_bytes() + b'{"job_id": "d", "outc'  # a line still being written
    records, consumed = complete_lines(data)
    assert consumed == len(progress.read_bytes())
    parsed = read_progress(records)
    assert parsed.started and not parsed.finished
    assert [(o.job_id, o.status, o.skipped) for o in parsed.outcomes] == [
        ("a", JobStatus.COMPLETED, False), ("b", JobStatus.FAILED, False), ("c", JobStatus.FAILED, True)]
    assert parsed.outcomes[1].error == "bad gate"


@pytest.mark.parametrize("counts, problem", [
    ({"00": 6, "11": 4}, None),
    ({"00": 6}, "sum to 6, not to the 10"),
    ({}, "without counts"),
])
def test_results_are_checked_against_the_shots(counts, problem):
    got = checked_result({"counts": counts}, 10)
    assert got == problem if problem is None else problem in got


def test_outcome_files_are_the_fallback_for_a_job_without_a_progress_line():
    assert outcome_from_files("a", json.dumps({"counts": {"0": 1}}), None).status is JobStatus.COMPLETED
    failed = outcome_from_files("b", None, json.dumps({"error": "circuit.qasm is missing"}))
    assert failed.status is JobStatus.FAILED and "circuit.qasm" in failed.error
    assert outcome_from_files("c", None, None) is None
    assert outcome_from_files("d", "{not json", None).status is JobStatus.FAILED


# ------------------------------------------------------------------ accounting health, on the dev cluster


@pytest.mark.slurm
def test_the_poller_records_accounting_down_then_up_while_squeue_keeps_driving_packs(slurm_cluster, tmp_path):
    """sacct failing as with slurmdbd stopped (:class:`tests.slurm_fixtures.AccountingOutage`):
    each observing cycle records ``accounting_connected`` false, with at most one
    sacct call, while squeue's states still move the pack and its job to
    completion; once sacct answers again the next cycle records true."""
    from sqlalchemy import select

    from gateway import create_app
    from gateway.config import Settings
    from gateway.migrations import upgrade_database
    from gateway.models import Job, Pack, QueueModel
    from gateway.poller import service_cycle
    from hpc_jobs.executors.slurm import SlurmExecutor
    from tests.conftest import make_user
    from tests.helpers import shot_by_shot_circuit
    from tests.slurm_fixtures import AccountingOutage

    database_url = f"sqlite:///{tmp_path / 'qcos.db'}"
    upgrade_database(database_url)
    settings = Settings.from_env({"QCOS_STATE_DIR": str(tmp_path / "state"), "QCOS_EXECUTOR": "slurm",
                                  "QCOS_DATABASE_URL": database_url})
    settings.prepare_dirs()
    app = create_app({"QCOS_SETTINGS": settings})
    runtime = app.extensions["qcos"]
    transport = AccountingOutage(tmp_path / "outage")
    runtime.executor = SlurmExecutor(transport, timeout=settings.slurm_command_timeout_seconds)

    def accounting_connected():
        with runtime.db.session() as session:
            return session.get(QueueModel, "slurm").accounting_connected

    def one_cycle():
        before = transport.sacct_calls
        service_cycle(runtime)
        assert transport.sacct_calls - before <= 1  # one check per observation, whatever the packs
        with runtime.db.session() as session:
            pack = session.scalar(select(Pack))
            job = session.scalar(select(Job))
        return pack, job

    try:
        key = make_user(runtime, tier="enterprise")[1]
        transport.down = True
        one_cycle()
        assert accounting_connected() is False  # nothing live: the cheap check found it
        created = app.test_client().post("/execute", json={"qasm": shot_by_shot_circuit(), "shots": 300},
                                         headers={"X-API-Key": key})
        assert created.status_code == 201, created.get_data(as_text=True)
        seen_states, deadline = set(), time.monotonic() + 120
        while True:
            pack, job = one_cycle()
            if pack is not None and pack.slurm_state:
                seen_states.add(pack.slurm_state)
            assert accounting_connected() is False
            if job.status in ("completed", "failed"):
                break
            assert time.monotonic() < deadline, (job.status, pack and pack.state, seen_states)
            time.sleep(0.3)
        # squeue alone (sacct down) moved the pack: its states were recorded and the job completed.
        assert job.status == "completed", job.error
        assert seen_states & {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING"}, seen_states
        transport.down = False
        one_cycle()
        assert accounting_connected() is True
    finally:
        with runtime.db.session() as session:
            alive = [p.scheduler_job_id for p in session.scalars(select(Pack))
                     if p.scheduler_job_id and p.state != "ended"]
        if alive:
            runtime.executor.cancel(alive)
        runtime.close()
