"""``POST /execute``, ``GET /status/{job_id}``, ``GET /results/{job_id}``."""

from __future__ import annotations

import json
import re
import sys

from flask import Blueprint, current_app, g, request, url_for
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from gateway import jobs
from gateway.auth import require_api_key
from gateway.errors import InvalidRequest, JobFailed, PayloadTooLarge, UnsupportedMediaType
from gateway.models import Job
from gateway.openapi import AUTH_ERRORS, api_spec, responses
from gateway.schemas import (
    DryRunResponse,
    ExecuteForm,
    ExecuteOkResponse,
    ExecuteQuery,
    ExecuteRequest,
    ExecuteResponse,
    JobListQuery,
    JobListResponse,
    JobSummary,
    ResultCounts,
    ResultsCompleted,
    ResultsPending,
    ResultsQuery,
    ResultsResponse,
    StatusResponse,
    iso_utc,
)
from hpc_jobs.lifecycle import JobStatus

blueprint = Blueprint("jobs", __name__)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _raw_body(limit: int | None = None) -> bytes:
    """The request body's bytes: 415 if compressed, 413 over ``limit`` bytes
    (default ``QCOS_MAX_BODY_BYTES``; raised by werkzeug while reading), 400
    if it cannot be read."""
    if request.content_encoding and request.content_encoding.lower() != "identity":
        raise UnsupportedMediaType("Compressed bodies are not accepted; send the body uncompressed")
    if limit is None:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
    else:
        request.max_content_length = limit
    try:
        raw = request.get_data(cache=True)
    except HTTPException:
        raise
    except Exception:  # a malformed chunked body, a client that went away
        raise InvalidRequest("The body could not be read (malformed transfer encoding?)") from None
    if request.content_length is None and len(raw) >= limit:
        # A chunked body is cut at the limit when read: it was at least that long.
        raise PayloadTooLarge(f"The body is larger than {limit} bytes")
    return raw


def json_body(limit: int | None = None) -> dict:
    """The request body as a JSON object; 415 unless sent as JSON, 413 over
    ``limit`` bytes (default ``QCOS_MAX_BODY_BYTES``), 400 for anything unparsable."""
    if not request.is_json:
        raise UnsupportedMediaType("The body must be JSON, sent with Content-Type: application/json")
    _require_utf8("The JSON body")
    raw = _raw_body(limit)
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequest("The body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise InvalidRequest("The body is nested too deeply") from None
    except ValueError:
        # What is left of json.loads' ValueErrors: an integer beyond Python's digit limit.
        raise InvalidRequest(f"The body has a number with too many digits (at most {sys.get_int_max_str_digits()})"
                             ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object")
    return body


#: Media types whose body is the OpenQASM program itself (``shots``, ``job_id`` in the query).
CIRCUIT_MEDIA_TYPES = ("text/plain", "application/vnd.openqasm")
#: Form media types: the fields of ``ExecuteRequest`` as form fields, ``qasm`` a file or text.
FORM_MEDIA_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
#: Fields a circuit body (or a form) may take from the query string.
_QUERY_FIELDS = ("shots", "job_id")
#: Every query parameter of ``POST /execute``; ``dry_run`` goes with every form of body.
_EXECUTE_QUERY = ("dry_run", *_QUERY_FIELDS)
_HOW_TO_SEND = ("send the circuit as JSON (Content-Type: application/json), as the body itself "
                "(curl --data-binary @bell.qasm -H 'Content-Type: text/plain'), or as a form "
                "(curl -F qasm=@bell.qasm -F shots=1024)")


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")  # a leading byte order mark is dropped from qasm by ExecuteRequest
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what} is not UTF-8 text") from None


def _require_utf8(what: str) -> None:
    """415 unless the Content-Type's charset, if any, is UTF-8 (or its subset ASCII)."""
    charset = (request.mimetype_params.get("charset") or "utf-8").lower()
    if charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        raise UnsupportedMediaType(f"{what} must be sent as UTF-8 text, not {charset[:40]}")


def _circuit_body_fields() -> dict[str, str]:
    _require_utf8("The circuit")
    return {"qasm": _utf8(_raw_body(), "The body")}


def _form_fields() -> dict[str, str]:
    if request.content_encoding and request.content_encoding.lower() != "identity":
        raise UnsupportedMediaType("Compressed bodies are not accepted; send the form uncompressed")
    try:
        form, files = request.form, request.files
    except HTTPException:
        raise
    except Exception:  # a malformed multipart body, a client that went away
        raise InvalidRequest("The form could not be read (malformed multipart body?)") from None
    fields: dict[str, str] = {}
    for source in (form, files):
        for name in source:
            values = source.getlist(name)
            if name in fields or len(values) > 1:
                raise InvalidRequest(f"The form field {name[:40]!r} is given more than once")
            value = values[0]
            fields[name] = value if isinstance(value, str) else _utf8(value.read(), f"The file of {name[:40]!r}")
    if "qasm" not in fields and request.mimetype == "application/x-www-form-urlencoded":
        # curl's default for -d and --data-binary: most likely a program sent without a Content-Type.
        raise InvalidRequest(f"The form has no qasm field (curl sends -d and --data-binary as a form); {_HOW_TO_SEND}")
    return fields


def _execute_query() -> dict[str, str]:
    """The query of ``POST /execute``, each parameter once: 400 for a name not in
    :data:`_EXECUTE_QUERY` (a typo such as ``shot`` would otherwise run 1024
    shots) or one given more than once, as in a form."""
    for name in request.args:
        if name not in _EXECUTE_QUERY:
            raise InvalidRequest(f"Unknown query parameter {name[:40]!r}: POST /execute takes dry_run, and "
                                 f"{' and '.join(_QUERY_FIELDS)} with a circuit or form body")
        if len(request.args.getlist(name)) > 1:
            raise InvalidRequest(f"The query parameter {name[:40]!r} is given more than once")
    return request.args.to_dict()


def _execute_request() -> ExecuteRequest:
    """The submission in any of the accepted forms (see :func:`execute`); 400, 413 or 415 otherwise."""
    query = _execute_query()
    in_query = {name: query[name] for name in _QUERY_FIELDS if name in query}
    if request.is_json:
        if in_query:
            raise InvalidRequest(f"With a JSON body, {' and '.join(in_query)} go in the body, not the query")
        data = json_body()
    elif request.mimetype in CIRCUIT_MEDIA_TYPES or request.mimetype in FORM_MEDIA_TYPES:
        data = _circuit_body_fields() if request.mimetype in CIRCUIT_MEDIA_TYPES else _form_fields()
        twice = sorted(set(in_query) & set(data))
        if twice:
            raise InvalidRequest(f"{', '.join(twice)} given both in the query and in the body")
        data.update(in_query)
        shots = data.get("shots")
        # Only digits: int() and pydantic would also take "+5", " 5" or other scripts' digits.
        if isinstance(shots, str) and not re.fullmatch(r"[0-9]+", shots):
            raise InvalidRequest(f"Invalid request: shots: must be decimal digits 0-9, got {shots[:20]!r}")
    else:
        raise UnsupportedMediaType(f"Unsupported Content-Type {request.mimetype[:60]!r}: {_HOW_TO_SEND}")
    try:
        # Query and form values are text: shots "1024" is read as a number there, never in JSON.
        return ExecuteRequest.model_validate(data) if request.is_json else ExecuteRequest.model_validate_strings(data)
    except ValidationError as exc:
        raise InvalidRequest(validation_detail(exc)) from None


def validation_detail(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{field}: {error['msg']}")
    return "Invalid request: " + "; ".join(problems)


#: Request bodies of ``POST /execute`` besides JSON and multipart (documented by spectree itself).
_EXECUTE_CONTENT = {
    media_type: {"schema": {"type": "string", "minLength": 1, "description": "The OpenQASM 2.0 program, UTF-8"}}
    for media_type in CIRCUIT_MEDIA_TYPES
} | {"application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/ExecuteForm"}}}


@blueprint.post("/execute")
@api_spec.validate(operation_id="execute", json=ExecuteRequest, form=ExecuteForm, extra_content=_EXECUTE_CONTENT,
                   query=ExecuteQuery,
                   resp=responses({201: ExecuteResponse, 200: ExecuteOkResponse},
                                  (400, 403, 409, 413, 415, *AUTH_ERRORS), headers={201: ["Location"]}),
                   tags=["jobs"])
@require_api_key
def execute():
    """Submit a circuit. 201 with ``Location`` for a new job; 200 for an
    idempotent repeat of the same custom ``job_id`` and body. With
    ``?dry_run=true``: 200 with a :class:`DryRunResponse`, nothing stored.

    The body is JSON (``ExecuteRequest``), or the OpenQASM program itself
    (``text/plain`` or ``application/vnd.openqasm``, UTF-8) with ``shots``
    and ``job_id`` in the query, or a form (``multipart/form-data`` or
    ``application/x-www-form-urlencoded``) with the fields ``qasm`` (a file
    or text), ``shots`` and ``job_id``. Every form is validated alike.
    """
    body = _execute_request()
    dry = _parse_bool("dry_run", "false")
    runtime = current_app.extensions["qcos"]
    if dry:
        return DryRunResponse(**jobs.dry_run(runtime, g.user, body)), 200
    submission = jobs.submit(runtime, g.user, body)
    job = submission.job
    device = runtime.profile.simulator.device
    if submission.created:
        message = f"Job queued for {device} execution on {runtime.profile.name}"
    else:
        message = f"Job {job.id} already exists ({job.status}); this is its earlier submission"
    answer = ExecuteResponse(
        job_id=job.id,
        status=job.status,
        message=message,
        estimated_time_seconds=job.estimated_time_seconds,
    )
    if not submission.created:
        return answer.model_dump(), 200
    return answer.model_dump(), 201, {"Location": url_for("jobs.status", job_id=job.id)}


def _status_body(job: Job | jobs.JobView) -> StatusResponse:
    # Views answer models, not dicts: spectree then serializes them with
    # pydantic's own JSON encoder instead of walking every count of a result.
    return StatusResponse(
        job_id=job.id,
        status=job.status,
        result=job.result if job.status == JobStatus.COMPLETED.value else None,
        error=job.error,
        created_at=iso_utc(job.created_at),
        completed_at=iso_utc(job.completed_at),
    )


@blueprint.get("/status/<job_id>")
@api_spec.validate(operation_id="getStatus", resp=responses({200: StatusResponse}, (404, *AUTH_ERRORS)), tags=["jobs"])
@require_api_key
def status(job_id: str):
    """The job's status, its full result once completed, its error once failed."""
    return _status_body(jobs.get_job(current_app.extensions["qcos"], g.user, job_id))


def _parse_bool(name: str, default: str) -> bool:
    raw = request.args.get(name, default).strip().lower()
    if raw not in _TRUE | _FALSE:
        raise InvalidRequest(f"{name} must be true or false")
    return raw in _TRUE


def _parse_wait() -> tuple[bool, float]:
    settings = current_app.extensions["qcos"].settings
    wait = _parse_bool("wait", "false")
    raw_timeout = request.args.get("timeout", "30").strip()
    if not raw_timeout.isascii() or not raw_timeout.lstrip("-").isdigit():
        raise InvalidRequest("timeout must be an integer number of seconds")
    timeout = int(raw_timeout)
    if timeout < 0:
        raise InvalidRequest("timeout must be 0 or more seconds")
    # Compare as integers: a timeout of 400 digits must not overflow a float.
    return wait, float(min(timeout, int(settings.results_max_wait_seconds)))


@blueprint.get("/results/<job_id>")
@api_spec.validate(operation_id="getResults", query=ResultsQuery,
                   resp=responses({200: ResultsResponse}, (400, 404, 409, *AUTH_ERRORS)), tags=["jobs"])
@require_api_key
def results(job_id: str):
    """Counts of a completed job; ``wait=true`` blocks up to ``timeout`` seconds
    (capped by ``QCOS_RESULTS_MAX_WAIT``). Queued and processing jobs answer
    the reference's pending shape; a failed job answers JOB_FAILED."""
    wait, timeout = _parse_wait()
    runtime = current_app.extensions["qcos"]
    if wait:
        job = jobs.wait_for_final(runtime, g.user, job_id, timeout)
    else:
        job = jobs.get_job(runtime, g.user, job_id)
    if job.status == JobStatus.COMPLETED.value:
        return ResultsCompleted(job_id=job.id, status="completed", result=ResultCounts(counts=job.result["counts"]))
    if job.status == JobStatus.FAILED.value:
        raise JobFailed(f"Job {job.id} failed: {job.error}")
    return ResultsPending(job_id=job.id, status="pending", message="Job not yet completed")


@blueprint.delete("/jobs/<job_id>")
@api_spec.validate(operation_id="cancelJob", resp=responses({200: StatusResponse}, (404, *AUTH_ERRORS)), tags=["jobs"])
@require_api_key
def cancel(job_id: str):
    """Cancel one of the caller's jobs; answers its status. Idempotent: a
    finished job is answered as it is; a cancelled job is ``failed`` with
    the error ``cancelled by the user``."""
    runtime = current_app.extensions["qcos"]
    return _status_body(jobs.cancel_job(runtime, job_id, user=g.user, reason="cancelled by the user"))


@blueprint.get("/jobs")
@api_spec.validate(operation_id="listJobs", query=JobListQuery, resp=responses({200: JobListResponse}, (400, *AUTH_ERRORS)),
                   tags=["jobs"])
@require_api_key
def list_jobs():
    """The caller's jobs, newest first: ``?status=`` filter, ``limit`` (1–100, default 20), ``offset``."""
    try:
        query = JobListQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise InvalidRequest(validation_detail(exc)) from None
    page = jobs.list_jobs(current_app.extensions["qcos"], g.user, status=query.status, limit=query.limit,
                          offset=query.offset)
    return JobListResponse(
        jobs=[JobSummary(job_id=job.id, status=job.status, num_qubits=job.num_qubits, shots=job.shots,
                         created_at=iso_utc(job.created_at), completed_at=iso_utc(job.completed_at),
                         error=job.error) for job in page.jobs],
        total=page.total, limit=query.limit, offset=query.offset,
    ).model_dump()
