"""/healthz, /readyz and /metrics: what orchestrators and Prometheus call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import create_app
from gateway.models import Job, utcnow
from hpc_jobs.executors.slurm import SlurmExecutor
from hpc_jobs.transports.local import LocalTransport
from tests.conftest import BELL, make_user
from tests.gateway.test_api import _poll_once


def _app(settings, **changes):
    return create_app({"QCOS_SETTINGS": settings.model_copy(update={**changes}), "TESTING": True})


def _scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    """``/metrics`` parsed with prometheus_client's own parser: {(sample name, labels): value}."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _no_scheduler(tmp_path) -> SlurmExecutor:
    """A Slurm executor whose commands cannot be found: the scheduler is unreachable."""
    empty = tmp_path / "no-slurm-here"
    empty.mkdir()
    return SlurmExecutor(LocalTransport(env={"PATH": str(empty)}))


class TestProbes:
    def test_healthz_answers_without_the_database(self, settings, tmp_path):
        broken = _app(settings, database_url=f"sqlite:///{tmp_path}/missing-dir/none.db").test_client()
        assert broken.get("/healthz").get_json() == {"status": "alive"}
        ready = broken.get("/readyz")
        assert ready.status_code == 503
        body = ready.get_json()
        assert body["status"] == "not_ready" and body["checks"]["database"] == "unavailable"
        assert body["error_code"] == "SERVICE_UNAVAILABLE" and body["request_id"] == ready.headers["X-Request-ID"]

    def test_readyz_is_ready_with_database_and_scheduler(self, client, runtime):
        _poll_once(runtime)  # the scheduler check is the poller's, not the request's
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "scheduler": "ok"}}

    def test_readyz_refuses_while_the_scheduler_is_unreachable(self, settings, tmp_path):
        app = create_app({"QCOS_SETTINGS": settings, "TESTING": True, "QCOS_EXECUTOR_OBJECT": _no_scheduler(tmp_path)})
        _poll_once(app.extensions["qcos"])
        response = app.test_client().get("/readyz")
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.get_json()["checks"] == {"database": "ok", "scheduler": "unavailable"}
        assert "scheduler" in response.get_json()["detail"]

    def test_probes_and_metrics_are_never_rate_limited(self, settings):
        app = _app(settings, anon_rate_limit="2/minute")
        _poll_once(app.extensions["qcos"])
        client = app.test_client()
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
            assert client.get("/metrics").status_code == 200
        assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]


class TestMetricsAccess:
    def test_a_token_is_required_when_configured(self, settings):
        client = _app(settings, metrics_token="s3cret-scrape-token").test_client()
        missing = client.get("/metrics")
        assert missing.status_code == 401 and missing.get_json()["error_code"] == "AUTH_REQUIRED"
        wrong = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-tokeN"})
        assert wrong.status_code == 401 and wrong.get_json()["error_code"] == "AUTH_INVALID"
        assert _scrape(client, Authorization="Bearer s3cret-scrape-token")

    def test_only_allowed_networks_may_scrape(self, settings):
        elsewhere = _app(settings, metrics_allowed_networks=("10.0.0.0/8",)).test_client()
        refused = elsewhere.get("/metrics")
        assert refused.status_code == 403 and refused.get_json()["error_code"] == "FORBIDDEN"
        local = _app(settings, metrics_allowed_networks=("10.0.0.0/8", "127.0.0.0/8")).test_client()
        assert _scrape(local)

    def test_both_restrictions_apply_together(self, settings):
        client = _app(settings, metrics_token="t0ken", metrics_allowed_networks=("10.0.0.0/8",)).test_client()
        assert client.get("/metrics", headers={"Authorization": "Bearer t0ken"}).status_code == 403


class TestHttpMetrics:
    def test_requests_are_counted_by_url_rule_not_raw_path(self, client, api_key):
        before = _scrape(client)
        for job_id in ("one", "two", "three"):
            client.get(f"/status/{job_id}", headers={"X-API-Key": api_key})
        client.get("/no/such/endpoint/at-all")
        after = _scrape(client)

        def delta(name, **labels):
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0) - before.get(key, 0)

        assert delta("qcos_http_requests_total", route="/status/<job_id>", method="GET", status="404") == 3
        assert delta("qcos_http_requests_total", route="unmatched", method="GET", status="404") == 1
        assert delta("qcos_http_request_duration_seconds_count", route="/status/<job_id>", method="GET") == 3
        assert not any("one" in dict(labels).get("route", "") for _, labels in after)


class TestScrapeTimeGauges:
    def test_waiting_running_and_dispatcher_lag_come_from_the_database(self, client, runtime):
        user_id, _ = make_user(runtime)
        now = utcnow()
        rows = [("w1", "queued", "4001", 10), ("w2", "queued", None, 120), ("w3", "queued", None, 30),
                ("r1", "processing", "4002", 5), ("done", "completed", "4003", 900)]
        with runtime.db.transaction() as session:
            for job_id, status, slurm_id, age in rows:
                session.add(Job(id=job_id, user_id=user_id, status=status, qasm=BELL, shots=1, num_qubits=2,
                                request_hash="0" * 64, executor="local", cluster_profile="dev", work_dir="/tmp/x",
                                scheduler_job_id=slurm_id, created_at=now - timedelta(seconds=age)))
        _poll_once(runtime)
        samples = _scrape(client)
        assert samples[("qcos_jobs_waiting", ())] == 3
        assert samples[("qcos_jobs_running", ())] == 1
        # The oldest job not yet in a pack is w2, accepted 120 s ago.
        assert 120 <= samples[("qcos_dispatcher_lag_seconds", ())] < 150
        assert samples[("qcos_database_up", ())] == 1 and samples[("qcos_scheduler_up", ())] == 1

    def test_accounting_and_rate_limit_storage_read_1_where_there_is_none_to_be_down(self, client, runtime):
        _poll_once(runtime)  # the local executor, memory:// storage
        samples = _scrape(client)
        assert samples[("qcos_accounting_up", ())] == 1 and samples[("qcos_ratelimit_storage_up", ())] == 1

    def test_accounting_and_rate_limit_storage_down_read_0(self, settings, mocker):
        app = _app(settings, ratelimit_storage_uri="redis://127.0.0.1:1/0")  # nothing listens on port 1
        runtime = app.extensions["qcos"]
        mocker.patch.object(runtime.executor, "accounting_ping", return_value=False)  # as with slurmdbd down
        _poll_once(runtime)
        samples = _scrape(app.test_client())
        assert samples[("qcos_accounting_up", ())] == 0 and samples[("qcos_ratelimit_storage_up", ())] == 0
        assert samples[("qcos_scheduler_up", ())] == 1
        runtime.close()

    def test_an_unreachable_database_is_reported_not_failed(self, settings, tmp_path):
        client = _app(settings, database_url=f"sqlite:///{tmp_path}/missing-dir/none.db").test_client()
        samples = _scrape(client)
        assert samples[("qcos_database_up", ())] == 0
        assert ("qcos_jobs_waiting", ()) not in samples

    def test_database_connections_in_use_are_counted(self, client, runtime):
        from sqlalchemy import text

        with runtime.db.session() as session:
            session.execute(text("SELECT 1"))
            during = _scrape(client)[("qcos_db_pool_connections_in_use", ())]
        after = _scrape(client)[("qcos_db_pool_connections_in_use", ())]
        assert during - after == 1


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_are_in_the_openapi_document(client, path):
    document = client.get("/openapi.json").get_json()
    assert "get" in document["paths"][path]


def _metric_names(client) -> set[str]:
    """Every qcos_* family this gateway exports (labelled ones too, before their first value)."""
    from prometheus_client import REGISTRY

    names = {family.name for family in REGISTRY.collect() if family.name.startswith("qcos_")}
    names |= {family.name for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))}
    return {name.removesuffix("_total") for name in names if name.startswith("qcos_")}


def _base(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        name = name.removesuffix(suffix)
    return name


def test_the_grafana_dashboard_uses_only_metrics_that_exist(client):
    import json
    import re

    from tests.conftest import REPO_ROOT

    dashboard = json.loads((REPO_ROOT / "deploy" / "grafana" / "qcos-dashboard.json").read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    used = {_base(name) for panel in panels for target in panel["targets"]
            for name in re.findall(r"qcos_[a-z_]+", target["expr"])}
    exported = _metric_names(client)
    assert used <= exported, used - exported
    # Every metric is on the dashboard and in the README's list.
    assert exported <= used, exported - used
    readme = (REPO_ROOT / "README.md").read_text()
    assert {name for name in exported if name not in readme} == set()
