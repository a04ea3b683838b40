"""The installed ``qcos-client`` command against a live gateway, as a
researcher runs it from the shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import BELL, BROKEN, GHZ3

pytestmark = pytest.mark.live

COMMAND = Path(sys.executable).parent / "qcos-client"


@pytest.fixture
def run(gateway):
    env = {**os.environ, "QCOS_URL": gateway.url, "QCOS_API_KEY": gateway.api_key}

    def run(*args: str, key: str | None = None) -> subprocess.CompletedProcess:
        call_env = env if key is None else {**env, "QCOS_API_KEY": key}
        return subprocess.run([str(COMMAND), *args], env=call_env, capture_output=True, text=True, timeout=300)

    return run


@pytest.fixture
def circuits(tmp_path) -> Path:
    folder = tmp_path / "circuits"
    folder.mkdir()
    (folder / "bell.qasm").write_text(BELL)
    (folder / "ghz.qasm").write_text(GHZ3)
    return folder


def test_submit_one_file_waits_and_prints_the_counts(run, circuits):
    done = run("submit", str(circuits / "bell.qasm"), "--shots", "500")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "bell.qasm  job " in lines[0] and lines[0].endswith("completed, 500 shots")
    assert lines[1].split() == ["outcome", "count", "probability"]
    rows = [line.split() for line in lines[2:]]
    assert {row[0] for row in rows} <= {"00", "11"} and sum(int(row[1]) for row in rows) == 500


def test_submit_json_then_status_results_list_and_cancel(run, circuits):
    submitted = run("submit", str(circuits / "ghz.qasm"), "--no-wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)[0]["job_id"]

    results = run("results", job_id, "--json", "--timeout", "120")
    assert results.returncode == 0, results.stderr
    [row] = json.loads(results.stdout)
    assert row["status"] == "completed" and set(row["counts"]) <= {"000", "111"}

    status = run("status", job_id)
    assert status.returncode == 0 and job_id in status.stdout and "completed" in status.stdout

    listed = run("list", "--json", "--limit", "5")
    assert listed.returncode == 0 and job_id in [job["job_id"] for job in json.loads(listed.stdout)["jobs"]]

    cancelled = run("cancel", job_id, "--json")  # a finished job is answered unchanged
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)[0]["status"] == "completed"


def test_a_cancelled_job_is_reported_failed_with_exit_1(run, circuits):
    job_id = json.loads(run("submit", str(circuits / "bell.qasm"), "--no-wait", "--json").stdout)[0]["job_id"]
    assert run("cancel", job_id).returncode == 0
    results = run("results", job_id)
    assert results.returncode == 1 and "failed: cancelled by the user" in results.stdout


def test_an_invalid_file_is_one_line_with_its_name_and_position(run, circuits):
    (circuits / "broken.qasm").write_text(BROKEN)
    done = run("submit", str(circuits / "broken.qasm"))
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"qcos-client: CIRCUIT_INVALID: {circuits / 'broken.qasm'}: ")
    assert "line 4, column 1" in line


def test_a_wrong_key_is_one_line(run):
    done = run("me", key="qcos_wrong")
    assert done.returncode == 1 and done.stderr.startswith("qcos-client: AUTH_INVALID: ")
    assert len(done.stderr.splitlines()) == 1


def test_account_commands(run):
    assert "tier:" in run("me").stdout
    assert json.loads(run("usage", "--json").stdout)["period"]
    pricing = run("pricing")
    assert pricing.returncode == 0 and pricing.stdout.split()[:2] == ["name", "price_monthly"]
    health = run("health", "--json")
    assert health.returncode == 0 and json.loads(health.stdout)["status"] in ("healthy", "degraded")


@pytest.mark.usefixtures("batches")
def test_submit_a_directory_as_one_batch(run, circuits):
    done = run("submit", str(circuits), "--json", "--shots", "100")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [Path(row["file"]).name for row in rows] == ["bell.qasm", "ghz.qasm"]
    assert set(rows[0]["counts"]) <= {"00", "11"} and set(rows[1]["counts"]) <= {"000", "111"}
    assert all(sum(row["counts"].values()) == 100 for row in rows)


@pytest.mark.usefixtures("batches")
def test_a_batch_with_an_invalid_file_names_that_file(run, circuits):
    (circuits / "broken.qasm").write_text(BROKEN)
    done = run("submit", str(circuits))
    assert done.returncode == 1
    assert done.stderr.startswith(f"qcos-client: CIRCUIT_INVALID: {circuits / 'broken.qasm'}: ")
