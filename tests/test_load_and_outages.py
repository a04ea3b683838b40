"""The deployed gateway under load, through a database restart, and while stopping.

Real processes (gunicorn with deploy/gunicorn.conf.py, the poller, ``make
run``'s script) on a private PostgreSQL server that these tests start, restart
and stop themselves (tests/postgres_server.py), never the shared one.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy
from sqlalchemy import text

from tests.conftest import BELL
from tests.postgres_server import remove_private_postgres, start_private_postgres
from tests.stack import BIN, REPO_ROOT, _free_port, _run, _wait_ready, gateway_stack, second_gateway

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def private_postgres():
    server = start_private_postgres()
    yield server
    remove_private_postgres(server)


@pytest.fixture
def private_database(private_postgres):
    """A fresh database on the private server; its URL."""
    admin = sqlalchemy.create_engine(private_postgres.url, isolation_level="AUTOCOMMIT")
    name = "qcos_" + secrets.token_hex(6)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin.url.set(database=name).render_as_string(hide_password=False)


def _tiers(tmp_path, daily_job_limit: int):
    path = tmp_path / "tiers.toml"
    path.write_text(f'[[tier]]\nname = "lab"\nprice_monthly = 0\ndaily_job_limit = {daily_job_limit}\n'
                    'max_qubits = 20\nmax_shots = 10000\n')
    return path


def _count(url: str, sql: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_three_hundred_simultaneous_submissions_get_no_5xx_and_the_daily_quota_holds(
    tmp_path, private_postgres, private_database
):
    env = {"QCOS_TIERS_FILE": str(_tiers(tmp_path, 10)), "QCOS_RATELIMIT_ENABLED": "false"}
    with gateway_stack(tmp_path, database_url=private_database, workers=4, tier="lab", env=env) as stack, \
            second_gateway(stack, tmp_path / "second.log") as other_url:
        urls = [stack.base_url, other_url]

        def submit(i: int) -> tuple[int, str]:
            response = requests.post(f"{urls[i % 2]}/execute", json={"qasm": BELL, "shots": 16},
                                     headers=stack.headers(), timeout=120)
            return response.status_code, response.json().get("error_code", "")

        with ThreadPoolExecutor(max_workers=300) as pool:
            answers = Counter(pool.map(submit, range(300)))
    assert answers == {(201, ""): 10, (429, "QUOTA_EXCEEDED"): 290}, answers
    assert _count(private_database, "SELECT count(*) FROM jobs") == 10
    assert _count(private_database, "SELECT sum(jobs) FROM daily_usage") == 10
    assert "too many clients" not in private_postgres.log()


@pytest.mark.postgres
def test_the_gateway_warns_at_start_when_the_sites_connections_cannot_fit(tmp_path, private_database):
    env = {"QCOS_RATELIMIT_ENABLED": "false", "QCOS_GATEWAY_INSTANCES": "10"}
    with gateway_stack(tmp_path, database_url=private_database, workers=2, env=env):
        log = (tmp_path / "logs" / "gunicorn.log").read_text()
    # 10 gateways x 2 workers x (5 + 0 + 1) + 2 x 5 = 130 > 100 - 3 reserved - 3
    assert re.search(r"connection budget exceeded: .* = 130 connections; the server allows 94", log), log


@pytest.mark.postgres
def test_a_database_restart_under_load_answers_503_briefly_then_recovers_and_loses_no_job(
    tmp_path, private_postgres, private_database
):
    env = {"QCOS_TIERS_FILE": str(_tiers(tmp_path, -1)), "QCOS_RATELIMIT_ENABLED": "false"}
    with gateway_stack(tmp_path, database_url=private_database, workers=2, tier="lab", env=env) as stack:
        first = stack.submit(BELL, shots=16)["job_id"]
        stack.wait_final(first, timeout=120)
        answers: list[tuple[float, str, int, str]] = []
        accepted: list[str] = []
        failures: list[str] = []
        stop = threading.Event()

        def record(kind: str, response: requests.Response) -> None:
            code = ""
            if response.status_code >= 500:
                code = response.json()["error_code"]  # must be our JSON, even now
            answers.append((time.monotonic(), kind, response.status_code, code))

        def read() -> None:
            while not stop.is_set():
                try:
                    for path in (f"/status/{first}", "/user/me", "/", f"/results/{first}"):
                        record(path, requests.get(stack.base_url + path, headers=stack.headers(), timeout=30))
                except Exception as exc:  # noqa: BLE001 - any failure to answer is the finding
                    failures.append(repr(exc))

        def submit() -> None:
            while not stop.is_set():
                try:
                    response = requests.post(f"{stack.base_url}/execute", json={"qasm": BELL, "shots": 16},
                                             headers=stack.headers(), timeout=30)
                    record("POST /execute", response)
                    if response.status_code == 201:
                        accepted.append(response.json()["job_id"])
                except Exception as exc:  # noqa: BLE001
                    failures.append(repr(exc))
                stop.wait(0.5)

        clients = [threading.Thread(target=read) for _ in range(3)] + [threading.Thread(target=submit)]
        for client in clients:
            client.start()
        time.sleep(3)
        down = time.monotonic()
        private_postgres.stop()
        time.sleep(2)
        private_postgres.start()
        up = time.monotonic()
        time.sleep(8)
        stop.set()
        for client in clients:
            client.join(timeout=60)

        assert not failures, failures[:5]
        statuses = Counter(status for _, _, status, _ in answers)
        assert set(statuses) <= {200, 201, 503}, statuses
        unavailable = [(t, kind, code) for t, kind, status, code in answers if status == 503]
        assert unavailable, "no request met the outage"
        assert {code for _, _, code in unavailable} <= {"SERVICE_UNAVAILABLE"}
        # Refused only while the server was down and for a few seconds after it was back.
        assert all(down - 0.5 <= t <= up + 4 for t, _, _ in unavailable), \
            [(round(t - down, 2), kind) for t, kind, _ in unavailable]
        assert any(t > up + 4 and status == 201 for t, _, status, _ in answers), "no submission after recovery"
        assert all(status in (200, 201) for t, _, status, _ in answers if t > up + 4)
        # Every job whose submission was answered 201 is there and runs to the end.
        for job_id in accepted:
            assert stack.wait_final(job_id, timeout=180)["status"] == "completed", job_id


def _queued_job(url: str, email: str, job_id: str) -> None:
    """A job row that no poller of these tests will move (its executor is not theirs)."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            user_id = connection.execute(text("SELECT id FROM users WHERE email = :e"), {"e": email}).scalar()
            connection.execute(text(
                "INSERT INTO jobs (id, user_id, status, qasm, shots, num_qubits, request_hash, executor, "
                "cluster_profile, work_dir, estimated_time_seconds, created_at) VALUES "
                "(:id, :user, 'queued', :qasm, 8, 2, '-', 'slurm', 'dev', '/nonexistent', 1, CURRENT_TIMESTAMP)"),
                {"id": job_id, "user": user_id, "qasm": BELL})
    finally:
        engine.dispose()


def _embedded_env(tmp_path) -> dict[str, str]:
    state = tmp_path / "state"
    return {**os.environ, "QCOS_STATE_DIR": str(state), "QCOS_BIND": f"127.0.0.1:{_free_port()}",
            "QCOS_RATELIMIT_ENABLED": "false", "QCOS_DATABASE_URL": f"sqlite:///{state / 'qcos.db'}"}


def _wait_in_background(base_url: str, key: str, job_id: str) -> tuple[threading.Thread, list]:
    answers: list = []

    def wait() -> None:
        try:
            response = requests.get(f"{base_url}/results/{job_id}", params={"wait": "true", "timeout": 30},
                                    headers={"X-API-Key": key}, timeout=60)
            answers.append((time.monotonic(), response.status_code, response.json()))
        except Exception as exc:  # noqa: BLE001 - an empty reply is the failure this test looks for
            answers.append((time.monotonic(), None, repr(exc)))

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, answers


def _user_with_key(env: dict[str, str]) -> str:
    _run([str(BIN / "qcos"), "db", "upgrade"], env)
    created = _run([str(BIN / "qcos"), "users", "create", "--email", "stop@example.org", "--tier", "pro"], env)
    return re.search(r"api_key: (\S+)", created).group(1)


def test_sigterm_answers_waiting_clients_and_stops_within_five_seconds(tmp_path):
    env = _embedded_env(tmp_path)
    key = _user_with_key(env)
    _queued_job(env["QCOS_DATABASE_URL"], "stop@example.org", "never-runs")
    log = tmp_path / "gunicorn.log"
    master = subprocess.Popen([str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "gateway.wsgi:app"], env=env,
                              cwd=REPO_ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://{env['QCOS_BIND']}"
    try:
        _wait_ready(base_url, master, log)
        waiter, answers = _wait_in_background(base_url, key, "never-runs")
        time.sleep(1.5)
        stopped_at = time.monotonic()
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=15)
        exited_after = time.monotonic() - stopped_at
        waiter.join(timeout=15)
    finally:
        if master.poll() is None:
            os.killpg(master.pid, signal.SIGKILL)
    answered_at, status, body = answers[0]
    assert status == 200 and body == {"job_id": "never-runs", "status": "pending", "message": "Job not yet completed"}
    assert answered_at - stopped_at < 2
    assert exited_after < 5 and master.returncode == 0
    assert "SIGKILL" not in log.read_text()


def test_ctrl_c_on_make_run_answers_waiting_clients_and_stops_within_five_seconds(tmp_path):
    env = _embedded_env(tmp_path)
    key = _user_with_key(env)
    _queued_job(env["QCOS_DATABASE_URL"], "stop@example.org", "never-runs")
    output = tmp_path / "run-local.log"
    script = subprocess.Popen([str(REPO_ROOT / "deploy" / "run-local.sh")], env=env, cwd=REPO_ROOT,
                              stdout=open(output, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://{env['QCOS_BIND']}"
    try:
        _wait_ready(base_url, script, output)
        waiter, answers = _wait_in_background(base_url, key, "never-runs")
        time.sleep(1.5)
        stopped_at = time.monotonic()
        os.killpg(script.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the whole foreground group
        script.wait(timeout=15)
        exited_after = time.monotonic() - stopped_at
        waiter.join(timeout=15)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    answered_at, status, body = answers[0]
    assert status == 200 and body["status"] == "pending", body
    assert answered_at - stopped_at < 2
    assert exited_after < 5
    text_out = output.read_text()
    assert "SIGKILL" not in text_out
    leftovers = subprocess.run(["pgrep", "-s", str(script.pid)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes still running after make run stopped: {leftovers}"
