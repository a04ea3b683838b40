"""Small helpers shared by the tests."""

from __future__ import annotations

import time
from pathlib import Path

from hpc_jobs.lifecycle import JobStatus

#: 34 qubits in a non-Clifford state: 256 GiB as a state vector, more than
#: the dev profile's largest allocation, so sizing refuses it at submission.
TOO_BIG_FOR_MEMORY = (
    'OPENQASM 2.0; include "qelib1.inc"; qreg q[34]; creg c[34]; '
    "h q; t q; cx q[0],q[33]; measure q -> c;"
)



def shot_by_shot_circuit(qubits: int = 12, layers: int = 10) -> str:
    """A non-Clifford circuit that measures a qubit mid-circuit, so Aer
    simulates every shot on its own: its run time grows with the shots
    (12 qubits, 10 layers: about 5–10 ms per shot on one core), which makes
    a runner as slow as a test needs without a big state. Below 14 qubits,
    so it is sized for one core."""
    lines = ['OPENQASM 2.0;', 'include "qelib1.inc";', f"qreg q[{qubits}];", f"creg c[{qubits}];", "creg m[1];"]
    for layer in range(layers):
        lines += [f"h q[{i}];" for i in range(qubits)]
        lines += [f"cx q[{i}],q[{i + 1}];" for i in range(qubits - 1)]
        lines += [f"rz({0.1 * (layer + 1):.2f}) q[{i}];" for i in range(qubits)]
    lines += ["measure q[0] -> m[0];", *(f"ry(0.3) q[{i}];" for i in range(qubits)), "measure q -> c;"]
    return "\n".join(lines)


def lose_circuit_file(runtime, job_id: str, *, timeout: float = 30.0) -> None:
    """Dispatch the job, then delete its circuit as a scratch purge would: the
    pack's runner then fails it (it reads the circuit only after importing
    Qiskit, a second or more after the batch job starts) and reports why."""
    from pathlib import Path

    from gateway.dispatcher import dispatch_cycle
    from gateway.models import Job
    from hpc_jobs.workdir import CIRCUIT_FILE

    deadline = time.monotonic() + timeout
    while True:
        dispatch_cycle(runtime)
        with runtime.db.session() as session:
            job = session.get(Job, job_id)
        if job.scheduler_job_id is not None:
            (Path(job.work_dir) / CIRCUIT_FILE).unlink()
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not dispatched after {timeout} s")
        time.sleep(0.1)


def drive_until_final(runtime, job_id: str, *, timeout: float = 90.0):
    """Run dispatcher and poller cycles until the job is final; returns the stored job."""
    from gateway.models import Job
    from gateway.poller import service_cycle

    deadline = time.monotonic() + timeout
    while True:
        service_cycle(runtime)
        with runtime.db.session() as session:
            job = session.get(Job, job_id)
        if JobStatus(job.status).is_final:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")
        time.sleep(0.2)


def wait_for_observation(executor, scheduler_job_id: str, predicate, limit: float = 90.0):
    """Observe one scheduler job until ``predicate(observation)`` holds; fails the test after ``limit`` s."""
    import pytest

    deadline = time.monotonic() + limit
    seen = None
    while time.monotonic() < deadline:
        seen = executor.observe([scheduler_job_id]).get(scheduler_job_id)
        if seen is not None and predicate(seen):
            return seen
        time.sleep(0.3)
    pytest.fail(f"job {scheduler_job_id} never reached the expected state; last seen {seen}")


def dispatch_one_pack(runtime, timeout: float = 30):
    """Run dispatch cycles until one submits a pack; returns that pack (the
    only one ``submitted``). Fails the test after ``timeout`` seconds."""
    from sqlalchemy import select

    from gateway import dispatcher
    from gateway.models import Pack
    from hpc_jobs.packing import PackState

    deadline = time.monotonic() + timeout
    while not dispatcher.dispatch_cycle(runtime).submitted:
        assert time.monotonic() < deadline, "no pack was submitted"
        time.sleep(0.2)
    with runtime.db.session() as session:
        return session.scalar(select(Pack).where(Pack.state == PackState.SUBMITTED.value))


def processes_with_argument(argument: str) -> list[int]:
    """Pids of the processes (of any user) with ``argument`` as one whole argv entry."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids
