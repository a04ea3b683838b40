"""The Qiskit backend against a live gateway: transpile, run, Qiskit's own
Result, batches through ``backend.run(list)``, ``BackendSamplerV2``."""

from __future__ import annotations

import pytest

from tests.support import require_qiskit

qiskit = require_qiskit()

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile  # noqa: E402
from qiskit.circuit import Parameter  # noqa: E402
from qiskit.circuit.library import QFTGate  # noqa: E402
from qiskit.primitives import BackendSamplerV2  # noqa: E402
from qiskit.providers import JobStatus  # noqa: E402
from qiskit.result import Result  # noqa: E402

from qcos_sdk.qiskit import MAX_QUBITS, QCOSBackend, QCOSJobFailed  # noqa: E402

pytestmark = pytest.mark.live


@pytest.fixture
def backend(client) -> QCOSBackend:
    return QCOSBackend(client=client)


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2, name="bell")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit


def test_the_target_is_the_tiers_width(backend, client):
    assert backend.num_qubits == min(client.me()["max_qubits"], MAX_QUBITS)


def test_transpile_run_and_get_counts(backend):
    job = backend.run(transpile(bell(), backend), shots=1000)
    result = job.result(timeout=120)
    assert isinstance(result, Result) and result.success and result.job_id == job.job_id()
    counts = result.get_counts()
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 1000
    assert job.status() == JobStatus.DONE


def test_a_circuit_outside_qelib1_is_transpiled_and_runs(backend):
    circuit = QuantumCircuit(4)
    circuit.x(0)
    circuit.append(QFTGate(4), range(4))
    circuit.append(QFTGate(4).inverse(), range(4))
    circuit.measure_all()
    counts = backend.run(transpile(circuit, backend), shots=100).result(timeout=120).get_counts()
    assert counts == {"0001": 100}  # QFT then its inverse: the input back


def test_several_registers_reset_and_memory(backend):
    qubits, first, second = QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    circuit = QuantumCircuit(qubits, first, second)
    circuit.x(0)
    circuit.x(1)
    circuit.reset(1)
    circuit.x(2)
    circuit.measure(qubits[0], first[0])
    circuit.measure(qubits[1], first[1])
    circuit.measure(qubits[2], second[0])
    result = backend.run(circuit, shots=30, memory=True).result(timeout=120)
    assert result.get_counts() == {"1 01": 30} and result.get_memory() == ["1 01"] * 30


def test_a_cancelled_run_is_cancelled(backend):
    circuit = QuantumCircuit(20)
    for _ in range(5):
        for qubit in range(20):
            circuit.h(qubit)
            circuit.t(qubit)
            circuit.cx(qubit, (qubit + 1) % 20)
    circuit.measure_all()
    job = backend.run(circuit, shots=10)
    job.cancel()
    with pytest.raises(QCOSJobFailed, match="cancelled by the user"):
        job.result(timeout=60)
    assert job.status() == JobStatus.CANCELLED


def test_the_default_backend_reads_the_environment(gateway, monkeypatch):
    monkeypatch.setenv("QCOS_URL", gateway.url)
    monkeypatch.setenv("QCOS_API_KEY", gateway.api_key)
    backend = QCOSBackend()
    assert backend.client.base_url == gateway.url
    assert sum(backend.run(bell(), shots=64).result(timeout=120).get_counts().values()) == 64


@pytest.mark.usefixtures("batches")
def test_a_list_runs_as_one_batch(backend):
    ghz = QuantumCircuit(3, 3, name="ghz")
    ghz.h(0)
    ghz.cx(0, 1)
    ghz.cx(1, 2)
    ghz.measure(range(3), range(3))
    job = backend.run(transpile([bell(), ghz], backend), shots=300)
    assert job.job_id().startswith("batch_")
    result = job.result(timeout=300)
    assert set(result.get_counts(0)) <= {"00", "11"} and sum(result.get_counts(0).values()) == 300
    assert set(result.get_counts("ghz")) <= {"000", "111"}


@pytest.mark.usefixtures("batches")
def test_backend_sampler_v2(backend):
    theta = Parameter("theta")
    rotation = QuantumCircuit(1, 1)
    rotation.ry(theta, 0)
    rotation.measure(0, 0)
    sampler = BackendSamplerV2(backend=backend)
    result = sampler.run([(transpile(rotation, backend), [[0.0], [3.141592653589793]]),
                          transpile(bell(), backend)], shots=200).result()
    assert result[0].data.c.get_counts(0) == {"0": 200}
    assert result[0].data.c.get_counts(1) == {"1": 200}
    counts = result[1].data.c.get_counts()
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 200
