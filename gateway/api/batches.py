"""``POST /batches`` and ``GET /batches/{batch_id}``: many circuits in one request."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request, url_for
from pydantic import ValidationError

from gateway import jobs
from gateway.api.jobs import json_body, validation_detail
from gateway.auth import require_api_key
from gateway.errors import InvalidRequest
from gateway.openapi import AUTH_ERRORS, api_spec, responses
from gateway.schemas import BatchJob, BatchRequest, BatchResponse, BatchStatusResponse, iso_utc
from hpc_jobs.lifecycle import JobStatus

blueprint = Blueprint("batches", __name__)


@blueprint.post("/batches")
@api_spec.validate(operation_id="createBatch", json=BatchRequest,
                   resp=responses({201: BatchResponse, 200: BatchResponse}, (400, 403, 409, 413, 415, *AUTH_ERRORS),
                                  headers={201: ["Location"]}),
                   tags=["batches"])
@require_api_key
def create():
    """Submit up to ``QCOS_BATCH_MAX_CIRCUITS`` circuits at once. Every circuit is
    validated first: any invalid one makes the whole request a 400 whose
    detail starts ``circuits[<index>]:``, with nothing stored. The daily
    quota counts each circuit, all or none. Each circuit becomes an ordinary
    job (``/status``, ``/results``, ``/jobs``, cancel). 201 with ``Location``;
    200 for a repeat of a batch whose circuits all carry their ``job_id``."""
    if request.args:
        # Everything goes in the body; ?shots=5 would otherwise be ignored silently.
        name = next(iter(request.args))
        raise InvalidRequest(f"Unknown query parameter {name[:40]!r}: POST /batches takes none; "
                             "shots and job_id go in each circuit of the body")
    runtime = current_app.extensions["qcos"]
    limit = runtime.settings.batch_max_circuits
    body = json_body(limit=runtime.settings.max_batch_body_bytes)
    circuits = body.get("circuits")
    if isinstance(circuits, list) and len(circuits) > limit:
        raise InvalidRequest(f"Invalid request: circuits: at most {limit} circuits per batch, got {len(circuits)}")
    try:
        batch_request = BatchRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(validation_detail(exc)) from None
    submission = jobs.submit_batch(runtime, g.user, batch_request.circuits)
    answer = BatchResponse(
        batch_id=submission.batch.id, job_ids=[job.id for job in submission.jobs], count=len(submission.jobs),
        status="queued" if submission.created else "exists",
        estimated_time_seconds=max(job.estimated_time_seconds for job in submission.jobs),
    ).model_dump()
    if not submission.created:
        return answer, 200
    return answer, 201, {"Location": url_for("batches.status", batch_id=submission.batch.id)}


@blueprint.get("/batches/<batch_id>")
@api_spec.validate(operation_id="getBatch", resp=responses({200: BatchStatusResponse}, (404, *AUTH_ERRORS)),
                   tags=["batches"])
@require_api_key
def status(batch_id: str):
    """Counts per status, ``done`` once every job is final, and every job in
    request order with its counts once completed or its error once failed."""
    view = jobs.get_batch(current_app.extensions["qcos"], g.user, batch_id)
    return BatchStatusResponse(
        batch_id=view.batch.id, created_at=iso_utc(view.batch.created_at), count=view.batch.count,
        counts=view.counts, done=view.done,
        jobs=[BatchJob(job_id=job.id, status=job.status, error=job.error,
                       result={"counts": job.result["counts"]}
                       if job.status == JobStatus.COMPLETED.value and job.result else None)
              for job in view.jobs],
    ).model_dump()
