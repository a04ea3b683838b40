"""The client against a live gateway: every endpoint, the Bell flow, the
errors a researcher meets, cancelling, listing, usage, retries."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from qcos_sdk import (
    AdminRequired,
    AsyncClient,
    AuthError,
    CircuitInvalid,
    Client,
    Conflict,
    InvalidRequest,
    JobFailed,
    JobNotFound,
    JobTimeout,
    QuotaExceeded,
    RateLimited,
    RetryPolicy,
)
from tests.support import BELL, BROKEN, GHZ3, require_qiskit

pytestmark = pytest.mark.live

# Heavier than the Bell circuit, so a cancel right after submission finds it pending.
SLOW = ('OPENQASM 2.0; include "qelib1.inc"; qreg q[20]; creg c[20]; '
        + " ".join(f"h q[{i}]; t q[{i}]; cx q[{i}],q[{(i + 1) % 20}];" for i in range(20)) * 5 + " measure q -> c;")


def assert_bell_counts(counts: dict[str, int], shots: int) -> None:
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == shots
    # Fair coin flips: shots/2 within 5 standard deviations.
    assert all(abs(counts.get(key, 0) - shots / 2) <= 5 * (shots ** 0.5) / 2 for key in ("00", "11"))


def test_health_and_pricing_need_no_key_but_the_account_does(gateway):
    with Client(gateway.url, "") as anonymous:
        health = anonymous.health()
        assert health["status"] in ("healthy", "degraded") and isinstance(health["queue_connected"], bool)
        tiers = anonymous.pricing()["tiers"]
        assert tiers and all({"name", "price_monthly", "daily_job_limit", "max_qubits", "max_shots"} <= set(tier)
                             for tier in tiers)
        with pytest.raises(AuthError) as caught:
            anonymous.me()
    assert caught.value.error_code == "AUTH_REQUIRED" and caught.value.status_code == 401


def test_a_wrong_key_is_auth_invalid_with_a_request_id(gateway):
    with gateway.client(api_key="qcos_" + "x" * 43) as client:
        with pytest.raises(AuthError) as caught:
            client.jobs()
    assert caught.value.error_code == "AUTH_INVALID" and caught.value.request_id.startswith("req_")


def test_the_bell_flow(client):
    job = client.execute(BELL, shots=1024)
    assert job.submission["status"] == "queued" and job.submission["estimated_time_seconds"] >= 0
    result = job.result(timeout=120)
    assert_bell_counts(result.counts, 1024)
    info = job.info()
    assert info.status == "completed" and job.status() == "completed"
    assert info.counts == result.counts and info.result["num_qubits"] == 2 and info.result["shots"] == 1024
    assert info.created_at <= info.completed_at
    # The same job from its id alone, without waiting.
    assert client.job(job.job_id).result(timeout=0).counts == result.counts


def test_a_qiskit_circuit_and_a_qasm_file_are_submitted_as_openqasm(client, tmp_path):
    qiskit = require_qiskit()
    circuit = qiskit.QuantumCircuit(3, 3)
    circuit.x(1)
    circuit.measure(range(3), range(3))
    assert client.execute(circuit, shots=20).result(timeout=120).counts == {"010": 20}
    path = tmp_path / "ghz.qasm"
    path.write_text(GHZ3)
    counts = client.execute(path, shots=100).result(timeout=120).counts
    assert set(counts) <= {"000", "111"} and sum(counts.values()) == 100


def test_a_custom_job_id_is_idempotent_and_cannot_be_reused(client):
    job_id = f"sdk-{uuid.uuid4().hex[:12]}"
    first = client.execute(BELL, shots=100, job_id=job_id)
    again = client.execute(BELL, shots=100, job_id=job_id)
    assert first.job_id == again.job_id == job_id
    with pytest.raises(Conflict) as caught:
        client.execute(BELL, shots=200, job_id=job_id)
    assert caught.value.error_code == "JOB_ID_CONFLICT"
    assert first.result(timeout=120).shots == 100


def test_an_invalid_circuit_says_where(client):
    with pytest.raises(CircuitInvalid) as caught:
        client.execute(BROKEN)
    assert (caught.value.line, caught.value.column, caught.value.index) == (4, 1, None)
    assert "foo" in caught.value.detail and caught.value.status_code == 400


def test_more_shots_than_the_tier_allows_is_quota_exceeded(client):
    with pytest.raises(QuotaExceeded) as caught:
        client.execute(BELL, shots=10_000_000)
    assert caught.value.status_code == 403 and "max_shots" in caught.value.detail


def test_a_malformed_request_is_invalid_request(client):
    with pytest.raises(InvalidRequest) as caught:
        client.execute(BELL, shots=0)
    assert caught.value.error_code == "INVALID_REQUEST" and "shots" in caught.value.detail


def test_an_unknown_job_is_not_found_everywhere(client):
    job = client.job(f"no-such-job-{uuid.uuid4().hex[:8]}")
    for call in (job.info, job.result, job.cancel):
        with pytest.raises(JobNotFound):
            call()


def test_cancel_ends_the_job_failed_and_result_says_why(client):
    job = client.execute(SLOW, shots=100)
    cancelled = job.cancel()
    assert (cancelled.status, cancelled.error) == ("failed", "cancelled by the user")
    with pytest.raises(JobFailed) as caught:
        job.result(timeout=30)
    assert (caught.value.job_id, caught.value.reason) == (job.job_id, "cancelled by the user")
    assert job.status() == "failed"
    assert job.cancel().error == "cancelled by the user"  # idempotent


def test_result_with_a_timeout_gives_up_with_job_timeout(client):
    job = client.execute(SLOW, shots=10)
    try:
        with pytest.raises(JobTimeout) as caught:
            job.result(timeout=0)
        assert caught.value.job_id == job.job_id
    finally:
        job.cancel()


def test_listing_jobs_pages_and_filters(client):
    job = client.execute(BELL, shots=10, job_id=f"sdk-list-{uuid.uuid4().hex[:10]}")
    job.result(timeout=120)
    page = client.jobs(limit=5)
    assert page.limit == 5 and page.offset == 0 and page.total >= 1 and len(page.jobs) <= 5
    listed = next(info for info in page.jobs if info.job_id == job.job_id)
    assert (listed.status, listed.num_qubits, listed.shots) == ("completed", 2, 10)
    assert all(info.status == "completed" for info in client.jobs(status="completed", limit=100).jobs)
    assert any(info.job_id == job.job_id for info in client.iter_jobs(status="completed", page_size=2))
    with pytest.raises(InvalidRequest):
        client.jobs(limit=0)


def test_me_and_usage(client):
    me = client.me()
    assert {"user_id", "email", "tier", "daily_job_limit", "max_qubits", "max_shots", "jobs_today",
            "jobs_total"} <= set(me)
    client.execute(BELL, shots=16).result(timeout=120)
    usage = client.usage()
    assert re.fullmatch(r"\d{4}-\d{2}", usage["period"]) and usage["user_id"] == me["user_id"]
    assert usage["jobs_executed"] >= 1 and usage["total_shots"] >= 16
    assert client.usage("2000-01")["jobs_executed"] == 0
    with pytest.raises(InvalidRequest):
        client.usage("2024-13")


def test_a_dry_run_creates_no_job(client):
    before = client.jobs(limit=1).total
    plan = client.dry_run(BELL, shots=64)
    assert plan["dry_run"] is True and plan["num_qubits"] == 2 and plan["shots"] == 64
    assert "#SBATCH" in plan["sbatch_script"]
    assert client.jobs(limit=1).total == before


def test_admin_endpoints_refuse_a_plain_key(client):
    with pytest.raises(AdminRequired) as caught:
        client.admin_queue()
    assert caught.value.status_code == 403


def test_the_async_client(gateway):
    async def flow():
        async with AsyncClient(gateway.url, gateway.api_key) as client:
            jobs = await asyncio.gather(client.execute(BELL, shots=256), client.execute(GHZ3, shots=256))
            results = await asyncio.gather(*(job.result(timeout=120) for job in jobs))
            cancelled = await client.execute(SLOW, shots=10)
            await cancelled.cancel()
            with pytest.raises(JobFailed, match="cancelled by the user"):
                await cancelled.result(timeout=30)
            return results, await client.me(), [await job.status() for job in jobs]

    results, me, states = asyncio.run(flow())
    assert_bell_counts(results[0].counts, 256)
    assert set(results[1].counts) <= {"000", "111"} and results[1].shots == 256
    assert me["email"] and states == ["completed", "completed"]


def test_rate_limits_raise_rate_limited_and_retries_wait_retry_after(own_gateway):
    key = own_gateway.create_user(f"free-{uuid.uuid4().hex[:8]}@example.org", "free")
    with Client(own_gateway.url, key, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(RateLimited) as caught:
            for _ in range(100):  # the free tier allows 10 a minute
                client.me()
    assert 0 < caught.value.retry_after <= 60 and caught.value.status_code == 429

    sleeps: list[float] = []
    with Client(own_gateway.url, key, retry=RetryPolicy(attempts=3, max_wait=120)) as client:
        client._sleep = sleeps.append  # record instead of waiting out the minute
        with pytest.raises(RateLimited) as again:
            client.me()
    assert len(sleeps) == 2 and all(0 < pause <= 60 for pause in sleeps)
    assert sleeps[-1] == again.value.retry_after or abs(sleeps[-1] - again.value.retry_after) <= 1

    sleeps.clear()
    with Client(own_gateway.url, key, retry=RetryPolicy(attempts=5, max_wait=0.5)) as client:
        client._sleep = sleeps.append
        with pytest.raises(RateLimited):
            client.me()
    assert sleeps == []  # Retry-After beyond max_wait: raised at once
