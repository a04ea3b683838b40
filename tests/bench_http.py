"""HTTP throughput of the hot routes, as a ratio to a trivial endpoint of the same app.

    python -m tests.bench_http [--duration 5] [--slices 5] [--connections 16] [--workers 2] [--soak 0]
                               [--submit] [--only TEXT ...] [--strict]

Starts the gateway as deployed (``gunicorn -c deploy/gunicorn.conf.py``,
gthread) on a fresh PostgreSQL database (``QCOS_TEST_POSTGRES_URL``, dropped
afterwards), with rate limits off and ``QCOS_BENCH_ENDPOINT=true``, which
adds ``GET /bench/trivial``: same app, hooks and gunicorn settings, no key and
no database. Each route is loaded with ``wrk`` (Debian package ``wrk``) at
``--connections`` connections for ``--duration`` seconds, cut into
``--slices`` that alternate with equal slices of the trivial endpoint, so a
machine whose load drifts (other processes) weighs on both alike; a route's
ratio is its requests per second over the trivial endpoint's in its own
slices. Then ``GET /status`` and the trivial endpoint run ``--duration``
seconds each in one piece for their p50 and p99 latency. Each worker's RSS
is read after a warm-up and after everything (plus ``--soak`` more seconds
of ``GET /status``), with the number of requests in between.

Targets (issue 9): ``/status``, ``/results``, ``/user/me``, ``/`` at least
0.7x; ``POST /execute`` at least 0.5x; p99 of ``/status`` at most 3x its p50;
worker RSS growth after warm-up within 10 %. Lines missing a target end with
``BELOW TARGET``; ``--strict`` then exits 1. ``--submit`` adds a real
``POST /execute``: each one only stores a ``queued`` row (no poller runs, so
none is dispatched). The bench user is ``enterprise`` (no daily job limit).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import sqlalchemy
from sqlalchemy import text

from tests.components import POSTGRES_URL

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'
JOB_ID = "bench-completed"

#: (label, method, path, minimum ratio to the trivial endpoint)
ROUTES = [
    ("GET /status/{id}", "GET", f"/status/{JOB_ID}", 0.7),
    ("GET /results/{id}", "GET", f"/results/{JOB_ID}", 0.7),
    ("GET /user/me", "GET", "/user/me", 0.7),
    ("GET /", "GET", "/", 0.7),
    ("POST /execute?dry_run=true", "POST", "/execute?dry_run=true", 0.5),
]
TRIVIAL = ("GET /bench/trivial", "GET", "/bench/trivial")


@dataclass
class Load:
    """One wrk run: requests per second, latency percentiles (seconds), answers."""

    requests_per_second: float
    p50: float
    p99: float
    requests: int
    non_2xx: int
    socket_errors: str


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Load:
    """The numbers of ``wrk --latency`` output. Raises ``ValueError`` when a line is missing."""
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
        p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
        p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
        count = int(re.search(r"(\d+) requests in", output).group(1))
    except AttributeError:
        raise ValueError("unexpected wrk output:\n" + output) from None
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return Load(rps, p50, p99, count, int(non_2xx.group(1)) if non_2xx else 0,
                socket_errors.group(1) if socket_errors else "")


def run_wrk(url: str, *, api_key: str, duration: float, connections: int, script: Path | None = None) -> Load:
    """Load ``url`` with wrk (2 threads) for ``duration`` seconds."""
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "-H", f"X-API-Key: {api_key}"]
    if script is not None:
        argv += ["-s", str(script)]
    done = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def _post_script(directory: Path, api_key: str, body: dict) -> Path:
    path = directory / "post.lua"
    # Lua long brackets: the JSON body's quotes need no escaping.
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{json.dumps(body)}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-API-Key"] = "{api_key}"\n'
    )
    return path


@contextmanager
def fresh_postgres_database(server_url: str):
    """A new, empty database on the server of ``server_url``; dropped afterwards. Yields its URL."""
    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = "qcos_bench_" + secrets.token_hex(6)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(database_url: str) -> str:
    """Migrate, create an ``enterprise`` user and one completed job; returns the user's API key."""
    from gateway.accounts import create_user
    from gateway.db import Database
    from gateway.migrations import upgrade_database
    from gateway.models import Job, utcnow
    from gateway.tiers import load_tiers

    upgrade_database(database_url)
    database = Database(database_url)
    try:
        with database.transaction() as session:
            created = create_user(session, email="bench@example.org", tier="enterprise", tiers=load_tiers())
            now = utcnow()
            session.add(Job(
                id=JOB_ID, user_id=created.user_id, status="completed", qasm=BELL, shots=1024, num_qubits=2,
                request_hash="-", executor="local", cluster_profile="dev", work_dir="/nonexistent",
                scheduler_job_id="local-0000000000000000", created_at=now, submitted_at=now, started_at=now,
                completed_at=now, execution_time_seconds=0.01,
                result={"counts": {"00": 509, "11": 515}, "num_qubits": 2, "shots": 1024,
                        "execution_time_seconds": 0.01, "backend": "aer_simulator", "device": "CPU",
                        "method": "stabilizer", "seed": 1},
            ))
    finally:
        database.dispose()
    return created.api_key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_pids(master: int) -> list[int]:
    """Pids of the direct children of ``master`` (gunicorn's workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == master:
            children.append(int(stat.parent.name))
    return sorted(children)


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


@contextmanager
def gunicorn(env: dict[str, str], log: Path):
    """The gateway under ``deploy/gunicorn.conf.py``; yields the master's Popen once ``/`` answers."""
    process = subprocess.Popen([str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "gateway.wsgi:app"],
                               env=env, cwd=REPO_ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://{env['QCOS_BIND']}/", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start:\n" + log.read_text())
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _line(label: str, rps: float, ratio: float | None, target: float | None, load: Load | None = None,
          errors: int = 0) -> tuple[str, bool]:
    ok = target is None or (ratio is not None and ratio >= target)
    ratio_text = "" if ratio is None else f"{ratio:5.2f}x"
    target_text = "" if target is None else f"(>= {target:.1f}x)"
    latency = f"p50 {load.p50 * 1000:6.2f} ms  p99 {load.p99 * 1000:6.2f} ms" if load else ""
    error_text = f"  non-2xx/errors: {errors}" if errors else ""
    return (f"{label:<30} {rps:9.0f} req/s {ratio_text:>7} {target_text:<10} {latency}{error_text}"
            + ("" if ok else "  BELOW TARGET")), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per route (default 5)")
    parser.add_argument("--slices", type=int, default=5, help="slices per route, alternating with the trivial "
                                                               "endpoint's (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="QCOS_WORKERS (default 2)")
    parser.add_argument("--soak", type=float, default=0.0,
                        help="extra seconds of GET /status before the second RSS reading (default 0)")
    parser.add_argument("--submit", action="store_true", help="also measure a real POST /execute")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="server to create the database on")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="measure only the routes whose label contains one of these texts, e.g. 'POST /execute'")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench_http: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    routes = ROUTES + ([("POST /execute", "POST", "/execute", 0.5)] if args.submit else [])
    if args.only:
        routes = [route for route in routes if any(text in route[0] for text in args.only)]
    slice_seconds = max(1.0, args.duration / args.slices)

    with fresh_postgres_database(args.postgres_url) as database_url, \
            tempfile.TemporaryDirectory(prefix="qcos-bench-") as tmp_name:
        tmp = Path(tmp_name)
        api_key = seed(database_url)
        bind = f"127.0.0.1:{_free_port()}"
        env = {**os.environ, "QCOS_STATE_DIR": str(tmp / "state"), "QCOS_DATABASE_URL": database_url,
               "QCOS_BIND": bind, "QCOS_WORKERS": str(args.workers), "QCOS_RATELIMIT_ENABLED": "false",
               "QCOS_BENCH_ENDPOINT": "true"}
        base = f"http://{bind}"
        post = _post_script(tmp, api_key, {"qasm": BELL, "shots": 1024})
        served = 0

        def load(method: str, path: str, duration: float) -> Load:
            nonlocal served
            result = run_wrk(base + path, api_key=api_key, duration=duration, connections=args.connections,
                             script=post if method == "POST" else None)
            served += result.requests
            return result

        with gunicorn(env, tmp / "gunicorn.log") as master:
            # Warm-up until no worker grows any more (threads started, pools and caches
            # filled): gunicorn does not spread requests evenly, so one round may leave
            # a worker cold.
            workers = worker_pids(master.pid)
            rss_before = {pid: 0.0 for pid in workers}
            for _ in range(6):
                for _, method, path, *_ in [TRIVIAL, *routes]:
                    load(method, path, 2)
                rss_now = {pid: rss_mib(pid) for pid in workers}
                settled = all(rss_now[pid] <= rss_before[pid] * 1.01 for pid in workers)
                rss_before = rss_now
                if settled:
                    break
            served = 0
            measured = []
            for label, method, path, target in routes:
                mine, trivial = [], []
                for _ in range(args.slices):
                    trivial.append(load(*TRIVIAL[1:], slice_seconds))
                    mine.append(load(method, path, slice_seconds))
                rps = sum(m.requests for m in mine) / (slice_seconds * len(mine))
                trivial_rps = sum(t.requests for t in trivial) / (slice_seconds * len(trivial))
                measured.append((label, rps, trivial_rps, target, sum(m.non_2xx for m in mine)))
            trivial_latency = load(*TRIVIAL[1:], args.duration)
            status_latency = load("GET", ROUTES[0][2], args.duration)
            if args.soak:
                load("GET", ROUTES[0][2], args.soak)
            rss_after = {pid: rss_mib(pid) for pid in workers if Path(f"/proc/{pid}").exists()}

        print(f"gunicorn -c deploy/gunicorn.conf.py: {args.workers} workers, PostgreSQL, rate limits off; "
              f"wrk {args.connections} connections; per route {args.slices} x {slice_seconds:g} s alternating "
              f"with the trivial endpoint")
        all_ok = True
        for label, rps, trivial_rps, target, errors in measured:
            line, ok = _line(label, rps, rps / trivial_rps, target, errors=errors)
            print(line + f"   (trivial meanwhile {trivial_rps:.0f} req/s)")
            all_ok &= ok and not errors
        print(_line("trivial, one piece", trivial_latency.requests_per_second, None, None, trivial_latency)[0]
              + f"  p99/p50 {trivial_latency.p99 / trivial_latency.p50:.2f}")
        print(_line("GET /status/{id}, one piece", status_latency.requests_per_second, None, None, status_latency)[0])
        tail_ok = status_latency.p99 <= 3 * status_latency.p50
        all_ok &= tail_ok
        print(f"GET /status p99/p50: {status_latency.p99 / status_latency.p50:.2f} (<= 3)"
              + ("" if tail_ok else "  BELOW TARGET"))
        for pid, before in rss_before.items():
            after = rss_after.get(pid)
            if after is None:
                print(f"worker {pid}: exited during the run  BELOW TARGET")
                all_ok = False
                continue
            growth = (after - before) / before
            ok = growth <= 0.10
            all_ok &= ok
            print(f"worker {pid} RSS: {before:.1f} MiB after warm-up, {after:.1f} MiB after {served} more "
                  f"requests (all workers): {growth:+.1%} (<= +10%)" + ("" if ok else "  BELOW TARGET"))
    return 1 if args.strict and not all_ok else 0


if __name__ == "__main__":
    sys.exit(main())
