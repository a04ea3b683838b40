"""Run circuits with Qiskit Aer inside a batch job.

``python -m hpc_jobs.runner --pack <pack dir>`` is what every sbatch script
runs: it imports Qiskit once and simulates the pack's jobs in the order of
its ``pack.json``, each from its own work dir (layout in
:mod:`hpc_jobs.workdir`). For each job it writes exactly one of
``result.json`` or ``error.json`` atomically, then appends one line to the
pack's ``progress.jsonl``, so the poller learns of finished jobs while the
rest of the pack still runs. One bad circuit fails alone; a job whose work
dir holds ``cancelled`` is skipped; a job that already has its
``result.json`` (a requeued pack) is reported, not run again.

``python -m hpc_jobs.runner <work dir>`` runs one job alone (for operators).

Exit status: 0 once every job has its outcome written (``--pack``), or once
``result.json`` is in place (one job); 1 when the single job failed
(``error.json`` holds the reason, also printed to stderr); 2 for a usage
error (no work dir or manifest to work from).

``result.json``::

    {
      "counts": {"00": 517, "11": 507},   # Result.get_counts(): c[0] rightmost,
                                           # registers separated by spaces
      "num_qubits": 2, "num_clbits": 2, "shots": 1024, "seed": 7,
      "execution_time_seconds": 0.0004,    # Aer's time_taken for the experiment
                                           # (simulation only, no transpile)
      "wall_time_seconds": 0.05,           # transpile + run, measured here
      "backend": "aer_simulator",          # or "aer_simulator_custatevec" when
                                           # Aer ran with cuStateVec on a GPU
      "device": "CPU",                     # "CPU" or "GPU": where Aer ran
      "device_name": "AMD EPYC 7763 ...",  # CPU model or GPU name, null if unknown
      "device_requested": "GPU",           # from params.json, to show fall-backs
      "method": "stabilizer",              # the method Aer used ("automatic"
                                           # resolved), from result metadata
      "precision": "double",
      "qiskit_version": "2.6.2", "qiskit_aer_version": "0.18.2"
    }

This module imports neither Flask, SQLAlchemy nor :mod:`gateway`: the
compute node's container has only Qiskit and Aer.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import qiskit
import qiskit_aer
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import CONTROL_FLOW_OP_NAMES
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit_aer import AerSimulator

from hpc_jobs.circuits import CircuitError, load_circuit
from hpc_jobs.workdir import (
    CANCELLED_FILE,
    CIRCUIT_FILE,
    ERROR_FILE,
    MANIFEST_FILE,
    PARAMS_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
    RunParameters,
    append_line,
    write_json_atomically,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

BACKEND_AER = "aer_simulator"
BACKEND_CUSTATEVEC = "aer_simulator_custatevec"

_PRECISIONS = ("double", "single")


class RunError(Exception):
    """A job that cannot produce counts; ``str()`` is the reason for the user."""


def _read_params(work_dir: Path) -> RunParameters:
    path = work_dir / PARAMS_FILE
    try:
        params = RunParameters.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{PARAMS_FILE} is missing from the work dir") from None
    except (ValueError, TypeError) as error:
        raise RunError(f"{PARAMS_FILE} is not valid: {error}") from None
    if isinstance(params.shots, bool) or not isinstance(params.shots, int) or params.shots < 1:
        raise RunError(f"{PARAMS_FILE}: shots must be a positive integer, not {params.shots!r}")
    if isinstance(params.seed, bool) or not isinstance(params.seed, int) or params.seed < 0:
        raise RunError(f"{PARAMS_FILE}: seed must be a non-negative integer, not {params.seed!r}")
    if params.precision not in _PRECISIONS:
        raise RunError(f"{PARAMS_FILE}: precision must be one of {_PRECISIONS}, not {params.precision!r}")
    return params


def _read_circuit(work_dir: Path) -> QuantumCircuit:
    path = work_dir / CIRCUIT_FILE
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunError(f"{CIRCUIT_FILE} is missing from the work dir") from None
    except UnicodeDecodeError:
        raise RunError(f"{CIRCUIT_FILE} is not UTF-8 text") from None
    try:
        return load_circuit(source)
    except CircuitError as error:
        raise RunError(f"{CIRCUIT_FILE}: {error}") from None


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _gpu_name() -> str | None:
    """First GPU's name from ``nvidia-smi`` (the one Slurm gave us via CUDA_VISIBLE_DEVICES)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return names[0] if names else None


@functools.lru_cache(maxsize=1)
def aer_capabilities() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(simulation methods, devices) this Aer build offers, e.g. ``(("automatic", ...), ("CPU",))``.

    A GPU appears only with a GPU build of Aer (``qiskit-aer-gpu``) and a
    usable CUDA device. Asked once per process.
    """
    probe = AerSimulator()
    return tuple(probe.available_methods()), tuple(probe.available_devices())


def aer_standard_basis(simulator: AerSimulator) -> list[str]:
    """The simulator's native instructions that are Qiskit standard gates or control flow.

    Qiskit's transpiler accepts only standard names in ``basis_gates``; Aer's
    extra names (``mcx``, ``unitary``, ``save_*``) are never produced by
    :func:`hpc_jobs.circuits.load_circuit` anyway.
    """
    standard = get_standard_gate_name_mapping().keys() | CONTROL_FLOW_OP_NAMES
    return sorted(set(simulator.configuration().basis_gates) & standard)


def simulator_options(params: RunParameters, available_devices: tuple[str, ...]) -> dict[str, Any]:
    """Keyword arguments for :class:`qiskit_aer.AerSimulator` for these params.

    The GPU is used only when ``params.device`` is ``"GPU"`` and Aer lists a
    GPU in ``available_devices``; cuStateVec only on top of that.
    """
    options: dict[str, Any] = {
        "method": params.method,
        "precision": params.precision,
        "seed_simulator": params.seed,
    }
    if params.device.upper() == "GPU" and "GPU" in available_devices:
        options["device"] = "GPU"
        if params.custatevec:
            options["cuStateVec_enable"] = True
    else:
        options["device"] = "CPU"
    return options


@functools.lru_cache(maxsize=8)
def _simulator(options: tuple[tuple[str, Any], ...]) -> AerSimulator:
    """One simulator per option set, reused across the jobs of a pack."""
    return AerSimulator(**dict(options))


@functools.lru_cache(maxsize=8)
def _basis(options: tuple[tuple[str, Any], ...]) -> tuple[str, ...]:
    return tuple(aer_standard_basis(_simulator(options)))


def run_job(work_dir: Path) -> dict[str, Any]:
    """Simulate the work dir's circuit; the ``result.json`` document.

    Raises :class:`RunError` with a readable reason for anything that stops
    the job from producing ``shots`` counts.
    """
    params = _read_params(work_dir)
    circuit = _read_circuit(work_dir)

    methods, devices = aer_capabilities()
    if params.method not in methods:
        raise RunError(
            f"unknown simulation method {params.method!r}; Aer offers {', '.join(methods)}"
        )
    options = simulator_options(params, devices)
    # The seed goes to run(): one simulator then serves every job of a pack.
    shared = tuple(sorted((k, v) for k, v in options.items() if k != "seed_simulator"))
    try:
        simulator = _simulator(shared)
    except Exception as error:  # Aer refuses some option combinations at construction
        raise RunError(f"Aer could not be set up with {options}: {error}") from None

    started = time.perf_counter()
    try:
        # Translate to Aer's gate names only. Transpiling against the
        # simulator as a backend would also apply its target's qubit cap,
        # which is sized for a state vector in this node's memory (about 30
        # qubits) even when "automatic" would pick the stabilizer method for
        # 100. Level 0: the circuit is simulated as submitted; Aer fuses gates.
        compiled = transpile(
            circuit,
            basis_gates=list(_basis(shared)),
            optimization_level=0,
            seed_transpiler=params.seed,
        )
        result = simulator.run(compiled, shots=params.shots, seed_simulator=params.seed).result()
    except Exception as error:
        raise RunError(f"Aer failed: {error}") from None
    wall_time = time.perf_counter() - started

    experiment = result.results[0] if result.results else None
    if not result.success or experiment is None or not experiment.success:
        status = getattr(experiment, "status", None) or result.status
        raise RunError(f"Aer did not complete the simulation: {status}")
    try:
        counts = dict(result.get_counts(0))
    except Exception as error:
        raise RunError(f"Aer returned no counts: {error}") from None
    if not counts or sum(counts.values()) != params.shots:
        raise RunError(
            f"Aer returned {sum(counts.values())} samples for {params.shots} shots"
        )

    metadata = dict(experiment.metadata or {})
    device = str(metadata.get("device", options["device"])).upper()
    on_gpu = device == "GPU"
    # Aer reports whether cuStateVec was in use; trust the request only when
    # it does not say.
    custatevec = on_gpu and bool(metadata.get("cuStateVec_enable", options.get("cuStateVec_enable", False)))
    return {
        "counts": counts,
        "num_qubits": circuit.num_qubits,
        "num_clbits": circuit.num_clbits,
        "shots": params.shots,
        "seed": params.seed,
        "execution_time_seconds": float(experiment.time_taken),
        "wall_time_seconds": wall_time,
        "backend": BACKEND_CUSTATEVEC if custatevec else BACKEND_AER,
        "device": "GPU" if on_gpu else "CPU",
        "device_name": _gpu_name() if on_gpu else _cpu_name(),
        "device_requested": params.device,
        "method": metadata.get("method", params.method),
        "precision": params.precision,
        "qiskit_version": qiskit.__version__,
        "qiskit_aer_version": qiskit_aer.__version__,
    }


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _run_one(work_dir: Path, writer: bool) -> tuple[dict[str, Any] | None, str | None]:
    """Simulate one work dir and write its outcome file (rank 0 only): ``(result, None)`` or ``(None, reason)``."""
    if writer:
        # A requeued job must not leave the previous attempt's error behind.
        _remove(work_dir / ERROR_FILE)
    try:
        document = run_job(work_dir)
    except RunError as error:
        reason = str(error)
    except Exception as error:  # anything unforeseen still ends in error.json
        reason = f"internal error in the runner: {type(error).__name__}: {error}"
    else:
        if writer:
            write_json_atomically(work_dir / RESULT_FILE, document)
        return document, None
    print(f"runner: {work_dir.name}: {reason}", file=sys.stderr)
    if writer:
        write_json_atomically(work_dir / ERROR_FILE, {"error": reason})
    return None, reason


def _read_manifest(pack_dir: Path) -> list[tuple[str, Path]]:
    """``[(job_id, work_dir), ...]`` from ``pack.json``; raises ``ValueError`` for a bad manifest."""
    data = json.loads((pack_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise ValueError(f"{MANIFEST_FILE} has no job list")
    return [(str(job["job_id"]), Path(job["work_dir"])) for job in jobs]


def run_pack(pack_dir: Path) -> int:
    """Simulate every job of the pack in ``pack_dir`` (see the module docstring);
    the exit status."""
    try:
        jobs = _read_manifest(pack_dir)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"runner: cannot read the pack manifest: {error}", file=sys.stderr)
        return EXIT_USAGE
    writer = mpi_rank() == 0
    progress = pack_dir / PROGRESS_FILE

    def report(record: dict[str, Any]) -> None:
        if writer:
            append_line(progress, record)

    report({"event": "started", "host": platform.node()})
    for job_id, work_dir in jobs:
        if (work_dir / CANCELLED_FILE).exists():
            report({"job_id": job_id, "outcome": "skipped"})
            continue
        previous = _previous_result(work_dir)
        if previous is not None:
            report({"job_id": job_id, "outcome": "completed", "result": previous})
            continue
        result, reason = _run_one(work_dir, writer)
        if result is not None:
            report({"job_id": job_id, "outcome": "completed", "result": result})
        else:
            report({"job_id": job_id, "outcome": "failed", "error": reason})
    report({"event": "finished"})
    return EXIT_OK


def _previous_result(work_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((work_dir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("counts") else None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--pack":
        pack_dir = Path(args[1])
        if not pack_dir.is_dir():
            print(f"runner: {pack_dir} is not a directory", file=sys.stderr)
            return EXIT_USAGE
        return run_pack(pack_dir)
    if len(args) != 1:
        print("usage: python -m hpc_jobs.runner <work dir> | --pack <pack dir>", file=sys.stderr)
        return EXIT_USAGE
    work_dir = Path(args[0])
    if not work_dir.is_dir():
        print(f"runner: {work_dir} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    # In a multi-node (MPI) job every rank simulates its part; only rank 0
    # owns the work dir's outcome files.
    writer = mpi_rank() == 0
    if writer:
        _remove(work_dir / RESULT_FILE)
    _, reason = _run_one(work_dir, writer)
    return EXIT_OK if reason is None else EXIT_FAILED


#: Environment variables that carry a process's MPI rank, by launcher
#: (Slurm's srun, Open MPI, MPICH/Cray PMI).
_RANK_VARIABLES = ("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def mpi_rank() -> int:
    """This process's MPI rank (0 when not launched as one of several ranks)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


if __name__ == "__main__":
    # Results belong to the service user only, whatever the batch job's umask.
    os.umask(0o077)
    sys.exit(main())
