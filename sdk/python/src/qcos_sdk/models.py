"""What the gateway answers, as small immutable records.

Account answers (``/user/me``, ``/user/usage``, ``/pricing``, ``/``) are
returned as the JSON objects the API reference documents; jobs and batches,
which the SDK acts on, get these types. Each keeps the answer it came from
in ``raw``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # Qiskit is an optional extra
    from qiskit import QuantumCircuit

#: The four job states of the API, in lifecycle order; the last two are final.
JOB_STATES = ("queued", "processing", "completed", "failed")
FINAL_STATES = frozenset({"completed", "failed"})

#: A circuit as the SDK accepts it: OpenQASM 2.0 text, a ``qiskit.QuantumCircuit``
#: (exported with ``qiskit.qasm2.dumps``) or the path of a ``.qasm`` file.
CircuitLike = Union[str, "os.PathLike[str]", "QuantumCircuit"]


def parse_time(value: str | None) -> datetime | None:
    """An aware datetime from the gateway's ``2024-01-15T10:30:00Z``; None stays None."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class JobInfo:
    """One job as ``/status``, ``DELETE /jobs``, ``/jobs`` or a batch lists it.

    ``status`` is one of :data:`JOB_STATES`. ``result`` is the full result of
    a completed job (``counts`` and, from ``/status``, ``num_qubits``,
    ``shots``, ``execution_time_seconds``, ``backend``, ``device``, ...);
    ``error`` the reason of a failed one (``"cancelled by the user"`` after a
    cancel). ``num_qubits`` and ``shots`` are set by ``/jobs`` only.
    """

    job_id: str
    status: str
    result: dict | None = None
    error: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    num_qubits: int | None = None
    shots: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the job is ``completed`` or ``failed``."""
        return self.status in FINAL_STATES

    @property
    def counts(self) -> dict[str, int] | None:
        """The measured counts of a completed job, else None."""
        return None if self.result is None else self.result.get("counts")

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> JobInfo:
        return cls(
            job_id=body["job_id"], status=body["status"], result=body.get("result"), error=body.get("error"),
            created_at=parse_time(body.get("created_at")), completed_at=parse_time(body.get("completed_at")),
            num_qubits=body.get("num_qubits"), shots=body.get("shots"), raw=dict(body),
        )


@dataclass(frozen=True)
class JobResult:
    """The outcome of a completed job: ``counts`` maps bitstrings (Qiskit's
    order: ``c[0]`` rightmost; registers separated by spaces, the last
    declared first) to how often they were measured."""

    job_id: str
    counts: dict[str, int]

    @property
    def shots(self) -> int:
        """The number of shots the counts add up to."""
        return sum(self.counts.values())

    def probabilities(self) -> dict[str, float]:
        """Counts divided by the number of shots."""
        total = self.shots
        return {key: value / total for key, value in self.counts.items()} if total else {}


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /jobs``: the jobs (newest first), and ``total`` matching the filter."""

    jobs: list[JobInfo]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> JobPage:
        return cls(jobs=[JobInfo.from_json(job) for job in body["jobs"]], total=body["total"], limit=body["limit"],
                   offset=body["offset"])


@dataclass(frozen=True)
class BatchInfo:
    """``GET /batches/{batch_id}``: ``counts`` has the number of jobs per
    state (``queued``, ``processing``, ``completed``, ``failed``), ``jobs``
    each job in submission order, ``done`` is True once all are final."""

    batch_id: str
    count: int
    counts: dict[str, int]
    done: bool
    jobs: list[JobInfo]
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> int:
        """How many jobs are final (completed or failed)."""
        return self.counts.get("completed", 0) + self.counts.get("failed", 0)

    def in_order(self, job_ids: Sequence[str] | None) -> BatchInfo:
        """This answer with ``jobs`` in the order of ``job_ids`` (the submission's, which is
        authoritative), any others after them; as it is when ``job_ids`` is None."""
        if not job_ids:
            return self
        position = {job_id: index for index, job_id in enumerate(job_ids)}
        ordered = sorted(self.jobs, key=lambda job: position.get(job.job_id, len(position)))
        return replace(self, jobs=ordered)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BatchInfo:
        return cls(batch_id=body["batch_id"], count=body["count"], counts=dict(body.get("counts") or {}),
                   done=bool(body["done"]), jobs=[JobInfo.from_json(job) for job in body.get("jobs") or ()],
                   created_at=parse_time(body.get("created_at")), raw=dict(body))


def new_job_id() -> str:
    """A job id for a submission that names none (a UUID, like the gateway's
    own), so that resending it after a lost answer cannot create a second job."""
    return str(uuid.uuid4())


def to_qasm(circuit: CircuitLike) -> str:
    """OpenQASM 2.0 text for ``circuit``: text as it is, a path's file
    content, a ``qiskit.QuantumCircuit`` through ``qiskit.qasm2.dumps``.

    Raises TypeError for anything else, and ``qiskit.qasm2.QASM2ExportError``
    for a circuit OpenQASM 2.0 cannot express (e.g. unbound parameters).
    """
    if isinstance(circuit, str):
        return circuit
    if isinstance(circuit, os.PathLike):
        with open(circuit, encoding="utf-8") as handle:
            return handle.read()
    try:
        from qiskit import QuantumCircuit, qasm2
    except ImportError:
        QuantumCircuit = None
    if QuantumCircuit is not None and isinstance(circuit, QuantumCircuit):
        return qasm2.dumps(circuit)
    raise TypeError(f"expected OpenQASM 2.0 text, a path or a qiskit QuantumCircuit, not {type(circuit).__name__}")


def batch_entries(circuits: Sequence[Any], shots: int) -> list[dict[str, Any]]:
    """The ``circuits`` array of ``POST /batches``.

    Each item is a circuit (see :func:`to_qasm`), run with ``shots``, or a
    mapping ``{"qasm": circuit, "shots": int, "job_id": str}`` whose own
    ``shots`` and ``job_id`` (both optional) apply to it. Circuits without a
    ``job_id`` get one from :func:`new_job_id`, which makes resending the
    whole batch idempotent.
    """
    entries = []
    for item in circuits:
        if isinstance(item, Mapping):
            entries.append({"qasm": to_qasm(item["qasm"]), "shots": item.get("shots", shots),
                            "job_id": item.get("job_id") or new_job_id()})
        else:
            entries.append({"qasm": to_qasm(item), "shots": shots, "job_id": new_job_id()})
    return entries
