"""POST /batches and GET /batches/{id}: all or nothing, ordinary jobs, results once done."""

from __future__ import annotations

from sqlalchemy import func, select

from gateway.models import Job
from tests.conftest import BELL, make_user
from tests.gateway.test_dispatch import _drive


def _post(client, key, circuits):
    return client.post("/batches", json={"circuits": circuits}, headers={"X-API-Key": key})


def _count(runtime):
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_a_batch_is_accepted_at_once_and_each_circuit_is_an_ordinary_job(client, runtime, api_key):
    response = _post(client, api_key, [{"qasm": BELL, "shots": 100}, {"qasm": BELL, "job_id": "mine-1"}])
    assert response.status_code == 201
    body = response.get_json()
    assert body["count"] == 2 and body["job_ids"][1] == "mine-1"
    assert response.headers["Location"] == f"/batches/{body['batch_id']}"
    pending = client.get(f"/batches/{body['batch_id']}", headers={"X-API-Key": api_key}).get_json()
    assert pending["done"] is False and pending["counts"]["queued"] == 2
    _drive(runtime, body["job_ids"])
    ordered = _post(client, api_key, [{"qasm": BELL, "job_id": f"o-{c}"} for c in "cba"]).get_json()
    listed = client.get(f"/batches/{ordered['batch_id']}", headers={"X-API-Key": api_key}).get_json()
    assert [j["job_id"] for j in listed["jobs"]] == ["o-c", "o-b", "o-a"]  # request order, not id order
    done = client.get(f"/batches/{body['batch_id']}", headers={"X-API-Key": api_key}).get_json()
    assert done["done"] is True and done["counts"]["completed"] == 2
    assert [sum(j["result"]["counts"].values()) for j in done["jobs"]] == [100, 1024]
    assert client.get("/status/mine-1", headers={"X-API-Key": api_key}).get_json()["status"] == "completed"


def test_one_invalid_circuit_refuses_the_whole_batch_naming_it(client, runtime, api_key):
    bad = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1];\nfoo q[0]; measure q -> c;'
    response = _post(client, api_key, [{"qasm": BELL}, {"qasm": bad}])
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_code"] == "CIRCUIT_INVALID" and body["detail"].startswith("circuits[1]: ")
    assert "line 2" in body["detail"]
    assert _count(runtime) == 0


def test_the_daily_quota_counts_every_circuit_all_or_nothing(client, runtime):
    runtime.tiers = {**runtime.tiers, "free": runtime.tiers["free"].model_copy(update={"daily_job_limit": 3})}
    key = make_user(runtime, tier="free")[1]
    assert _post(client, key, [{"qasm": BELL, "shots": 10}] * 4).status_code == 429
    assert _count(runtime) == 0
    assert _post(client, key, [{"qasm": BELL, "shots": 10}] * 3).status_code == 201
    assert _post(client, key, [{"qasm": BELL, "shots": 10}]).status_code == 429


def test_the_batch_size_is_bounded_and_bad_bodies_are_clear(client, runtime, api_key):
    runtime.settings = runtime.settings.model_copy(update={"batch_max_circuits": 2})
    body = _post(client, api_key, [{"qasm": BELL}] * 3).get_json()
    assert body["error_code"] == "INVALID_REQUEST" and "at most 2" in body["detail"]
    assert _post(client, api_key, []).get_json()["error_code"] == "INVALID_REQUEST"
    assert _post(client, api_key, [{"qasm": BELL, "shot": 5}]).get_json()["error_code"] == "INVALID_REQUEST"
    assert _count(runtime) == 0


def test_job_ids_must_be_new_and_a_whole_repeat_answers_the_same_batch(client, runtime, api_key):
    circuits = [{"qasm": BELL, "job_id": "b-1"}, {"qasm": BELL, "job_id": "b-2"}]
    first = _post(client, api_key, circuits)
    again = _post(client, api_key, circuits)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["batch_id"] == first.get_json()["batch_id"]
    clash = _post(client, api_key, [{"qasm": BELL, "job_id": "b-9"}, {"qasm": BELL, "job_id": "b-1", "shots": 5}])
    assert clash.status_code == 409 and clash.get_json()["detail"].startswith("circuits[1]")
    twice = _post(client, api_key, [{"qasm": BELL, "job_id": "d-1"}, {"qasm": BELL, "job_id": "d-2"},
                                    {"qasm": BELL, "job_id": "d-1"}])
    # The circuit that repeats an id is at fault, not the one that first gave it.
    assert twice.status_code == 409 and twice.get_json()["detail"].startswith("circuits[2]: job_id d-1 ")
    assert "circuits[0]" in twice.get_json()["detail"]
    assert _count(runtime) == 2


def test_a_repeat_that_raced_the_first_request_answers_the_same_batch(client, runtime, api_key, mocker):
    """The repeat found nothing stored when it looked, then lost the insert to the first request."""
    import gateway.jobs

    circuits = [{"qasm": BELL, "job_id": "r-1"}, {"qasm": BELL, "job_id": "r-2"}]
    first = _post(client, api_key, circuits)
    look = gateway.jobs._existing_batch
    calls: list[int] = []

    def first_look_misses(*args):
        calls.append(1)
        return None if len(calls) == 1 else look(*args)

    mocker.patch.object(gateway.jobs, "_existing_batch", side_effect=first_look_misses)
    again = _post(client, api_key, circuits)
    assert len(calls) == 2  # the look before storing, and the one after the insert failed
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["batch_id"] == first.get_json()["batch_id"]
    assert again.get_json()["status"] == "exists" and first.get_json()["status"] == "queued"
    assert _count(runtime) == 2


def test_the_same_batch_sent_at_once_from_many_threads_is_stored_once(client, runtime, api_key):
    from concurrent.futures import ThreadPoolExecutor

    circuits = [{"qasm": BELL, "job_id": f"t-{i}"} for i in range(5)]
    app = client.application
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post(app.test_client(), api_key, circuits), range(8)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 7 + [201], [a.get_json() for a in answers]
    assert len({a.get_json()["batch_id"] for a in answers}) == 1
    assert _count(runtime) == 5


def test_repeating_a_batch_whose_circuits_do_not_all_carry_a_job_id_says_why_it_is_refused(client, api_key):
    circuits = [{"qasm": BELL}, {"qasm": BELL, "job_id": "p-1"}]
    assert _post(client, api_key, circuits).status_code == 201
    again = _post(client, api_key, circuits)
    assert again.status_code == 409
    detail = again.get_json()["detail"]
    assert detail.startswith("circuits[1]: job_id p-1 is already used by this circuit in an earlier batch")
    assert "every circuit with its job_id" in detail


def test_batches_take_no_query_parameters(client, runtime, api_key):
    for query in ("shots=5", "shot=5", "job_id=x"):
        response = client.post(f"/batches?{query}", json={"circuits": [{"qasm": BELL}]}, headers={"X-API-Key": api_key})
        assert response.status_code == 400, query
        assert query.split("=")[0] in response.get_json()["detail"]
    assert _count(runtime) == 0


def test_another_users_batch_is_not_found(client, runtime, api_key):
    batch_id = _post(client, api_key, [{"qasm": BELL}]).get_json()["batch_id"]
    other = make_user(runtime)[1]
    response = client.get(f"/batches/{batch_id}", headers={"X-API-Key": other})
    assert response.status_code == 404 and response.get_json()["error_code"] == "BATCH_NOT_FOUND"


def test_a_batch_shares_one_validation_budget(client, runtime, api_key):
    from hpc_jobs.circuits import validation_cost

    runtime.settings = runtime.settings.model_copy(update={"batch_validation_units": int(validation_cost(BELL) * 2.5)})
    response = _post(client, api_key, [{"qasm": BELL}] * 3)
    body = response.get_json()
    assert response.status_code == 400 and body["detail"].startswith("circuits[2]: ")
    assert _count(runtime) == 0
    assert _post(client, api_key, [{"qasm": BELL}] * 2).status_code == 201
