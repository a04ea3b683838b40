"""Batches against a live gateway (``POST /batches``, ``GET /batches/{id}``).
A gateway without the batch endpoint fails these tests (the ``batches``
fixture says so); it never skips them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from qcos_sdk import AsyncClient, BatchNotFound, CircuitInvalid, JobFailed
from tests.support import BELL, BROKEN, GHZ3

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("batches")]


def test_a_batch_runs_every_circuit_and_answers_in_order(client):
    # Ids that sort against the submission order, so that a listing in any other order shows.
    prefix = f"sdk-batch-{uuid.uuid4().hex[:10]}"
    batch = client.execute_batch([{"qasm": BELL, "job_id": f"{prefix}-c"}, {"qasm": GHZ3, "job_id": f"{prefix}-b"},
                                  {"qasm": BELL, "shots": 10, "job_id": f"{prefix}-a"}], shots=200)
    assert batch.batch_id.startswith("batch_") and batch.job_ids == [f"{prefix}-{x}" for x in "cba"]
    assert batch.submission["count"] == 3 and batch.submission["status"] == "queued"
    results = batch.results(timeout=300, progress=False)
    assert [result.job_id for result in results] == batch.job_ids
    assert set(results[0].counts) <= {"00", "11"} and results[0].shots == 200
    assert set(results[1].counts) <= {"000", "111"} and results[1].shots == 200
    assert results[2].shots == 10
    info = batch.status()
    assert info.done and info.count == 3 and info.counts["completed"] == 3 and info.finished == 3
    listed = [job["job_id"] for job in info.raw["jobs"]]
    assert listed == batch.job_ids, "GET /batches/{id} must list the jobs in submission order"
    # Each job of a batch is an ordinary job too.
    assert client.job(batch.job_ids[1]).info().counts == results[1].counts


def test_an_invalid_circuit_refuses_the_whole_batch_and_names_it(client):
    with pytest.raises(CircuitInvalid) as caught:
        client.execute_batch([BELL, BROKEN])
    assert (caught.value.index, caught.value.line, caught.value.column) == (1, 4, 1)


def test_an_unknown_batch_is_batch_not_found(client):
    with pytest.raises(BatchNotFound) as caught:
        client.batch(f"batch_{uuid.uuid4().hex}").status()
    assert caught.value.error_code == "BATCH_NOT_FOUND"


def test_a_cancelled_job_of_a_batch_fails_alone(client):
    batch = client.execute_batch([BELL, GHZ3], shots=64)
    batch.jobs[1].cancel()
    outcomes = batch.results(timeout=300, progress=False, raise_on_failure=False)
    assert outcomes[0].shots == 64
    assert isinstance(outcomes[1], JobFailed) and outcomes[1].reason == "cancelled by the user"
    with pytest.raises(JobFailed, match="1 of 2 jobs"):
        batch.results(timeout=10, progress=False)


def test_waiting_shows_progress(client, capsys):
    batch = client.execute_batch([BELL, BELL], shots=32)
    info = batch.wait(timeout=300)
    assert info.done and "2/2" in capsys.readouterr().err


def test_a_handle_from_the_id_finds_the_jobs(client):
    batch = client.execute_batch([BELL], shots=8)
    again = client.batch(batch.batch_id)
    assert [job.job_id for job in again.jobs] == batch.job_ids
    assert again.results(timeout=300, progress=False)[0].shots == 8


def test_the_async_batch(gateway):
    async def flow():
        async with AsyncClient(gateway.url, gateway.api_key) as client:
            batch = await client.execute_batch([GHZ3, BELL], shots=50)
            return await batch.results(timeout=300, progress=False)

    ghz, bell = asyncio.run(flow())
    assert set(ghz.counts) <= {"000", "111"} and bell.shots == 50
