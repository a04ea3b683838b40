"""The asynchronous client (``httpx.AsyncClient``): the same methods as
:class:`qcos_sdk.Client`, as coroutines::

    async with AsyncClient() as client:
        job = await client.execute(qasm, shots=1000)
        result = await job.result(timeout=120)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from tenacity import AsyncRetrying

from qcos_sdk._http import RetryPolicy, decode, default_headers, resolve_settings, results_params, segment
from qcos_sdk._polling import BatchPoll, ResultPoll, batch_results
from qcos_sdk.client import _execute_body
from qcos_sdk.errors import connection_failed
from qcos_sdk.models import BatchInfo, CircuitLike, JobInfo, JobPage, JobResult, batch_entries


class AsyncClient:
    """The asynchronous twin of :class:`qcos_sdk.Client`; same arguments,
    same errors. Use ``async with``, or ``await client.aclose()``."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 retry: RetryPolicy | None = None, long_poll_seconds: int = 55,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url, self.api_key = resolve_settings(base_url, api_key)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.long_poll_seconds = long_poll_seconds
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=default_headers(self.api_key),
                                       timeout=timeout, transport=transport)
        self._sleep = asyncio.sleep

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                      timeout: float | None = None) -> Any:
        """One API call, retried as :attr:`retry` says; the answer's JSON."""
        retrying = AsyncRetrying(sleep=self._sleep, **self.retry.tenacity_kwargs())
        return await retrying(self._send, method, path, params, json, timeout)

    async def _send(self, method: str, path: str, params: dict | None, json: Any,
                    timeout: float | None) -> Any:
        try:
            response = await self._http.request(method, path, params=params, json=json,
                                                timeout=self.timeout if timeout is None else timeout)
        except httpx.TransportError as exc:
            raise connection_failed(exc, self.base_url) from exc
        return decode(response)

    async def health(self) -> dict:
        """``GET /``; see :meth:`qcos_sdk.Client.health`."""
        return await self.request("GET", "/")

    async def pricing(self) -> dict:
        """``GET /pricing``; see :meth:`qcos_sdk.Client.pricing`."""
        return await self.request("GET", "/pricing")

    async def me(self) -> dict:
        """``GET /user/me``; see :meth:`qcos_sdk.Client.me`."""
        return await self.request("GET", "/user/me")

    async def usage(self, period: str | None = None) -> dict:
        """``GET /user/usage``; see :meth:`qcos_sdk.Client.usage`."""
        return await self.request("GET", "/user/usage", params={"period": period} if period else None)

    async def execute(self, circuit: CircuitLike, shots: int = 1024, job_id: str | None = None) -> AsyncJob:
        """``POST /execute``; see :meth:`qcos_sdk.Client.execute`."""
        body = await self.request("POST", "/execute", json=_execute_body(circuit, shots, job_id))
        return AsyncJob(self, body["job_id"], submission=body)

    async def dry_run(self, circuit: CircuitLike, shots: int = 1024, job_id: str | None = None) -> dict:
        """``POST /execute?dry_run=true``; see :meth:`qcos_sdk.Client.dry_run`."""
        return await self.request("POST", "/execute", params={"dry_run": "true"},
                                  json=_execute_body(circuit, shots, job_id))

    async def execute_batch(self, circuits: Sequence[Any], shots: int = 1024) -> AsyncBatch:
        """``POST /batches``; see :meth:`qcos_sdk.Client.execute_batch`."""
        body = await self.request("POST", "/batches", json={"circuits": batch_entries(circuits, shots)})
        return AsyncBatch(self, body["batch_id"], job_ids=body["job_ids"], submission=body)

    def job(self, job_id: str) -> AsyncJob:
        """A handle on an existing job (no request is made)."""
        return AsyncJob(self, job_id)

    def batch(self, batch_id: str) -> AsyncBatch:
        """A handle on an existing batch (no request is made)."""
        return AsyncBatch(self, batch_id)

    async def jobs(self, status: str | None = None, limit: int = 20, offset: int = 0) -> JobPage:
        """``GET /jobs``; see :meth:`qcos_sdk.Client.jobs`."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return JobPage.from_json(await self.request("GET", "/jobs", params=params))

    async def iter_jobs(self, status: str | None = None, page_size: int = 100) -> AsyncIterator[JobInfo]:
        """Every job of yours (newest first), fetching ``page_size`` at a time."""
        offset = 0
        while True:
            page = await self.jobs(status=status, limit=page_size, offset=offset)
            for job in page.jobs:
                yield job
            offset += len(page.jobs)
            if not page.jobs or offset >= page.total:
                return

    async def admin_queue(self) -> dict:
        """``GET /admin/queue`` (admin keys only)."""
        return await self.request("GET", "/admin/queue")

    async def admin_cluster(self) -> dict:
        """``GET /admin/cluster`` (admin keys only)."""
        return await self.request("GET", "/admin/cluster")

    async def admin_cancel(self, job_id: str) -> JobInfo:
        """``POST /admin/jobs/{job_id}/cancel`` (admin keys only)."""
        return JobInfo.from_json(await self.request("POST", f"/admin/jobs/{segment(job_id)}/cancel"))


class AsyncJob:
    """A submitted job; see :class:`qcos_sdk.Job`."""

    def __init__(self, client: AsyncClient, job_id: str, *, submission: dict | None = None) -> None:
        self.client = client
        self.job_id = job_id
        self.submission = submission
        self._path = segment(job_id)

    def __repr__(self) -> str:
        return f"AsyncJob({self.job_id!r})"

    async def info(self) -> JobInfo:
        """``GET /status/{job_id}``."""
        return JobInfo.from_json(await self.client.request("GET", f"/status/{self._path}"))

    async def status(self) -> str:
        """``"queued"``, ``"processing"``, ``"completed"`` or ``"failed"``."""
        return (await self.info()).status

    async def result(self, timeout: float | None = None) -> JobResult:
        """The counts once the job finishes; see :meth:`qcos_sdk.Job.result`."""
        poll = ResultPoll(self.job_id, timeout, self.client.long_poll_seconds)

        async def attempt() -> JobResult | None:
            seconds = poll.next_wait_seconds()
            body = await self.client.request("GET", f"/results/{self._path}", params=results_params(seconds),
                                             timeout=self.client.timeout + seconds)
            return poll.handle(body)

        return await AsyncRetrying(sleep=self.client._sleep, **poll.tenacity_kwargs())(attempt)

    async def cancel(self) -> JobInfo:
        """``DELETE /jobs/{job_id}``; see :meth:`qcos_sdk.Job.cancel`."""
        return JobInfo.from_json(await self.client.request("DELETE", f"/jobs/{self._path}"))


class AsyncBatch:
    """A batch of jobs; see :class:`qcos_sdk.Batch`."""

    def __init__(self, client: AsyncClient, batch_id: str, *, job_ids: list[str] | None = None,
                 submission: dict | None = None) -> None:
        self.client = client
        self.batch_id = batch_id
        self.job_ids = job_ids
        self.submission = submission
        self._path = segment(batch_id)

    def __repr__(self) -> str:
        return f"AsyncBatch({self.batch_id!r})"

    async def jobs(self) -> list[AsyncJob]:
        """An :class:`AsyncJob` per circuit, in submission order."""
        if self.job_ids is None:
            await self.status()
        return [AsyncJob(self.client, job_id) for job_id in self.job_ids]

    async def status(self) -> BatchInfo:
        """``GET /batches/{batch_id}``."""
        info = BatchInfo.from_json(await self.client.request("GET", f"/batches/{self._path}"))
        if self.job_ids is None:
            self.job_ids = [job.job_id for job in info.jobs]
        return info.in_order(self.job_ids)

    async def wait(self, timeout: float | None = None, *, progress: bool = True, interval: float = 0.5,
                   max_interval: float = 10.0) -> BatchInfo:
        """Poll until every job is final; see :meth:`qcos_sdk.Batch.wait`."""
        poll = BatchPoll(self.batch_id, timeout, progress=progress, interval=interval, max_interval=max_interval)

        async def attempt() -> BatchInfo | None:
            return poll.handle(await self.status())

        try:
            return await AsyncRetrying(sleep=self.client._sleep, **poll.tenacity_kwargs())(attempt)
        finally:
            poll.close()

    async def results(self, timeout: float | None = None, *, progress: bool = True,
                      raise_on_failure: bool = True) -> list:
        """Wait, then a result per circuit; see :meth:`qcos_sdk.Batch.results`."""
        return batch_results(await self.wait(timeout, progress=progress), raise_on_failure=raise_on_failure)

    async def cancel(self) -> list[JobInfo]:
        """Cancel every job of the batch, concurrently."""
        return list(await asyncio.gather(*(job.cancel() for job in await self.jobs())))
