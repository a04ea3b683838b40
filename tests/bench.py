"""``make bench``: throughput, ratios and Slurm call counts of the hot paths.

    python -m tests.bench [--circuits 1000] [--threads 16] [--sbatch-sample 50] [--poll-jobs 5000] [--only ...]

Prints one line per measurement; ``target`` lines end ``ok`` or ``MISSED``.
Every ratio compares figures measured in the same run, on this machine.

- ``validation``: ``load_circuit`` over the QASMBench ``small/`` files.
- ``status``: ``GET /status/{id}`` through the Flask app on SQLite.
- ``circuits`` (needs the dev Slurm cluster, ``make slurm-up``, and
  PostgreSQL at ``QCOS_TEST_POSTGRES_URL``): ``--circuits`` small QASMBench
  circuits (1024 shots, the corpus cycled) -

  * the *floor*: one Python process simulating them in turn with Aer
    (``qasm2.loads`` + ``transpile`` + ``run``, as the runner does);
  * one ``sbatch --wrap`` per circuit running the runner on it, for a sample
    of ``--sbatch-sample`` circuits, extrapolated to all of them;
  * a real gateway (gunicorn with the deploy config, ``qcos poller``, Slurm,
    a fresh PostgreSQL database, an enterprise user, rate limits off, every
    other setting at its default), the circuits POSTed to
    ``/execute`` from ``--threads`` threads, then sent as one ``POST
    /batches``: time from the first request to the last ``completed``, its
    ratio to the floor, the speed-up over ``sbatch`` per circuit, the Slurm
    batch jobs (packs) used and every Slurm command the gateway and poller
    ran (counted by wrapper scripts first on their ``PATH``), from the first
    request until every pack has ended.
- ``poll`` (same components): one poller cycle over ``--poll-jobs`` live
  jobs in packs of 250 of which 1 % finished since the last cycle, against
  the dev cluster (pack ids it does not know): the cycle's time besides its
  Slurm commands (database and progress-file work), the SQL time, and the
  Slurm commands per cycle.

``POST /execute`` requests per second against a trivial endpoint are
measured by ``tests/bench_http.py --submit`` (``make bench`` runs both).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "qasmbench" / "small"
BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'
SHOTS = 1024
#: The Slurm client commands counted in the gateway's and poller's PATH.
SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol", "sinfo")
SECTIONS = ("validation", "status", "circuits", "poll")


class BenchFailure(Exception):
    """A measurement could not be taken; ``str()`` says why."""


class Targets:
    """Targets checked in this run, for the summary at the end."""

    def __init__(self) -> None:
        self.missed: list[str] = []
        self.met = 0

    def check(self, name: str, value: float, unit: str, *, at_most: float | None = None,
              at_least: float | None = None, note: str = "") -> None:
        """Print one measurement with its target and whether it was met."""
        ok = (at_most is None or value <= at_most) and (at_least is None or value >= at_least)
        bound = f"<= {at_most:g}" if at_most is not None else f">= {at_least:g}"
        _report(name, value, unit, f"target {bound}: {'ok' if ok else 'MISSED'}" + (f"; {note}" if note else ""))
        if ok:
            self.met += 1
        else:
            self.missed.append(f"{name}: {value:.2f} {unit} (target {bound})")


def _report(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"{name:<64} {value:>9.2f} {unit:<10} {note}", flush=True)


def _say(text: str) -> None:
    print(text, flush=True)


# --- micro-benchmarks (no external component) ---------------------------------------------------------------


def bench_validation() -> None:
    from hpc_jobs.circuits import CircuitError, load_circuit

    sources = [p.read_text() for p in sorted(CORPUS.glob("*/*.qasm"))]
    if not sources:
        raise BenchFailure(f"no QASMBench circuits under {CORPUS}")
    started = time.perf_counter()
    for source in sources:
        try:
            load_circuit(source)
        except CircuitError:
            pass
    elapsed = time.perf_counter() - started
    _report("validate QASMBench small/ circuits", len(sources) / elapsed, "circuits/s", f"{len(sources)} files")


def _embedded_app(tmp: Path):
    from gateway import create_app
    from gateway.config import Settings
    from gateway.migrations import upgrade_database

    settings = Settings.from_env({"QCOS_STATE_DIR": str(tmp), "QCOS_DATABASE_URL": f"sqlite:///{tmp / 'b.db'}",
                                 "QCOS_LOG_LEVEL": "WARNING", "QCOS_RATELIMIT_ENABLED": "false"})
    settings.prepare_dirs()
    upgrade_database(settings.database_url)
    return create_app({"QCOS_SETTINGS": settings})


def bench_status_requests(tmp: Path) -> None:
    from gateway.accounts import create_user
    from gateway.models import Job, utcnow

    app = _embedded_app(tmp / "status")
    runtime = app.extensions["qcos"]
    with runtime.db.transaction() as session:
        created = create_user(session, email="bench@example.org", tier="pro", tiers=runtime.tiers)
        session.add(Job(id="bench-0", user_id=created.user_id, status="queued", qasm=BELL, shots=1, num_qubits=2,
                        request_hash="-", executor=runtime.executor.name, cluster_profile="dev",
                        work_dir="/nonexistent/0", created_at=utcnow()))
    client = app.test_client()
    headers = {"X-API-Key": created.api_key}
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        response = client.get("/status/bench-0", headers=headers)
        if response.status_code != 200:
            raise BenchFailure(f"GET /status answered {response.status_code}: {response.get_data(as_text=True)}")
    _report("GET /status (Flask in-process, SQLite)", rounds / (time.perf_counter() - started), "requests/s")


# --- components: PostgreSQL and the dev Slurm cluster ----------------------------------------------------------


def _require_components() -> None:
    """Raise :class:`BenchFailure` unless PostgreSQL and a Slurm controller answer."""
    import sqlalchemy

    from hpc_jobs.executors.slurm import SlurmExecutor
    from hpc_jobs.transports.local import LocalTransport
    from tests.components import POSTGRES_URL

    if not SlurmExecutor(LocalTransport()).ping():
        raise BenchFailure("no Slurm controller answers `scontrol ping`; run `make slurm-up`")
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - reported as a failure line
        raise BenchFailure(f"cannot connect to PostgreSQL at {POSTGRES_URL} ({exc.__class__.__name__}); "
                           "set QCOS_TEST_POSTGRES_URL") from None
    finally:
        engine.dispose()


@contextmanager
def _fresh_postgres():
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    import sqlalchemy

    from tests.components import POSTGRES_URL

    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = "qcos_bench_" + secrets.token_hex(6)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- 1,000 small circuits ----------------------------------------------------------------------------------


def corpus_circuits(count: int) -> list[str]:
    """``count`` QASMBench ``small/`` programs that QCOS accepts, the sorted corpus cycled."""
    from hpc_jobs.circuits import CircuitError, load_circuit

    accepted = []
    for path in sorted(CORPUS.glob("*/*.qasm")):
        source = path.read_text()
        try:
            load_circuit(source)
        except CircuitError:
            continue  # the vqe_uccsd files use a register outside its scope
        accepted.append(source)
    if not accepted:
        raise BenchFailure(f"no usable QASMBench circuits under {CORPUS}")
    return [accepted[i % len(accepted)] for i in range(count)]


def simulate_floor(circuits: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds this process takes to simulate ``circuits`` in
    turn, as the runner does (parse, transpile to Aer's gates at level 0, run
    with ``SHOTS`` shots), Qiskit already imported. CPU far below wall means
    other processes shared the machine meanwhile."""
    from qiskit import qasm2, transpile
    from qiskit_aer import AerSimulator

    from hpc_jobs.runner import aer_standard_basis

    simulator = AerSimulator(method="automatic")
    basis = aer_standard_basis(simulator)
    started, cpu = time.perf_counter(), time.process_time()
    for seed, source in enumerate(circuits):
        circuit = qasm2.loads(source, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        compiled = transpile(circuit, basis_gates=basis, optimization_level=0, seed_transpiler=seed)
        result = simulator.run(compiled, shots=SHOTS, seed_simulator=seed).result()
        if not result.success:
            raise BenchFailure(f"Aer failed on circuit {seed} of the floor: {result.status}")
    return time.perf_counter() - started, time.process_time() - cpu


def sbatch_per_circuit(tmp: Path, circuits: list[str], sample: int, timeout: float) -> float:
    """Seconds from the first ``sbatch --wrap`` to the last result of
    ``sample`` circuits spread over ``circuits``, each its own batch job
    running ``python -m hpc_jobs.runner <work dir>``."""
    from hpc_jobs.workdir import CIRCUIT_FILE, ERROR_FILE, PARAMS_FILE, RESULT_FILE, RunParameters

    step = max(1, len(circuits) // sample)
    chosen = circuits[::step][:sample]
    work_dirs = []
    for index, source in enumerate(chosen):
        work_dir = tmp / f"wrap-{index:03d}"
        work_dir.mkdir(parents=True)
        (work_dir / CIRCUIT_FILE).write_text(source)
        (work_dir / PARAMS_FILE).write_text(RunParameters(job_id=work_dir.name, shots=SHOTS, seed=index).to_json())
        work_dirs.append(work_dir)
    slurm_ids = []
    started = time.time()
    try:
        for work_dir in work_dirs:
            command = f"exec {shlex.quote(sys.executable)} -m hpc_jobs.runner {shlex.quote(str(work_dir))}"
            done = subprocess.run(
                ["sbatch", "--parsable", "--job-name=qcos-bench-wrap", f"--chdir={work_dir}", "--time=00:10:00",
                 f"--output={work_dir}/stdout.log", f"--error={work_dir}/stderr.log", "--wrap", command],
                capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise BenchFailure(f"sbatch --wrap refused: {done.stderr.strip() or done.stdout.strip()}")
            slurm_ids.append(done.stdout.strip().split(";")[0])
        deadline = time.monotonic() + timeout
        pending = set(work_dirs)
        while pending:
            pending = {w for w in pending if not (w / RESULT_FILE).exists() and not (w / ERROR_FILE).exists()}
            if time.monotonic() > deadline:
                raise BenchFailure(f"sbatch per circuit: {len(pending)} of {len(work_dirs)} jobs without a result "
                                   f"after {timeout:g} s")
            time.sleep(0.2)
        failed = [w.name for w in work_dirs if (w / ERROR_FILE).exists()]
        if failed:
            raise BenchFailure(f"sbatch per circuit: {len(failed)} jobs failed, e.g. "
                               f"{(tmp / failed[0] / ERROR_FILE).read_text().strip()}")
        return max((w / RESULT_FILE).stat().st_mtime for w in work_dirs) - started
    finally:
        if slurm_ids:
            subprocess.run(["scancel", *slurm_ids], capture_output=True, timeout=60)


def _counting_path(folder: Path, log: Path) -> str:
    """Put a wrapper for every Slurm command in ``folder`` that appends
    ``<epoch seconds> <command>`` to ``log`` and execs the real one; returns
    a ``PATH`` with ``folder`` first."""
    folder.mkdir(parents=True)
    log.touch()
    for name in SLURM_COMMANDS:
        real = shutil.which(name)
        if real is None:
            continue
        script = folder / name
        script.write_text(f"#!/bin/bash\nprintf '%s {name}\\n' \"$EPOCHREALTIME\" >> {shlex.quote(str(log))}\n"
                          f"exec {shlex.quote(real)} \"$@\"\n")
        script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def _commands_between(log: Path, start: float, end: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        stamp, _, name = line.partition(" ")
        if start <= float(stamp.replace(",", ".")) <= end:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _post_concurrently(stack, circuits: list[str], threads: int) -> list[str]:
    """POST each circuit to ``/execute`` from ``threads`` threads; the job ids in order."""
    import requests

    local = threading.local()
    sessions = []

    def post(source: str) -> str:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            sessions.append(session)
        response = session.post(f"{stack.base_url}/execute", json={"qasm": source, "shots": SHOTS},
                                headers=stack.headers(), timeout=60)
        if response.status_code != 201:
            raise BenchFailure(f"POST /execute answered {response.status_code}: {response.text[:300]}")
        return response.json()["job_id"]

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(post, circuits))
    finally:
        for session in sessions:
            session.close()


def _post_batch(stack, circuits: list[str]) -> list[str]:
    import requests

    response = requests.post(f"{stack.base_url}/batches",
                             json={"circuits": [{"qasm": source, "shots": SHOTS} for source in circuits]},
                             headers=stack.headers(), timeout=300)
    if response.status_code != 201:
        raise BenchFailure(f"POST /batches answered {response.status_code}: {response.text[:300]}")
    return response.json()["job_ids"]


def _wait_done(engine, job_ids: list[str], since: datetime, timeout: float) -> tuple[datetime, int]:
    """Wait until every job is final and every pack created since ``since``
    has ended; returns (the last ``completed_at``, packs used). Raises
    :class:`BenchFailure` for a failed job or a wait past ``timeout``."""
    from sqlalchemy import func, select

    from gateway.models import Job, Pack

    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while True:
            counts = dict(connection.execute(select(Job.status, func.count()).where(Job.id.in_(job_ids))
                                             .group_by(Job.status)).all())
            connection.rollback()
            if counts.get("queued", 0) + counts.get("processing", 0) == 0:
                break
            if time.monotonic() > deadline:
                raise BenchFailure(f"jobs not final after {timeout:g} s: {counts}")
            time.sleep(0.25)
        if counts.get("failed"):
            error = connection.scalar(select(Job.error).where(Job.id.in_(job_ids), Job.status == "failed").limit(1))
            raise BenchFailure(f"{counts['failed']} of {len(job_ids)} jobs failed, e.g.: {error}")
        last = connection.scalar(select(func.max(Job.completed_at)).where(Job.id.in_(job_ids)))
        while True:
            states = dict(connection.execute(select(Pack.state, func.count()).where(Pack.created_at >= since)
                                             .group_by(Pack.state)).all())
            connection.rollback()
            if set(states) <= {"ended"}:
                return last, states.get("ended", 0)
            if time.monotonic() > deadline:
                raise BenchFailure(f"packs not ended {timeout:g} s after the first request: {states}")
            time.sleep(0.25)


def _gateway_run(label: str, stack, engine, log: Path, circuits: list[str], post, timeout: float,
                 floor: float, wrap_total: float | None, targets: Targets, verbose: bool) -> None:
    """One way of sending ``circuits`` through the gateway, measured and reported."""
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    started = time.time()
    job_ids = post(stack, circuits)
    accepted = time.time() - started
    last, packs = _wait_done(engine, job_ids, since, timeout)
    commands = _commands_between(log, started, time.time())
    elapsed = last.timestamp() - started
    _report(f"{label}: all accepted", accepted, "s", f"{len(circuits) / accepted:.0f} circuits/s")
    _report(f"{label}: first request to last completed", elapsed, "s")
    targets.check(f"{label}: time / floor", elapsed / floor, "x", at_most=3)
    if wrap_total is not None:
        targets.check(f"{label}: speed-up over sbatch each", wrap_total / elapsed, "x", at_least=20)
    targets.check(f"{label}: Slurm batch jobs (packs)", packs, "jobs", at_most=10,
                  note=f"sbatch run {commands.get('sbatch', 0)} times")
    detail = ", ".join(f"{name} {commands[name]}" for name in SLURM_COMMANDS if commands.get(name))
    targets.check(f"{label}: Slurm commands in all", sum(commands.values()), "commands", at_most=40,
                  note=detail or "none")
    if verbose:
        _print_packs(engine, since, started)


def _print_packs(engine, since: datetime, started: float) -> None:
    """One line per pack since ``since``: method, jobs, and its times in seconds after ``started``."""
    from sqlalchemy import select

    from gateway.models import Pack

    def at(moment: datetime | None) -> str:
        return f"{moment.timestamp() - started:6.1f}" if moment else "     -"

    with engine.connect() as connection:
        packs = connection.execute(select(Pack).where(Pack.created_at >= since).order_by(Pack.created_at)).all()
    _say("    pack                   method      jobs  planned submitted started  ended (s after the first request)")
    for pack in packs:
        _say(f"    {pack.id}  {pack.resources.get('method', '?'):<10} {pack.job_count:>5}  {at(pack.created_at)} "
             f"   {at(pack.submitted_at)}  {at(pack.started_at)} {at(pack.ended_at)}")


def _cancel_live_packs(engine) -> None:
    """scancel every pack of the bench's database still holding a Slurm job."""
    from sqlalchemy import select

    from gateway.models import Pack

    with engine.connect() as connection:
        ids = [i.split(";")[0] for i in connection.scalars(select(Pack.scheduler_job_id).where(
            Pack.state != "ended", Pack.scheduler_job_id.is_not(None)))]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)


def bench_circuits(tmp: Path, *, count: int, threads: int, sample: int, timeout: float, targets: Targets,
                   gateway_env: dict[str, str], verbose: bool) -> None:
    import sqlalchemy

    from tests.stack import gateway_stack

    _require_components()
    circuits = corpus_circuits(count)
    floor, floor_cpu = simulate_floor(circuits)
    _report(f"floor: {count} circuits simulated in one Python process", floor, "s",
            f"{floor / count * 1000:.1f} ms per circuit; {floor_cpu:.1f} s CPU")
    wrap_total = None
    if sample > 0:
        wrap = sbatch_per_circuit(tmp / "wrap", circuits, sample, timeout)
        wrap_total = wrap * count / sample
        _report(f"sbatch --wrap per circuit: {sample} circuits", wrap, "s",
                f"{count} extrapolated: {wrap_total:.0f} s ({wrap_total / floor:.0f}x the floor)")

    log = tmp / "slurm-commands.log"
    env = {
        "PATH": _counting_path(tmp / "slurm-wrappers", log),
        "QCOS_RATELIMIT_ENABLED": "false",
        # The defaults (tests/stack.py shortens them for the tests).
        "QCOS_POLL_INTERVAL": "",
        "QCOS_MISSING_GRACE": "",
        **gateway_env,
    }
    workers = min(4, os.cpu_count() or 1)  # what deploy/gunicorn.conf.py runs when QCOS_WORKERS is unset
    with _fresh_postgres() as database_url:
        engine = sqlalchemy.create_engine(database_url)
        try:
            with gateway_stack(tmp / "gateway", database_url=database_url, executor="slurm", workers=workers,
                               tier="enterprise", env=env) as stack:
                try:
                    _gateway_run(f"{count} x POST /execute, {threads} threads", stack, engine, log,
                                 circuits, lambda s, c: _post_concurrently(s, c, threads), timeout, floor,
                                 wrap_total, targets, verbose)
                    _gateway_run(f"POST /batches of {count}", stack, engine, log, circuits,
                                 _post_batch, timeout, floor, wrap_total, targets, verbose)
                finally:
                    _cancel_live_packs(engine)
        finally:
            engine.dispose()


# --- one poll cycle over thousands of live jobs ---------------------------------------------------------------


class _CountingTransport:
    """A transport that counts and times the commands it runs."""

    def __init__(self, inner):
        self.inner, self.calls, self.seconds = inner, 0, 0.0

    def run(self, argv, *, timeout=30.0):
        self.calls += 1
        started = time.perf_counter()
        try:
            return self.inner.run(argv, timeout=timeout)
        finally:
            self.seconds += time.perf_counter() - started


class _SqlClock:
    """Time spent in the database driver's ``execute`` on one engine."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.seconds, self.statements = 0.0, 0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.seconds += time.perf_counter() - conn.info.pop("bench_started")
        self.statements += 1


def _result_line(job_id: str) -> dict:
    result = {"counts": {"00": SHOTS // 2, "11": SHOTS - SHOTS // 2}, "num_qubits": 2, "num_clbits": 2,
              "shots": SHOTS, "seed": 0, "execution_time_seconds": 0.0004, "wall_time_seconds": 0.01,
              "backend": "aer_simulator", "device": "CPU", "device_name": "bench", "device_requested": "CPU",
              "method": "stabilizer", "precision": "double", "qiskit_version": "-", "qiskit_aer_version": "-"}
    return {"job_id": job_id, "outcome": "completed", "result": result}


def bench_poll_cycle(tmp: Path, *, jobs: int, per_pack: int, rounds: int, targets: Targets) -> None:
    from sqlalchemy import func, insert, select

    from gateway.accounts import create_user
    from gateway.config import Settings
    from gateway.migrations import upgrade_database
    from gateway.models import Job, Pack, utcnow
    from gateway.poller import poll_cycle
    from gateway.runtime import Runtime
    from hpc_jobs.executors.slurm import SlurmExecutor
    from hpc_jobs.packing import pack_job_name
    from hpc_jobs.transports.local import LocalTransport
    from hpc_jobs.workdir import PROGRESS_FILE, append_line

    _require_components()
    changed = max(1, jobs // 100)
    with _fresh_postgres() as database_url:
        settings = Settings.from_env({"QCOS_STATE_DIR": str(tmp / "poll"), "QCOS_DATABASE_URL": database_url,
                                     "QCOS_EXECUTOR": "slurm", "QCOS_LOG_LEVEL": "WARNING"})
        settings.prepare_dirs()
        upgrade_database(database_url)
        transport = _CountingTransport(LocalTransport())
        runtime = Runtime.from_settings(settings, executor=SlurmExecutor(transport))
        try:
            with runtime.db.transaction() as session:
                user_id = create_user(session, email="poll@example.org", tier="enterprise",
                                      tiers=runtime.tiers).user_id
            now = utcnow()
            packs, rows = [], []
            for p in range(max(1, jobs // per_pack)):
                pack_id = f"pack-{p:016x}"
                # Ids far above the dev cluster's: Slurm knows none of them (missing, within the grace).
                scheduler_id = str(60_000_000 + p)
                pack_dir = runtime.work_dirs.pack_path_for(pack_id)
                pack_dir.mkdir(parents=True)
                append_line(pack_dir / PROGRESS_FILE, {"event": "started", "host": "bench"})
                packs.append(dict(id=pack_id, executor="slurm", cluster_profile=runtime.profile.name,
                                  dispatch_class="dev|CPU|automatic|double", job_name=pack_job_name(pack_id),
                                  state="running", work_dir=str(pack_dir), job_count=per_pack, resources={},
                                  scheduler_job_id=scheduler_id, progress_offset=0, runner_finished=False,
                                  submit_attempts=1, created_at=now, submitted_at=now, started_at=now))
                rows += [dict(id=f"{pack_id}-{j:04d}", user_id=user_id, status="processing", qasm=BELL, shots=SHOTS,
                              num_qubits=2, request_hash="-", executor="slurm", cluster_profile=runtime.profile.name,
                              work_dir=f"/nonexistent/{pack_id}-{j:04d}", seed=j,
                              dispatch_class="dev|CPU|automatic|double", resources={}, runtime_seconds=1,
                              pack_id=pack_id, dispatch_count=1, scheduler_job_id=scheduler_id, created_at=now,
                              submitted_at=now, started_at=now) for j in range(per_pack)]
            with runtime.db.transaction() as session:
                session.execute(insert(Pack), packs)
                session.execute(insert(Job), rows)
            live = len(rows)
            # Two cycles that ingest the "started" lines and start the packs' missing timers:
            # the steady state a running poller is in.
            poll_cycle(runtime)
            poll_cycle(runtime)
            clock = _SqlClock(runtime.db.engine)
            done = 0
            samples = []
            per_round = -(-changed // len(packs))  # new lines per pack and round, at most
            for round_ in range(rounds):
                for k in range(changed):
                    pack = packs[k % len(packs)]
                    job_index = round_ * per_round + k // len(packs)
                    append_line(Path(pack["work_dir"]) / PROGRESS_FILE, _result_line(f"{pack['id']}-{job_index:04d}"))
                transport.calls, transport.seconds = 0, 0.0
                clock.seconds, clock.statements = 0.0, 0
                started = time.perf_counter()
                report = poll_cycle(runtime)
                elapsed = time.perf_counter() - started
                done += changed
                if report.finished_jobs != changed:
                    raise BenchFailure(f"poll cycle finished {report.finished_jobs} jobs, not {changed}")
                samples.append((elapsed - transport.seconds, clock.seconds, clock.statements, transport.calls,
                                transport.seconds))
            with runtime.db.session() as session:
                completed = session.scalar(select(func.count()).select_from(Job).where(Job.status == "completed"))
            if completed != done:
                raise BenchFailure(f"{completed} jobs completed in the database after the cycles, not {done}")
        finally:
            runtime.db.dispose()
    label = f"poll cycle, {live} live jobs, {changed} changed"
    work = statistics.median(s[0] for s in samples)
    targets.check(f"{label}: time but Slurm", work, "s", at_most=0.2,
                  note=f"median of {rounds}; max {max(s[0] for s in samples):.3f} s")
    _report(f"{label}: SQL time", statistics.median(s[1] for s in samples), "s",
            f"{statistics.median(s[2] for s in samples):.0f} statements")
    targets.check(f"{label}: Slurm commands", max(s[3] for s in samples), "per cycle", at_most=3,
                  note=f"{statistics.median(s[4] for s in samples):.3f} s in them")


# --- main -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--circuits", type=int, default=1000, help="circuits sent through the gateway (1000)")
    parser.add_argument("--threads", type=int, default=16, help="threads POSTing them concurrently (16)")
    parser.add_argument("--sbatch-sample", type=int, default=50, help="circuits run as one sbatch each (50; 0 skips it)")
    parser.add_argument("--poll-jobs", type=int, default=5000, help="live jobs in the poll-cycle benchmark (5000)")
    parser.add_argument("--timeout", type=float, default=600, help="longest wait for one measurement, s (600)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the benchmarked gateway (repeatable), e.g. QCOS_PACK_MAX_LINGER=10")
    parser.add_argument("--verbose", action="store_true", help="print every pack of the gateway runs")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    args = parser.parse_args(argv)
    gateway_env = dict(item.partition("=")[::2] for item in args.env)
    if any(not name.startswith("QCOS_") for name in gateway_env):
        parser.error("--env takes QCOS_* settings only")
    targets = Targets()
    failures = []
    with tempfile.TemporaryDirectory(prefix="qcos-bench-") as tmp:
        sections = {
            "validation": bench_validation,
            "status": lambda: bench_status_requests(Path(tmp)),
            "circuits": lambda: bench_circuits(Path(tmp) / "circuits", count=args.circuits, threads=args.threads,
                                               sample=args.sbatch_sample, timeout=args.timeout, targets=targets,
                                               gateway_env=gateway_env, verbose=args.verbose),
            "poll": lambda: bench_poll_cycle(Path(tmp), jobs=args.poll_jobs, per_pack=250, rounds=5,
                                             targets=targets),
        }
        for name in SECTIONS:
            if name not in args.only:
                continue
            try:
                sections[name]()
            except BenchFailure as exc:
                failures.append(name)
                _say(f"FAILED {name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
                failures.append(name)
                _say(f"FAILED {name}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
    if not (Path(__file__).parent / "bench_http.py").exists():
        _say("(POST /execute vs a trivial endpoint: tests/bench_http.py is not in this checkout)")
    _say(f"targets: {targets.met} met, {len(targets.missed)} missed" + "".join(f"\n  MISSED {m}" for m in targets.missed)
         + (f"\nfailed sections: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
