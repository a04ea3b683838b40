"""QCOSBackend against the in-memory gateway, whose counts come from
Qiskit's reference simulator: what is sent, and that Qiskit's own
``Result`` and ``BackendSamplerV2`` see the right outcomes. The live
versions are in test_live_qiskit.py."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.support import require_qiskit

qiskit = require_qiskit()

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm2, transpile  # noqa: E402
from qiskit.circuit import Parameter  # noqa: E402
from qiskit.circuit.library import QFTGate  # noqa: E402
from qiskit.primitives import BackendSamplerV2  # noqa: E402
from qiskit.providers import JobStatus, JobTimeoutError  # noqa: E402
from qiskit.result import Result  # noqa: E402

from qcos_sdk import Client  # noqa: E402
from qcos_sdk.qiskit import QCOSBackend, QCOSJobFailed, QCOSProvider  # noqa: E402
from tests.fake_gateway import FakeGateway, simulate  # noqa: E402


@pytest.fixture
def fake() -> FakeGateway:
    return FakeGateway(finish_after=1, counts_for=simulate)


@pytest.fixture
def backend(fake) -> QCOSBackend:
    client = Client("http://gateway.test", "k", transport=fake.transport())
    client._sleep = lambda seconds: None
    return QCOSBackend(client=client)


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2, name="bell")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit


def two_registers() -> QuantumCircuit:
    qubits, first, second = QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    circuit = QuantumCircuit(qubits, first, second, name="registers")
    circuit.x(0)
    circuit.x(2)
    circuit.measure(qubits[0], first[0])
    circuit.measure(qubits[1], first[1])
    circuit.measure(qubits[2], second[0])
    return circuit


def test_the_target_is_as_wide_as_the_tier_allows_and_speaks_qelib1(backend, fake):
    assert backend.num_qubits == 50 and fake.paths() == ["/user/me"]
    assert {"cx", "h", "u3", "cp", "swap", "ccx", "measure", "reset"} <= set(backend.operation_names)
    assert backend.max_circuits == 1000 and backend.name == "qcos"


def test_transpile_keeps_the_circuit_narrow_and_exportable(backend):
    circuit = QuantumCircuit(3)
    circuit.append(QFTGate(3), range(3))
    circuit.measure_all()
    compiled = transpile(circuit, backend)
    assert compiled.num_qubits == 3
    assert set(compiled.count_ops()) <= set(backend.operation_names) | {"barrier"}
    qasm2.dumps(compiled)


def test_one_circuit_is_one_job_and_returns_qiskits_result(backend, fake):
    job = backend.run(bell(), shots=300)
    assert fake.paths("POST") == ["/execute"]
    sent = json.loads(fake.requests[0].content)
    assert sent["shots"] == 300 and qasm2.loads(sent["qasm"]).count_ops()["cx"] == 1
    result = job.result()
    assert isinstance(result, Result) and result.success
    counts = result.get_counts()
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 300
    assert result.get_counts(bell()) == counts and job.status() == JobStatus.DONE


def test_a_list_is_one_batch_and_counts_follow_each_circuits_registers(backend, fake):
    job = backend.run([bell(), two_registers()], shots=50)
    assert fake.paths("POST") == ["/batches"] and job.job_id().startswith("batch_")
    result = job.result()
    assert result.get_counts(1) == {"1 01": 50}
    assert set(result.get_counts(0)) <= {"00", "11"}


def test_memory_lists_every_shot(backend):
    result = backend.run(two_registers(), shots=20, memory=True).result()
    assert result.get_memory() == ["1 01"] * 20
    memory = backend.run(bell(), shots=64, memory=True).result().get_memory()
    assert len(memory) == 64 and set(memory) <= {"00", "11"}


def test_long_lists_are_split_into_batches_of_max_circuits(fake):
    client = Client("http://gateway.test", "k", transport=fake.transport())
    backend = QCOSBackend(client=client, num_qubits=5, max_circuits=2)
    job = backend.run([bell()] * 5, shots=10)
    assert fake.paths("POST") == ["/batches"] * 3 and job.job_id().count(",") == 2
    assert len(job.result().get_counts()) == 5


def test_a_failed_circuit_raises_with_its_reason_or_is_returned_as_unsuccessful(backend, fake):
    fake.failing[qasm2.dumps(two_registers())] = "out of memory"
    job = backend.run([bell(), two_registers()], shots=10)
    with pytest.raises(QCOSJobFailed, match="out of memory") as caught:
        job.result()
    assert caught.value.failures[0].reason == "out of memory"
    partial = job.result(partial=True)
    assert not partial.success and partial.results[0].success and not partial.results[1].success
    assert "out of memory" in partial.results[1].status
    assert job.status() == JobStatus.ERROR


def test_cancel_cancels_every_job(backend, fake):
    fake.finish_after = 50
    job = backend.run([bell(), bell()])
    job.cancel()
    assert fake.paths("DELETE") == [f"/jobs/{job_id}" for job_id in job.parts[0].job_ids]
    assert job.status() == JobStatus.CANCELLED


def test_result_timeout_is_qiskits_job_timeout(backend, fake):
    fake.finish_after = 50
    with pytest.raises(JobTimeoutError):
        backend.run(bell()).result(timeout=0)


def test_unknown_run_options_warn(backend):
    with pytest.warns(RuntimeWarning, match="seed_simulator"):
        backend.run(bell(), shots=10, seed_simulator=3)


def test_backend_sampler_v2_runs_parameterised_circuits(backend, fake):
    theta = Parameter("theta")
    circuit = QuantumCircuit(1, 1)
    circuit.ry(theta, 0)
    circuit.measure(0, 0)
    sampler = BackendSamplerV2(backend=backend)
    result = sampler.run([(circuit, [[0.0], [3.141592653589793]]), bell()], shots=40).result()
    flipped = result[0].data.c
    assert flipped.get_counts(0) == {"0": 40} and flipped.get_counts(1) == {"1": 40}
    bell_counts = result[1].data.c.get_counts()
    assert set(bell_counts) <= {"00", "11"} and sum(bell_counts.values()) == 40
    assert fake.paths("POST") == ["/batches"]  # one run for all pubs of the same shots


def test_the_provider_hands_out_the_backend(fake):
    provider = QCOSProvider(Client("http://gateway.test", "k", transport=fake.transport()))
    backend = provider.backend()
    assert backend.client is provider.client and backend.provider is provider
    assert [b.name for b in provider.backends()] == ["qcos"] and provider.backends("other") == []
    with pytest.raises(qiskit.providers.QiskitBackendNotFoundError):
        provider.backend("ibm_kyiv")


def test_a_default_backend_uses_the_environment(monkeypatch):
    monkeypatch.setenv("QCOS_URL", "http://from-env.test")
    monkeypatch.setenv("QCOS_API_KEY", "qcos_env")
    backend = QCOSBackend(num_qubits=4)
    assert backend.client.base_url == "http://from-env.test" and backend.num_qubits == 4


def test_memory_is_a_permutation_of_the_counts(backend):
    result = backend.run(bell(), shots=200, memory=True).result()
    assert Counter(result.get_memory()) == result.get_counts()
