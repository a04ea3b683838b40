"""First-order sizing of a simulation job.

Memory of a dense state vector: 2ⁿ complex amplitudes of 16 bytes (double
precision) or 8 bytes (single) — the figure Qiskit Aer documents for its
``statevector`` method. Time is a rough, documented estimate used only for
the ``estimated_time_seconds`` hint of ``POST /execute``.
"""

from __future__ import annotations

import math

#: Seconds a batch job spends before simulating: Slurm start-up plus the
#: runner's Python and Qiskit imports (measured on the dev cluster: 2–4 s).
STARTUP_SECONDS = 5.0
#: Amplitude updates per second of one CPU core for Aer's statevector method,
#: order of magnitude (10⁸–10⁹ on current cores); conservative end.
AMPLITUDE_UPDATES_PER_SECOND = 2e8


def statevector_bytes(num_qubits: int, *, precision: str = "double") -> int:
    """Bytes of a dense state vector of ``num_qubits`` qubits (16·2ⁿ or 8·2ⁿ)."""
    return (16 if precision == "double" else 8) * (1 << num_qubits)


def estimate_runtime_seconds(num_qubits: int, num_operations: int, shots: int, *, clifford: bool = False) -> int:
    """Rough wall time of one job in whole seconds (≥ 1), start-up included.

    State vector: one pass of 2ⁿ amplitudes per operation, plus sampling
    ``shots`` outcomes. Clifford circuits (stabilizer method) cost O(n²) per
    operation and are dominated by start-up. A circuit with mid-circuit
    measurements may run shot by shot and take longer than this.
    """
    if clifford:
        work = num_operations * num_qubits**2 + shots * num_qubits
    else:
        work = num_operations * (1 << num_qubits) + shots * num_qubits
    return max(1, math.ceil(STARTUP_SECONDS + work / AMPLITUDE_UPDATES_PER_SECOND))
