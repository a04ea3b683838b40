"""Metrics and logs of a real deployment: gunicorn with several workers and the
poller as processes sharing PROMETHEUS_MULTIPROC_DIR, QCOS_LOG_FORMAT=json."""

from __future__ import annotations

import json
import re

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BELL
from tests.stack import gateway_stack

pytestmark = pytest.mark.e2e


def _samples(base_url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"{base_url}/metrics", timeout=30).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_add_up_across_workers_and_every_line_is_json(tmp_path):
    metrics_dir = tmp_path / "metrics"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "QCOS_LOG_FORMAT": "json",
           # Several worker processes without Redis: rate limits off for this test.
           "QCOS_RATELIMIT_ENABLED": "false"}
    metrics_dir.mkdir()
    with gateway_stack(tmp_path, database_url=f"sqlite:///{tmp_path / 'qcos.db'}", workers=2, env=env) as stack:
        job = stack.submit(BELL, shots=64)
        assert stack.wait_final(job["job_id"])["status"] == "completed"
        answered = [requests.get(f"{stack.base_url}/healthz", timeout=10) for _ in range(30)]
        # Each scrape is answered by whichever worker is free: the totals must not depend on it.
        totals = {_samples(stack.base_url)[("qcos_http_requests_total",
                                            (("method", "GET"), ("route", "/healthz"), ("status", "200")))]
                  for _ in range(6)}
        assert totals == {30.0}
        samples = _samples(stack.base_url)
        assert samples[("qcos_jobs_waiting", ())] == 0 and samples[("qcos_jobs_running", ())] == 0
        assert samples[("qcos_http_requests_total", (("method", "POST"), ("route", "/execute"),
                                                     ("status", "201")))] == 1
        # Two workers and the poller wrote their values there.
        pids = {match.group(1) for path in metrics_dir.iterdir()
                if (match := re.fullmatch(r"[a-z_]+_(\d+)\.db", path.name))}
        assert len(pids) >= 3

    gunicorn_lines = [json.loads(line) for line in (tmp_path / "logs" / "gunicorn.log").read_text().splitlines()]
    poller_lines = [json.loads(line) for line in (tmp_path / "logs" / "poller.log").read_text().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in gunicorn_lines + poller_lines)
    assert any(line["logger"] == "gunicorn.error" for line in gunicorn_lines)
    assert any(line["logger"] == "gateway.poller" for line in poller_lines)
    access = [line for line in gunicorn_lines if line["logger"] == "gateway.access"]
    assert not any(line["logger"] == "gunicorn.access" for line in gunicorn_lines)
    # Exactly one access line per request, carrying the id the client got.
    by_id = {}
    for line in access:
        by_id.setdefault(line["request_id"], []).append(line)
    for response in answered:
        assert len(by_id[response.headers["X-Request-ID"]]) == 1
    assert len(by_id) == len(access)
