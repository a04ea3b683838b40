"""Waiting for jobs and batches, shared by the sync and async clients.

Each wait is a tenacity loop over "ask once" attempts; the classes here
hold what the attempts learn and decide how long to pause between them.
The sending is the client's.
"""

from __future__ import annotations

import math
import time
from typing import Any

from tenacity import RetryCallState, retry_if_result, stop_after_delay, stop_never, wait_exponential, wait_random
from tqdm.auto import tqdm

from qcos_sdk.errors import JobFailed, JobTimeout
from qcos_sdk.models import BatchInfo, JobResult


class ResultPoll:
    """Waits for one job's counts with the server's long poll.

    Each attempt asks ``GET /results/{id}?wait=true&timeout=<s>`` for at
    most ``chunk`` seconds (and never past the caller's ``timeout``), so a
    broken connection costs little. When the server held the request, the
    next one follows at once; when it answered early though the job is still
    pending (its waiting slots were full), the next waits with a growing,
    jittered pause up to 5 s.
    """

    def __init__(self, job_id: str, timeout: float | None, chunk: int) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or 0 or more seconds")
        self.job_id = job_id
        self.timeout = timeout
        self.chunk = max(1, int(chunk))
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._held = True
        self._started = 0.0
        self._asked = 0

    def next_wait_seconds(self) -> int:
        """Whole seconds the next request asks the server to wait; 0 asks for an answer at once."""
        if self._deadline is None:
            self._asked = self.chunk
        else:
            self._asked = max(0, min(self.chunk, math.floor(self._deadline - time.monotonic())))
        self._started = time.monotonic()
        return self._asked

    def handle(self, body: dict[str, Any]) -> JobResult | None:
        """The result in a ``/results`` answer; None while it is pending."""
        self._held = self._asked > 0 and time.monotonic() - self._started >= 0.8 * self._asked
        if body.get("status") == "completed":
            return JobResult(job_id=body.get("job_id", self.job_id), counts=dict(body["result"]["counts"]))
        return None

    def _pause(self, state: RetryCallState) -> float:
        if self._held:
            return 0.0
        return min(5.0, (wait_exponential(multiplier=0.5) + wait_random(0, 0.5))(state))

    def _give_up(self, state: RetryCallState):
        if self.timeout == 0:
            raise JobTimeout(f"job {self.job_id} has not finished yet", job_id=self.job_id)
        raise JobTimeout(f"job {self.job_id} did not finish within {self.timeout:g} s", job_id=self.job_id)

    def tenacity_kwargs(self) -> dict[str, Any]:
        return {
            "retry": retry_if_result(lambda outcome: outcome is None),
            "stop": stop_never if self.timeout is None else stop_after_delay(self.timeout),
            "wait": self._pause,
            "retry_error_callback": self._give_up,
        }


class BatchPoll:
    """Waits for a batch by polling ``GET /batches/{id}``, showing a tqdm
    progress bar (on stderr; ``progress=False`` shows none).

    The pause between polls starts at ``interval`` seconds and doubles,
    up to ``max_interval``, while nothing finishes; a poll that sees
    progress resets it. That keeps long batches within the rate limits.
    """

    def __init__(self, batch_id: str, timeout: float | None, *, progress: bool, interval: float,
                 max_interval: float) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or 0 or more seconds")
        self.batch_id = batch_id
        self.timeout = timeout
        self.interval = interval
        self.max_interval = max(interval, max_interval)
        self.bar = tqdm(total=None, desc=batch_id, unit="job", disable=not progress, leave=True, dynamic_ncols=True)
        self._finished = -1
        self._stale = 0

    def handle(self, info: BatchInfo) -> BatchInfo | None:
        """``info`` once the batch is done; None while it is not."""
        if self.bar.total != info.count:
            self.bar.total = info.count
        if info.finished != self._finished:
            self._stale = 0
            self.bar.update(info.finished - self.bar.n)
            self.bar.set_postfix(failed=info.counts.get("failed", 0), refresh=False)
            self._finished = info.finished
        else:
            self._stale += 1
        self.bar.refresh()
        return info if info.done else None

    def close(self) -> None:
        self.bar.close()

    def _pause(self, state: RetryCallState) -> float:
        return min(self.max_interval, self.interval * 2 ** self._stale)

    def _give_up(self, state: RetryCallState):
        raise JobTimeout(f"batch {self.batch_id} did not finish within {self.timeout:g} s", job_id=self.batch_id)

    def tenacity_kwargs(self) -> dict[str, Any]:
        return {
            "retry": retry_if_result(lambda outcome: outcome is None),
            "stop": stop_never if self.timeout is None else stop_after_delay(self.timeout),
            "wait": self._pause,
            "retry_error_callback": self._give_up,
        }


def batch_results(info: BatchInfo, *, raise_on_failure: bool) -> list:
    """Per job, in submission order: a :class:`JobResult`, or for a failed
    job its :class:`JobFailed` (raised instead, for the first failure, when
    ``raise_on_failure``)."""
    outcomes: list = []
    for job in info.jobs:
        if job.status == "completed":
            outcomes.append(JobResult(job_id=job.job_id, counts=dict(job.counts or {})))
        else:
            outcomes.append(JobFailed.of(job.job_id, job.error))
    failures = [outcome for outcome in outcomes if isinstance(outcome, JobFailed)]
    if failures and raise_on_failure:
        first = failures[0]
        error = JobFailed(f"{len(failures)} of {info.count} jobs of batch {info.batch_id} failed; "
                          f"first: job {first.job_id}: {first.reason}", job_id=first.job_id, reason=first.reason)
        error.failures = failures
        raise error
    return outcomes
