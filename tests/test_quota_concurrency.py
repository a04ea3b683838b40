"""The daily job limit holds under real concurrency: several gunicorn workers in two
gateway processes on one PostgreSQL database."""

from __future__ import annotations

import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import BELL
from tests.stack import gateway_stack, second_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def tiers_with_ten_jobs_a_day(tmp_path):
    """The reference's free tier, but with rate limits out of the way of this test."""
    path = tmp_path / "tiers.toml"
    path.write_text('[[tier]]\nname = "free"\nprice_monthly = 0\ndaily_job_limit = 10\nmax_qubits = 20\n'
                    'max_shots = 10000\nrequests_per_minute = -1\nrequests_per_day = -1\n')
    return path


def test_fifty_simultaneous_submissions_with_ten_left_make_exactly_ten_jobs(
    tmp_path, postgres_url, tiers_with_ten_jobs_a_day
):
    env = {"QCOS_TIERS_FILE": str(tiers_with_ten_jobs_a_day),
           "QCOS_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
           "QCOS_RATELIMIT_KEY_PREFIX": "quota-" + secrets.token_hex(4)}
    with gateway_stack(tmp_path, database_url=postgres_url, workers=4, tier="free", env=env) as stack, \
            second_gateway(stack, tmp_path / "second.log") as other_url:
        urls = [stack.base_url, other_url]

        def submit(i: int) -> int:
            response = requests.post(f"{urls[i % 2]}/execute", json={"qasm": BELL, "shots": 16},
                                     headers=stack.headers(), timeout=60)
            assert response.status_code in (201, 429), response.text
            if response.status_code == 429:
                assert response.json()["error_code"] == "QUOTA_EXCEEDED"
            return response.status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = Counter(pool.map(submit, range(50)))
        assert statuses == {201: 10, 429: 40}

        engine = create_engine(postgres_url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM jobs")).scalar() == 10
            assert connection.execute(text("SELECT sum(jobs) FROM daily_usage")).scalar() == 10
        engine.dispose()
        me = requests.get(f"{stack.base_url}/user/me", headers=stack.headers(), timeout=10).json()
        assert me["jobs_today"] == 10 and me["jobs_total"] == 10
