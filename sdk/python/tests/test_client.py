"""The clients against the in-memory gateway (tests/fake_gateway.py): what
they send, how they wait, retry and report. The same flows run against a
live gateway in test_live_*.py."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from qcos_sdk import (
    AsyncClient,
    AuthError,
    BatchNotFound,
    CircuitInvalid,
    Client,
    ConfigurationError,
    ConnectionFailed,
    JobFailed,
    JobNotFound,
    JobTimeout,
    QuotaExceeded,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
)
from tests.fake_gateway import FakeGateway, error
from tests.support import BELL, GHZ3


class Sleeps(list):
    """Stands in for time.sleep: records each pause instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(fake: FakeGateway, **kwargs) -> tuple[Client, Sleeps]:
    client = Client("http://gateway.test", "qcos_testkey", transport=fake.transport(), **kwargs)
    client._sleep = sleeps = Sleeps()
    return client, sleeps


def params(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


# Settings.

def test_url_and_key_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("QCOS_URL", "http://example.test:8000/")
    monkeypatch.setenv("QCOS_API_KEY", "qcos_fromenv")
    client = Client()
    assert (client.base_url, client.api_key) == ("http://example.test:8000", "qcos_fromenv")
    assert Client("http://other.test", "qcos_arg").api_key == "qcos_arg"


def test_without_a_url_the_client_says_what_to_set(monkeypatch):
    monkeypatch.delenv("QCOS_URL", raising=False)
    with pytest.raises(ConfigurationError, match="QCOS_URL"):
        Client()


def test_a_key_that_cannot_be_a_header_is_refused_before_sending():
    with pytest.raises(ConfigurationError, match="API key"):
        Client("http://gateway.test", "qcos_abc\r\nX-Admin: 1")


def test_the_key_travels_in_x_api_key_and_an_empty_key_sends_none():
    fake = FakeGateway()
    client, _ = make_client(fake)
    client.me()
    assert fake.requests[-1].headers["X-API-Key"] == "qcos_testkey"
    keyless = Client("http://gateway.test", "", transport=fake.transport())
    keyless.health()
    assert "X-API-Key" not in fake.requests[-1].headers


def test_ids_are_quoted_as_one_path_segment():
    fake = FakeGateway()
    client, _ = make_client(fake)
    with pytest.raises(JobNotFound):
        client.job("../user/me x").info()
    assert fake.requests[-1].url.raw_path == b"/status/..%2Fuser%2Fme%20x"



# One job.

def test_execute_then_result_uses_the_long_poll():
    fake = FakeGateway(finish_after=2)
    client, sleeps = make_client(fake)
    job = client.execute(BELL, shots=100)
    sent = json.loads(fake.requests[0].content)
    assert sent == {"qasm": BELL, "shots": 100, "job_id": job.job_id}
    assert uuid.UUID(job.job_id).version == 4  # the SDK names every job, so resending is idempotent
    assert job.submission["status"] == "queued"
    result = job.result()
    assert result.counts == {"00": 50, "11": 50} and result.shots == 100
    long_polls = [request for request in fake.requests if request.url.path.startswith("/results/")]
    assert [params(request) for request in long_polls] == [{"wait": "true", "timeout": "55"}] * 2
    assert job.status() == "completed"


def test_a_custom_job_id_is_sent():
    fake = FakeGateway()
    client, _ = make_client(fake)
    assert client.execute(BELL, job_id="run-7").job_id == "run-7"
    assert json.loads(fake.requests[0].content)["job_id"] == "run-7"


def test_result_never_asks_the_server_to_wait_past_the_timeout():
    fake = FakeGateway(finish_after=2)
    client, _ = make_client(fake)
    client.execute(BELL).result(timeout=3.5)
    first = [request for request in fake.requests if request.url.path.startswith("/results/")][0]
    assert params(first) == {"wait": "true", "timeout": "3"}


def test_early_pending_answers_are_followed_by_growing_pauses():
    # The fake answers at once (as a gateway whose waiting slots are full):
    # the client must not hammer it.
    fake = FakeGateway(finish_after=5)
    client, sleeps = make_client(fake)
    client.execute(BELL).result()
    assert len(sleeps) == 4 and all(0 < pause <= 5 for pause in sleeps)
    assert sleeps[-1] > sleeps[0]


def test_a_held_long_poll_is_followed_at_once(monkeypatch):
    from qcos_sdk import _polling

    class Clock:
        now = 1000.0

        def monotonic(self):
            return self.now

    clock = Clock()
    monkeypatch.setattr(_polling, "time", clock)
    fake = FakeGateway(finish_after=3)
    real_handle = fake.handle

    def holding(request):  # the server held each long poll for its whole timeout
        if request.url.path.startswith("/results/"):
            clock.now += int(request.url.params["timeout"])
        return real_handle(request)

    client = Client("http://gateway.test", "k", transport=httpx.MockTransport(holding))
    client._sleep = sleeps = Sleeps()
    client.execute(BELL).result()
    assert sleeps == [0.0, 0.0]


def test_timeout_zero_checks_once_and_raises_job_timeout():
    fake = FakeGateway(finish_after=3)
    client, _ = make_client(fake)
    job = client.execute(BELL)
    with pytest.raises(JobTimeout, match="has not finished") as caught:
        job.result(timeout=0)
    assert caught.value.job_id == job.job_id
    assert params(fake.requests[-1]) == {"wait": "false"}


def test_a_cancelled_job_raises_job_failed_with_the_reason():
    fake = FakeGateway(finish_after=3)
    client, _ = make_client(fake)
    job = client.execute(BELL)
    info = job.cancel()
    assert fake.requests[-1].method == "DELETE" and fake.requests[-1].url.path == f"/jobs/{job.job_id}"
    assert (info.status, info.error) == ("failed", "cancelled by the user")
    with pytest.raises(JobFailed) as caught:
        job.result()
    assert (caught.value.job_id, caught.value.reason) == (job.job_id, "cancelled by the user")


# Retries.

def test_rate_limited_requests_wait_retry_after_then_succeed():
    fake = FakeGateway()
    fake.queued_answers.append(error(429, "RATE_LIMITED", retry_after="7"))
    client, sleeps = make_client(fake)
    assert client.me()["tier"] == "pro"
    assert sleeps == [7.0] and len(fake.requests) == 2


def test_unavailable_without_retry_after_backs_off_exponentially():
    fake = FakeGateway()
    fake.queued_answers.extend([httpx.Response(503, text="busy")] * 3)
    client, sleeps = make_client(fake, retry=RetryPolicy(attempts=4, backoff=1.0, max_wait=30))
    client.health()
    assert len(sleeps) == 3 and all(0 < pause <= 30 for pause in sleeps)
    assert sleeps[2] >= 4.0  # 1, 2, 4 s plus jitter


def test_retries_are_bounded():
    fake = FakeGateway()
    fake.queued_answers.extend([error(429, "RATE_LIMITED", retry_after="1")] * 5)
    client, sleeps = make_client(fake, retry=RetryPolicy(attempts=3))
    with pytest.raises(RateLimited) as caught:
        client.me()
    assert caught.value.retry_after == 1.0
    assert len(fake.requests) == 3 and sleeps == [1.0, 1.0]


def test_a_retry_after_beyond_max_wait_is_raised_at_once():
    fake = FakeGateway()
    fake.queued_answers.append(error(503, "SERVICE_UNAVAILABLE", retry_after="3600"))
    client, sleeps = make_client(fake, retry=RetryPolicy(max_wait=60))
    with pytest.raises(ServiceUnavailable):
        client.me()
    assert len(fake.requests) == 1 and sleeps == []


def test_the_daily_quota_is_never_retried():
    fake = FakeGateway()
    fake.queued_answers.append(error(429, "QUOTA_EXCEEDED", "daily job limit of 10 reached", retry_after="5"))
    client, sleeps = make_client(fake)
    with pytest.raises(QuotaExceeded) as caught:
        client.execute(BELL)
    assert caught.value.retry_after == 5.0 and sleeps == [] and len(fake.requests) == 1


def test_a_submission_refused_with_503_is_resubmitted_once_it_is_accepted():
    fake = FakeGateway()
    fake.queued_answers.append(error(503, "SERVICE_UNAVAILABLE", "scheduler unreachable", retry_after="2"))
    client, sleeps = make_client(fake)
    client.execute(BELL)
    assert fake.paths("POST") == ["/execute", "/execute"] and len(fake.jobs) == 1 and sleeps == [2.0]


def test_other_errors_are_not_retried():
    fake = FakeGateway()
    fake.queued_answers.append(error(401, "AUTH_INVALID", "Invalid API key"))
    client, sleeps = make_client(fake)
    with pytest.raises(AuthError):
        client.me()
    assert len(fake.requests) == 1 and sleeps == []


def test_failed_connections_are_retried_and_then_reported():
    fake = FakeGateway()
    failures = [httpx.ConnectError("connection refused")]

    def flaky(request):
        if failures:
            raise failures.pop(0)
        return fake.handle(request)

    client = Client("http://gateway.test", "k", transport=httpx.MockTransport(flaky), retry=RetryPolicy(attempts=3))
    client._sleep = sleeps = Sleeps()
    assert client.health()["status"] == "healthy" and len(sleeps) == 1
    failures.extend([httpx.ReadTimeout("read timed out")] * 3)
    with pytest.raises(ConnectionFailed, match="gateway.test") as caught:
        client.me()
    assert caught.value.request_sent and len(sleeps) == 3


def test_a_submission_whose_answer_was_lost_is_resent_and_creates_one_job():
    # The server stored the job, then the connection broke before the answer
    # (a keep-alive connection closed under the request looks the same).
    fake = FakeGateway()
    lost = []

    def answer_lost_once(request):
        response = fake.handle(request)
        if request.url.path in ("/execute", "/batches") and not lost:
            lost.append(request)
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return response

    client = Client("http://gateway.test", "k", transport=httpx.MockTransport(answer_lost_once))
    client._sleep = Sleeps()
    job = client.execute(BELL)
    assert fake.paths("POST") == ["/execute", "/execute"] and list(fake.jobs) == [job.job_id]
    assert json.loads(fake.requests[0].content) == json.loads(fake.requests[1].content)


# Batches.

def test_execute_batch_sends_every_circuit_in_order():
    fake = FakeGateway()
    client, _ = make_client(fake)
    batch = client.execute_batch([BELL, {"qasm": GHZ3, "shots": 10, "job_id": "ghz-1"}], shots=100)
    assert json.loads(fake.requests[0].content) == {"circuits": [{"qasm": BELL, "shots": 100, "job_id": batch.job_ids[0]},
                                                                 {"qasm": GHZ3, "shots": 10, "job_id": "ghz-1"}]}
    assert batch.batch_id.startswith("batch_") and batch.job_ids[1] == "ghz-1"
    assert [job.job_id for job in batch.jobs] == batch.job_ids


def test_batch_wait_polls_less_often_while_nothing_finishes():
    fake = FakeGateway(finish_after=4)
    client, sleeps = make_client(fake)
    batch = client.execute_batch([BELL, GHZ3])
    info = batch.wait(progress=False)
    assert info.done and info.counts["completed"] == 2 and info.finished == 2
    assert sleeps == [0.5, 1.0, 2.0]


def test_batch_results_come_in_submission_order():
    fake = FakeGateway(counts_for=lambda qasm, shots: {"000" if "q[3]" in qasm else "00": shots})
    client, _ = make_client(fake)
    results = client.execute_batch([GHZ3, BELL, GHZ3], shots=5).results(progress=False)
    assert [result.counts for result in results] == [{"000": 5}, {"00": 5}, {"000": 5}]


def test_batch_results_follow_the_submission_even_if_the_listing_does_not():
    fake = FakeGateway(misorder_batches=True, counts_for=lambda qasm, shots: {"000" if "q[3]" in qasm else "00": shots})
    client, _ = make_client(fake)
    batch = client.execute_batch([{"qasm": GHZ3, "job_id": "a"}, {"qasm": BELL, "job_id": "b"}], shots=5)
    assert [job["job_id"] for job in batch.status().raw["jobs"]] == ["b", "a"]
    results = batch.results(progress=False)
    assert [(result.job_id, result.counts) for result in results] == [("a", {"000": 5}), ("b", {"00": 5})]


def test_a_failed_job_in_a_batch_raises_or_stands_in_the_list():
    fake = FakeGateway()
    fake.failing[GHZ3] = "simulator crashed"
    client, _ = make_client(fake)
    batch = client.execute_batch([BELL, GHZ3, GHZ3])
    with pytest.raises(JobFailed, match="2 of 3 jobs") as caught:
        batch.results(progress=False)
    assert caught.value.job_id == batch.job_ids[1] and caught.value.reason == "simulator crashed"
    assert [failure.job_id for failure in caught.value.failures] == batch.job_ids[1:]
    outcomes = batch.results(progress=False, raise_on_failure=False)
    assert outcomes[0].counts and isinstance(outcomes[1], JobFailed) and outcomes[2].reason == "simulator crashed"


def test_batch_wait_shows_progress_on_stderr_unless_turned_off(capsys):
    fake = FakeGateway()
    client, _ = make_client(fake)
    client.execute_batch([BELL, BELL]).wait()
    assert "2/2" in capsys.readouterr().err
    client.execute_batch([BELL, BELL]).wait(progress=False)
    assert capsys.readouterr().err == ""


def test_batch_wait_times_out():
    fake = FakeGateway(finish_after=100)
    client, _ = make_client(fake)
    batch = client.execute_batch([BELL])
    with pytest.raises(JobTimeout, match=batch.batch_id):
        batch.wait(timeout=0, progress=False)


def test_an_invalid_circuit_in_a_batch_names_its_index():
    fake = FakeGateway()
    client, _ = make_client(fake)
    with pytest.raises(CircuitInvalid) as caught:
        client.execute_batch([BELL, BELL, "h q[0];"])
    assert (caught.value.index, caught.value.line, caught.value.column) == (2, 1, 1)
    assert not fake.jobs


def test_an_unknown_batch_raises_batch_not_found():
    client, _ = make_client(FakeGateway())
    with pytest.raises(BatchNotFound):
        client.batch("batch_nope").status()


def test_a_batch_handle_learns_its_jobs_from_the_gateway():
    fake = FakeGateway()
    client, _ = make_client(fake)
    submitted = client.execute_batch([BELL, GHZ3])
    handle = client.batch(submitted.batch_id)
    assert [job.job_id for job in handle.jobs] == submitted.job_ids
    assert [info.status for info in handle.cancel()] == ["failed", "failed"]


# The async client.

class AsyncSleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_the_async_client_runs_the_same_flows():
    fake = FakeGateway(finish_after=2)
    fake.queued_answers.append(error(429, "RATE_LIMITED", retry_after="3"))

    async def flow():
        async with AsyncClient("http://gateway.test", "k", transport=fake.transport()) as client:
            client._sleep = sleeps = AsyncSleeps()
            job = await client.execute(BELL, shots=10)
            result = await job.result(timeout=30)
            batch = await client.execute_batch([BELL, GHZ3], shots=4)
            outcomes = await batch.results(progress=False)
            cancelled = await client.execute(BELL)
            await cancelled.cancel()
            with pytest.raises(JobFailed, match="cancelled by the user"):
                await cancelled.result()
            return result, outcomes, sleeps, await job.status()

    result, outcomes, sleeps, status = asyncio.run(flow())
    assert result.counts == {"00": 5, "11": 5} and status == "completed"
    assert [outcome.shots for outcome in outcomes] == [4, 4]
    assert sleeps[0] == 3.0
