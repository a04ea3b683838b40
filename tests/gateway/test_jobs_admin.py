"""Cancelling and listing jobs, dry runs, and the admin endpoints."""

from __future__ import annotations

import time

import pytest

from gateway.accounts import find_user, issue_key
from gateway.dispatcher import dispatch_cycle
from gateway.poller import service_cycle
from tests.conftest import BELL, make_user


def _submit(client, key, **body):
    response = client.post("/execute", json={"qasm": BELL, "shots": 32, **body}, headers={"X-API-Key": key})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["job_id"]


@pytest.fixture
def admin_key(runtime):
    user_id, _ = make_user(runtime, email="root@example.org")
    with runtime.db.transaction() as session:
        return issue_key(session, find_user(session, user_id), admin=True)


class TestCancel:
    def test_a_job_cancelled_while_pending_never_turns_completed(self, client, runtime, api_key):
        job_id = _submit(client, api_key)
        response = client.delete(f"/jobs/{job_id}", headers={"X-API-Key": api_key})
        assert response.status_code == 200
        body = response.get_json()
        assert (body["status"], body["error"]) == ("failed", "cancelled by the user")
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:  # whatever the batch job does meanwhile
            service_cycle(runtime)
            time.sleep(0.3)
        status = client.get(f"/status/{job_id}", headers={"X-API-Key": api_key}).get_json()
        assert (status["status"], status["result"]) == ("failed", None)
        results = client.get(f"/results/{job_id}", headers={"X-API-Key": api_key}).get_json()
        assert results["error_code"] == "JOB_FAILED" and "cancelled by the user" in results["detail"]

    def test_cancel_is_idempotent_and_private(self, client, runtime, api_key):
        job_id = _submit(client, api_key)
        first = client.delete(f"/jobs/{job_id}", headers={"X-API-Key": api_key}).get_json()
        second = client.delete(f"/jobs/{job_id}", headers={"X-API-Key": api_key})
        assert second.status_code == 200 and second.get_json() == first
        other = make_user(runtime)[1]
        assert client.delete(f"/jobs/{job_id}", headers={"X-API-Key": other}).get_json()["error_code"] == \
            "JOB_NOT_FOUND"


class TestList:
    def test_jobs_newest_first_with_status_filter_and_paging(self, client, runtime, api_key):
        ids = [_submit(client, api_key, job_id=f"list-{i}") for i in range(3)]
        client.delete(f"/jobs/{ids[1]}", headers={"X-API-Key": api_key})
        page = client.get("/jobs?limit=2", headers={"X-API-Key": api_key}).get_json()
        assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
        assert [job["job_id"] for job in page["jobs"]] == ["list-2", "list-1"]
        rest = client.get("/jobs?limit=2&offset=2", headers={"X-API-Key": api_key}).get_json()
        assert [job["job_id"] for job in rest["jobs"]] == ["list-0"]
        failed = client.get("/jobs?status=failed", headers={"X-API-Key": api_key}).get_json()
        assert [job["job_id"] for job in failed["jobs"]] == ["list-1"] and failed["total"] == 1
        other = make_user(runtime)[1]
        assert client.get("/jobs", headers={"X-API-Key": other}).get_json()["total"] == 0

    @pytest.mark.parametrize("query", ["status=done", "limit=0", "limit=101", "offset=-1", "limit=x",
                                       "offset=9223372036854775808"])
    def test_bad_list_parameters_are_invalid_request(self, client, api_key, query):
        response = client.get(f"/jobs?{query}", headers={"X-API-Key": api_key})
        assert response.status_code == 400 and response.get_json()["error_code"] == "INVALID_REQUEST"


class TestDryRun:
    def test_dry_run_renders_and_stores_nothing(self, client, runtime, api_key, settings):
        response = client.post("/execute?dry_run=true", json={"qasm": BELL, "shots": 100, "job_id": "preview"},
                               headers={"X-API-Key": api_key})
        assert response.status_code == 200
        body = response.get_json()
        assert body["dry_run"] is True and body["num_qubits"] == 2 and body["shots"] == 100
        assert "#SBATCH --job-name=qcos-pack-dry-run-" in body["sbatch_script"]  # the pack it would run alone in
        assert body["slurm_test_only"] is None  # the local executor has no --test-only
        assert client.get("/jobs", headers={"X-API-Key": api_key}).get_json()["total"] == 0
        assert not (settings.work_root / "preview").exists()
        assert client.get("/user/me", headers={"X-API-Key": api_key}).get_json()["jobs_today"] == 0

    def test_dry_run_still_refuses_bad_circuits(self, client, api_key):
        response = client.post("/execute?dry_run=true", json={"qasm": "OPENQASM 2.0; qreg q[1]; foo q;"},
                               headers={"X-API-Key": api_key})
        assert response.get_json()["error_code"] == "CIRCUIT_INVALID"


class TestAdmin:
    def test_admin_endpoints_need_an_admin_key(self, client, api_key):
        for method, path in (("get", "/admin/queue"), ("get", "/admin/cluster"), ("post", "/admin/jobs/x/cancel")):
            response = getattr(client, method)(path, headers={"X-API-Key": api_key})
            assert response.status_code == 403 and response.get_json()["error_code"] == "ADMIN_REQUIRED"
            assert getattr(client, method)(path).get_json()["error_code"] == "AUTH_REQUIRED"

    def test_queue_shows_packs_with_their_jobs(self, client, runtime, api_key, admin_key):
        job_ids = [_submit(client, api_key) for _ in range(3)]
        deadline = time.monotonic() + 10
        while not dispatch_cycle(runtime).submitted:  # the three share one pack once they stop arriving
            assert time.monotonic() < deadline
            time.sleep(0.2)
        queue = client.get("/admin/queue", headers={"X-API-Key": admin_key}).get_json()
        assert queue["executor"] == "local"
        # Asked right after dispatch: the batch job is still starting Python.
        mine = [entry for entry in queue["jobs"] if entry["pack_id"]]
        assert len(mine) == 1 and sorted(mine[0]["job_ids"]) == sorted(job_ids)
        assert mine[0]["name"] == f"qcos-{mine[0]['pack_id']}" and mine[0]["user_ids"]
        assert mine[0]["state"] in ("PENDING", "RUNNING")

    def test_cluster_lists_partitions(self, client, admin_key):
        partitions = client.get("/admin/cluster", headers={"X-API-Key": admin_key}).get_json()["partitions"]
        assert partitions[0]["partition"] == "local" and partitions[0]["available"] == "up"

    def test_admin_cancels_any_users_job(self, client, api_key, admin_key):
        job_id = _submit(client, api_key)
        body = client.post(f"/admin/jobs/{job_id}/cancel", headers={"X-API-Key": admin_key}).get_json()
        assert (body["status"], body["error"]) == ("failed", "cancelled by an administrator")
        assert client.post("/admin/jobs/nope/cancel", headers={"X-API-Key": admin_key}).status_code == 404
