"""Error answers become typed exceptions with what they say."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from qcos_sdk import errors
from qcos_sdk.errors import error_from_response, parse_retry_after


def answer(status: int, code: str, detail: str = "because", headers=None) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail, "error_code": code, "request_id": "req_abc"},
                          headers=headers)


@pytest.mark.parametrize("status, code, cls", [
    (401, "AUTH_REQUIRED", errors.AuthError),
    (401, "AUTH_INVALID", errors.AuthError),
    (403, "ADMIN_REQUIRED", errors.AdminRequired),
    (400, "INVALID_REQUEST", errors.InvalidRequest),
    (413, "PAYLOAD_TOO_LARGE", errors.InvalidRequest),
    (415, "UNSUPPORTED_MEDIA_TYPE", errors.InvalidRequest),
    (400, "CIRCUIT_INVALID", errors.CircuitInvalid),
    (403, "QUOTA_EXCEEDED", errors.QuotaExceeded),
    (429, "QUOTA_EXCEEDED", errors.QuotaExceeded),
    (429, "RATE_LIMITED", errors.RateLimited),
    (404, "NOT_FOUND", errors.NotFound),
    (404, "JOB_NOT_FOUND", errors.JobNotFound),
    (404, "BATCH_NOT_FOUND", errors.BatchNotFound),
    (409, "JOB_ID_CONFLICT", errors.Conflict),
    (409, "JOB_FAILED", errors.JobFailed),
    (503, "SERVICE_UNAVAILABLE", errors.ServiceUnavailable),
    (500, "INTERNAL_ERROR", errors.ServerError),
])
def test_each_error_code_has_its_class(status, code, cls):
    exc = error_from_response(answer(status, code))
    assert type(exc) is cls
    assert (exc.status_code, exc.error_code, exc.detail, exc.request_id) == (status, code, "because", "req_abc")
    assert str(exc) == f"{code}: because"


def test_not_found_errors_share_a_base_and_admin_is_an_auth_error():
    assert issubclass(errors.JobNotFound, errors.NotFound) and issubclass(errors.BatchNotFound, errors.NotFound)
    assert issubclass(errors.AdminRequired, errors.AuthError)
    assert issubclass(errors.JobTimeout, TimeoutError) and issubclass(errors.APIError, errors.QCOSError)


def test_a_circuit_error_carries_line_and_column():
    exc = error_from_response(answer(400, "CIRCUIT_INVALID", "Invalid circuit: line 4, column 1: 'foo' is not defined"))
    assert (exc.line, exc.column, exc.index) == (4, 1, None)


def test_a_batch_circuit_error_names_the_circuit():
    exc = error_from_response(answer(400, "CIRCUIT_INVALID", "circuits[12]: Invalid circuit: line 3: no measurement"))
    assert (exc.index, exc.line, exc.column) == (12, 3, None)


def test_a_circuit_error_without_position_has_none():
    exc = error_from_response(answer(400, "CIRCUIT_INVALID", "The circuit cannot run on this cluster: 2 TiB"))
    assert (exc.index, exc.line, exc.column) == (None, None, None)


def test_job_failed_carries_the_job_and_its_reason():
    exc = error_from_response(answer(409, "JOB_FAILED", "Job abc-1 failed: cancelled by the user"))
    assert (exc.job_id, exc.reason) == ("abc-1", "cancelled by the user")
    made = errors.JobFailed.of("x", None)
    assert (made.job_id, made.reason, made.error_code) == ("x", "no reason given", "JOB_FAILED")


@pytest.mark.parametrize("code", ["RATE_LIMITED", "QUOTA_EXCEEDED"])
def test_429_carries_retry_after(code):
    assert error_from_response(answer(429, code, headers={"Retry-After": "17"})).retry_after == 17.0


def test_503_carries_retry_after():
    assert error_from_response(answer(503, "SERVICE_UNAVAILABLE", headers={"Retry-After": "30"})).retry_after == 30


def test_an_answer_that_is_not_json_still_becomes_a_typed_error():
    exc = error_from_response(httpx.Response(502, text="<html>\n<h1>Bad Gateway</h1></html>"))
    assert type(exc) is errors.ServerError and exc.error_code == "INTERNAL_ERROR"
    assert exc.detail == "<html> <h1>Bad Gateway</h1></html>"
    exc = error_from_response(httpx.Response(503, text="", headers={"Retry-After": "5"}))
    assert type(exc) is errors.ServiceUnavailable and exc.retry_after == 5


def test_an_unknown_code_falls_back_on_the_status():
    exc = error_from_response(answer(404, "SOMETHING_NEW"))
    assert type(exc) is errors.NotFound and exc.error_code == "SOMETHING_NEW"


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2024, 1, 15, 10, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Mon, 15 Jan 2024 10:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Mon, 15 Jan 2024 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
