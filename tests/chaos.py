"""Fault injection on the real components: ``make chaos`` (``python -m tests.chaos``).

Every trial runs the gateway as an operator would (gunicorn and ``qcos
poller`` as processes, ``QCOS_EXECUTOR=slurm``) on components of its own,
which this module starts, stops and breaks itself; shared services are
never touched:

- a **private Slurm cluster** ``qcos-chaos`` (``deploy/slurm/slurm-up.sh``
  with ``QCOS_SLURM_INSTANCE=chaos``: its own slurmctld, slurmd and slurmdbd
  on ports ``QCOS_CHAOS_SLURM_PORT_BASE`` (16817) to +2, its own
  configuration in ``/etc/qcos-slurm-chaos``, state, logs and accounting
  database), next to the dev cluster, on the same munged. Left running at
  the end, like ``make test`` leaves the dev cluster;
- a **private PostgreSQL** (``initdb`` in a temporary folder, run as the
  ``postgres`` user, on a free port);
- a **private Redis** (``redis-server`` on a free port) for the rate-limit
  counters;
- a **private sshd** (``tests/sshd_fixtures.py``) for the SSH transport,
  whose sessions get the private cluster's ``SLURM_CONF`` and a ``PATH``
  where ``sbatch`` can be told to hang after submitting.

Load: client threads POST Bell circuits, each with its own ``job_id``, and
retry a request that got no answer or a 503 with the same ``job_id`` (the
documented idempotent retry) until it is accepted (201, or 200 for a job
stored by an earlier try). A probe reads ``GET /`` twice a second.

After each fault ends (and the load stops), every accepted job must end
within a bound. Counted per trial:

- **lost**: an accepted job that is not in the database, or that ended
  ``failed`` (every circuit is valid: only a fault can fail it);
- **duplicated**: a job whose outcome line appears in the progress files of
  two packs (it ran twice), plus pack names with more than one Slurm job;
- **stuck**: accepted jobs still ``queued``/``processing``, and packs not
  ``ended``, when the bound has passed;
- **orphans**: Slurm jobs named ``qcos-pack-*`` (squeue and sacct since the
  trial began) whose pack is in no database of this run;
- **unexpected 5xx**: any 5xx answer other than the documented 503
  ``SERVICE_UNAVAILABLE`` JSON while the database is down;
- **checks** of the trial: every valid circuit accepted (no 4xx); ``GET /``
  reports the fault (``queue_connected`` false within 15 s of slurmctld
  stopping and until it is back; ``degraded`` naming ``accounting`` within
  5 s of slurmdbd stopping, ``rate_limiter`` within 4 s of Redis stopping,
  in every answer until the restart and in none once it has cleared; 503
  while PostgreSQL is down); jobs complete while slurmdbd is down; a hung
  sbatch is ended on the login node.

A trial is ``ok`` when all its counts are 0 and its checks hold.

Trials, full run (``--short``: the reduced set that ``make test`` runs
through ``tests/test_chaos.py``): slurmctld stopped 60 s (15 s), slurmdbd
stopped 60 s (8 s), PostgreSQL stopped and started (10 s down; 3 s), Redis
stopped 30 s (5 s), sshd restarted (10 s down; 3 s), an sbatch over SSH that
submits and never answers, kill -9 of a gunicorn worker 0-80 ms after a POST,
of the poller at random moments and of the poller (the dispatcher) while a
pack is planned or submitting, 50 each (3 each; a killed poller is started
again at once, as systemd would; gunicorn replaces its worker itself), and two pollers at once (60 s; 8 s). One line per trial,
then a last line ``chaos: N trials, L lost, D duplicated, S stuck, E
unexpected 5xx``; exit status 1 when any trial is not ``ok`` (orphans and
checks included), 2 when a component could not be started.

Needs root (Slurm daemons, PostgreSQL through ``runuser``), Debian's
``slurm-wlm slurmdbd munge``, PostgreSQL server binaries, ``redis-server``,
``openssh-server`` and the MariaDB that the dev cluster's accounting uses.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import redis
import requests
import sqlalchemy
from sqlalchemy import text

from tests.sshd_fixtures import child_pids, free_port, prepare_sshd, start_sshd, stop_sshd
from tests.stack import BIN, REPO_ROOT, _run, _start_gunicorn, _wait_ready

BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'
SLURM_INSTANCE = "chaos"
SLURM_PORT_BASE = int(os.environ.get("QCOS_CHAOS_SLURM_PORT_BASE", "16817"))
SLURM_CONF = Path(f"/etc/qcos-slurm-{SLURM_INSTANCE}/slurm.conf")
SLURM_RUN_DIR = Path(f"/run/qcos-slurm-{SLURM_INSTANCE}")
#: One chaos run at a time on a machine: they share the private Slurm cluster.
LOCK_FILE = Path("/tmp/qcos-chaos.lock")
#: Seconds one Slurm command may take in the chaos gateways (QCOS_SLURM_COMMAND_TIMEOUT).
SLURM_COMMAND_TIMEOUT = 10
#: QCOS_SUBMIT_RECOVERY of the chaos gateways: above the command timeout, as documented.
SUBMIT_RECOVERY = 12
POLL_INTERVAL = 1.0
#: Seconds after slurmctld stops by which GET / must say queue_connected false.
REPORT_WITHIN = SLURM_COMMAND_TIMEOUT + 2 * POLL_INTERVAL + 3
#: Seconds after slurmdbd stops (sacct is refused at once) by which GET / must
#: name accounting: the next observing cycle's sacct, then a gateway process's
#: one-second cache of the poller's record.
ACCOUNTING_REPORT_WITHIN = 2 * POLL_INTERVAL + 3
#: QCOS_RATELIMIT_CHECK_TTL of the chaos gateways, and the seconds after Redis
#: stops by which GET / must name rate_limiter (a worker's cached PING expires).
RATELIMIT_CHECK_TTL = 1.0
RATELIMIT_REPORT_WITHIN = RATELIMIT_CHECK_TTL + 3
#: Seconds after a source is back by which GET / must have dropped it from degraded.
RECOVERY_WITHIN = 15
LIVE = ("queued", "processing")
TIERS = """\
[[tier]]
name = "chaos"
daily_job_limit = -1
max_qubits = 30
max_shots = 100000
requests_per_minute = 1000000
requests_per_day = -1
"""


def say(message: str) -> None:
    """Progress for the operator (stderr; stdout carries the trial lines)."""
    print(f"chaos: {message}", file=sys.stderr, flush=True)


class ComponentError(RuntimeError):
    """A private component could not be started."""


def _check(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise ComponentError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


# ------------------------------------------------------------------ private components


class PrivateSlurm:
    """The private cluster ``qcos-chaos`` (see the module docstring)."""

    def __init__(self) -> None:
        self.script_env = {**os.environ, "QCOS_SLURM_INSTANCE": SLURM_INSTANCE,
                           "QCOS_SLURM_PORT_BASE": str(SLURM_PORT_BASE)}
        self.command_env = {**os.environ, "SLURM_CONF": str(SLURM_CONF)}

    def up(self) -> None:
        """Start whatever daemon is not running and wait until the node is idle (idempotent)."""
        _check([str(REPO_ROOT / "deploy/slurm/slurm-up.sh")], env=self.script_env, timeout=180)

    def stop(self, daemon: str) -> None:
        """SIGTERM one daemon (``slurmctld``, ``slurmdbd``) by its pid file; wait until it is gone."""
        pid = int((SLURM_RUN_DIR / f"{daemon}.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def pack_jobs(self, since: datetime) -> dict[str, set[str]]:
        """``{job name: {Slurm job ids}}`` of the ``qcos-pack-*`` jobs in the
        queue and in accounting since ``since`` (an aware time)."""
        found: dict[str, set[str]] = {}
        queue = subprocess.run(["squeue", "-h", "-a", "-o", "%i|%j"], env=self.command_env, capture_output=True,
                               text=True, timeout=30)
        accounting = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-a", "-S", since.astimezone().strftime("%Y-%m-%dT%H:%M:%S"), "-E", "now",
             "--format=JobIDRaw,JobName"], env=self.command_env, capture_output=True, text=True, timeout=30)
        for done in (queue, accounting):
            if done.returncode != 0:
                raise ComponentError(f"{done.args[0]} failed: {done.stderr.strip()}")
            for line in done.stdout.splitlines():
                job_id, _, name = line.strip().partition("|")
                if name.startswith("qcos-pack-"):
                    found.setdefault(name, set()).add(job_id)
        return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class PrivatePostgres:
    """A PostgreSQL server of its own: ``initdb`` in ``folder`` (owned by the
    ``postgres`` user when run as root), on ``port``, trust auth on loopback."""

    def __init__(self, folder: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
        if not bins:
            raise ComponentError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1])
        self.folder = folder
        self.port = free_port()
        self.data = folder / "data"
        self.log = folder / "postgres.log"

    def _as_postgres(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else argv

    def init(self) -> None:
        if os.getuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        _check(self._as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                                  "-E", "UTF8", "--no-sync"]))
        self.start()

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c max_connections=300")
        _check(self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                                  "-t", "60", "-o", options, "start"]))

    def stop(self, mode: str = "fast") -> None:
        _check(self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-m", mode,
                                  "stop"]))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


class PrivateRedis:
    """``redis-server`` on a free loopback port, no persistence."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise ComponentError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


class PrivateSSHD:
    """A test sshd whose sessions use the private cluster, and whose ``sbatch``
    hangs after submitting while ``hang_flag`` exists (the pid of each hung
    wrapper goes to ``hung_pids``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        wrappers = folder / "bin"
        wrappers.mkdir()
        self.hang_flag = folder / "hang-sbatch"
        self.hung_pids = folder / "hung.pids"
        sbatch = wrappers / "sbatch"
        sbatch.write_text(
            "#!/bin/sh\n"
            "# sbatch, then (while the flag exists) an answer that never comes.\n"
            "/usr/bin/sbatch \"$@\"; rc=$?\n"
            f"if [ -e {self.hang_flag} ]; then echo $$ >> {self.hung_pids}; sleep 3599; fi\n"
            "exit $rc\n")
        sbatch.chmod(0o755)
        path = f"{wrappers}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        self.server = prepare_sshd(folder, extra_config=[f"SetEnv SLURM_CONF={SLURM_CONF} PATH={path}"])
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = start_sshd(self.server)
        self.server = replace(self.server, pid=self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            stop_sshd(self.process)
            self.process = None

    def leftover_hung(self) -> list[int]:
        """Hung sbatch wrappers, and their ``sleep``, still alive."""
        pids = [int(p) for p in self.hung_pids.read_text().split()] if self.hung_pids.exists() else []
        left = [pid for pid in pids if _alive(pid)]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "cmdline").read_bytes() == b"sleep\x003599\x00":
                        left.append(int(entry.name))
                except OSError:
                    pass
        return left


# ------------------------------------------------------------------ the gateway under test


class Gateway:
    """gunicorn and one or more ``qcos poller`` processes on one database."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self.folder = folder
        self.logs = folder / "logs"
        self.logs.mkdir(parents=True)
        self.port = free_port()
        self.env = {**os.environ, **env, "QCOS_BIND": f"127.0.0.1:{self.port}"}
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = env["QCOS_DATABASE_URL"]
        self.work_root = Path(env.get("QCOS_WORK_ROOT") or folder / "state" / "jobs")
        self.gunicorn: subprocess.Popen | None = None
        self.pollers: list[subprocess.Popen] = []
        self.api_key = ""
        self._poller_count = 0
        self._engine = None

    def start(self) -> None:
        _run([str(BIN / "qcos"), "db", "upgrade"], self.env)
        created = _run([str(BIN / "qcos"), "users", "create", "--email", f"{self.name}@chaos.example.org",
                        "--tier", "chaos"], self.env)
        self.api_key = re.search(r"api_key: (\S+)", created).group(1)
        self.gunicorn = _start_gunicorn(self.env, self.logs / "gunicorn.log", preload=False)
        _wait_ready(self.base_url, self.gunicorn, self.logs / "gunicorn.log")
        self.start_poller()

    def start_poller(self) -> subprocess.Popen:
        self._poller_count += 1
        log = open(self.logs / f"poller-{self._poller_count}.log", "w")
        poller = subprocess.Popen([str(BIN / "qcos"), "poller"], env=self.env, cwd=REPO_ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.pollers.append(poller)
        return poller

    def kill_poller(self, poller: subprocess.Popen, *, group: bool = False) -> None:
        """kill -9 the poller process alone (an sbatch it started runs on), or
        with ``group`` its whole process group, sbatch included (what systemd
        does to the rest of a unit whose main process died)."""
        if group:
            os.killpg(poller.pid, signal.SIGKILL)
        else:
            poller.kill()
        poller.wait()
        self.pollers.remove(poller)

    def stop_poller(self, poller: subprocess.Popen) -> None:
        poller.terminate()
        try:
            poller.wait(timeout=30)
        except subprocess.TimeoutExpired:
            poller.kill()
            poller.wait()
        self.pollers.remove(poller)

    def wait_serving(self, timeout: float = 60) -> None:
        """Wait until ``GET /`` answers (some worker serves)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base_url + "/", timeout=5).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)

    def workers(self) -> list[int]:
        return child_pids(self.gunicorn.pid) if self.gunicorn else []

    def stop(self) -> None:
        for poller in list(self.pollers):
            self.stop_poller(poller)
        if self.gunicorn is not None and self.gunicorn.poll() is None:
            self.gunicorn.terminate()
            try:
                self.gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.gunicorn.pid, signal.SIGKILL)
        if self._engine is not None:
            self._engine.dispose()

    @property
    def engine(self):
        """This process's own engine on the gateway's database (for the checks)."""
        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.database_url, pool_pre_ping=True)
        return self._engine

    def query(self, sql: str, **params) -> list:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))


# ------------------------------------------------------------------ load and probes


@dataclass
class Answers:
    """What the clients saw."""

    accepted: dict[str, float] = field(default_factory=dict)  # job_id -> monotonic time accepted
    cut: int = 0  # requests that got no answer (connection reset or refused, timeout)
    expected_503: int = 0
    unexpected: list[str] = field(default_factory=list)  # "POST 500 INTERNAL_ERROR", ...
    refused: list[str] = field(default_factory=list)  # 4xx: a fault in the load itself


def _is_documented_503(response: requests.Response) -> bool:
    try:
        return response.status_code == 503 and response.json().get("error_code") == "SERVICE_UNAVAILABLE"
    except ValueError:
        return False


class Load:
    """Client threads submitting Bell circuits as ``<prefix>-<n>``, each
    retried with the same ``job_id`` until accepted (see the module docstring).

    ``database_fault``: 503 ``SERVICE_UNAVAILABLE`` answers are expected
    (the database is being restarted); otherwise any 5xx is unexpected.
    """

    def __init__(self, gateway: Gateway, prefix: str, *, threads: int = 2, interval: float = 1.0,
                 database_fault: bool = False) -> None:
        self.gateway = gateway
        self.prefix = prefix
        self.threads = threads
        self.interval = interval
        self.database_fault = database_fault
        self.answers = Answers()
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> "Load":
        for _ in range(self.threads):
            worker = threading.Thread(target=self._loop, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> Answers:
        """Stop submitting new circuits; wait until those under way are accepted (or given up)."""
        self._stop.set()
        for worker in self._workers:
            worker.join()
        return self.answers

    def submit_in_background(self) -> None:
        """Submit one circuit from a thread of its own (:meth:`stop` waits for it)."""
        worker = threading.Thread(target=self._submit_one, daemon=True)
        worker.start()
        self._workers.append(worker)

    def burst(self, count: int) -> None:
        """Submit ``count`` circuits now, from this thread, one after the other."""
        for _ in range(count):
            self._submit_one()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._submit_one()
            self._stop.wait(self.interval * random.uniform(0.5, 1.5))

    def _submit_one(self) -> None:
        with self._lock:
            n = self._next
            self._next += 1
        job_id = f"{self.prefix}-{n}"
        body = {"qasm": BELL, "shots": 100 + n % 400, "job_id": job_id}
        session = requests.Session()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                response = session.post(f"{self.gateway.base_url}/execute", json=body,
                                        headers={"X-API-Key": self.gateway.api_key}, timeout=30)
            except requests.RequestException:
                with self._lock:
                    self.answers.cut += 1
                time.sleep(0.2)
                continue
            if response.status_code in (200, 201):
                with self._lock:
                    self.answers.accepted[job_id] = time.monotonic()
                return
            if response.status_code >= 500:
                with self._lock:
                    if self.database_fault and _is_documented_503(response):
                        self.answers.expected_503 += 1
                    else:
                        self.answers.unexpected.append(f"POST /execute {response.status_code} {response.text[:200]}")
                time.sleep(0.3)
                continue
            with self._lock:
                self.answers.refused.append(f"POST /execute {response.status_code} {response.text[:200]}")
            return
        with self._lock:
            self.answers.refused.append(f"{job_id} never accepted within 180 s")


@dataclass
class HealthSample:
    at: float
    status_code: int | None  # None: no answer
    queue_connected: bool | None
    degraded: tuple[str, ...] | None = None  # of a 200 answer: () when the key is absent


class HealthProbe:
    """``GET /`` twice a second, in a thread, until stopped."""

    def __init__(self, gateway: Gateway, *, database_fault: bool = False) -> None:
        self.gateway = gateway
        self.database_fault = database_fault
        self.samples: list[HealthSample] = []
        self.unexpected: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> "HealthProbe":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                response = session.get(self.gateway.base_url + "/", timeout=10)
            except requests.RequestException:
                self.samples.append(HealthSample(at, None, None))
            else:
                connected, degraded = None, None
                if response.status_code == 200:
                    body = response.json()
                    connected = bool(body.get("queue_connected"))
                    degraded = tuple(body.get("degraded") or ())
                elif response.status_code >= 500 and not (self.database_fault and _is_documented_503(response)):
                    self.unexpected.append(f"GET / {response.status_code} {response.text[:200]}")
                self.samples.append(HealthSample(at, response.status_code, connected, degraded))
            self._stop.wait(0.5)

    def between(self, start: float, end: float) -> list[HealthSample]:
        return [s for s in self.samples if start <= s.at <= end]

    def wait_cleared(self, source: str, *, since: float, timeout: float) -> None:
        """Wait until an answer after ``since`` no longer names ``source`` in
        ``degraded`` (or ``timeout`` seconds pass), then 2 s more, so the
        samples show whether it stays cleared."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(
                s.degraded is not None and source not in s.degraded for s in self.between(since, float("inf"))):
            time.sleep(0.2)
        time.sleep(2)


def degraded_reported(probe: HealthProbe, source: str, *, stopped: float, restarting: float, back: float,
                      within: float) -> tuple[bool, list[str]]:
    """Whether ``GET /`` named ``source`` in ``degraded`` within ``within``
    seconds of the stop and in every answer from then until the restart
    began, and, once an answer after ``back`` (the source running again)
    left it out, in none after; with notes on when."""
    during = [s for s in probe.between(stopped, restarting) if s.degraded is not None]
    first = next((s.at - stopped for s in during if source in s.degraded), None)
    held = first is not None and first <= within and all(
        source in s.degraded for s in during if s.at - stopped >= first)
    after = [s for s in probe.between(back, float("inf")) if s.degraded is not None]
    cleared = next((s.at for s in after if source not in s.degraded), None)
    stays = cleared is not None and all(source not in s.degraded for s in after if s.at >= cleared)
    notes = [f"degraded {source} " + (f"{first:.1f} s after the stop" if first is not None else "never"),
             "cleared " + (f"{cleared - back:.1f} s after the restart" if cleared is not None else "not while probed")]
    return held and stays, notes


# ------------------------------------------------------------------ accounting


@dataclass
class Outcome:
    """The counts of one trial (see the module docstring)."""

    name: str
    accepted: int = 0
    completed: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    orphans: int = 0
    unexpected: int = 0
    #: Requirements of this trial beyond the counts, e.g. "GET / reported the fault".
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.orphans or self.unexpected
                    or not all(self.checks.values()))

    def line(self) -> str:
        text_ = (f"{self.name}: {self.accepted} accepted, {self.completed} completed, {self.lost} lost, "
                 f"{self.duplicated} duplicated, {self.stuck} stuck, {self.orphans} orphans, "
                 f"{self.unexpected} unexpected 5xx")
        for check, passed in self.checks.items():
            text_ += f"; {check}: {'yes' if passed else 'NO'}"
        if self.notes:
            text_ += "; " + "; ".join(self.notes)
        if self.examples and not self.clean:
            text_ += " [" + " | ".join(self.examples[:3]) + "]"
        return ("ok   " if self.clean else "FAIL ") + text_


@dataclass
class Settled:
    """Where the accepted jobs of a trial ended."""

    rows: dict[str, tuple]  # job_id -> (status, error, completed_at)
    live_packs: list[str]
    runs: dict[str, set[str]]  # job_id -> packs whose progress reports it
    slurm_jobs: dict[str, set[str]]  # pack job name -> Slurm job ids
    orphans: list[str]
    waited: float


def count(outcome: Outcome, settled: Settled, job_ids: list[str], answers: Answers | None = None,
          probe: HealthProbe | None = None, *, shared: bool = True) -> Outcome:
    """Fill ``outcome`` with the counts for ``job_ids``; with ``shared``
    also what belongs to the whole settling (packs per Slurm job name,
    packs not ended, orphans), so a series counts those once."""
    outcome.accepted = len(job_ids)
    for job_id in job_ids:
        status, error, _ = settled.rows.get(job_id, (None, None, None))
        if status is None:
            outcome.lost += 1
            outcome.examples.append(f"{job_id} missing")
        elif status == "completed":
            outcome.completed += 1
        elif status == "failed":
            outcome.lost += 1
            outcome.examples.append(f"{job_id} failed: {error}")
        else:
            outcome.stuck += 1
            outcome.examples.append(f"{job_id} still {status}")
        if len(settled.runs.get(job_id, ())) > 1:
            outcome.duplicated += 1
            outcome.examples.append(f"{job_id} ran in {sorted(settled.runs[job_id])}")
    if shared:
        for name, ids in settled.slurm_jobs.items():
            if len(ids) > 1:
                outcome.duplicated += 1
                outcome.examples.append(f"{name} has Slurm jobs {sorted(ids)}")
        outcome.stuck += len(settled.live_packs)
        outcome.examples += [f"pack {p} not ended" for p in settled.live_packs]
        outcome.orphans = len(settled.orphans)
        outcome.examples += [f"orphan {o}" for o in settled.orphans]
    if answers is not None:
        outcome.unexpected += len(answers.unexpected)
        outcome.examples += answers.unexpected[:3] + answers.refused[:3]
        outcome.checks["every circuit accepted"] = not answers.refused
        if answers.cut:
            outcome.notes.append(f"{answers.cut} requests cut and retried")
        if answers.expected_503:
            outcome.notes.append(f"{answers.expected_503} documented 503s")
    if probe is not None:
        outcome.unexpected += len(probe.unexpected)
        outcome.examples += probe.unexpected[:3]
    return outcome


def runs_by_job(work_root: Path) -> dict[str, set[str]]:
    """``{job_id: {pack ids}}``: the packs whose progress file reports an
    outcome (completed or failed, not skipped) for the job; two packs mean it
    ran twice."""
    runs: dict[str, set[str]] = {}
    for progress in (work_root / "_packs").glob("*/progress.jsonl"):
        for line in progress.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("outcome") in ("completed", "failed"):
                runs.setdefault(str(record.get("job_id")), set()).add(progress.parent.name)
    return runs


class Chaos:
    """The private components, the gateways and the run's totals."""

    def __init__(self, folder: Path, *, bound: float) -> None:
        self.folder = folder
        self.bound = bound
        self.slurm = PrivateSlurm()
        self.outcomes: list[Outcome] = []
        self.gateways: list[Gateway] = []
        self.postgres: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.sshd: PrivateSSHD | None = None

    def gateway(self, name: str, **extra: str) -> Gateway:
        folder = self.folder / name
        folder.mkdir()
        database_url = self.postgres.create_database(f"qcos_chaos_{name}")
        tiers = self.folder / "tiers.toml"
        tiers.write_text(TIERS)
        env = {
            "QCOS_STATE_DIR": str(folder / "state"),
            "QCOS_DATABASE_URL": database_url,
            "QCOS_EXECUTOR": "slurm",
            "QCOS_CLUSTER_PROFILE": "dev",
            "QCOS_POLL_INTERVAL": str(POLL_INTERVAL),
            "QCOS_SUBMIT_RECOVERY": str(SUBMIT_RECOVERY),
            "QCOS_SLURM_COMMAND_TIMEOUT": str(SLURM_COMMAND_TIMEOUT),
            "QCOS_MISSING_GRACE": "300",
            "QCOS_PACK_LINGER": "0.3",
            "QCOS_PACK_MAX_LINGER": "2",
            "QCOS_MAX_LIVE_SLURM_JOBS": "4",
            "QCOS_WORKERS": "2",
            "QCOS_THREADS": "16",
            "QCOS_TIERS_FILE": str(tiers),
            "QCOS_RATELIMIT_STORAGE_URI": self.redis.url,
            "QCOS_RATELIMIT_CHECK_TTL": str(RATELIMIT_CHECK_TTL),
            "QCOS_ANON_RATE_LIMIT": "1000000/minute",
            "SLURM_CONF": str(SLURM_CONF),
            **extra,
        }
        gateway = Gateway(name, folder, env)
        self.gateways.append(gateway)
        gateway.start()
        return gateway

    def known_pack_names(self) -> set[str]:
        names: set[str] = set()
        for gateway in self.gateways:
            names.update(row.job_name for row in gateway.query("SELECT job_name FROM packs"))
        return names

    def settle(self, gateway: Gateway, job_ids: list[str], *, since: datetime, fault_ended: float) -> Settled:
        """Wait until every job is final and every pack created since the
        trial began has ended, or the bound after the fault has passed; then
        look at the database, the progress files and Slurm."""
        deadline = fault_ended + self.bound
        started = time.monotonic()
        while True:
            rows = {}
            for chunk in range(0, len(job_ids), 500):
                for row in gateway.query("SELECT id, status, error, completed_at FROM jobs WHERE id = ANY(:ids)",
                                         ids=job_ids[chunk:chunk + 500]):
                    rows[row.id] = (row.status, row.error, row.completed_at)
            live_packs = [row.id for row in gateway.query(
                "SELECT id FROM packs WHERE state <> 'ended' AND created_at >= :since", since=since)]
            settled = all(rows.get(j, ("?",))[0] not in LIVE for j in job_ids) and not live_packs
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        waited = time.monotonic() - started
        runs = runs_by_job(gateway.work_root)
        slurm_jobs = self.slurm.pack_jobs(since)
        known = self.known_pack_names()
        orphans = sorted(f"{name} ({', '.join(sorted(ids))})" for name, ids in slurm_jobs.items() if name not in known)
        return Settled(rows, live_packs, runs, slurm_jobs, orphans, waited)

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        print(outcome.line(), flush=True)


def _quietly(action: Callable[[], None]) -> None:
    try:
        action()
    except (ComponentError, OSError, subprocess.SubprocessError) as exc:
        say(f"cleanup: {exc}")


def _now() -> datetime:
    """Now, as an aware UTC time, a second early so nothing that starts "now" is missed."""
    return datetime.now(timezone.utc) - timedelta(seconds=1)


@contextmanager
def flowing(gateway: Gateway, prefix: str, *, database_fault: bool = False, interval: float = 1.0
            ) -> Iterator[tuple[Load, HealthProbe]]:
    """Load and a health probe while the block runs."""
    load = Load(gateway, prefix, interval=interval, database_fault=database_fault).start()
    probe = HealthProbe(gateway, database_fault=database_fault).start()
    try:
        yield load, probe
    finally:
        load.stop()
        probe.stop()


# ------------------------------------------------------------------ trials


def trial_slurmctld_down(chaos: Chaos, gateway: Gateway, seconds: float) -> None:
    """slurmctld stopped while circuits are submitted: all accepted, all complete
    once it is back, ``GET /`` says ``queue_connected: false`` meanwhile."""
    since = _now()
    with flowing(gateway, "ctld") as (load, probe):
        time.sleep(2)
        stopped = time.monotonic()
        chaos.slurm.stop("slurmctld")
        time.sleep(seconds)
        restarting = time.monotonic()
        chaos.slurm.up()
        back = time.monotonic()
        time.sleep(2)
    job_ids = sorted(load.answers.accepted)
    settled = chaos.settle(gateway, job_ids, since=since, fault_ended=back)
    outcome = count(Outcome(f"slurmctld stopped {seconds:g} s"), settled, job_ids, load.answers, probe)
    during = probe.between(stopped, restarting)
    first_false = next((s.at - stopped for s in during if s.queue_connected is False), None)
    # The first Slurm command that meets the outage fails within its timeout; from then on every answer says so.
    reported = first_false is not None and first_false <= REPORT_WITHIN and all(
        s.queue_connected is False for s in during if s.at - stopped >= first_false)
    outcome.checks[f"GET / reported it within {REPORT_WITHIN:g} s, until the restart"] = reported
    outcome.notes.append("queue_connected false " + (f"{first_false:.1f} s after the stop" if first_false is not None
                                                      else "never"))
    again = next((s.at - back for s in probe.samples if s.at >= back and s.queue_connected), None)
    outcome.notes.append("true again " + (f"{again:.1f} s after the restart" if again is not None
                                          else "not while probed"))
    during_ids = [j for j, at in load.answers.accepted.items() if stopped <= at <= restarting]
    outcome.notes.append(f"{len(during_ids)} accepted while it was down")
    outcome.notes.append(f"all final {settled.waited:.0f} s after the load stopped")
    chaos.record(outcome)


def trial_slurmdbd_down(chaos: Chaos, gateway: Gateway, seconds: float) -> None:
    """slurmdbd stopped (sacct fails, squeue answers): jobs still complete."""
    since = _now()
    with flowing(gateway, "dbd") as (load, probe):
        time.sleep(2)
        stopped, stopped_at = time.monotonic(), datetime.now(timezone.utc)
        chaos.slurm.stop("slurmdbd")
        time.sleep(seconds)
        # Jobs whose packs ran during the outage must be final before accounting returns.
        completed_during = gateway.query(
            "SELECT count(*) AS n FROM jobs WHERE id LIKE 'dbd-%' AND status = 'completed' AND completed_at > :t",
            t=stopped_at)[0].n
        restarting = time.monotonic()
        chaos.slurm.up()
        back = time.monotonic()
        probe.wait_cleared("accounting", since=back, timeout=RECOVERY_WITHIN)
    job_ids = sorted(load.answers.accepted)
    settled = chaos.settle(gateway, job_ids, since=since, fault_ended=back)
    outcome = count(Outcome(f"slurmdbd stopped {seconds:g} s"), settled, job_ids, load.answers, probe)
    outcome.notes.append(f"{completed_during} completed while it was down")
    if seconds >= 8:
        outcome.checks["jobs completed while it was down"] = completed_during > 0
    reported, notes = degraded_reported(probe, "accounting", stopped=stopped, restarting=restarting, back=back,
                                        within=ACCOUNTING_REPORT_WITHIN)
    outcome.checks[f"GET / reported it within {ACCOUNTING_REPORT_WITHIN:g} s, until the restart, not after"] = reported
    outcome.notes += notes
    health = {(s.status_code, s.queue_connected) for s in probe.between(stopped, back)}
    outcome.notes.append("GET / meanwhile: " + ", ".join(sorted(f"{c} connected={q}" for c, q in health)))
    chaos.record(outcome)


def trial_postgres_restart(chaos: Chaos, gateway: Gateway, seconds: float) -> None:
    """PostgreSQL stopped (fast shutdown) and started again under load."""
    since = _now()
    with flowing(gateway, "pg", database_fault=True) as (load, probe):
        time.sleep(2)
        stopped = time.monotonic()
        chaos.postgres.stop("fast")
        time.sleep(seconds)
        chaos.postgres.start()
        back = time.monotonic()
        time.sleep(3)
    job_ids = sorted(load.answers.accepted)
    settled = chaos.settle(gateway, job_ids, since=since, fault_ended=back)
    outcome = count(Outcome(f"PostgreSQL down {seconds:g} s"), settled, job_ids, load.answers, probe)
    during = probe.between(stopped, back)
    outcome.checks["GET / reported it"] = any(s.status_code == 503 for s in during)
    outcome.notes.append(f"GET / 503 in {sum(s.status_code == 503 for s in during)} of {len(during)} probes")
    chaos.record(outcome)


def trial_redis_down(chaos: Chaos, gateway: Gateway, seconds: float) -> None:
    """Redis (rate-limit counters) stopped: requests are counted in memory meanwhile."""
    since = _now()
    with flowing(gateway, "redis") as (load, probe):
        time.sleep(2)
        chaos.redis.stop()
        stopped = time.monotonic()
        time.sleep(min(1.0, seconds / 2))
        limited = _rate_limit_headers(gateway, 4)
        time.sleep(max(0.0, seconds - (time.monotonic() - stopped)))
        during = set(load.answers.accepted)
        restarting = time.monotonic()
        chaos.redis.start()
        back = time.monotonic()
        probe.wait_cleared("rate_limiter", since=back, timeout=RECOVERY_WITHIN)
    job_ids = sorted(load.answers.accepted)
    settled = chaos.settle(gateway, job_ids, since=since, fault_ended=back)
    outcome = count(Outcome(f"Redis stopped {seconds:g} s"), settled, job_ids, load.answers, probe)
    accepted_during = sum(1 for j in during if load.answers.accepted[j] >= stopped)
    outcome.notes.append(f"{accepted_during} accepted while it was down")
    outcome.checks["requests still limited (X-RateLimit-Limit) while it was down"] = all(limited)
    reported, notes = degraded_reported(probe, "rate_limiter", stopped=stopped, restarting=restarting, back=back,
                                        within=RATELIMIT_REPORT_WITHIN)
    outcome.checks[f"GET / reported it within {RATELIMIT_REPORT_WITHIN:g} s, until the restart, not after"] = reported
    outcome.notes += notes
    chaos.record(outcome)


def _rate_limit_headers(gateway: Gateway, requests_: int) -> list[bool]:
    """Whether each of ``requests_`` ``GET /user/me`` answers 200 with an ``X-RateLimit-Limit``."""
    seen = []
    for _ in range(requests_):
        response = requests.get(f"{gateway.base_url}/user/me", headers={"X-API-Key": gateway.api_key}, timeout=10)
        seen.append(response.status_code == 200 and "X-RateLimit-Limit" in response.headers)
    return seen


def trial_sshd_restart(chaos: Chaos, gateway: Gateway, seconds: float) -> None:
    """The login node's sshd stopped (sessions too) and started again."""
    since = _now()
    with flowing(gateway, "sshd") as (load, probe):
        time.sleep(3)
        stopped = time.monotonic()
        chaos.sshd.stop()
        time.sleep(seconds)
        chaos.sshd.start()
        back = time.monotonic()
        time.sleep(2)
    job_ids = sorted(load.answers.accepted)
    settled = chaos.settle(gateway, job_ids, since=since, fault_ended=back)
    outcome = count(Outcome(f"sshd down {seconds:g} s (SSH transport)"), settled, job_ids, load.answers,
                          probe)
    falses = sum(1 for s in probe.between(stopped, back) if s.queue_connected is False)
    outcome.notes.append(f"queue_connected false in {falses} probes while it was down")
    chaos.record(outcome)


def trial_ssh_sbatch_hangs(chaos: Chaos, gateway: Gateway) -> None:
    """An sbatch over SSH that submits and then never answers: the command
    is given up after the Slurm command timeout and ended on the login node,
    the pack is found by its name, never submitted again."""
    since = _now()
    chaos.sshd.hang_flag.touch()
    load = Load(gateway, "hang")
    try:
        load.burst(3)
        deadline = time.monotonic() + 30
        while not chaos.sshd.hung_pids.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        hung_at = time.monotonic()
    finally:
        chaos.sshd.hang_flag.unlink()
    load.burst(3)
    answers = load.stop()
    job_ids = sorted(answers.accepted)
    settled = chaos.settle(gateway, job_ids, since=since, fault_ended=hung_at + SLURM_COMMAND_TIMEOUT)
    outcome = count(Outcome("sbatch over SSH never answers"), settled, job_ids, answers)
    hung = chaos.sshd.hung_pids.read_text().split() if chaos.sshd.hung_pids.exists() else []
    left = chaos.sshd.leftover_hung()
    outcome.notes.append(f"{len(hung)} sbatch hung, {len(left)} still running on the login node")
    outcome.checks["sbatch hung and was ended on the login node"] = bool(hung) and not left
    recovered = gateway.query("SELECT count(*) AS n FROM packs WHERE submit_attempts = 1 AND created_at >= :since "
                              "AND scheduler_job_id IS NOT NULL", since=since)[0].n
    outcome.notes.append(f"{recovered} packs submitted once")
    chaos.record(outcome)


@dataclass
class Kill:
    at: float
    what: str


def kill_series(chaos: Chaos, gateway: Gateway, label: str, kills: int,
                strike: Callable[[Load, int], Kill]) -> None:
    """``kills`` faults while work flows, by ``strike``; one outcome per
    kill, for the jobs accepted between it and the next."""
    since = _now()
    prefix = re.sub(r"[^a-z0-9]+", "-", label)
    with flowing(gateway, prefix, interval=0.8) as (load, probe):
        time.sleep(1)
        struck = [strike(load, i) for i in range(kills)]
        time.sleep(2)
    fault_ended = time.monotonic()
    answers = load.answers
    job_ids = sorted(answers.accepted)
    settled = chaos.settle(gateway, job_ids, since=since, fault_ended=fault_ended)
    edges = [k.at for k in struck] + [float("inf")]
    for i, kill in enumerate(struck):
        mine = [j for j, at in answers.accepted.items() if edges[i] <= at < edges[i + 1]
                or (i == 0 and at < edges[0])]
        # What cannot be attributed to one kill is counted once, on the first.
        outcome = count(Outcome(f"{label} {i + 1}/{kills}"), settled, sorted(mine),
                              answers if i == 0 else None, probe if i == 0 else None, shared=i == 0)
        outcome.notes.insert(0, kill.what)
        chaos.record(outcome)


def trial_kill_workers(chaos: Chaos, gateway: Gateway, kills: int) -> None:
    """kill -9 of a gunicorn worker (gunicorn starts another) 0-80 ms after a
    POST /execute was sent, so it often dies inside a submission."""
    def strike(load: Load, i: int) -> Kill:
        gateway.wait_serving()  # a worker answers again (gunicorn replaced the last one killed)
        time.sleep(random.uniform(0.5, 2.5))
        workers = gateway.workers()
        if not workers:
            return Kill(time.monotonic(), "no worker alive")
        load.submit_in_background()
        delay = random.uniform(0, 0.08)
        time.sleep(delay)
        victim = random.choice(workers)
        os.kill(victim, signal.SIGKILL)
        return Kill(time.monotonic(), f"worker {victim} killed {delay * 1000:.0f} ms after a POST")

    kill_series(chaos, gateway, "kill -9 gunicorn worker", kills, strike)


def _pack_states(gateway: Gateway) -> str:
    rows = gateway.query("SELECT state, count(*) AS n FROM packs WHERE state <> 'ended' GROUP BY state")
    return ", ".join(f"{r.n} {r.state}" for r in rows) or "no live pack"


def trial_kill_poller(chaos: Chaos, gateway: Gateway, kills: int) -> None:
    """kill -9 of the poller (which is also the dispatcher) at random moments; restarted at once."""
    def strike(load: Load, i: int) -> Kill:
        time.sleep(random.uniform(0.5, 4.0))
        states = _pack_states(gateway)
        gateway.kill_poller(gateway.pollers[0])
        at = time.monotonic()
        gateway.start_poller()
        return Kill(at, f"killed with {states}")

    kill_series(chaos, gateway, "kill -9 poller", kills, strike)


def trial_kill_dispatcher(chaos: Chaos, gateway: Gateway, kills: int) -> None:
    """kill -9 of the dispatcher during submission: after a burst, as soon as
    a pack is planned or submitting, after a random 0-600 ms (sbatch takes
    up to 0.8 s here, see :func:`slow_sbatch`); half the time with its
    process group, so an sbatch under way dies too."""
    def strike(load: Load, i: int) -> Kill:
        known = {row.id for row in gateway.query("SELECT id FROM packs")}
        load.burst(random.randint(2, 6))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fresh = [r for r in gateway.query("SELECT id, state FROM packs WHERE state IN ('planned', 'submitting')")
                     if r.id not in known]
            if fresh:
                break
            time.sleep(0.01)
        else:
            fresh = []
        time.sleep(random.uniform(0, 0.6))
        group = random.random() < 0.5
        gateway.kill_poller(gateway.pollers[0], group=group)
        at = time.monotonic()
        how = "with its process group" if group else "alone"
        if fresh:
            state = gateway.query("SELECT state FROM packs WHERE id = :id", id=fresh[0].id)[0].state
            what = f"killed {how}, its pack {state}"
        else:
            what = f"killed {how} (no pack seen in submission)"
        gateway.start_poller()
        time.sleep(random.uniform(0.5, 1.5))
        return Kill(at, what)

    kill_series(chaos, gateway, "kill -9 dispatcher in submission", kills, strike)


def trial_two_pollers(chaos: Chaos, gateway: Gateway, seconds: float) -> None:
    """A second poller (and dispatcher) on the same database."""
    since = _now()
    second = gateway.start_poller()
    time.sleep(2)
    with flowing(gateway, "two", interval=0.25) as (load, probe):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            load.burst(random.randint(1, 8))
            time.sleep(random.uniform(0.2, 2))
    gateway.stop_poller(second)
    job_ids = sorted(load.answers.accepted)
    settled = chaos.settle(gateway, job_ids, since=since, fault_ended=time.monotonic())
    outcome = count(Outcome(f"two pollers {seconds:g} s"), settled, job_ids, load.answers, probe)
    packs = gateway.query("SELECT count(*) AS n FROM packs WHERE created_at >= :since", since=since)[0].n
    outcome.notes.append(f"{packs} packs")
    chaos.record(outcome)


# ------------------------------------------------------------------ the run


@dataclass(frozen=True)
class Plan:
    """Durations and counts of one run."""

    slurmctld_seconds: float
    slurmdbd_seconds: float
    postgres_seconds: float
    redis_seconds: float
    sshd_seconds: float
    kills: int
    two_pollers_seconds: float
    bound: float


FULL = Plan(slurmctld_seconds=60, slurmdbd_seconds=60, postgres_seconds=10, redis_seconds=30, sshd_seconds=10,
            kills=50, two_pollers_seconds=60, bound=180)
SHORT = Plan(slurmctld_seconds=15, slurmdbd_seconds=8, postgres_seconds=3, redis_seconds=5, sshd_seconds=3,
             kills=3, two_pollers_seconds=8, bound=90)
TRIALS = ("slurmctld", "slurmdbd", "postgres", "redis", "sshd", "ssh-hang", "kill-worker", "kill-poller",
          "kill-dispatcher", "two-pollers")


def slow_sbatch(folder: Path) -> Path:
    """A folder holding an ``sbatch`` that answers 0-0.8 s late (a busy
    controller), so a dispatcher killed "during submission" often dies
    between sbatch and recording its answer. Returns the folder."""
    folder.mkdir()
    sbatch = folder / "sbatch"
    sbatch.write_text(
        "#!/bin/sh\n"
        "pause() { sleep \"$(printf '0.%03d' \"$(shuf -i 0-400 -n 1)\")\"; }\n"
        "pause; /usr/bin/sbatch \"$@\"; rc=$?; pause; exit $rc\n")
    sbatch.chmod(0o755)
    return folder


def timed(name: str, step: Callable[[], None]) -> None:
    say(f"trial {name}")
    began = time.monotonic()
    step()
    say(f"trial {name}: {time.monotonic() - began:.0f} s")


def run(plan: Plan, only: set[str], *, keep: bool = False) -> int:
    """Run the trials of ``plan`` (those in ``only``); returns the exit status.
    The folder of logs and work dirs is removed after a clean run, unless ``keep``."""
    chaos_root = Path(tempfile.mkdtemp(prefix="qcos-chaos-"))
    chaos = Chaos(chaos_root, bound=plan.bound)
    started = time.monotonic()
    with ExitStack() as cleanup:
        try:
            say(f"private Slurm cluster qcos-{SLURM_INSTANCE} (ports {SLURM_PORT_BASE}-{SLURM_PORT_BASE + 2})")
            chaos.slurm.up()
            pg_folder = Path(tempfile.mkdtemp(prefix="qcos-chaos-pg-"))
            cleanup.callback(shutil.rmtree, pg_folder, True)
            chaos.postgres = PrivatePostgres(pg_folder)
            say(f"private PostgreSQL on port {chaos.postgres.port}")
            chaos.postgres.init()
            cleanup.callback(_quietly, lambda: chaos.postgres.stop("immediate"))
            redis_folder = chaos_root / "redis"
            redis_folder.mkdir()
            chaos.redis = PrivateRedis(redis_folder)
            say(f"private Redis on port {chaos.redis.port}")
            chaos.redis.start()
            cleanup.callback(chaos.redis.stop)
            say(f"gateway on the private cluster (local transport), {time.monotonic() - started:.0f} s")
            local = chaos.gateway("local", PATH=f"{slow_sbatch(chaos_root / 'bin')}:{os.environ['PATH']}")
            cleanup.callback(local.stop)
        except (ComponentError, AssertionError, OSError) as exc:
            print(f"chaos: cannot start the components: {exc}", flush=True)
            return 2
        steps: list[tuple[str, Callable[[], None]]] = [
            ("slurmctld", lambda: trial_slurmctld_down(chaos, local, plan.slurmctld_seconds)),
            ("slurmdbd", lambda: trial_slurmdbd_down(chaos, local, plan.slurmdbd_seconds)),
            ("postgres", lambda: trial_postgres_restart(chaos, local, plan.postgres_seconds)),
            ("redis", lambda: trial_redis_down(chaos, local, plan.redis_seconds)),
            ("kill-worker", lambda: trial_kill_workers(chaos, local, plan.kills)),
            ("kill-poller", lambda: trial_kill_poller(chaos, local, plan.kills)),
            ("kill-dispatcher", lambda: trial_kill_dispatcher(chaos, local, plan.kills)),
            ("two-pollers", lambda: trial_two_pollers(chaos, local, plan.two_pollers_seconds)),
        ]
        for name, step in steps:
            if name in only:
                timed(name, step)
        if only & {"sshd", "ssh-hang"}:
            local.stop()
            try:
                sshd_folder = chaos_root / "sshd"
                sshd_folder.mkdir()
                chaos.sshd = PrivateSSHD(sshd_folder)
                chaos.sshd.start()
                cleanup.callback(chaos.sshd.stop)
                server = chaos.sshd.server
                say(f"gateway over SSH (sshd on port {server.port}), {time.monotonic() - started:.0f} s")
                remote = chaos.gateway("ssh", QCOS_SSH_HOST=server.host, QCOS_SSH_PORT=str(server.port),
                                       QCOS_SSH_USER=server.username, QCOS_SSH_KEY=str(server.user_key),
                                       QCOS_SSH_KNOWN_HOSTS=str(server.known_hosts),
                                       QCOS_WORK_ROOT=str(chaos_root / "ssh-work"))
                cleanup.callback(remote.stop)
            except (ComponentError, AssertionError, OSError, RuntimeError) as exc:
                print(f"chaos: cannot start the SSH components: {exc}", flush=True)
                return 2
            if "sshd" in only:
                timed("sshd", lambda: trial_sshd_restart(chaos, remote, plan.sshd_seconds))
            if "ssh-hang" in only:
                timed("ssh-hang", lambda: trial_ssh_sbatch_hangs(chaos, remote))
    outcomes = chaos.outcomes
    lost = sum(o.lost for o in outcomes)
    duplicated = sum(o.duplicated for o in outcomes)
    stuck = sum(o.stuck for o in outcomes)
    unexpected = sum(o.unexpected for o in outcomes)
    orphans = sum(o.orphans for o in outcomes)
    unmet = sum(not passed for o in outcomes for passed in o.checks.values())
    clean = all(o.clean for o in outcomes)
    if clean and not keep:
        shutil.rmtree(chaos_root, ignore_errors=True)
        where = "logs removed (--keep keeps them)"
    else:
        where = f"logs in {chaos_root}"
    print(f"chaos: {sum(o.accepted for o in outcomes)} jobs accepted, {orphans} Slurm jobs without a record, "
          f"{unmet} checks not met, {time.monotonic() - started:.0f} s; {where}")
    print(f"chaos: {len(outcomes)} trials, {lost} lost, {duplicated} duplicated, {stuck} stuck, "
          f"{unexpected} unexpected 5xx", flush=True)
    return 0 if clean else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the reduced set make test runs")
    parser.add_argument("--only", nargs="+", choices=TRIALS, default=list(TRIALS), metavar="TRIAL",
                        help=f"run only these trials ({', '.join(TRIALS)})")
    parser.add_argument("--kills", type=int, help="kills per kill -9 trial (50; --short: 3)")
    parser.add_argument("--seed", type=int, help="random seed, for repeating a run's moments")
    parser.add_argument("--keep", action="store_true", help="keep the logs and work dirs of a clean run too")
    args = parser.parse_args(argv)
    plan = SHORT if args.short else FULL
    if args.kills is not None:
        plan = replace(plan, kills=max(1, args.kills))
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    say(f"seed {seed}")
    if os.getuid() != 0:
        print("chaos: must run as root (Slurm daemons, PostgreSQL through runuser)", flush=True)
        return 2
    LOCK_FILE.touch(exist_ok=True)
    with open(LOCK_FILE) as lock:
        say(f"waiting for {LOCK_FILE}")
        fcntl.flock(lock, fcntl.LOCK_EX)
        return run(plan, set(args.only), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
