"""Accounts, tiers, quotas and usage: GET /pricing, /user/me, /user/usage, quota errors."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, update

from gateway.accounts import list_keys, revoke_key, set_active, set_tier
from gateway.models import Job
from gateway.quotas import seconds_until_next_utc_day
from tests.conftest import BELL, make_user
from tests.helpers import drive_until_final

#: GET /pricing exactly as the API reference prints it.
REFERENCE_PRICING = {
    "tiers": [
        {"name": "free", "price_monthly": 0, "daily_job_limit": 10, "max_qubits": 20, "max_shots": 10000},
        {"name": "pro", "price_monthly": 49, "daily_job_limit": 100, "max_qubits": 50, "max_shots": 100000},
        {"name": "enterprise", "price_monthly": None, "daily_job_limit": -1, "max_qubits": 100,
         "max_shots": 1000000},
    ]
}


def _ghz(n: int) -> str:
    body = " ".join(f"cx q[{i}],q[{i + 1}];" for i in range(n - 1))
    return f'OPENQASM 2.0; include "qelib1.inc"; qreg q[{n}]; creg c[{n}]; h q[0]; {body} measure q -> c;'


def _submit(client, key, qasm=BELL, shots=100):
    return client.post("/execute", json={"qasm": qasm, "shots": shots}, headers={"X-API-Key": key})


@pytest.fixture
def small_tiers(tmp_path):
    """A site's own tiers file: tiny daily limits keep the tests fast."""
    path = tmp_path / "tiers.toml"
    path.write_text(
        '[[tier]]\nname = "trial"\nprice_monthly = 0\ndaily_job_limit = 2\nmax_qubits = 3\nmax_shots = 500\n'
        '[[tier]]\nname = "lab"\nprice_monthly = 1000\ndaily_job_limit = -1\nmax_qubits = 30\nmax_shots = 5000\n'
    )
    return path


@pytest.fixture
def site_app(settings, small_tiers):
    from gateway import create_app

    return create_app({"QCOS_SETTINGS": settings.model_copy(update={"tiers_file": small_tiers})})


def test_pricing_is_the_references_without_auth(client):
    response = client.get("/pricing")
    assert response.status_code == 200
    assert response.get_json() == REFERENCE_PRICING


def test_pricing_comes_from_the_sites_tiers_file(site_app):
    tiers = site_app.test_client().get("/pricing").get_json()["tiers"]
    assert [t["name"] for t in tiers] == ["trial", "lab"]
    assert tiers[1] == {"name": "lab", "price_monthly": 1000, "daily_job_limit": -1, "max_qubits": 30,
                        "max_shots": 5000}


def test_user_me_reports_tier_limits_and_counts(client, runtime):
    user_id, key = make_user(runtime, email="ada@example.org", tier="free")
    _submit(client, key)
    body = client.get("/user/me", headers={"X-API-Key": key}).get_json()
    assert body == {"user_id": user_id, "email": "ada@example.org", "tier": "free", "daily_job_limit": 10,
                    "max_qubits": 20, "max_shots": 10000, "jobs_today": 1, "jobs_total": 1}


def test_jobs_total_sums_every_days_counter_and_the_jobs_counted_before_them(client, runtime):
    from datetime import timedelta

    from gateway.models import DailyUsage, User

    user_id, key = make_user(runtime, tier="free")
    today = datetime.now(timezone.utc).date()
    with runtime.db.transaction() as session:
        session.add_all([DailyUsage(user_id=user_id, day=today - timedelta(days=d), jobs=3) for d in (1, 40)])
        session.execute(update(User).where(User.id == user_id).values(uncounted_jobs=4))
    _submit(client, key)
    body = client.get("/user/me", headers={"X-API-Key": key}).get_json()
    assert (body["jobs_today"], body["jobs_total"]) == (1, 11)


class TestJobCountCache:
    """GET /user/me's counts: a process's own submissions at once, others' within the TTL."""

    def _me(self, client, key):
        body = client.get("/user/me", headers={"X-API-Key": key}).get_json()
        return body["jobs_today"], body["jobs_total"]

    def _count_elsewhere(self, runtime, user_id, jobs):
        """What a submission through another gateway process does to the counter."""
        from gateway.models import DailyUsage

        with runtime.db.transaction() as session:
            session.execute(update(DailyUsage).where(DailyUsage.user_id == user_id)
                            .values(jobs=DailyUsage.jobs + jobs))

    def test_a_submission_through_this_process_is_counted_at_once(self, client, runtime):
        _, key = make_user(runtime, tier="free")
        assert self._me(client, key) == (0, 0)
        _submit(client, key)
        assert self._me(client, key) == (1, 1)
        client.post("/batches", json={"circuits": [{"qasm": BELL, "shots": 10}] * 2}, headers={"X-API-Key": key})
        assert self._me(client, key) == (3, 3)

    def test_counts_from_elsewhere_show_after_the_ttl_and_never_with_ttl_zero(self, client, runtime):
        from gateway.quotas import JobCountCache

        user_id, key = make_user(runtime, tier="free")
        _submit(client, key)
        assert self._me(client, key) == (1, 1)
        self._count_elsewhere(runtime, user_id, 2)
        assert self._me(client, key) == (1, 1)  # cached
        runtime.job_counts = JobCountCache(0.05)
        assert self._me(client, key) == (3, 3)
        self._count_elsewhere(runtime, user_id, 1)
        time.sleep(0.1)
        assert self._me(client, key) == (4, 4)
        runtime.job_counts = JobCountCache(0)
        self._count_elsewhere(runtime, user_id, 1)
        assert self._me(client, key) == (5, 5)

    def test_a_read_that_raced_a_submission_is_not_kept_and_days_do_not_mix(self):
        from datetime import date

        from gateway.quotas import JobCountCache

        cache = JobCountCache(60)
        generation = cache.generation("u1")
        cache.forget("u1")  # a submission committed while the read ran
        cache.put("u1", date(2026, 12, 3), (4, 9), generation)
        assert cache.get("u1", date(2026, 12, 3)) is None
        cache.put("u1", date(2026, 12, 3), (5, 10), cache.generation("u1"))
        assert cache.get("u1", date(2026, 12, 3)) == (5, 10)
        assert cache.get("u1", date(2026, 12, 4)) is None  # after UTC midnight jobs_today starts again


class TestJobQuotas:
    def test_too_many_qubits_is_403_naming_the_limit(self, site_app):
        runtime = site_app.extensions["qcos"]
        key = make_user(runtime, tier="trial")[1]
        response = _submit(site_app.test_client(), key, qasm=_ghz(4))
        assert response.status_code == 403
        body = response.get_json()
        assert body["error_code"] == "QUOTA_EXCEEDED"
        assert "4 qubits" in body["detail"] and "max_qubits=3" in body["detail"] and "trial" in body["detail"]

    def test_too_many_shots_is_403_naming_the_limit(self, site_app):
        key = make_user(site_app.extensions["qcos"], tier="trial")[1]
        body = _submit(site_app.test_client(), key, shots=501).get_json()
        assert body["error_code"] == "QUOTA_EXCEEDED" and "max_shots=500" in body["detail"]

    def test_daily_limit_is_429_with_retry_after_and_stores_nothing(self, site_app):
        runtime = site_app.extensions["qcos"]
        client = site_app.test_client()
        key = make_user(runtime, tier="trial")[1]
        assert [_submit(client, key).status_code for _ in range(2)] == [201, 201]
        refused = _submit(client, key)
        assert refused.status_code == 429
        assert refused.get_json()["error_code"] == "QUOTA_EXCEEDED"
        assert "daily_job_limit=2" in refused.get_json()["detail"]
        assert 0 < int(refused.headers["Retry-After"]) <= 86400
        with runtime.db.session() as session:
            assert session.scalar(select(func.count()).select_from(Job)) == 2
        assert client.get("/user/me", headers={"X-API-Key": key}).get_json()["jobs_today"] == 2

    def test_a_job_that_could_not_be_stored_gives_its_quota_back(self, site_app, mocker):
        """Another user takes the job_id between the retry check and the insert: 409, and the
        reserved job is not counted, so the whole daily limit stays usable."""
        import gateway.jobs

        runtime = site_app.extensions["qcos"]
        client = site_app.test_client()
        key = make_user(runtime, tier="trial")[1]
        thief = make_user(runtime, tier="trial")[0]
        real_plan_job = gateway.jobs.plan_job

        def plan_then_lose_the_race(*args, **kwargs):
            plan = real_plan_job(*args, **kwargs)
            with runtime.db.transaction() as session:
                session.add(Job(id="contested", user_id=thief, status="queued", qasm=BELL, shots=1, num_qubits=2,
                                request_hash="-", executor="local", cluster_profile="dev", work_dir="/nonexistent"))
            return plan

        mocker.patch.object(gateway.jobs, "plan_job", side_effect=plan_then_lose_the_race)
        body = {"qasm": BELL, "shots": 10, "job_id": "contested"}
        assert client.post("/execute", json=body, headers={"X-API-Key": key}).status_code == 409
        mocker.stopall()
        assert client.get("/user/me", headers={"X-API-Key": key}).get_json()["jobs_today"] == 0
        assert [_submit(client, key).status_code for _ in range(3)] == [201, 201, 429]

    def test_retrying_an_existing_job_id_works_at_the_limit(self, site_app):
        client = site_app.test_client()
        key = make_user(site_app.extensions["qcos"], tier="trial")[1]
        body = {"qasm": BELL, "shots": 10, "job_id": "again"}
        assert client.post("/execute", json=body, headers={"X-API-Key": key}).status_code == 201
        _submit(client, key)
        assert client.post("/execute", json=body, headers={"X-API-Key": key}).status_code == 200

    def test_minus_one_is_unlimited(self, site_app):
        client = site_app.test_client()
        key = make_user(site_app.extensions["qcos"], tier="lab")[1]
        assert all(_submit(client, key).status_code == 201 for _ in range(4))

    def test_a_user_of_a_tier_the_site_dropped_gets_a_clear_403(self, site_app):
        runtime = site_app.extensions["qcos"]
        key = make_user(runtime, tier="lab")[1]
        runtime.tiers = {k: v for k, v in runtime.tiers.items() if k != "lab"}
        body = _submit(site_app.test_client(), key).get_json()
        assert body["error_code"] == "QUOTA_EXCEEDED" and "'lab'" in body["detail"]


def test_retry_after_counts_to_the_next_utc_midnight():
    assert seconds_until_next_utc_day(datetime(2024, 1, 15, 23, 59, 30, tzinfo=timezone.utc)) == 31
    assert seconds_until_next_utc_day(datetime(2024, 1, 15, 0, 0, 0, tzinfo=timezone.utc)) == 86401


class TestUsage:
    def test_usage_of_completed_jobs_in_the_current_month(self, client, runtime):
        user_id, key = make_user(runtime)
        job_ids = [_submit(client, key, shots=s).get_json()["job_id"] for s in (100, 300)]
        for job_id in job_ids:
            drive_until_final(runtime, job_id)
        body = client.get("/user/usage", headers={"X-API-Key": key}).get_json()
        today = datetime.now(timezone.utc)
        assert body["user_id"] == user_id and body["period"] == today.strftime("%Y-%m")
        assert body["jobs_executed"] == 2 and body["total_shots"] == 400
        with runtime.db.session() as session:
            seconds = session.scalars(select(Job.execution_time_seconds).where(Job.id.in_(job_ids))).all()
        assert body["total_qubits_hours"] == pytest.approx(2 * sum(seconds) / 3600, abs=1e-6)
        assert body["daily_usage"] == [{"date": today.date().isoformat(), "jobs": 2}]

    def test_period_selects_a_month_and_days_come_newest_first(self, client, runtime):
        user_id, key = make_user(runtime)
        job_ids = [_submit(client, key, shots=10).get_json()["job_id"] for _ in range(3)]
        days = [datetime(2024, 1, 14, 12, tzinfo=timezone.utc), datetime(2024, 1, 15, 9, tzinfo=timezone.utc),
                datetime(2024, 2, 1, 0, 30, tzinfo=timezone.utc)]
        with runtime.db.transaction() as session:
            for job_id, day in zip(job_ids, days):
                session.execute(update(Job).where(Job.id == job_id).values(
                    status="completed", completed_at=day, execution_time_seconds=36.0, result={"counts": {"0": 10}}))
        body = client.get("/user/usage?period=2024-01", headers={"X-API-Key": key}).get_json()
        assert body["jobs_executed"] == 2 and body["total_shots"] == 20
        assert body["total_qubits_hours"] == pytest.approx(2 * 2 * 36 / 3600)
        assert body["daily_usage"] == [{"date": "2024-01-15", "jobs": 1}, {"date": "2024-01-14", "jobs": 1}]
        assert client.get("/user/usage?period=2024-02", headers={"X-API-Key": key}).get_json()["jobs_executed"] == 1

    @pytest.mark.parametrize("period", ["2024-13", "2024-1", "24-01", "january", "2024-01-01", "0000-01",
                                        "1969-12", "9999-12", ""])
    def test_bad_period_is_invalid_request(self, client, api_key, period):
        response = client.get(f"/user/usage?period={period}", headers={"X-API-Key": api_key})
        assert response.status_code == 400 and response.get_json()["error_code"] == "INVALID_REQUEST"


class TestKeysAndAccounts:
    def test_a_revoked_key_is_refused_at_once_while_others_work(self, client, runtime):
        from gateway.accounts import find_user, issue_key

        user_id, first = make_user(runtime)
        with runtime.db.transaction() as session:
            second = issue_key(session, find_user(session, user_id))
        assert client.get("/user/me", headers={"X-API-Key": first}).status_code == 200
        with runtime.db.transaction() as session:
            revoke_key(session, list_keys(session, user_id)[0].id)
        assert client.get("/user/me", headers={"X-API-Key": first}).get_json()["error_code"] == "AUTH_INVALID"
        assert client.get("/user/me", headers={"X-API-Key": second}).status_code == 200

    def test_a_disabled_user_is_refused_and_a_tier_change_applies_at_once(self, client, runtime):
        user_id, key = make_user(runtime, tier="free")
        with runtime.db.transaction() as session:
            set_tier(session, user_id, "enterprise", runtime.tiers)
        assert client.get("/user/me", headers={"X-API-Key": key}).get_json()["max_qubits"] == 100
        with runtime.db.transaction() as session:
            set_active(session, user_id, False)
        assert client.get("/user/me", headers={"X-API-Key": key}).get_json()["error_code"] == "AUTH_INVALID"

    def test_keys_have_a_recognisable_prefix_and_are_listed_without_secret(self, runtime):
        user_id, key = make_user(runtime)
        assert key.startswith("qcos_") and len(key) > 40
        with runtime.db.session() as session:
            listed = list_keys(session, user_id)
        assert [k.prefix for k in listed] == [key[:9]]
