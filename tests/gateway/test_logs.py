"""QCOS_LOG_FORMAT=json: one JSON object per line, with the request's context and never a key."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from gateway import create_app
from gateway.logs import configure_logging, log_context
from tests.conftest import BELL


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def json_app(settings):
    app = create_app({"QCOS_SETTINGS": settings.model_copy(update={"log_format": "json"}), "TESTING": True})
    yield app
    configure_logging("INFO", "text")


def test_every_line_is_a_json_object_with_time_level_logger_message(capsys):
    configure_logging("INFO", "json")
    try:
        logging.getLogger("gateway.poller").warning("scheduler unavailable this cycle: %s", "timeout")
        logging.getLogger("gateway.poller").info("job %s completed", "j1", extra={"job_id": "j1", "slurm_job_id": "42"})
    finally:
        configure_logging("INFO", "text")
    first, second = _json_lines(capsys.readouterr().err)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "WARNING" and first["logger"] == "gateway.poller"
    assert first["message"] == "scheduler unavailable this cycle: timeout" and first["time"].endswith("+00:00")
    assert (second["job_id"], second["slurm_job_id"]) == ("j1", "42")


def test_bound_context_tags_lines_in_its_own_thread_only(capsys):
    configure_logging("INFO", "json")
    log = logging.getLogger("gateway.dispatcher")
    other_thread = threading.Thread(target=lambda: log.info("elsewhere"))
    try:
        with log_context(job_id="j7", slurm_job_id="1234", user_id="user_ab"):
            log.info("inside")
            other_thread.start()
            other_thread.join()
        log.info("after")
    finally:
        configure_logging("INFO", "text")
    lines = {line["message"]: line for line in _json_lines(capsys.readouterr().err)}
    assert {k: lines["inside"][k] for k in ("job_id", "slurm_job_id", "user_id")} == \
        {"job_id": "j7", "slurm_job_id": "1234", "user_id": "user_ab"}
    assert "job_id" not in lines["elsewhere"] and "job_id" not in lines["after"]


def test_one_access_line_per_request_with_its_ids_and_never_the_key(json_app, capsys):
    from tests.conftest import make_user

    user_id, key = make_user(json_app.extensions["qcos"])
    client = json_app.test_client()
    capsys.readouterr()
    submitted = client.post("/execute", json={"qasm": BELL, "shots": 16}, headers={"X-API-Key": key})
    status = client.get(f"/status/{submitted.get_json()['job_id']}", headers={"Authorization": f"Bearer {key}"})
    unknown = client.get("/status/nope", headers={"X-API-Key": key})
    output = capsys.readouterr().err
    assert key not in output and key[5:20] not in output
    lines = _json_lines(output)
    access = [line for line in lines if line["logger"] == "gateway.access"]
    assert [line["request_id"] for line in access] == [r.headers["X-Request-ID"] for r in (submitted, status, unknown)]
    assert [line["status"] for line in access] == [201, 200, 404]
    assert all(line["user_id"] == user_id for line in access)
    assert access[1]["job_id"] == submitted.get_json()["job_id"] and access[1]["route"] == "/status/<job_id>"
    # Lines logged while handling a request carry its request id too.
    inner = [line for line in lines if line["logger"] != "gateway.access"]
    assert inner and all(line.get("request_id") == submitted.headers["X-Request-ID"] for line in inner
                         if "submitted" in line["message"])


def test_text_stays_the_default(client, capsys):
    client.get("/healthz")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert " INFO gateway.access: req_" in line and "'/healthz' 200" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
