"""Rate limits across real gunicorn worker processes (tests/stack.py).

A limit must not depend on how many processes serve the API: with Redis
storage every worker counts in the same place; with the in-memory default
gunicorn runs a single worker process. Redis is ``QCOS_TEST_REDIS_URL``
(default ``redis://127.0.0.1:6379/0``); without it these tests skip locally
and fail under ``CI=true``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.components import REDIS_URL, redis_client
from tests.stack import gateway_stack

pytestmark = pytest.mark.e2e

REQUESTS = 25
# gunicorn's access log (off in deploy/gunicorn.conf.py, switched on here) names
# the serving process ("<pid>"), so a test can tell that more than one worker answered.
ACCESS_LOG_WITH_PID = {"GUNICORN_CMD_ARGS": "--access-logfile - --access-logformat 'access %(p)s %(m)s %(U)s %(s)s'"}


@pytest.fixture
def redis_env():
    """Environment for a gateway on Redis storage, with a key prefix of its own."""
    client = redis_client()
    prefix = "qcos-test-" + secrets.token_hex(6)
    yield {"QCOS_RATELIMIT_STORAGE_URI": REDIS_URL, "QCOS_RATELIMIT_KEY_PREFIX": prefix}
    for key in client.scan_iter(match=f"*/{prefix}/*"):
        client.delete(key)
    client.close()


def _fire_concurrently(stack) -> Counter:
    """``REQUESTS`` simultaneous ``GET /status/x`` with the stack's key; status codes counted."""
    def one(_):
        return requests.get(f"{stack.base_url}/status/x", headers=stack.headers(), timeout=30).status_code

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        return Counter(pool.map(one, range(REQUESTS)))


def _wait_for_workers(log, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(re.findall(r"Booting worker with pid", log.read_text())) < count:
        assert time.monotonic() < deadline, f"{count} workers did not boot:\n{log.read_text()}"
        time.sleep(0.2)
    time.sleep(0.5)


def _serving_pids(log) -> set[str]:
    return set(re.findall(r"access <(\d+)> GET /status/x", log.read_text()))


@pytest.mark.parametrize("workers", [1, 4])
def test_the_limit_is_the_same_with_1_and_4_gunicorn_workers(tmp_path, redis_env, workers):
    log = tmp_path / "logs" / "gunicorn.log"
    # --preload: the app is built once in the master, so all workers are ready
    # together and the requests spread over them.
    with gateway_stack(tmp_path, database_url=f"sqlite:///{tmp_path / 'qcos.db'}", workers=workers, tier="free",
                       preload=True, env={**redis_env, **ACCESS_LOG_WITH_PID}) as stack:
        _wait_for_workers(log, workers)
        codes = _fire_concurrently(stack)
    text = log.read_text()
    assert f"rate limits: storage redis:// shared by {workers} worker processes" in text
    # Free tier: 10 requests a minute. Unknown job: 404 JOB_NOT_FOUND.
    assert codes == {404: 10, 429: 15}, codes
    if workers > 1:
        assert len(_serving_pids(log)) > 1, "all requests went to one worker; the test proves nothing"


def test_memory_storage_runs_one_worker_process(tmp_path):
    log = tmp_path / "logs" / "gunicorn.log"
    env = {"QCOS_RATELIMIT_STORAGE_URI": "memory://", **ACCESS_LOG_WITH_PID}
    with gateway_stack(tmp_path, database_url=f"sqlite:///{tmp_path / 'qcos.db'}", workers=4, tier="free",
                       env=env) as stack:
        codes = _fire_concurrently(stack)
    text = log.read_text()
    assert "rate limits: storage memory:// counts per process, so 1 worker process" in text
    assert len(re.findall(r"Booting worker with pid", text)) == 1
    assert codes == {404: 10, 429: 15}, codes
