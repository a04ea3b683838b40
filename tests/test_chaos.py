"""The fault-injection suite (tests/chaos.py): its accounting, and its short
run on the real components, which must lose, duplicate and strand nothing."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos import Answers, HealthSample, Outcome, Settled, count, degraded_reported, runs_by_job
from tests.components import missing

REPO_ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^chaos: (\d+) trials, (\d+) lost, (\d+) duplicated, (\d+) stuck, (\d+) unexpected 5xx$")


def _settled(**overrides) -> Settled:
    values = dict(rows={}, live_packs=[], runs={}, slurm_jobs={}, orphans=[], waited=0.0)
    values.update(overrides)
    return Settled(**values)


def _progress(work_root: Path, pack_id: str, *records: dict) -> None:
    folder = work_root / "_packs" / pack_id
    folder.mkdir(parents=True)
    (folder / "progress.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_job_reported_by_two_packs_ran_twice(tmp_path):
    _progress(tmp_path, "pack-a", {"event": "started"}, {"job_id": "j1", "outcome": "completed", "result": {}},
              {"job_id": "j2", "outcome": "skipped"})
    _progress(tmp_path, "pack-b", {"job_id": "j1", "outcome": "failed", "error": "x"},
              {"job_id": "j2", "outcome": "completed", "result": {}}, {"event": "finished"})
    runs = runs_by_job(tmp_path)
    assert runs == {"j1": {"pack-a", "pack-b"}, "j2": {"pack-b"}}
    outcome = count(Outcome("t"), _settled(rows={"j1": ("completed", None, None), "j2": ("completed", None, None)},
                                           runs=runs), ["j1", "j2"])
    assert (outcome.completed, outcome.duplicated) == (2, 1)
    assert not outcome.clean


def test_missing_failed_and_live_jobs_are_lost_or_stuck():
    rows = {"ok": ("completed", None, None), "bad": ("failed", "lost track", None), "wait": ("queued", None, None)}
    outcome = count(Outcome("t"), _settled(rows=rows), ["ok", "bad", "wait", "gone"])
    assert (outcome.accepted, outcome.completed, outcome.lost, outcome.stuck) == (4, 1, 2, 1)
    assert any("lost track" in e for e in outcome.examples)


def test_slurm_side_findings_count_once_per_settling():
    settled = _settled(slurm_jobs={"qcos-pack-1": {"7", "9"}, "qcos-pack-2": {"8"}}, live_packs=["pack-3"],
                       orphans=["qcos-pack-4 (10)"])
    first = count(Outcome("t"), settled, [])
    assert (first.duplicated, first.stuck, first.orphans) == (1, 1, 1)
    later = count(Outcome("t"), settled, [], shared=False)
    assert later.clean


def test_unexpected_answers_and_refusals_fail_a_trial():
    answers = Answers(unexpected=["POST /execute 500 ..."], cut=3)
    outcome = count(Outcome("t"), _settled(), [], answers)
    assert outcome.unexpected == 1 and not outcome.clean
    refused = count(Outcome("t"), _settled(), [], Answers(refused=["POST /execute 429 ..."]))
    assert refused.checks == {"every circuit accepted": False} and not refused.clean
    assert count(Outcome("t"), _settled(), [], Answers(cut=2, expected_503=4)).clean


class _Probe:
    def __init__(self, *samples: tuple[float, tuple[str, ...] | None]) -> None:
        self.samples = [HealthSample(at, 200 if degraded is not None else None, True, degraded)
                        for at, degraded in samples]

    def between(self, start, end):
        return [s for s in self.samples if start <= s.at <= end]


@pytest.mark.parametrize(("samples", "held"), [
    # Named 3 s after the stop, kept until the restart (at 10), dropped 1 s after it is back (at 12).
    ([(1, ()), (3, ("accounting",)), (6, ("accounting",)), (12, ("accounting",)), (13, ()), (15, ())], True),
    ([(1, ()), (6, ("accounting",)), (9, ("accounting",)), (13, ())], False),  # too late
    ([(3, ("accounting",)), (5, ()), (7, ("accounting",)), (13, ())], False),  # lost it meanwhile
    ([(3, ("accounting",)), (13, ()), (14, ("accounting",))], False),  # back again after recovery
    ([(3, ("accounting",)), (13, ("accounting",))], False),  # never cleared
    ([(3, ("accounting",)), (4, None), (13, ())], True),  # no answer (a 503) is neither
])
def test_degraded_is_reported_in_time_held_and_cleared(samples, held):
    reported, notes = degraded_reported(_Probe(*samples), "accounting", stopped=0, restarting=10, back=12, within=5)
    assert reported is held, notes


def _prerequisites() -> list[str]:
    lacking = []
    if os.getuid() != 0:
        lacking.append("root")
    for program in ("slurmctld", "slurmdbd", "slurmd", "munge", "mysql", "redis-server", "runuser"):
        if not shutil.which(program):
            lacking.append(program)
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        lacking.append("PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    if not os.access("/usr/sbin/sshd", os.X_OK):
        lacking.append("sshd")
    return lacking


@pytest.mark.slurm
@pytest.mark.e2e
def test_short_fault_injection_run_loses_nothing():
    """``python -m tests.chaos --short``: every trial on a private Slurm
    cluster, PostgreSQL, Redis and sshd; nothing lost, run twice, stuck,
    orphaned or answered with an unexpected 5xx."""
    lacking = _prerequisites()
    if lacking:
        missing("fault-injection components", "needs " + ", ".join(lacking))
    done = subprocess.run([sys.executable, "-m", "tests.chaos", "--short"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=900)
    report = done.stdout + done.stderr[-3000:]
    print(report)  # the trial lines, for -rP and for failures
    if done.returncode == 2:
        missing("fault-injection components", report.strip().splitlines()[-1] if report.strip() else "no output")
    lines = done.stdout.strip().splitlines()
    summary = SUMMARY.match(lines[-1]) if lines else None
    assert summary, report
    trials, lost, duplicated, stuck, unexpected = map(int, summary.groups())
    assert trials >= 16, report
    assert (lost, duplicated, stuck, unexpected) == (0, 0, 0, 0), report
    assert done.returncode == 0, report
