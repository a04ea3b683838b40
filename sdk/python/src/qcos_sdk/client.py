"""The synchronous client: :class:`Client`, and the :class:`Job` and
:class:`Batch` handles it returns."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from tenacity import Retrying

from qcos_sdk._http import RetryPolicy, decode, default_headers, resolve_settings, results_params, segment
from qcos_sdk._polling import BatchPoll, ResultPoll, batch_results
from qcos_sdk.errors import connection_failed
from qcos_sdk.models import BatchInfo, CircuitLike, JobInfo, JobPage, JobResult, batch_entries, new_job_id, to_qasm


class Client:
    """A connection to a QCOS gateway.

    ``base_url`` and ``api_key`` default to the ``QCOS_URL`` and
    ``QCOS_API_KEY`` environment variables (a missing URL raises
    :class:`~qcos_sdk.errors.ConfigurationError`; a missing key only fails
    on endpoints that need one, with :class:`~qcos_sdk.errors.AuthError`).
    ``timeout`` is the seconds any one request may take (long polls get
    their wait on top). ``retry`` says how 429/503 answers and refused
    connections are retried (:class:`RetryPolicy`; ``RetryPolicy(attempts=1)``
    turns retrying off). ``long_poll_seconds`` is the longest single wait
    asked of ``/results`` (below the usual 60 s proxy idle limit).
    ``transport`` replaces httpx's network transport (tests).

    Every method raises :class:`~qcos_sdk.errors.APIError` subclasses for
    error answers and :class:`~qcos_sdk.errors.ConnectionFailed` when the
    gateway cannot be reached. Use it as a context manager, or ``close()``.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 retry: RetryPolicy | None = None, long_poll_seconds: int = 55,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url, self.api_key = resolve_settings(base_url, api_key)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.long_poll_seconds = long_poll_seconds
        self._http = httpx.Client(base_url=self.base_url, headers=default_headers(self.api_key), timeout=timeout,
                                  transport=transport)
        self._sleep = time.sleep

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                timeout: float | None = None) -> Any:
        """One API call, retried as :attr:`retry` says; the answer's JSON.

        ``path`` is relative to the base URL (``"/status/abc"``); ``timeout``
        overrides the client's for this call.
        """
        retrying = Retrying(sleep=self._sleep, **self.retry.tenacity_kwargs())
        return retrying(self._send, method, path, params, json, timeout)

    def _send(self, method: str, path: str, params: dict | None, json: Any, timeout: float | None) -> Any:
        try:
            response = self._http.request(method, path, params=params, json=json,
                                          timeout=self.timeout if timeout is None else timeout)
        except httpx.TransportError as exc:
            raise connection_failed(exc, self.base_url) from exc
        return decode(response)

    # The account and the service.

    def health(self) -> dict:
        """``GET /`` (no key needed): ``{"status": "healthy"|"degraded", "version", "queue_connected"}``,
        plus ``"degraded"``: the sources that are down (``"scheduler"``, ``"accounting"``,
        ``"rate_limiter"``), only when any is."""
        return self.request("GET", "/")

    def pricing(self) -> dict:
        """``GET /pricing`` (no key needed): ``{"tiers": [{"name", "price_monthly", "daily_job_limit",
        "max_qubits", "max_shots", ...}]}``."""
        return self.request("GET", "/pricing")

    def me(self) -> dict:
        """``GET /user/me``: ``{"user_id", "email", "tier", "daily_job_limit", "max_qubits", "max_shots",
        "jobs_today", "jobs_total"}``."""
        return self.request("GET", "/user/me")

    def usage(self, period: str | None = None) -> dict:
        """``GET /user/usage``: completed jobs in ``period`` (``"YYYY-MM"``, default the current UTC month):
        ``{"user_id", "period", "jobs_executed", "total_shots", "total_qubits_hours", "daily_usage": [...]}``."""
        return self.request("GET", "/user/usage", params={"period": period} if period else None)

    # Jobs.

    def execute(self, circuit: CircuitLike, shots: int = 1024, job_id: str | None = None) -> Job:
        """Submit one circuit (OpenQASM 2.0 text, a path, or a ``qiskit.QuantumCircuit``) for ``shots`` shots.

        ``job_id`` is an optional id of your own (1–64 of ``A-Z a-z 0-9 _ - .``); without one the SDK
        makes a UUID. Repeating a submission with the same id and body returns the existing job (which
        is what makes retries safe). Raises
        :class:`~qcos_sdk.errors.CircuitInvalid` (with ``line``/``column``),
        :class:`~qcos_sdk.errors.QuotaExceeded`, :class:`~qcos_sdk.errors.Conflict` (id taken).
        """
        body = self.request("POST", "/execute", json=_execute_body(circuit, shots, job_id))
        return Job(self, body["job_id"], submission=body)

    def dry_run(self, circuit: CircuitLike, shots: int = 1024, job_id: str | None = None) -> dict:
        """``POST /execute?dry_run=true``: validate, size and render without creating a job.
        ``{"dry_run": true, "job_id", "num_qubits", "shots", "estimated_time_seconds", "sbatch_script",
        "slurm_test_only", "resources"}``."""
        return self.request("POST", "/execute", params={"dry_run": "true"},
                            json=_execute_body(circuit, shots, job_id))

    def execute_batch(self, circuits: Sequence[Any], shots: int = 1024) -> Batch:
        """Submit several circuits at once (``POST /batches``, at most 1000 by default); all or none are
        accepted. Items are circuits run with ``shots``, or mappings ``{"qasm": circuit, "shots": int,
        "job_id": str}``. An invalid circuit raises :class:`~qcos_sdk.errors.CircuitInvalid` whose
        ``index`` is its position."""
        body = self.request("POST", "/batches", json={"circuits": batch_entries(circuits, shots)})
        return Batch(self, body["batch_id"], job_ids=body["job_ids"], submission=body)

    def job(self, job_id: str) -> Job:
        """A handle on an existing job (no request is made)."""
        return Job(self, job_id)

    def batch(self, batch_id: str) -> Batch:
        """A handle on an existing batch (no request is made)."""
        return Batch(self, batch_id)

    def jobs(self, status: str | None = None, limit: int = 20, offset: int = 0) -> JobPage:
        """``GET /jobs``: one page of your jobs, newest first; ``status`` filters (``queued``,
        ``processing``, ``completed``, ``failed``), ``limit`` is 1–100."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return JobPage.from_json(self.request("GET", "/jobs", params=params))

    def iter_jobs(self, status: str | None = None, page_size: int = 100) -> Iterator[JobInfo]:
        """Every job of yours (newest first), fetching ``page_size`` at a time."""
        offset = 0
        while True:
            page = self.jobs(status=status, limit=page_size, offset=offset)
            yield from page.jobs
            offset += len(page.jobs)
            if not page.jobs or offset >= page.total:
                return

    # Administration (admin keys only; others get AdminRequired).

    def admin_queue(self) -> dict:
        """``GET /admin/queue``: the scheduler's live queue joined with the gateway's jobs."""
        return self.request("GET", "/admin/queue")

    def admin_cluster(self) -> dict:
        """``GET /admin/cluster``: partitions and node states."""
        return self.request("GET", "/admin/cluster")

    def admin_cancel(self, job_id: str) -> JobInfo:
        """``POST /admin/jobs/{job_id}/cancel``: cancel any user's job."""
        return JobInfo.from_json(self.request("POST", f"/admin/jobs/{segment(job_id)}/cancel"))


def _execute_body(circuit: CircuitLike, shots: int, job_id: str | None) -> dict:
    return {"qasm": to_qasm(circuit), "shots": shots, "job_id": job_id or new_job_id()}


class Job:
    """A submitted job. ``submission`` is the ``POST /execute`` answer when
    this handle came from :meth:`Client.execute` (``status``, ``message``,
    ``estimated_time_seconds``), else None."""

    def __init__(self, client: Client, job_id: str, *, submission: dict | None = None) -> None:
        self.client = client
        self.job_id = job_id
        self.submission = submission
        self._path = segment(job_id)

    def __repr__(self) -> str:
        return f"Job({self.job_id!r})"

    def info(self) -> JobInfo:
        """``GET /status/{job_id}``: the state, the full result once completed, the error once failed."""
        return JobInfo.from_json(self.client.request("GET", f"/status/{self._path}"))

    def status(self) -> str:
        """``"queued"``, ``"processing"``, ``"completed"`` or ``"failed"``."""
        return self.info().status

    def result(self, timeout: float | None = None) -> JobResult:
        """The counts, waiting for the job to finish (the server's long poll) for up to ``timeout``
        seconds (None: as long as it takes; 0: do not wait).

        Raises :class:`~qcos_sdk.errors.JobFailed` (``reason``) for a failed or cancelled job,
        :class:`~qcos_sdk.errors.JobTimeout` when ``timeout`` runs out.
        """
        poll = ResultPoll(self.job_id, timeout, self.client.long_poll_seconds)

        def attempt() -> JobResult | None:
            seconds = poll.next_wait_seconds()
            body = self.client.request("GET", f"/results/{self._path}", params=results_params(seconds),
                                       timeout=self.client.timeout + seconds)
            return poll.handle(body)

        return Retrying(sleep=self.client._sleep, **poll.tenacity_kwargs())(attempt)

    def cancel(self) -> JobInfo:
        """``DELETE /jobs/{job_id}``: cancel it. It ends ``failed`` with the error ``cancelled by the
        user``; a job that already finished is answered unchanged."""
        return JobInfo.from_json(self.client.request("DELETE", f"/jobs/{self._path}"))


class Batch:
    """A batch of jobs from :meth:`Client.execute_batch`. ``job_ids`` lists
    them in submission order (None for a handle from :meth:`Client.batch`
    until :meth:`status` has been called)."""

    def __init__(self, client: Client, batch_id: str, *, job_ids: list[str] | None = None,
                 submission: dict | None = None) -> None:
        self.client = client
        self.batch_id = batch_id
        self.job_ids = job_ids
        self.submission = submission
        self._path = segment(batch_id)

    def __repr__(self) -> str:
        return f"Batch({self.batch_id!r})"

    @property
    def jobs(self) -> list[Job]:
        """A :class:`Job` handle per circuit, in submission order."""
        if self.job_ids is None:
            self.status()
        return [Job(self.client, job_id) for job_id in self.job_ids]

    def status(self) -> BatchInfo:
        """``GET /batches/{batch_id}``: counts per state and every job with its result or error, in
        submission order (``job_ids``)."""
        info = BatchInfo.from_json(self.client.request("GET", f"/batches/{self._path}"))
        if self.job_ids is None:
            self.job_ids = [job.job_id for job in info.jobs]
        return info.in_order(self.job_ids)

    def wait(self, timeout: float | None = None, *, progress: bool = True, interval: float = 0.5,
             max_interval: float = 10.0) -> BatchInfo:
        """Poll until every job is final; a tqdm progress bar on stderr unless ``progress=False``.

        Polls start ``interval`` seconds apart, doubling up to ``max_interval`` while nothing
        finishes. Raises :class:`~qcos_sdk.errors.JobTimeout` after ``timeout`` seconds.
        """
        poll = BatchPoll(self.batch_id, timeout, progress=progress, interval=interval, max_interval=max_interval)
        try:
            return Retrying(sleep=self.client._sleep, **poll.tenacity_kwargs())(lambda: poll.handle(self.status()))
        finally:
            poll.close()

    def results(self, timeout: float | None = None, *, progress: bool = True,
                raise_on_failure: bool = True) -> list:
        """Wait (see :meth:`wait`), then one :class:`~qcos_sdk.models.JobResult` per circuit, in order.

        A failed job raises :class:`~qcos_sdk.errors.JobFailed` (naming the first failure; all of them
        in its ``failures``), or with ``raise_on_failure=False`` stands in the list as its
        ``JobFailed`` exception.
        """
        return batch_results(self.wait(timeout, progress=progress), raise_on_failure=raise_on_failure)

    def cancel(self) -> list[JobInfo]:
        """Cancel every job of the batch (one ``DELETE /jobs/{id}`` each); their states after it."""
        return [job.cancel() for job in self.jobs]
