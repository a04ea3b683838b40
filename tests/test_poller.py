"""Judging packs: scheduler observations and progress lines become decisions."""

from __future__ import annotations

import json
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


def test_absence_proves_nothing_when_a_source_failed():
    verdict = _judge(None, complete=False, missing_since=None)
    assert not verdict.ended and verdict.missing_since is None


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
