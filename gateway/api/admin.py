"""Admin endpoints (admin API keys only): the live queue, the cluster, cancelling any job."""

from __future__ import annotations

from flask import Blueprint, current_app

from gateway import jobs
from gateway.api.jobs import _status_body
from gateway.auth import require_admin
from gateway.errors import ServiceUnavailable
from gateway.openapi import AUTH_ERRORS, api_spec, responses
from gateway.schemas import AdminClusterResponse, AdminQueueResponse, PartitionEntry, StatusResponse
from hpc_jobs.executors.base import ExecutorError

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

ADMIN_ERRORS = (403, *AUTH_ERRORS)


@blueprint.get("/queue")
@api_spec.validate(operation_id="getAdminQueue", resp=responses({200: AdminQueueResponse}, ADMIN_ERRORS), tags=["admin"])
@require_admin
def queue():
    """The scheduler's live queue (one squeue call) joined with our jobs (one query)."""
    runtime = current_app.extensions["qcos"]
    try:
        entries = jobs.live_queue(runtime)
    except ExecutorError as exc:
        raise ServiceUnavailable(f"The scheduler did not answer: {exc}") from None
    return AdminQueueResponse(executor=runtime.executor.name, jobs=entries).model_dump()


@blueprint.get("/cluster")
@api_spec.validate(operation_id="getAdminCluster", resp=responses({200: AdminClusterResponse}, ADMIN_ERRORS),
                   tags=["admin"])
@require_admin
def cluster():
    """Partitions and node states (one sinfo call)."""
    runtime = current_app.extensions["qcos"]
    try:
        rows = runtime.executor.partitions()
    except ExecutorError as exc:
        raise ServiceUnavailable(f"The scheduler did not answer: {exc}") from None
    return AdminClusterResponse(executor=runtime.executor.name, partitions=[
        PartitionEntry(partition=row.partition, is_default=row.is_default, available=row.available,
                       time_limit_seconds=jobs.whole_seconds(row.time_limit), node_count=row.node_count, state=row.state,
                       node_list=row.node_list, cpus_per_node=row.cpus, memory_mb_per_node=row.memory_mb,
                       reason=row.reason)
        for row in rows
    ]).model_dump()


@blueprint.post("/jobs/<job_id>/cancel")
@api_spec.validate(operation_id="cancelJobAsAdmin", resp=responses({200: StatusResponse}, (404, *ADMIN_ERRORS)),
                   tags=["admin"])
@require_admin
def cancel(job_id: str):
    """Cancel any user's job (idempotent); it ends ``failed``: ``cancelled by an administrator``."""
    runtime = current_app.extensions["qcos"]
    return _status_body(jobs.cancel_job(runtime, job_id, user=None, reason="cancelled by an administrator"))
