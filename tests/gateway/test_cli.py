"""The qcos command: users and the schema."""

from __future__ import annotations

import re

from click.testing import CliRunner

from gateway.cli import main


def _invoke(args, tmp_path, database_url):
    env = {"QCOS_STATE_DIR": str(tmp_path / "state"), "QCOS_DATABASE_URL": database_url}
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_users_create_prints_a_working_key_once(tmp_path, database_url, app):
    result = _invoke(["users", "create", "--email", "ada@example.org", "--tier", "enterprise"], tmp_path,
                     database_url)
    assert result.exit_code == 0
    key = re.search(r"api_key: (qcos_\S+)", result.output).group(1)
    response = app.test_client().get("/status/none", headers={"X-API-Key": key})
    assert response.get_json()["error_code"] == "JOB_NOT_FOUND"


def test_users_create_refuses_unknown_tier_and_duplicate_email(tmp_path, database_url):
    assert _invoke(["users", "create", "--email", "a@b.c", "--tier", "platinum"], tmp_path, database_url).exit_code == 1
    assert _invoke(["users", "create", "--email", "a@b.c"], tmp_path, database_url).exit_code == 0
    duplicate = _invoke(["users", "create", "--email", "a@b.c"], tmp_path, database_url)
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output


def test_ensure_demo_creates_one_user_only_once(tmp_path, database_url):
    first = _invoke(["users", "ensure-demo"], tmp_path, database_url)
    assert "QCOS_API_KEY=qcos_" in first.output
    second = _invoke(["users", "ensure-demo"], tmp_path, database_url)
    assert "qcos_" not in second.output


def test_usage_export_matches_user_usage_for_every_user(tmp_path, database_url, app):
    import csv
    import io
    from datetime import datetime, timezone

    from gateway.models import Job
    from tests.conftest import BELL, make_user

    runtime = app.extensions["qcos"]
    ada, ada_key = make_user(runtime, email="=ada@example.org")   # a formula-looking cell
    bob, bob_key = make_user(runtime, email="bob@example.org", tier="free")
    idle, idle_key = make_user(runtime, email="idle@example.org")
    done = [(ada, "2024-01-31T23:59:59", 0.1, 5), (ada, "2024-01-02T10:00:00", 3600.5, 12),
            (bob, "2024-01-15T00:00:00", None, 3), (bob, "2024-02-01T00:00:00", 99.0, 7),
            (idle, "2023-12-31T23:59:59", 10.0, 2)]
    with runtime.db.transaction() as session:
        for index, (owner, completed, seconds, qubits) in enumerate(done):
            moment = datetime.fromisoformat(completed).replace(tzinfo=timezone.utc)
            session.add(Job(id=f"usage-{index}", user_id=owner, status="completed", qasm=BELL, shots=100 * (index + 1),
                            num_qubits=qubits, request_hash="0" * 64, executor="local", cluster_profile="dev",
                            work_dir="/tmp/x", created_at=moment, completed_at=moment, execution_time_seconds=seconds))
        session.add(Job(id="usage-failed", user_id=ada, status="failed", qasm=BELL, shots=1, num_qubits=2,
                        request_hash="0" * 64, executor="local", cluster_profile="dev", work_dir="/tmp/x",
                        created_at=moment, completed_at=datetime(2024, 1, 5, tzinfo=timezone.utc)))

    result = _invoke(["admin", "usage-export", "--month", "2024-01"], tmp_path, database_url)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [row["email"] for row in rows][-3:] == ["'=ada@example.org", "bob@example.org", "idle@example.org"]
    client = app.test_client()
    for user_id, key in ((ada, ada_key), (bob, bob_key), (idle, idle_key)):
        row = next(row for row in rows if row["user_id"] == user_id)
        usage = client.get("/user/usage?period=2024-01", headers={"X-API-Key": key}).get_json()
        assert row["month"] == "2024-01"
        assert (int(row["jobs_executed"]), int(row["total_shots"]), float(row["total_qubits_hours"])) == \
            (usage["jobs_executed"], usage["total_shots"], usage["total_qubits_hours"])
    ada_row = next(row for row in rows if row["user_id"] == ada)
    assert (ada_row["jobs_executed"], ada_row["total_qubits_hours"]) == ("2", f"{(5 * 0.1 + 12 * 3600.5) / 3600:.6f}")

    refused = _invoke(["admin", "usage-export", "--month", "2024-13"], tmp_path, database_url)
    assert refused.exit_code == 1 and "YYYY-MM" in refused.output


def test_revoking_a_key_twice_says_it_was_already_revoked(tmp_path, database_url, app):
    created = _invoke(["users", "create", "--email", "rev@example.org"], tmp_path, database_url)
    key = re.search(r"api_key: (qcos_\S+)", created.output).group(1)
    user_id = re.search(r"user_id: (\S+)", created.output).group(1)
    key_id = re.search(r"^\s*(\d+)\s", _invoke(["keys", "list", user_id], tmp_path, database_url).output, re.M).group(1)
    first = _invoke(["keys", "revoke", key_id], tmp_path, database_url)
    again = _invoke(["keys", "revoke", key_id], tmp_path, database_url)
    assert (first.exit_code, again.exit_code) == (0, 0)
    assert first.output.rstrip().endswith(") revoked") and again.output.rstrip().endswith("was already revoked")
    assert app.test_client().get("/user/me", headers={"X-API-Key": key}).status_code == 401



def test_admin_queue_columns_line_up_with_local_and_slurm_ids(tmp_path, database_url, mocker):
    from gateway.schemas import QueueEntry

    def entry(slurm_job_id, pack_id, job_ids, state, elapsed):
        return QueueEntry(slurm_job_id=slurm_job_id, pack_id=pack_id, job_id=None, user_id=None, job_ids=job_ids,
                          user_ids=["u1"] if job_ids else [], name="qcos-pack", partition="debug", state=state,
                          reason=None if elapsed else "Priority", elapsed_seconds=elapsed, node_list=None)

    mocker.patch("gateway.cli._runtime")
    mocker.patch("gateway.jobs.live_queue", return_value=[
        entry("local-0123456789abcdef", "pk_0123456789abcdef0123", ["a", "b"], "RUNNING", 1234),
        entry("7", None, [], "PENDING", None)])
    result = _invoke(["admin", "queue"], tmp_path, database_url)
    assert result.exit_code == 0, result.output
    header, first, _a, _b, second = result.output.splitlines()
    # Every column starts where its header does, whatever the width of the ids before it.
    for name, first_value, second_value in (("PACK", "pk_0123456789abcdef0123", "-"), ("PARTITION", "debug", "debug"),
                                            ("STATE", "RUNNING", "PENDING")):
        assert first.index(first_value) == second.index(second_value) == header.index(name), result.output
    # Numbers end where their header ends.
    assert first.rindex("1234") + 4 == header.index("ELAPSED") + len("ELAPSED")
    assert second.endswith("Priority")
