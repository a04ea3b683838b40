"""The HTTP contract of the API reference: fields, codes, error format.

These run the Flask app in-process against SQLite and PostgreSQL, with the
real local executor running real batch scripts.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from gateway.models import Job
from tests.conftest import BELL, make_user
from tests.helpers import TOO_BIG_FOR_MEMORY, drive_until_final, lose_circuit_file


def _post(client, key, body, **headers):
    return client.post("/execute", json=body, headers={"X-API-Key": key, **headers})


def _job_count(runtime) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(Job))


def _assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"detail", "error_code", "request_id"}
    assert body["error_code"] == code
    assert body["request_id"].startswith("req_")
    assert response.headers["X-Request-ID"] == body["request_id"]
    return body


def _poll_once(runtime):
    from gateway import estimates
    from gateway.models import utcnow
    from gateway.poller import poll_cycle, refresh_queue_model

    report = poll_cycle(runtime, observe=True)
    refresh_queue_model(runtime, scheduler_ok=report.scheduler_ok, pending_start=None, now=utcnow(),
                        accounting_ok=report.accounting_ok)
    estimates._cache.clear()


class TestHealth:
    def test_reports_the_pollers_last_scheduler_check(self, client, runtime):
        _poll_once(runtime)
        response = client.get("/")
        assert response.status_code == 200
        assert response.get_json() == {"status": "healthy", "version": "1.0.0", "queue_connected": True}

    def test_without_a_poller_the_queue_is_not_connected(self, client):
        assert client.get("/").get_json()["queue_connected"] is False

    def test_queue_not_connected_when_the_executor_cannot_work(self, settings, tmp_path):
        from gateway import create_app

        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        broken = create_app({"QCOS_SETTINGS": settings.model_copy(update={"state_dir": blocker})})
        _poll_once(broken.extensions["qcos"])
        body = broken.test_client().get("/").get_json()
        assert body["queue_connected"] is False
        assert body["status"] == "degraded"

    def test_the_check_needs_no_scheduler_call_in_the_request(self, client, runtime, mocker):
        _poll_once(runtime)
        ping = mocker.patch.object(runtime.executor, "ping", side_effect=AssertionError("called in a request"))
        assert client.get("/").get_json()["queue_connected"] is True
        ping.assert_not_called()


class TestAuthentication:
    def test_no_key_is_auth_required(self, client):
        _assert_error(client.get("/status/x"), 401, "AUTH_REQUIRED")
        _assert_error(client.post("/execute", json={"qasm": BELL}), 401, "AUTH_REQUIRED")

    def test_unknown_key_is_auth_invalid(self, client):
        _assert_error(client.get("/status/x", headers={"X-API-Key": "qcos_nope"}), 401, "AUTH_INVALID")
        _assert_error(client.get("/status/x", headers={"Authorization": "Bearer qcos_nope"}), 401, "AUTH_INVALID")

    def test_bearer_and_header_both_work(self, client, api_key):
        _assert_error(client.get("/status/none", headers={"Authorization": f"Bearer {api_key}"}), 404, "JOB_NOT_FOUND")
        _assert_error(client.get("/status/none", headers={"X-API-Key": api_key}), 404, "JOB_NOT_FOUND")

    def test_keys_are_stored_only_as_hashes(self, runtime, api_key, database_url):
        from sqlalchemy import text

        with runtime.db.session() as session:
            stored = [tuple(row) for row in session.execute(text("SELECT key_hash, prefix FROM api_keys"))]
        assert all(api_key not in value for row in stored for value in row)


class TestExecute:
    def test_bell_runs_and_returns_counts(self, client, runtime, api_key):
        response = _post(client, api_key, {"qasm": BELL, "shots": 1024})
        assert response.status_code == 201
        body = response.get_json()
        assert set(body) == {"job_id", "status", "message", "estimated_time_seconds"}
        assert body["status"] == "queued"
        assert isinstance(body["estimated_time_seconds"], int) and body["estimated_time_seconds"] >= 1
        assert response.headers["Location"] == f"/status/{body['job_id']}"

        drive_until_final(runtime, body["job_id"])
        status = client.get(response.headers["Location"], headers={"X-API-Key": api_key}).get_json()
        assert status["status"] == "completed" and status["error"] is None
        result = status["result"]
        assert set(result["counts"]) <= {"00", "11"} and sum(result["counts"].values()) == 1024
        assert result["num_qubits"] == 2 and result["shots"] == 1024
        assert {"execution_time_seconds", "backend", "device"} <= set(result)
        assert status["created_at"].endswith("Z") and status["completed_at"].endswith("Z")

        results = client.get(f"/results/{body['job_id']}", headers={"X-API-Key": api_key}).get_json()
        assert results == {"job_id": body["job_id"], "status": "completed", "result": {"counts": result["counts"]}}

    def test_shots_default_to_1024(self, client, runtime, api_key):
        job_id = _post(client, api_key, {"qasm": BELL}).get_json()["job_id"]
        with runtime.db.session() as session:
            assert session.get(Job, job_id).shots == 1024

    @pytest.mark.parametrize(
        ("body", "mentions"),
        [
            ({"qasm": BELL, "shots": 0}, "shots"),
            ({"qasm": BELL, "shots": -5}, "shots"),
            ({"qasm": BELL, "shots": "100"}, "shots"),
            ({"qasm": BELL, "shots": True}, "shots"),
            ({"qasm": BELL, "shots": 1.5}, "shots"),
            ({"shots": 10}, "qasm"),
            ({"qasm": 42}, "qasm"),
            ({"qasm": BELL, "shot": 10}, "shot"),
            ({"qasm": BELL, "job_id": "../etc"}, "job_id"),
            ({"qasm": BELL, "job_id": "a" * 65}, "job_id"),
            ({"qasm": BELL, "job_id": "has space"}, "job_id"),
            ({"qasm": BELL, "job_id": ""}, "job_id"),
        ],
    )
    def test_bad_fields_are_invalid_request_and_store_nothing(self, client, runtime, api_key, body, mentions):
        detail = _assert_error(_post(client, api_key, body), 400, "INVALID_REQUEST")["detail"]
        assert mentions in detail
        assert _job_count(runtime) == 0

    def test_non_json_and_malformed_json_are_refused(self, client, runtime, api_key):
        _assert_error(client.post("/execute", data="<qasm/>", headers={"X-API-Key": api_key,
                      "Content-Type": "application/xml"}), 415, "UNSUPPORTED_MEDIA_TYPE")
        _assert_error(client.post("/execute", data="{not json", headers={"X-API-Key": api_key,
                      "Content-Type": "application/json"}), 400, "INVALID_REQUEST")
        _assert_error(client.post("/execute", json=[1, 2], headers={"X-API-Key": api_key}), 400, "INVALID_REQUEST")
        assert _job_count(runtime) == 0

    def test_bad_circuit_names_line_and_column_and_stores_nothing(self, client, runtime, api_key, settings):
        qasm = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nfoo q[0];\n'
        detail = _assert_error(_post(client, api_key, {"qasm": qasm}), 400, "CIRCUIT_INVALID")["detail"]
        assert "line 4" in detail and "column" in detail
        assert _job_count(runtime) == 0
        assert list(settings.work_root.iterdir()) == []

    def test_include_of_a_server_file_leaks_nothing(self, client, runtime, api_key, tmp_path):
        secret = tmp_path / "secret.inc"
        secret.write_text("// TOP-SECRET-MARKER\ngate leak a { x a; }\n")
        for target in (str(secret), "/etc/passwd", "../../../etc/hostname"):
            qasm = f'OPENQASM 2.0;\ninclude "{target}";\nqreg q[1];\ncreg c[1];\nmeasure q -> c;\n'
            response = _post(client, api_key, {"qasm": qasm})
            _assert_error(response, 400, "CIRCUIT_INVALID")
            text = response.get_data(as_text=True)
            assert "TOP-SECRET-MARKER" not in text and "root:" not in text
        assert _job_count(runtime) == 0

    def test_huge_register_declaration_is_refused_quickly(self, client, api_key):
        started = time.monotonic()
        qasm = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[10000000]; creg c[1]; measure q[0] -> c[0];'
        _assert_error(_post(client, api_key, {"qasm": qasm}), 400, "CIRCUIT_INVALID")
        assert time.monotonic() - started < 2

    def test_a_circuit_too_big_for_the_cluster_is_refused_with_needed_vs_available(self, client, runtime, api_key):
        detail = _assert_error(_post(client, api_key, {"qasm": TOO_BIG_FOR_MEMORY, "shots": 10}), 400,
                               "CIRCUIT_INVALID")["detail"]
        assert "34-qubit" in detail and "GiB" in detail and "largest allocation" in detail
        assert _job_count(runtime) == 0

    def test_sizing_chooses_the_method_the_runner_uses(self, client, runtime, api_key, settings):
        from hpc_jobs.workdir import PARAMS_FILE, RunParameters

        ghz = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[60]; creg c[60]; h q[0]; ' + " ".join(
            f"cx q[{i}],q[{i + 1}];" for i in range(59)) + " measure q -> c;"
        runtime.tiers = {**runtime.tiers, "pro": runtime.tiers["pro"].model_copy(update={"max_qubits": 100})}
        clifford = _post(client, api_key, {"qasm": ghz, "shots": 10}).get_json()["job_id"]
        plain = _post(client, api_key, {"qasm": BELL.replace("h q[0];", "t q[0];"), "shots": 10}).get_json()
        jobs = [drive_until_final(runtime, job_id) for job_id in (clifford, plain["job_id"])]
        methods = [RunParameters.from_json((settings.work_root / job.id / PARAMS_FILE).read_text()).method
                   for job in jobs]
        assert methods == ["stabilizer", "statevector"]
        assert [job.result["method"] for job in jobs] == methods

    def test_opaque_gate_is_refused_at_submission(self, client, runtime, api_key):
        qasm = 'OPENQASM 2.0; include "qelib1.inc"; opaque magic a; qreg q[1]; creg c[1]; magic q[0]; measure q -> c;'
        detail = _assert_error(_post(client, api_key, {"qasm": qasm}), 400, "CIRCUIT_INVALID")["detail"]
        assert "magic" in detail
        assert _job_count(runtime) == 0


class TestCustomJobId:
    def test_same_id_and_body_is_idempotent(self, client, runtime, api_key):
        first = _post(client, api_key, {"qasm": BELL, "shots": 100, "job_id": "bell-run.1"})
        again = _post(client, api_key, {"qasm": BELL, "shots": 100, "job_id": "bell-run.1"})
        assert first.status_code == 201 and again.status_code == 200
        assert again.get_json()["job_id"] == "bell-run.1"
        assert _job_count(runtime) == 1

    def test_same_id_different_body_is_a_conflict(self, client, runtime, api_key):
        _post(client, api_key, {"qasm": BELL, "shots": 100, "job_id": "exp-7"})
        _assert_error(_post(client, api_key, {"qasm": BELL, "shots": 200, "job_id": "exp-7"}), 409, "JOB_ID_CONFLICT")
        assert _job_count(runtime) == 1

    def test_another_users_id_is_a_conflict_that_reveals_nothing(self, client, runtime, api_key):
        _post(client, api_key, {"qasm": BELL, "shots": 100, "job_id": "shared-name"})
        other_key = make_user(runtime)[1]
        body = _assert_error(_post(client, other_key, {"qasm": BELL, "shots": 100, "job_id": "shared-name"}),
                             409, "JOB_ID_CONFLICT")
        assert "qreg" not in body["detail"]


class TestVisibility:
    def test_a_user_never_sees_another_users_job(self, client, runtime, api_key):
        job_id = _post(client, api_key, {"qasm": BELL}).get_json()["job_id"]
        other_key = make_user(runtime)[1]
        for path in (f"/status/{job_id}", f"/results/{job_id}"):
            _assert_error(client.get(path, headers={"X-API-Key": other_key}), 404, "JOB_NOT_FOUND")
        assert client.get(f"/status/{job_id}", headers={"X-API-Key": api_key}).status_code == 200


class TestResults:
    def test_pending_shape_is_exactly_the_references(self, client, api_key):
        job_id = _post(client, api_key, {"qasm": BELL}).get_json()["job_id"]
        # No poller runs in this test, so the job stays queued.
        body = client.get(f"/results/{job_id}", headers={"X-API-Key": api_key}).get_json()
        assert body == {"job_id": job_id, "status": "pending", "message": "Job not yet completed"}

    def test_wait_returns_at_the_timeout_when_nothing_changes(self, client, api_key):
        job_id = _post(client, api_key, {"qasm": BELL}).get_json()["job_id"]
        started = time.monotonic()
        body = client.get(f"/results/{job_id}?wait=true&timeout=1", headers={"X-API-Key": api_key}).get_json()
        elapsed = time.monotonic() - started
        assert body["status"] == "pending"
        assert 0.9 <= elapsed < 3

    def test_wait_is_bounded_server_side(self, client, runtime, api_key, monkeypatch):
        runtime.settings = runtime.settings.model_copy(update={"results_max_wait_seconds": 1})
        job_id = _post(client, api_key, {"qasm": BELL}).get_json()["job_id"]
        started = time.monotonic()
        client.get(f"/results/{job_id}?wait=true&timeout=3600", headers={"X-API-Key": api_key})
        assert time.monotonic() - started < 3

    @pytest.mark.parametrize("query", ["wait=maybe", "timeout=soon", "timeout=-1", "wait=true&timeout=1.5"])
    def test_bad_query_parameters_are_invalid_request(self, client, api_key, query):
        _assert_error(client.get(f"/results/any?{query}", headers={"X-API-Key": api_key}), 400, "INVALID_REQUEST")

    def test_failed_job_answers_job_failed_with_its_reason(self, client, runtime, api_key, settings):
        job_id = _post(client, api_key, {"qasm": BELL, "shots": 10}).get_json()["job_id"]
        lose_circuit_file(runtime, job_id)
        job = drive_until_final(runtime, job_id)
        assert job.status == "failed" and "circuit.qasm" in job.error
        body = _assert_error(client.get(f"/results/{job_id}", headers={"X-API-Key": api_key}), 409, "JOB_FAILED")
        assert job.error and job.error in body["detail"]
        status = client.get(f"/status/{job_id}", headers={"X-API-Key": api_key}).get_json()
        assert status["status"] == "failed" and status["result"] is None and status["error"] == job.error


class TestSchedulerDown:
    def test_a_scheduler_that_cannot_work_never_refuses_a_submission(self, settings, tmp_path):
        from gateway import create_app
        from gateway.poller import service_cycle
        from hpc_jobs.executors.local import LocalExecutor

        blocker = tmp_path / "file"
        blocker.write_text("")
        app = create_app({"QCOS_SETTINGS": settings, "QCOS_EXECUTOR_OBJECT": LocalExecutor(blocker / "registry")})
        runtime = app.extensions["qcos"]
        key = make_user(runtime)[1]
        response = app.test_client().post("/execute", json={"qasm": BELL, "job_id": "waits"},
                                          headers={"X-API-Key": key})
        assert response.status_code == 201 and response.get_json()["status"] == "queued"
        service_cycle(runtime)  # the dispatcher cannot submit: the job keeps waiting, nothing is lost
        status = app.test_client().get("/status/waits", headers={"X-API-Key": key}).get_json()
        assert status["status"] == "queued"


class TestErrorsEverywhere:
    def test_unknown_route_is_json_404(self, client):
        _assert_error(client.get("/nope"), 404, "NOT_FOUND")

    def test_wrong_method_is_json_405_with_allow(self, client):
        response = client.delete("/execute")
        _assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert "POST" in response.headers["Allow"]

    def test_oversized_body_is_json_413(self, client, api_key, runtime):
        big = "x" * (runtime.settings.max_body_bytes + 10)
        response = client.post("/execute", data=json.dumps({"qasm": big}),
                               headers={"X-API-Key": api_key, "Content-Type": "application/json"})
        _assert_error(response, 413, "PAYLOAD_TOO_LARGE")


class TestUnexpectedFailures:
    def test_a_bug_is_a_json_500_and_leaves_no_job(self, client, runtime, api_key, caplog, mocker):
        import logging

        caplog.set_level(logging.INFO)
        mocker.patch("gateway.jobs.estimates.estimated_seconds", side_effect=RuntimeError("a bug, not bad input"))
        response = client.post("/execute", json={"qasm": BELL, "job_id": "bug"}, headers={"X-API-Key": api_key})
        body = _assert_error(response, 500, "INTERNAL_ERROR")
        assert "Traceback" not in response.get_data(as_text=True) and "bug" not in body["detail"]
        assert _job_count(runtime) == 0
        # The log line of that request carries its request_id.
        assert any(body["request_id"] in record.getMessage() for record in caplog.records)

    def test_an_unreachable_database_is_a_json_503(self, settings):
        from gateway import create_app

        app = create_app({"QCOS_SETTINGS": settings.model_copy(update={
            "database_url": "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2"})})
        for path, headers in (("/", {}), ("/user/me", {"X-API-Key": "qcos_x"})):
            response = app.test_client().get(path, headers=headers)
            _assert_error(response, 503, "SERVICE_UNAVAILABLE")


class TestHostileInput:
    @pytest.mark.parametrize(
        "raw",
        ["[" * 100_000 + "]" * 100_000, '{"qasm": "x", "job_id": ' + "[" * 50_000 + "]" * 50_000 + "}",
         '{"qasm": "x", "shots": ' + "9" * 5000 + "}", '{"qasm":', "\xff\xfe{}"],
        ids=["deep-array", "deep-field", "5000-digit-int", "truncated", "not-utf8"],
    )
    def test_unparsable_bodies_are_400_never_500(self, client, runtime, api_key, raw):
        response = client.post("/execute", data=raw.encode("latin-1") if raw.startswith("\xff") else raw,
                               headers={"X-API-Key": api_key, "Content-Type": "application/json"})
        _assert_error(response, 400, "INVALID_REQUEST")
        assert _job_count(runtime) == 0

    @pytest.mark.parametrize(("raw", "words"), [
        ("[" * 100_000 + "]" * 100_000, "The body is nested too deeply"),
        ('{"qasm": "x", "shots": ' + "9" * 5000 + "}", "The body has a number with too many digits"),
    ], ids=["deep-array", "5000-digit-int"])
    @pytest.mark.parametrize("path", ["/execute", "/batches"])
    def test_bodies_beyond_the_parsers_limits_are_told_in_the_apis_words(self, client, api_key, raw, words, path):
        response = client.post(path, data=raw, headers={"X-API-Key": api_key, "Content-Type": "application/json"})
        detail = _assert_error(response, 400, "INVALID_REQUEST")["detail"]
        assert detail.startswith(words)
        assert not any(internal in detail for internal in ("recursion", "sys.", "set_int_max_str_digits"))

    @pytest.mark.parametrize("content_type", ["application/json; charset=latin1", "application/json; charset=UTF-16",
                                              "application/json; Charset=ISO-8859-1"])
    @pytest.mark.parametrize("path", ["/execute", "/batches"])
    def test_json_in_another_charset_is_415(self, client, runtime, api_key, content_type, path):
        body = {"qasm": BELL} if path == "/execute" else {"circuits": [{"qasm": BELL}]}
        response = client.post(path, data=json.dumps(body), headers={"X-API-Key": api_key, "Content-Type": content_type})
        assert "UTF-8" in _assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")["detail"]
        assert _job_count(runtime) == 0

    @pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/json; charset=UTF8"])
    def test_json_declared_as_utf8_is_accepted(self, client, api_key, content_type):
        response = client.post("/execute", data=json.dumps({"qasm": BELL}),
                               headers={"X-API-Key": api_key, "Content-Type": content_type})
        assert response.status_code == 201, response.get_data(as_text=True)

    def test_compressed_body_is_415(self, client, api_key):
        response = client.post("/execute", data=b"\x1f\x8b", headers={
            "X-API-Key": api_key, "Content-Type": "application/json", "Content-Encoding": "gzip"})
        _assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")

    def test_a_400_digit_timeout_is_capped_not_an_error(self, client, runtime, api_key):
        runtime.settings = runtime.settings.model_copy(update={"results_max_wait_seconds": 1})
        job_id = _post(client, api_key, {"qasm": BELL}).get_json()["job_id"]
        response = client.get(f"/results/{job_id}?wait=true&timeout={'9' * 400}", headers={"X-API-Key": api_key})
        assert response.status_code == 200 and response.get_json()["status"] == "pending"

    def test_two_different_keys_are_refused(self, client, api_key, runtime):
        other = make_user(runtime)[1]
        for first, second in ((api_key, "qcos_wrong"), ("qcos_wrong", api_key), (api_key, other)):
            response = client.get("/user/me", headers={"X-API-Key": first, "Authorization": f"Bearer {second}"})
            _assert_error(response, 401, "AUTH_INVALID")
        same = client.get("/user/me", headers={"X-API-Key": api_key, "Authorization": f"Bearer {api_key}"})
        assert same.status_code == 200

    def test_a_path_cannot_forge_log_lines(self, client, api_key, caplog):
        import logging

        caplog.set_level(logging.INFO)
        client.get("/status/x%0A2026-11-29%20ERROR%20forged", headers={"X-API-Key": api_key})
        assert not any("\n" in record.getMessage() for record in caplog.records)

    def test_retry_of_a_finished_job_says_so(self, client, runtime, api_key):
        body = {"qasm": BELL, "shots": 10, "job_id": "finished-once"}
        _post(client, api_key, body)
        drive_until_final(runtime, "finished-once")
        again = _post(client, api_key, body).get_json()
        assert again["status"] == "completed" and "already exists" in again["message"]

    def test_an_integer_of_2_64_is_circuit_invalid_not_a_dead_worker(self, client, runtime, api_key):
        # Qiskit's lexer panics on it (a BaseException that used to end the gunicorn worker).
        qasm = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[18446744073709551616];\n'
        body = _assert_error(_post(client, api_key, {"qasm": qasm}), 400, "CIRCUIT_INVALID")
        assert "line 5, column 5" in body["detail"] and "too large" in body["detail"]
        assert _job_count(runtime) == 0
        assert _post(client, api_key, {"qasm": BELL}).status_code == 201

    def test_a_panic_anywhere_in_a_view_is_a_json_500_and_the_app_keeps_serving(self, client, runtime, api_key,
                                                                                mocker):
        from qiskit import qasm2

        with pytest.raises(BaseException) as panic:
            qasm2.loads('OPENQASM 2.0;\nqreg q[1];\nU(0,0,0) q[18446744073709551616];\n')
        mocker.patch("gateway.jobs.load_circuit", side_effect=panic.value)
        _assert_error(_post(client, api_key, {"qasm": BELL}), 500, "INTERNAL_ERROR")
        mocker.stopall()
        assert _post(client, api_key, {"qasm": BELL}).status_code == 201

    @pytest.mark.parametrize(("qasm", "code", "words"), [
        ("// a\u0000b\n" + BELL, "CIRCUIT_INVALID", "line 1, column 5: the program contains a NUL character"),
        (BELL + "// \ud800", "INVALID_REQUEST", "valid string"),  # JSON can carry a lone surrogate
    ], ids=["NUL", "surrogate"])
    def test_text_the_database_cannot_store_is_a_400(self, client, runtime, api_key, qasm, code, words):
        # PostgreSQL refuses NUL in text: this was a 500 there.
        raw = json.dumps({"qasm": qasm})
        response = client.post("/execute", data=raw, headers={"X-API-Key": api_key, "Content-Type": "application/json"})
        assert words in _assert_error(response, 400, code)["detail"]
        assert _job_count(runtime) == 0

    @pytest.mark.parametrize("path", ["/status/a%00b", "/results/a%00b", "/jobs?status=queued&x=%00"])
    def test_a_nul_in_the_url_is_invalid_request(self, client, api_key, path):
        _assert_error(client.get(path, headers={"X-API-Key": api_key}), 400, "INVALID_REQUEST")


class TestOptions:
    def test_options_is_an_empty_204_with_allow(self, client):
        response = client.options("/execute")
        assert response.status_code == 204
        assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
        assert "Content-Type" not in response.headers and response.get_data() == b""
        assert not any(name.startswith("Access-Control-") for name in response.headers.keys())

    def test_options_of_an_unknown_route_is_a_json_404(self, client):
        _assert_error(client.options("/nope"), 404, "NOT_FOUND")

    def test_without_configured_origins_no_cors_headers_are_sent(self, client, api_key):
        response = client.get("/user/me", headers={"X-API-Key": api_key, "Origin": "https://app.example.org"})
        assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers

    def test_a_preflight_from_an_allowed_origin(self, settings):
        from gateway import create_app

        app = create_app({"QCOS_SETTINGS": settings.model_copy(update={"cors_origins": ("https://app.example.org",)})})
        preflight = {"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type, x-api-key"}
        response = app.test_client().options("/execute", headers=preflight)
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert {"content-type", "x-api-key"} <= set(response.headers["Access-Control-Allow-Headers"].lower().split(", "))
        assert response.headers["Access-Control-Max-Age"] == "600"
        # Another origin gets nothing to let a browser through.
        other = app.test_client().options("/execute", headers={**preflight, "Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        # The answers themselves, errors included, may be read by the allowed page.
        answer = app.test_client().get("/user/me", headers={"Origin": "https://app.example.org"})
        assert answer.status_code == 401
        assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
        assert "X-Request-ID" in answer.headers["Access-Control-Expose-Headers"]

    @pytest.mark.parametrize("value", ["app.example.org", "https://a.example/path", "https://(.*)", "*, https://a.b"])
    def test_cors_origins_must_be_exact_origins(self, value):
        from gateway.config import ConfigError, Settings

        with pytest.raises(ConfigError, match="QCOS_CORS_ORIGINS"):
            Settings.from_env({"QCOS_CORS_ORIGINS": value})

    def test_cors_origins_are_read_from_the_environment(self):
        from gateway.config import Settings

        settings = Settings.from_env({"QCOS_CORS_ORIGINS": "https://a.example, http://localhost:3000"})
        assert settings.cors_origins == ("https://a.example", "http://localhost:3000")
        assert Settings.from_env({}).cors_origins == ()



class TestWaitingIsBounded:
    def test_requests_beyond_the_waiting_slots_answer_at_once(self, client, runtime, api_key):
        import threading

        runtime.waiting_slots = threading.BoundedSemaphore(1)
        job_id = _post(client, api_key, {"qasm": BELL}).get_json()["job_id"]
        holder = threading.Thread(target=lambda: client.get(f"/results/{job_id}?wait=true&timeout=3",
                                                             headers={"X-API-Key": api_key}))
        holder.start()
        time.sleep(0.3)
        started = time.monotonic()
        body = client.get(f"/results/{job_id}?wait=true&timeout=3", headers={"X-API-Key": api_key}).get_json()
        assert body["status"] == "pending" and time.monotonic() - started < 1
        holder.join()

    @pytest.mark.parametrize("query", ["timeout=\uff11", "timeout=1e3", "timeout=%2B5"])
    def test_only_ascii_digits_make_a_timeout(self, client, api_key, query):
        _assert_error(client.get(f"/results/x?{query}", headers={"X-API-Key": api_key}), 400, "INVALID_REQUEST")
