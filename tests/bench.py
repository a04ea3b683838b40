"""``make bench``: throughput and call counts of the hot paths.

    python -m tests.bench [--jobs N]

Prints one line per measurement. What is measured:

- circuit validation (``load_circuit``) over the QASMBench ``small/`` files;
- ``GET /status/{id}`` through the Flask app on SQLite (requests per second);
- one poller cycle over N live jobs: wall time and scheduler calls per cycle
  (local executor; and Slurm, when the local cluster answers);
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "qasmbench" / "small"
BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'


def _report(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"{name:<48} {value:>12.2f} {unit:<12} {note}")


def bench_validation() -> None:
    from hpc_jobs.circuits import CircuitError, load_circuit

    sources = [p.read_text() for p in sorted(CORPUS.glob("*/*.qasm"))]
    started = time.perf_counter()
    for source in sources:
        try:
            load_circuit(source)
        except CircuitError:
            pass
    elapsed = time.perf_counter() - started
    _report("validate QASMBench small/ circuits", len(sources) / elapsed, "circuits/s", f"{len(sources)} files")


def _gateway(tmp: Path):
    from gateway import create_app
    from gateway.config import Settings
    from gateway.migrations import upgrade_database

    settings = Settings.from_env({"QCOS_STATE_DIR": str(tmp), "QCOS_DATABASE_URL": f"sqlite:///{tmp / 'b.db'}",
                                 "QCOS_LOG_LEVEL": "WARNING", "QCOS_RATELIMIT_ENABLED": "false"})
    settings.work_root.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)
    return create_app({"QCOS_SETTINGS": settings})


def _seed_jobs(runtime, user_id: str, count: int, scheduler_ids: list[str]) -> None:
    from gateway.models import Job, utcnow

    with runtime.db.transaction() as session:
        for i in range(count):
            session.add(Job(id=f"bench-{i}", user_id=user_id, status="queued", qasm=BELL, shots=1, num_qubits=2,
                            request_hash="-", executor=runtime.executor.name, cluster_profile="dev",
                            work_dir=f"/nonexistent/{i}", scheduler_job_id=scheduler_ids[i],
                            submitted_at=utcnow(), created_at=utcnow()))


def bench_status_requests(tmp: Path) -> None:
    from gateway.accounts import create_user

    app = _gateway(tmp / "status")
    runtime = app.extensions["qcos"]
    with runtime.db.transaction() as session:
        created = create_user(session, email="bench@example.org", tier="pro", tiers=runtime.tiers)
    _seed_jobs(runtime, created.user_id, 1, ["local-00000000"])
    client = app.test_client()
    headers = {"X-API-Key": created.api_key}
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        assert client.get("/status/bench-0", headers=headers).status_code == 200
    _report("GET /status (Flask in-process, SQLite)", rounds / (time.perf_counter() - started), "requests/s")


class _CountingTransport:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def run(self, argv, *, timeout=30.0):
        self.calls += 1
        return self.inner.run(argv, timeout=timeout)


def bench_poll_cycle(tmp: Path, jobs: int) -> None:
    from gateway.accounts import create_user
    from gateway.poller import service_cycle

    app = _gateway(tmp / "poll")
    runtime = app.extensions["qcos"]
    with runtime.db.transaction() as session:
        user_id = create_user(session, email="poll@example.org", tier="pro", tiers=runtime.tiers).user_id
    _seed_jobs(runtime, user_id, jobs, [f"local-{i:08x}" for i in range(jobs)])
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        service_cycle(runtime)
        timings.append(time.perf_counter() - started)
    _report(f"poll cycle, {jobs} live jobs, local executor", statistics.median(timings) * 1000, "ms/cycle")

    from hpc_jobs.executors.slurm import SlurmExecutor
    from hpc_jobs.transports.local import LocalTransport

    transport = _CountingTransport(LocalTransport())
    executor = SlurmExecutor(transport)
    if not executor.ping():
        print("(no local Slurm cluster: `make slurm-up` to measure the Slurm poll cycle)")
        return
    transport.calls = 0
    ids = [str(10_000_000 + i) for i in range(jobs)]
    started = time.perf_counter()
    executor.observe(ids)
    elapsed = time.perf_counter() - started
    _report(f"Slurm observe, {jobs} job ids", elapsed * 1000, "ms/cycle", f"{transport.calls} Slurm commands")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000, help="live jobs in the poll-cycle benchmark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qcos-bench-") as tmp:
        bench_validation()
        bench_status_requests(Path(tmp))
        bench_poll_cycle(Path(tmp), args.jobs)


if __name__ == "__main__":
    main()
