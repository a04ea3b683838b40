"""An in-memory stand-in for the gateway, behind ``httpx.MockTransport``,
for what a live gateway cannot show on demand: a 429 or 503 with a given
``Retry-After``, an early long-poll answer, a batch that progresses one
poll at a time. It answers in the API's shapes (the reference, the README
and the batch spec) and records every request.

Jobs advance one state per look (``GET /status``, ``/results``,
``/batches``): queued → processing → completed; ``finish_after`` sets how
many looks that takes. Counts come from ``counts_for(qasm, shots)``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import unquote

import httpx


def simulate(qasm: str, shots: int) -> dict[str, int]:
    """Counts from Qiskit's reference simulator (the gateway's format: c[0] rightmost, registers spaced)."""
    from qiskit import qasm2
    from qiskit.providers.basic_provider import BasicSimulator

    return dict(BasicSimulator().run(qasm2.loads(qasm), shots=shots, seed_simulator=7).result().get_counts())


@dataclass
class FakeJob:
    job_id: str
    qasm: str
    shots: int
    counts: dict[str, int]
    looks: int = 0
    error: str | None = None

    def status(self, finish_after: int) -> str:
        if self.error is not None:
            return "failed"
        if self.looks >= finish_after:
            return "completed"
        return "processing" if self.looks else "queued"


@dataclass
class FakeGateway:
    finish_after: int = 2
    counts_for: Callable[[str, int], dict[str, int]] = lambda qasm, shots: {"00": shots // 2, "11": shots - shots // 2}
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    batches: dict[str, list[str]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    #: Answers given before any normal handling, first in first out.
    queued_answers: list[httpx.Response] = field(default_factory=list)
    #: Circuits whose job fails in the batch job, with this reason.
    failing: dict[str, str] = field(default_factory=dict)
    #: List a batch's jobs newest id first instead of in submission order.
    misorder_batches: bool = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def paths(self, method: str | None = None) -> list[str]:
        return [request.url.path for request in self.requests if method in (None, request.method)]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.queued_answers:
            return self.queued_answers.pop(0)
        parts = [unquote(part) for part in request.url.raw_path.decode().split("?")[0].strip("/").split("/")]
        method = request.method
        if method == "GET" and parts == [""]:
            return _json(200, {"status": "healthy", "version": "1.0.0", "queue_connected": True})
        if method == "GET" and parts == ["user", "me"]:
            return _json(200, {"user_id": "user_1", "email": "a@example.org", "tier": "pro", "daily_job_limit": 100,
                               "max_qubits": 50, "max_shots": 100000, "jobs_today": len(self.jobs),
                               "jobs_total": len(self.jobs)})
        if method == "POST" and parts == ["execute"]:
            body = json.loads(request.content)
            problem = self._invalid(body["qasm"])
            if problem:
                return _error(400, "CIRCUIT_INVALID", problem)
            existing = self.jobs.get(body.get("job_id"))
            if existing is not None:  # an idempotent repeat
                return _json(200, {"job_id": existing.job_id, "status": existing.status(self.finish_after),
                                   "message": "exists", "estimated_time_seconds": 5})
            job = self._create(body)
            return _json(201, {"job_id": job.job_id, "status": "queued", "message": "Job queued",
                               "estimated_time_seconds": 5}, {"Location": f"/status/{job.job_id}"})
        if method == "POST" and parts == ["batches"]:
            circuits = json.loads(request.content)["circuits"]
            for index, entry in enumerate(circuits):
                problem = self._invalid(entry["qasm"])
                if problem:
                    return _error(400, "CIRCUIT_INVALID", f"circuits[{index}]: {problem}")
            batch_id = f"batch_{uuid.uuid4().hex}"
            self.batches[batch_id] = [self._create(entry).job_id for entry in circuits]
            return _json(201, {"batch_id": batch_id, "job_ids": self.batches[batch_id], "count": len(circuits),
                               "status": "queued"}, {"Location": f"/batches/{batch_id}"})
        if method == "GET" and len(parts) == 2 and parts[0] == "batches":
            if parts[1] not in self.batches:
                return _error(404, "BATCH_NOT_FOUND", f"Batch {parts[1]} not found")
            jobs = [self._look(job_id) for job_id in self.batches[parts[1]]]
            if self.misorder_batches:
                jobs.sort(key=lambda job: job.job_id, reverse=True)
            states = [job.status(self.finish_after) for job in jobs]
            return _json(200, {
                "batch_id": parts[1], "created_at": "2024-01-15T10:30:00Z", "count": len(jobs),
                "counts": {state: states.count(state) for state in ("queued", "processing", "completed", "failed")},
                "done": all(state in ("completed", "failed") for state in states),
                "jobs": [{"job_id": job.job_id, "status": state, "error": job.error,
                          "result": {"counts": job.counts} if state == "completed" else None}
                         for job, state in zip(jobs, states)],
            })
        if len(parts) == 2 and parts[0] in ("status", "results", "jobs"):
            if parts[1] not in self.jobs:
                return _error(404, "JOB_NOT_FOUND", f"Job {parts[1]} not found")
            job = self.jobs[parts[1]]
            if method == "DELETE" and parts[0] == "jobs":
                if job.status(self.finish_after) not in ("completed", "failed"):
                    job.error = "cancelled by the user"
                return _json(200, self._status_body(job))
            job = self._look(parts[1])
            if parts[0] == "status":
                return _json(200, self._status_body(job))
            if parts[0] == "results":
                state = job.status(self.finish_after)
                if state == "completed":
                    return _json(200, {"job_id": job.job_id, "status": "completed", "result": {"counts": job.counts}})
                if state == "failed":
                    return _error(409, "JOB_FAILED", f"Job {job.job_id} failed: {job.error}")
                return _json(200, {"job_id": job.job_id, "status": "pending", "message": "Job not yet completed"})
        return _error(404, "NOT_FOUND", "No such endpoint")

    def _invalid(self, qasm: str) -> str | None:
        if "OPENQASM 2.0" not in qasm:
            return "Invalid circuit: line 1, column 1: expected 'OPENQASM 2.0;'"
        return None

    def _create(self, body: dict) -> FakeJob:
        job_id = body.get("job_id") or str(uuid.uuid4())
        shots = body.get("shots", 1024)
        job = FakeJob(job_id, body["qasm"], shots, self.counts_for(body["qasm"], shots))
        self.jobs[job_id] = job
        return job

    def _look(self, job_id: str) -> FakeJob:
        job = self.jobs[job_id]
        job.looks += 1
        if job.qasm in self.failing and job.looks >= self.finish_after and job.error is None:
            job.error = self.failing[job.qasm]
        return job

    def _status_body(self, job: FakeJob) -> dict:
        state = job.status(self.finish_after)
        return {"job_id": job.job_id, "status": state,
                "result": {"counts": job.counts, "shots": job.shots} if state == "completed" else None,
                "error": job.error, "created_at": "2024-01-15T10:30:00Z",
                "completed_at": "2024-01-15T10:30:02Z" if state in ("completed", "failed") else None}


def _json(status: int, body: dict, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail, "error_code": code, "request_id": "req_test"},
                          headers=headers)


def error(status: int, code: str, detail: str = "refused", retry_after: str | None = None) -> httpx.Response:
    """An error answer to queue in :attr:`FakeGateway.queued_answers`."""
    return _error(status, code, detail, {"Retry-After": retry_after} if retry_after is not None else None)
