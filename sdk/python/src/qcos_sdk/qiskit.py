"""QCOS as a Qiskit backend (``pip install 'qcos-sdk[qiskit]'``)::

    from qiskit import QuantumCircuit, transpile
    from qcos_sdk.qiskit import QCOSBackend

    backend = QCOSBackend()                      # Client() from QCOS_URL / QCOS_API_KEY
    qc = QuantumCircuit(2, 2); qc.h(0); qc.cx(0, 1); qc.measure([0, 1], [0, 1])
    counts = backend.run(transpile(qc, backend), shots=1000).result().get_counts()

:class:`QCOSProvider` is the service object (``provider.backend()``),
:class:`QCOSBackend` a ``BackendV2`` whose target holds the ``qelib1.inc``
gates on all-to-all qubits, :class:`QCOSJob` a ``JobV1`` whose ``result()``
is Qiskit's own :class:`~qiskit.result.Result`. Circuits travel as
OpenQASM 2.0 (``qiskit.qasm2.dumps``); one circuit is one job, a list is a
batch (``POST /batches``). ``BackendSamplerV2(backend=backend)`` works.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone

try:
    from qiskit import QuantumCircuit, qasm2
    from qiskit.circuit import Measure, Reset
    from qiskit.circuit.library import get_standard_gate_name_mapping
    from qiskit.providers import BackendV2, JobError, JobStatus, JobTimeoutError, JobV1, Options
    from qiskit.providers.exceptions import QiskitBackendNotFoundError
    from qiskit.result import Result
    from qiskit.result.models import ExperimentResult, ExperimentResultData
    from qiskit.transpiler import Target
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("qcos_sdk.qiskit needs Qiskit: pip install 'qcos-sdk[qiskit]'") from exc

from qcos_sdk._version import __version__
from qcos_sdk.client import Batch, Client, Job
from qcos_sdk.errors import JobFailed, JobTimeout
from qcos_sdk.models import BatchInfo, JobInfo

#: The gates of ``qelib1.inc`` that Qiskit exports under their own names and the gateway runs.
QELIB1_GATES = (
    "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg",
    "rx", "ry", "rz", "p", "u1", "u2", "u3", "u",
    "cx", "cy", "cz", "ch", "swap", "crx", "cry", "crz", "cp", "cu1", "cu3", "csx", "cu", "rxx", "rzz",
    "ccx", "cswap",
)

#: The gateway's largest circuit (qubits), whatever the tier says.
MAX_QUBITS = 1024

_CANCELLED = "cancelled"


def qelib1_target(num_qubits: int) -> Target:
    """A :class:`~qiskit.transpiler.Target` of ``num_qubits`` all-to-all
    qubits with the :data:`QELIB1_GATES`, ``measure`` and ``reset`` (ideal:
    no errors or durations), so ``transpile`` rewrites only what OpenQASM
    2.0 with ``qelib1.inc`` cannot say and never widens a circuit."""
    target = Target(description="QCOS: OpenQASM 2.0 with qelib1.inc, all-to-all", num_qubits=num_qubits)
    gates = get_standard_gate_name_mapping()
    for name in QELIB1_GATES:
        target.add_instruction(gates[name], name=name)
    target.add_instruction(Measure(), name="measure")
    target.add_instruction(Reset(), name="reset")
    return target


class QCOSBackend(BackendV2):
    """A QCOS gateway as a Qiskit ``BackendV2``.

    ``client`` is the :class:`~qcos_sdk.Client` to submit with (default:
    ``Client()`` from ``QCOS_URL`` / ``QCOS_API_KEY``). ``num_qubits`` is
    the target's width; by default the caller's tier limit (``max_qubits``
    of ``GET /user/me``, asked when the target is first needed).
    ``max_circuits`` is the most circuits one batch may hold (the gateway's
    batch limit, 1000 by default); longer lists go as several batches.

    Run options: ``shots`` (default 1024) and ``memory`` (per-shot
    bitstrings; the gateway returns counts, so they are the counted
    outcomes in random order). Other options are ignored, with a warning
    unless they are None (``BackendSamplerV2`` passes ``seed_simulator=None``).
    """

    def __init__(self, client: Client | None = None, *, provider: QCOSProvider | None = None,
                 name: str = "qcos", num_qubits: int | None = None, max_circuits: int = 1000) -> None:
        self.client = client or (provider.client if provider else Client())
        super().__init__(provider=provider, name=name, description=f"QCOS gateway at {self.client.base_url}",
                         backend_version=__version__)
        self._num_qubits = num_qubits
        self._max_circuits = max_circuits
        self._target: Target | None = None
        self.options.set_validator("shots", (1, 10_000_000))
        self.options.set_validator("memory", bool)

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, memory=False)

    @property
    def target(self) -> Target:
        if self._target is None:
            width = self._num_qubits or min(int(self.client.me()["max_qubits"]), MAX_QUBITS)
            self._target = qelib1_target(width)
        return self._target

    @property
    def max_circuits(self) -> int:
        return self._max_circuits

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options) -> QCOSJob:
        """Submit one circuit (one job) or a list (one batch per ``max_circuits``).

        Circuits must be expressible in OpenQASM 2.0 with ``qelib1.inc``
        (``transpile(circuit, backend)`` first); raises
        ``qiskit.qasm2.QASM2ExportError`` otherwise, and the SDK's
        :class:`~qcos_sdk.errors.APIError` subclasses for a refusal.
        """
        single = isinstance(run_input, QuantumCircuit)
        circuits = [run_input] if single else list(run_input)
        if not circuits:
            raise ValueError("QCOSBackend.run needs at least one circuit")
        unknown = sorted(name for name, value in options.items() if name not in self.options and value is not None)
        if unknown:
            warnings.warn(f"QCOSBackend ignores the run options {', '.join(unknown)}", RuntimeWarning, stacklevel=2)
        shots = int(options.get("shots", self.options.shots))
        memory = bool(options.get("memory", self.options.memory))
        qasms = [qasm2.dumps(circuit) for circuit in circuits]
        if single:
            parts: list[Job | Batch] = [self.client.execute(qasms[0], shots=shots)]
            job_id = parts[0].job_id
        else:
            size = self._max_circuits
            parts = [self.client.execute_batch(qasms[start:start + size], shots=shots)
                     for start in range(0, len(qasms), size)]
            job_id = ",".join(part.batch_id for part in parts)
        return QCOSJob(self, job_id, parts, circuits, shots=shots, memory=memory)


class QCOSJobFailed(JobError):
    """Some of a :class:`QCOSJob`'s circuits failed; ``failures`` holds each
    one's :class:`~qcos_sdk.errors.JobFailed` (``job_id``, ``reason``)."""

    def __init__(self, message: str, failures: list[JobFailed]) -> None:
        super().__init__(message)
        self.failures = failures


class QCOSJob(JobV1):
    """What :meth:`QCOSBackend.run` returns: one QCOS job, or one or more
    batches. ``job_id()`` is the QCOS job id, or the batch id(s)."""

    def __init__(self, backend: QCOSBackend, job_id: str, parts: list[Job | Batch],
                 circuits: list[QuantumCircuit], *, shots: int, memory: bool) -> None:
        super().__init__(backend, job_id)
        self.parts = parts
        self._headers = [_experiment_header(circuit) for circuit in circuits]
        self._shots = shots
        self._memory = memory

    def submit(self) -> None:
        raise JobError("QCOS jobs are submitted by QCOSBackend.run")

    def _states(self) -> list[JobInfo]:
        states: list[JobInfo] = []
        for part in self.parts:
            states.extend([part.info()] if isinstance(part, Job) else part.status().jobs)
        return states

    def status(self) -> JobStatus:
        """DONE when every circuit completed, ERROR when one failed, CANCELLED
        when all that failed were cancelled, RUNNING while one runs, else QUEUED."""
        states = self._states()
        failed = [state for state in states if state.status == "failed"]
        if failed and all(state.done for state in states):
            cancelled = all(_CANCELLED in (state.error or "") for state in failed)
            return JobStatus.CANCELLED if cancelled else JobStatus.ERROR
        if all(state.status == "completed" for state in states):
            return JobStatus.DONE
        if failed:
            return JobStatus.ERROR
        if any(state.status == "processing" for state in states):
            return JobStatus.RUNNING
        return JobStatus.QUEUED

    def cancel(self) -> None:
        """Cancel every QCOS job of this run (``DELETE /jobs/{id}``)."""
        for part in self.parts:
            part.cancel()

    def result(self, timeout: float | None = None, *, partial: bool = False, progress: bool = False) -> Result:
        """Qiskit's :class:`~qiskit.result.Result`, waiting up to ``timeout`` seconds (None: no limit).

        A failed circuit raises :class:`QCOSJobFailed` with the gateway's
        reason; with ``partial=True`` the others are returned and the failed
        ones have ``success=False`` (``get_counts`` refuses them). Raises
        ``qiskit.providers.JobTimeoutError`` when ``timeout`` runs out.
        ``progress`` shows a progress bar while a batch runs.
        """
        outcomes: list[dict | JobFailed] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for part in self.parts:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if isinstance(part, Job):
                    try:
                        outcomes.append(part.result(timeout=remaining).counts)
                    except JobFailed as exc:
                        outcomes.append(exc)
                else:
                    outcomes.extend(_batch_outcomes(part.wait(remaining, progress=progress)))
        except JobTimeout as exc:
            raise JobTimeoutError(str(exc)) from exc
        failures = [outcome for outcome in outcomes if isinstance(outcome, JobFailed)]
        if failures and not partial:
            first = failures[0]
            raise QCOSJobFailed(f"{len(failures)} of {len(outcomes)} circuits failed; job {first.job_id}: "
                                f"{first.reason}", failures)
        experiments = [self._experiment(header, outcome) for header, outcome in zip(self._headers, outcomes)]
        return Result(backend_name=self._backend.name, backend_version=self._backend.backend_version,
                      job_id=self.job_id(), success=not failures, results=experiments,
                      date=datetime.now(timezone.utc).isoformat(), status="COMPLETED" if not failures else "PARTIAL")

    def _experiment(self, header: dict, outcome: dict | JobFailed) -> ExperimentResult:
        if isinstance(outcome, JobFailed):
            return ExperimentResult(shots=self._shots, success=False, data=ExperimentResultData(),
                                    status=f"job {outcome.job_id} failed: {outcome.reason}", header=header)
        counts = {hex(int(key.replace(" ", ""), 2)): value for key, value in outcome.items()}
        data = ExperimentResultData(counts=counts, memory=_memory(counts) if self._memory else None)
        return ExperimentResult(shots=sum(counts.values()), success=True, data=data, status="DONE", header=header)


class QCOSProvider:
    """The QCOS service, like ``QiskitRuntimeService``: built from the
    environment (``Client()``) or around a given ``client``; it has one
    backend, ``"qcos"``."""

    def __init__(self, client: Client | None = None) -> None:
        self.client = client or Client()

    def backends(self, name: str | None = None, **kwargs) -> list[QCOSBackend]:
        """The backends named ``name`` (all without one); ``kwargs`` go to :class:`QCOSBackend`."""
        if name not in (None, "qcos"):
            return []
        return [QCOSBackend(provider=self, **kwargs)]

    def backend(self, name: str = "qcos", **kwargs) -> QCOSBackend:
        """The backend ``name``; raises ``QiskitBackendNotFoundError`` for any other name."""
        found = self.backends(name, **kwargs)
        if not found:
            raise QiskitBackendNotFoundError(f"no QCOS backend named {name!r}; there is only 'qcos'")
        return found[0]


def _experiment_header(circuit: QuantumCircuit) -> dict:
    """What ``Result.get_counts`` needs to format a circuit's counts: its
    name and classical registers (as the gateway's OpenQASM sees them)."""
    return {
        "name": circuit.name,
        "creg_sizes": [[register.name, register.size] for register in circuit.cregs],
        "memory_slots": circuit.num_clbits,
        "n_qubits": circuit.num_qubits,
        "metadata": dict(circuit.metadata or {}),
    }


def _batch_outcomes(info: BatchInfo) -> list[dict | JobFailed]:
    return [job.counts if job.status == "completed" else JobFailed.of(job.job_id, job.error) for job in info.jobs]


def _memory(counts: dict[str, int]) -> list[str]:
    """Per-shot outcomes (hex) for ``counts``, in random order: the gateway reports counts only."""
    shots = [key for key, value in counts.items() for _ in range(value)]
    random.shuffle(shots)
    return shots
