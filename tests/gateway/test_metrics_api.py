"""The small API the poller and the dispatcher record their metrics with (gateway.metrics)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from gateway import metrics


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_job_outcomes_are_counted_by_class():
    before = [_value("qcos_jobs_accepted_total", tier="pro"), _value("qcos_jobs_completed_total"),
              _value("qcos_jobs_failed_total", reason="timeout"), _value("qcos_jobs_failed_total", reason="other"),
              _value("qcos_jobs_cancelled_total", by="admin"), _value("qcos_jobs_cancelled_total", by="user")]
    metrics.job_accepted("pro")
    metrics.job_completed()
    metrics.job_failed("timeout")
    metrics.job_failed("a reason nobody declared")  # bounded label values
    metrics.job_cancelled("admin")
    metrics.job_cancelled("user")
    after = [_value("qcos_jobs_accepted_total", tier="pro"), _value("qcos_jobs_completed_total"),
             _value("qcos_jobs_failed_total", reason="timeout"), _value("qcos_jobs_failed_total", reason="other"),
             _value("qcos_jobs_cancelled_total", by="admin"), _value("qcos_jobs_cancelled_total", by="user")]
    assert [b - a for a, b in zip(before, after)] == [1, 1, 1, 1, 1, 1]
    assert REGISTRY.get_sample_value("qcos_jobs_failed_total", {"reason": "a reason nobody declared"}) is None


def test_packs_count_and_size():
    before = (_value("qcos_packs_submitted_total"), _value("qcos_pack_size_jobs_sum"),
              _value("qcos_pack_size_jobs_bucket", le="8.0"))
    metrics.pack_submitted(5)
    metrics.pack_submitted(40)
    metrics.set_packs_running(3)
    after = (_value("qcos_packs_submitted_total"), _value("qcos_pack_size_jobs_sum"),
             _value("qcos_pack_size_jobs_bucket", le="8.0"))
    assert [b - a for a, b in zip(before, after)] == [2, 45, 1]
    assert _value("qcos_packs_running") == 3


def test_a_poll_cycle_is_timed_and_a_failing_one_counted():
    before = (_value("qcos_poll_cycle_duration_seconds_count"), _value("qcos_poll_cycle_errors_total"))
    started = time.time()
    with metrics.poll_cycle():
        time.sleep(0.05)
    assert _value("qcos_poll_cycle_last_success_timestamp_seconds") >= started
    success = _value("qcos_poll_cycle_last_success_timestamp_seconds")
    with pytest.raises(RuntimeError), metrics.poll_cycle():
        raise RuntimeError("scheduler unavailable")
    after = (_value("qcos_poll_cycle_duration_seconds_count"), _value("qcos_poll_cycle_errors_total"))
    assert [b - a for a, b in zip(before, after)] == [2, 1]
    assert _value("qcos_poll_cycle_last_success_timestamp_seconds") == success
