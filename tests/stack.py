"""A whole gateway as separate processes: ``qcos db upgrade``, ``qcos users
create``, gunicorn and ``qcos poller``, as an operator would start them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    base_url: str
    api_key: str
    env: dict[str, str]

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def submit(self, qasm: str, shots: int = 1024, **extra) -> dict:
        response = requests.post(f"{self.base_url}/execute", json={"qasm": qasm, "shots": shots, **extra},
                                 headers=self.headers(), timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def submit_batch(self, circuits: list[dict]) -> dict:
        """``POST /batches`` with ``circuits`` (``{"qasm", "shots", "job_id"?}`` each); the 201 answer."""
        response = requests.post(f"{self.base_url}/batches", json={"circuits": circuits}, headers=self.headers(),
                                 timeout=120)
        assert response.status_code == 201, response.text
        return response.json()

    def wait_batch(self, batch_id: str, timeout: float = 180) -> dict:
        """``GET /batches/{batch_id}`` once every job of the batch is final."""
        deadline = time.monotonic() + timeout
        while True:
            batch = requests.get(f"{self.base_url}/batches/{batch_id}", headers=self.headers(), timeout=30).json()
            if batch["done"]:
                return batch
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {batch_id} not done after {timeout} s: {batch['counts']}")
            time.sleep(0.5)

    def wait_connected(self, timeout: float = 30) -> dict:
        """``GET /`` once it says ``queue_connected`` (the poller's first cycle reached the
        scheduler and the gateway's one-second cache of it expired); fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            health = requests.get(f"{self.base_url}/", timeout=10).json()
            if health["queue_connected"]:
                return health
            if time.monotonic() > deadline:
                raise AssertionError(f"GET / not connected after {timeout} s: {health}")
            time.sleep(0.2)

    @property
    def work_root(self) -> Path:
        """Where the jobs' and packs' work dirs are (``QCOS_WORK_ROOT``, default ``<state>/jobs``)."""
        return Path(self.env.get("QCOS_WORK_ROOT") or Path(self.env["QCOS_STATE_DIR"]) / "jobs")

    def wait_final(self, job_id: str, timeout: float = 180) -> dict:
        """``/status`` once the job is final (uses ``/results?wait=true`` to wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            requests.get(f"{self.base_url}/results/{job_id}", params={"wait": "true", "timeout": 20},
                         headers=self.headers(), timeout=40)
            status = requests.get(f"{self.base_url}/status/{job_id}", headers=self.headers(), timeout=10).json()
            if status["status"] in ("completed", "failed"):
                return status
        raise AssertionError(f"job {job_id} not final after {timeout} s: {status}")


class Records:
    """A stack's database, read only: jobs and packs as the dispatcher and
    poller left them (what the API does not show: a job's pack, how often it
    was dispatched, a pack's Slurm id). ``close()`` when done."""

    def __init__(self, database_url: str):
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(database_url)

    def jobs(self, ids):
        """``{job_id: Job}`` for ``ids`` (detached rows)."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from gateway.models import Job

        with Session(self.engine) as session:
            return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(list(ids))))}

    def status(self, job_id: str) -> str | None:
        """The job's status now (read here rather than through the rate-limited API)."""
        return self.jobs([job_id])[job_id].status

    def packs(self):
        """Every pack, oldest first."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from gateway.models import Pack

        with Session(self.engine) as session:
            return list(session.scalars(select(Pack).order_by(Pack.created_at)))

    def pack(self, pack_id: str):
        from sqlalchemy.orm import Session

        from gateway.models import Pack

        with Session(self.engine) as session:
            return session.get(Pack, pack_id)

    def close(self) -> None:
        self.engine.dispose()


def wait_until(check, *, timeout: float, what: str, pause: float = 0.2):
    """``check()``'s first truthy value; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout} s")
        time.sleep(pause)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(argv, env) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def gateway_stack(tmp_path: Path, *, database_url: str, executor: str = "local", preload: bool = False,
                  workers: int = 2, tier: str = "pro", env: dict[str, str] | None = None):
    """Start the gateway and the poller; yields a :class:`Stack`; stops both.

    ``workers`` is ``QCOS_WORKERS``; ``tier`` is the tier of the stack's user
    (``Stack.api_key``); ``env`` adds or overrides environment variables of
    every process (e.g. ``QCOS_RATELIMIT_STORAGE_URI``).
    """
    port = _free_port()
    env = {
        **os.environ,
        "QCOS_STATE_DIR": str(tmp_path / "state"),
        "QCOS_DATABASE_URL": database_url,
        "QCOS_EXECUTOR": executor,
        "QCOS_POLL_INTERVAL": "0.5",
        "QCOS_BIND": f"127.0.0.1:{port}",
        "QCOS_WORKERS": str(workers),
        "QCOS_MISSING_GRACE": "60",
        **(env or {}),
    }
    _run([str(BIN / "qcos"), "db", "upgrade"], env)
    created = _run([str(BIN / "qcos"), "users", "create", "--email", "e2e@example.org", "--tier", tier], env)
    api_key = re.search(r"api_key: (\S+)", created).group(1)
    logs = tmp_path / "logs"
    logs.mkdir()
    gunicorn = _start_gunicorn(env, logs / "gunicorn.log", preload=preload)
    processes = [
        gunicorn,
        subprocess.Popen([str(BIN / "qcos"), "poller"], env=env, cwd=REPO_ROOT,
                         stdout=open(logs / "poller.log", "w"), stderr=subprocess.STDOUT, start_new_session=True),
    ]
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, gunicorn, logs / "gunicorn.log")
        yield Stack(base_url, api_key, env)
    finally:
        _stop(processes)


@contextmanager
def second_gateway(stack: Stack, log: Path, *, preload: bool = False):
    """Another gunicorn on the same database and settings as ``stack`` (a second
    gateway host behind a load balancer); yields its base URL."""
    port = _free_port()
    env = {**stack.env, "QCOS_BIND": f"127.0.0.1:{port}"}
    gunicorn = _start_gunicorn(env, log, preload=preload)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", gunicorn, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop([gunicorn])


@contextmanager
def second_poller(stack: Stack, log: Path):
    """Another ``qcos poller`` (with its dispatcher) on the same database and
    settings as ``stack``, e.g. on a second host; stopped on exit."""
    poller = subprocess.Popen([str(BIN / "qcos"), "poller"], env=stack.env, cwd=REPO_ROOT, stdout=open(log, "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield poller
    finally:
        _stop([poller])


def _start_gunicorn(env: dict[str, str], log: Path, *, preload: bool) -> subprocess.Popen:
    argv = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "gateway.wsgi:app"]
    if preload:
        argv.insert(1, "--preload")
    return subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_ready(base_url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(base_url + "/", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or busy starting
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError("gateway did not start:\n" + log.read_text())
        time.sleep(0.2)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
