"""``POST /execute`` with the circuit as the body itself (``text/plain``,
``application/vnd.openqasm``) or as a form, besides JSON: what ``curl
--data-binary @bell.qasm`` and ``curl -F qasm=@bell.qasm`` send."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from gateway.models import Job
from tests.conftest import BELL
from tests.helpers import drive_until_final

BELL_FILE = BELL.replace("; ", ";\n") + "\n"


def _post(client, key, path="/execute", **kwargs):
    return client.post(path, headers={"X-API-Key": key, **kwargs.pop("headers", {})}, **kwargs)


def _error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error_code"] == code and body["request_id"] == response.headers["X-Request-ID"]
    return body["detail"]


def _job(runtime, job_id):
    with runtime.db.session() as session:
        return session.get(Job, job_id)


def _job_count(runtime) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_a_qasm_file_as_the_body_runs_with_shots_from_the_query(client, runtime, api_key):
    created = _post(client, api_key, "/execute?shots=100", data=BELL_FILE.encode(),
                    headers={"Content-Type": "text/plain"})
    assert created.status_code == 201, created.get_data(as_text=True)
    job_id = created.get_json()["job_id"]
    assert created.headers["Location"] == f"/status/{job_id}"
    job = drive_until_final(runtime, job_id)
    assert job.status == "completed" and job.shots == 100
    assert sum(job.result["counts"].values()) == 100 and set(job.result["counts"]) <= {"00", "11"}


def test_the_openqasm_media_type_and_a_custom_job_id_are_idempotent(client, runtime, api_key):
    def send():
        return _post(client, api_key, "/execute?job_id=bell-file&shots=10", data=BELL_FILE,
                     headers={"Content-Type": "application/vnd.openqasm; charset=utf-8"})

    first, again = send(), send()
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["job_id"] == again.get_json()["job_id"] == "bell-file"
    assert _job(runtime, "bell-file").shots == 10


def test_the_default_shots_apply_to_a_bare_file(client, runtime, api_key):
    job_id = _post(client, api_key, data=BELL_FILE, headers={"Content-Type": "text/plain"}).get_json()["job_id"]
    assert _job(runtime, job_id).shots == 1024


def _file(content: bytes, name: str = "bell.qasm"):
    return io.BytesIO(content), name


@pytest.mark.parametrize("as_file", [True, False], ids=["file", "text-field"])
def test_a_multipart_form_takes_the_file_or_a_text_field(client, runtime, api_key, as_file):
    qasm = _file(BELL_FILE.encode()) if as_file else BELL_FILE
    created = _post(client, api_key, data={"qasm": qasm, "shots": "20", "job_id": "from-a-form"},
                    content_type="multipart/form-data")
    assert created.status_code == 201, created.get_data(as_text=True)
    job = _job(runtime, "from-a-form")
    assert job.shots == 20 and job.num_qubits == 2


def test_a_form_text_field_may_be_as_large_as_a_body(client, api_key):
    padded = "// padding\n" * 60_000 + BELL_FILE  # 660 kB, over werkzeug's 500 kB default for form fields
    created = _post(client, api_key, data={"qasm": padded}, content_type="multipart/form-data")
    assert created.status_code == 201, created.get_data(as_text=True)


def test_shots_may_come_from_the_query_with_a_form(client, runtime, api_key):
    created = _post(client, api_key, "/execute?shots=30", data={"qasm": _file(BELL_FILE.encode())},
                    content_type="multipart/form-data")
    assert created.status_code == 201
    assert _job(runtime, created.get_json()["job_id"]).shots == 30


def test_an_url_encoded_form_with_a_qasm_field(client, runtime, api_key):
    # curl --data-urlencode qasm@bell.qasm -d shots=40
    created = _post(client, api_key, data={"qasm": BELL_FILE, "shots": "40"},
                    content_type="application/x-www-form-urlencoded")
    assert created.status_code == 201
    assert _job(runtime, created.get_json()["job_id"]).shots == 40


@pytest.mark.parametrize("form", ["text/plain", "json", "form-file", "form-text", "url-encoded", "batch"])
def test_a_byte_order_mark_is_not_part_of_the_program_in_any_form(client, runtime, api_key, form):
    qasm = "\ufeff" + BELL_FILE
    sent = {
        "text/plain": lambda: _post(client, api_key, data=qasm.encode(), headers={"Content-Type": "text/plain"}),
        "json": lambda: _post(client, api_key, json={"qasm": qasm}),
        "form-file": lambda: _post(client, api_key, data={"qasm": _file(qasm.encode())},
                                   content_type="multipart/form-data"),
        "form-text": lambda: _post(client, api_key, data={"qasm": qasm}, content_type="multipart/form-data"),
        "url-encoded": lambda: _post(client, api_key, data={"qasm": qasm},
                                     content_type="application/x-www-form-urlencoded"),
        "batch": lambda: _post(client, api_key, "/batches", json={"circuits": [{"qasm": qasm}]}),
    }[form]()
    assert sent.status_code == 201, sent.get_data(as_text=True)
    job_id = sent.get_json()["job_ids"][0] if form == "batch" else sent.get_json()["job_id"]
    assert _job(runtime, job_id).qasm == BELL_FILE


def test_only_one_byte_order_mark_is_dropped(client, api_key):
    detail = _error(_post(client, api_key, json={"qasm": "\ufeff\ufeff" + BELL_FILE}), 400, "CIRCUIT_INVALID")
    assert "line 1" in detail


def test_a_dry_run_of_a_file(client, runtime, api_key):
    answer = _post(client, api_key, "/execute?dry_run=true&shots=5", data=BELL_FILE,
                   headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200
    assert answer.get_json()["dry_run"] is True and answer.get_json()["shots"] == 5
    assert _job_count(runtime) == 0


def test_a_bad_circuit_file_names_its_line_in_the_file(client, runtime, api_key):
    broken = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nfoo q[0];\n'
    detail = _error(_post(client, api_key, data=broken, headers={"Content-Type": "text/plain"}), 400,
                    "CIRCUIT_INVALID")
    assert "line 4" in detail
    assert _job_count(runtime) == 0


@pytest.mark.parametrize(("query", "mentions"), [
    ("shots=0", "shots"), ("shots=abc", "shots"), ("shots=1.5", "shots"), ("shots=" + "9" * 5000, "shots"),
    ("job_id=../etc", "job_id"), ("job_id=", "job_id"),
])
def test_bad_query_fields_are_invalid_request(client, runtime, api_key, query, mentions):
    detail = _error(_post(client, api_key, f"/execute?{query}", data=BELL_FILE, headers={"Content-Type": "text/plain"}),
                    400, "INVALID_REQUEST")
    assert mentions in detail
    assert _job_count(runtime) == 0


@pytest.mark.parametrize("query", ["shots=%2B5", "shots=%205", "shots=5%20", "shots=%D9%A5", "shots=5%0A",
                                   "shots=0x10", "shots=1_000"])
def test_shots_in_the_query_are_decimal_digits_only(client, runtime, api_key, query):
    # int() and pydantic take "+5", " 5", "٥" (an Arabic-Indic 5) and "1_000"; the README promises digits.
    detail = _error(_post(client, api_key, f"/execute?{query}", data=BELL_FILE, headers={"Content-Type": "text/plain"}),
                    400, "INVALID_REQUEST")
    assert "shots" in detail and "digits" in detail
    assert _job_count(runtime) == 0


@pytest.mark.parametrize("shots", ["+5", " 5", "5 ", "\u0665"])
def test_shots_in_a_form_are_decimal_digits_only(client, runtime, api_key, shots):
    for content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        detail = _error(_post(client, api_key, data={"qasm": BELL_FILE, "shots": shots}, content_type=content_type),
                        400, "INVALID_REQUEST")
        assert "shots" in detail and "digits" in detail
    assert _job_count(runtime) == 0


@pytest.mark.parametrize(("query", "names"), [
    ("shot=5", "'shot'"), ("jobid=abc", "'jobid'"), ("shots=5&dryrun=true", "'dryrun'"),
    ("shots=5&shots=6", "'shots' is given more than once"), ("job_id=a&job_id=a", "'job_id' is given more than once"),
    ("dry_run=true&dry_run=false", "'dry_run' is given more than once"),
])
@pytest.mark.parametrize("body", ["text/plain", "form", "json"])
def test_unknown_and_repeated_query_parameters_are_refused_as_in_a_form(client, runtime, api_key, query, names, body):
    if body == "json" and "dry_run" not in query:
        query += "&dry_run=true"  # shots and job_id alone are refused with a JSON body anyway
    sent = {"text/plain": {"data": BELL_FILE, "headers": {"Content-Type": "text/plain"}},
            "form": {"data": {"qasm": BELL_FILE}, "content_type": "multipart/form-data"},
            "json": {"json": {"qasm": BELL}}}[body]
    detail = _error(_post(client, api_key, f"/execute?{query}", **sent), 400, "INVALID_REQUEST")
    assert names in detail
    assert _job_count(runtime) == 0


def test_dry_run_is_the_one_query_parameter_of_a_json_body(client, runtime, api_key):
    assert _post(client, api_key, "/execute?dry_run=true", json={"qasm": BELL}).status_code == 200
    detail = _error(_post(client, api_key, "/execute?shots=5", json={"qasm": BELL}), 400, "INVALID_REQUEST")
    assert "shots" in detail and "body" in detail
    assert _job_count(runtime) == 0


def test_an_empty_file_is_invalid_request(client, api_key):
    assert "qasm" in _error(_post(client, api_key, data=b"", headers={"Content-Type": "text/plain"}), 400,
                            "INVALID_REQUEST")


def test_json_keeps_shots_in_the_body(client, runtime, api_key):
    detail = _error(_post(client, api_key, "/execute?shots=10", json={"qasm": BELL}), 400, "INVALID_REQUEST")
    assert "shots" in detail and "body" in detail
    assert _job_count(runtime) == 0


@pytest.mark.parametrize(("data", "path", "mentions"), [
    ({"qasm": BELL_FILE, "shots": "10"}, "/execute?shots=10", "shots given both"),
    ({"qasm": BELL_FILE, "shot": "10"}, "/execute", "shot"),
    ({"shots": "10"}, "/execute", "qasm"),
    ({"qasm": [BELL_FILE, BELL_FILE]}, "/execute", "more than once"),
    ({"qasm": b"\xff\xfe"}, "/execute", "not UTF-8"),
])
def test_bad_forms_are_invalid_request(client, runtime, api_key, data, path, mentions):
    data = {name: _file(value) if isinstance(value, bytes) else value for name, value in data.items()}
    detail = _error(_post(client, api_key, path, data=data, content_type="multipart/form-data"), 400, "INVALID_REQUEST")
    assert mentions in detail
    assert _job_count(runtime) == 0


def test_a_program_sent_as_curls_default_form_says_how_to_send_it(client, runtime, api_key):
    # curl -d "$(cat bell.qasm)" and curl --data-binary @bell.qasm without -H send this.
    response = _post(client, api_key, data=BELL_FILE, headers={"Content-Type": "application/x-www-form-urlencoded"})
    detail = _error(response, 400, "INVALID_REQUEST")
    assert "--data-binary @bell.qasm -H 'Content-Type: text/plain'" in detail
    assert _job_count(runtime) == 0


def test_text_that_is_not_utf8_is_refused(client, api_key):
    _error(_post(client, api_key, data=b"OPENQASM 2.0; \xff", headers={"Content-Type": "text/plain"}), 400,
           "INVALID_REQUEST")
    detail = _error(_post(client, api_key, data=BELL_FILE.encode("latin-1"),
                          headers={"Content-Type": "text/plain; charset=latin-1"}), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "UTF-8" in detail


@pytest.mark.parametrize("content_type", ["application/xml", "application/octet-stream", "image/png"])
def test_other_media_types_are_415_with_the_accepted_ones(client, api_key, content_type):
    detail = _error(_post(client, api_key, data=BELL_FILE, headers={"Content-Type": content_type}), 415,
                    "UNSUPPORTED_MEDIA_TYPE")
    assert "application/json" in detail and "text/plain" in detail and "-F qasm=@bell.qasm" in detail


def test_compressed_circuit_bodies_are_415(client, api_key):
    for content_type in ("text/plain", "multipart/form-data; boundary=x"):
        _error(_post(client, api_key, data=b"\x1f\x8b", headers={"Content-Type": content_type,
                                                                  "Content-Encoding": "gzip"}),
               415, "UNSUPPORTED_MEDIA_TYPE")


def test_bodies_over_the_limit_are_413_in_every_form(client, runtime, api_key):
    limit = runtime.settings.max_body_bytes
    big = "// padding\n" * (limit // 11 + 1) + BELL_FILE
    _error(_post(client, api_key, data=big, headers={"Content-Type": "text/plain"}), 413, "PAYLOAD_TOO_LARGE")
    _error(_post(client, api_key, data={"qasm": _file(big.encode())},
                 content_type="multipart/form-data"), 413, "PAYLOAD_TOO_LARGE")
    assert _job_count(runtime) == 0
