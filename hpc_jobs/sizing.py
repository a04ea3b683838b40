"""Sizing a simulation job: method, GPUs, nodes, memory, partition and time limit.

Pure functions of the circuit's shape, the shot count and the cluster
profile; nothing here talks to Slurm.

Sources and rules:

- Memory of a dense state vector is 2ⁿ complex amplitudes of 16 bytes
  (double precision) or 8 bytes (single): Qiskit Aer's ``AerSimulator``
  documentation, option ``max_memory_mb`` ("a state vector of n-qubits uses
  2^n complex values (16 Bytes)") and option ``precision``.
  https://qiskit.github.io/qiskit-aer/stubs/qiskit_aer.AerSimulator.html
- Several GPUs hold one state vector as equal chunks of 2^b amplitudes
  (cache blocking, "30-qubits circuit is distributed into 2^10 chunks with
  20-qubits"): 2^(n-b) chunks spread evenly only over a power-of-two number
  of GPUs, so the GPU count is rounded up to one.
  https://qiskit.github.io/qiskit-aer/howtos/running_gpu.html
- Aer runs Clifford circuits with the ``stabilizer`` method in O(n²) memory,
  so 100+ qubits are cheap; Aer's GPU support covers ``statevector``,
  ``density_matrix`` and ``unitary`` only, so stabilizer jobs run on CPU.
- Headroom (``simulator.memory_headroom``, 1.25 by default) is our margin,
  not a documented Aer figure: chunk-swap buffers, fused-gate matrices and
  the runner's own process need memory beyond the amplitudes.

The runtime estimate is an order of magnitude for the API's
``estimated_time_seconds`` and, with headroom, for the Slurm time limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from hpc_jobs.profiles import (
    ClusterProfile,
    Partition,
    check_account,
    parse_memory,
    parse_time_limit,
)

__all__ = [
    "JobResources",
    "SizingError",
    "default_resources",
    "estimate_runtime_seconds",
    "format_bytes",
    "format_memory",
    "format_time_limit",
    "size_job",
    "statevector_bytes",
]

#: Seconds a batch job spends before simulating: Slurm start-up plus the
#: runner's Python and Qiskit imports (measured on the dev cluster: 2–4 s).
STARTUP_SECONDS = 5.0
#: Amplitude updates per second of one CPU core for Aer's statevector method,
#: order of magnitude (10⁸–10⁹ on current cores); conservative end.
AMPLITUDE_UPDATES_PER_SECOND = 2e8
#: Amplitude updates per second of one GPU. A gate pass reads and writes
#: 16 bytes per amplitude; at 1.6–2 TB/s of HBM (MI250X GCD, A100) that is
#: ~5·10¹⁰ at best. We take 4 % of it: kernels do not stream at peak and
#: several GPUs exchange chunks.
GPU_AMPLITUDE_UPDATES_PER_SECOND = 2e9
#: Aer's ``statevector_parallel_threshold`` default: below 14 qubits it runs
#: one thread, so more cores would idle.
PARALLEL_THRESHOLD_QUBITS = 14
#: Host memory of the runner process besides the state (Python, Qiskit, Aer).
RUNNER_BASE_BYTES = 1 << 30
#: Time limit = WALLTIME_FACTOR × estimate + WALLTIME_EXTRA_SECONDS, clamped
#: to the partition's limit: estimates are rough, and a job killed at its
#: limit is worse than one that waits a little longer in the queue.
WALLTIME_FACTOR = 2
WALLTIME_EXTRA_SECONDS = 300

_TIB = 1 << 40


class SizingError(ValueError):
    """A circuit the profile's cluster cannot run; ``str()`` says why, with
    the memory needed and the most the profile offers."""


@dataclass(frozen=True)
class JobResources:
    """What one job asks Slurm for and how the runner simulates.

    ``method``/``precision``/``device``/``custatevec``: for ``params.json``
    (:class:`hpc_jobs.workdir.RunParameters`). ``partition``, ``nodes``,
    ``ntasks_per_node``, ``cpus_per_task``, ``gpus_per_node`` (0: none),
    ``mem`` (per node, Slurm syntax such as ``"60G"``) and ``time_limit``
    (Slurm syntax): the ``#SBATCH`` values. ``state_bytes``: memory of the
    simulated state (bytes). ``estimated_runtime_seconds``: rough wall time.
    """

    method: str
    precision: str
    device: str
    custatevec: bool
    partition: str
    nodes: int
    ntasks_per_node: int
    cpus_per_task: int
    gpus_per_node: int
    mem: str
    time_limit: str
    state_bytes: int
    estimated_runtime_seconds: int

    @property
    def gpus(self) -> int:
        """GPUs of the whole job."""
        return self.nodes * self.gpus_per_node

    def run_options(self) -> dict[str, object]:
        """Keyword arguments for :class:`hpc_jobs.workdir.RunParameters`:
        ``method``, ``device``, ``custatevec``, ``precision``."""
        return {
            "method": self.method,
            "device": self.device,
            "custatevec": self.custatevec,
            "precision": self.precision,
        }


def statevector_bytes(num_qubits: int, *, precision: str = "double") -> int:
    """Bytes of a dense state vector of ``num_qubits`` qubits (16·2ⁿ or 8·2ⁿ)."""
    return (16 if precision == "double" else 8) * (1 << num_qubits)


def estimate_runtime_seconds(
    num_qubits: int,
    num_operations: int,
    shots: int,
    *,
    clifford: bool = False,
    amplitude_updates_per_second: float = AMPLITUDE_UPDATES_PER_SECOND,
    shot_by_shot: bool = False,
) -> int:
    """Rough wall time of one job in whole seconds (≥ 1), start-up included.

    State vector: one pass of 2ⁿ amplitudes per operation, plus sampling
    ``shots`` outcomes, at ``amplitude_updates_per_second`` (one CPU core by
    default). Clifford circuits (stabilizer method) cost O(n²) per operation
    and are dominated by start-up. ``shot_by_shot``: the circuit measures or
    resets qubits mid-circuit (or branches on results), so Aer simulates every
    shot separately and the operations are paid ``shots`` times.
    """
    if clifford:
        work = num_operations * num_qubits**2 + shots * num_qubits
        rate = AMPLITUDE_UPDATES_PER_SECOND
    else:
        passes = shots if shot_by_shot else 1
        work = passes * num_operations * (1 << num_qubits) + shots * num_qubits
        rate = amplitude_updates_per_second
    return max(1, math.ceil(STARTUP_SECONDS + work / rate))


def format_time_limit(seconds: int) -> str:
    """Slurm ``--time`` text: ``"HH:MM:SS"``, or ``"D-HH:MM:SS"`` from a day on."""
    seconds = max(60, math.ceil(seconds / 60.0) * 60)  # Slurm counts whole minutes
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def format_memory(num_bytes: int) -> str:
    """Slurm ``--mem`` text, rounded up: ``"60G"`` when whole GiB, else ``"1536M"``."""
    mib = max(1, math.ceil(num_bytes / (1 << 20)))
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def format_bytes(num_bytes: float) -> str:
    """For people: ``"16.0 GiB"``, ``"512.0 TiB"``."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    raise AssertionError("unreachable")


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n))) if n > 1 else 1


def _power_of_two_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def default_resources(profile: ClusterProfile) -> JobResources:
    """The resources of the profile's ``[slurm]`` defaults, without sizing:
    one task on one node of the default partition, the profile's simulator."""
    sim = profile.simulator
    return JobResources(
        method=sim.method,
        precision=sim.precision,
        device=sim.device,
        custatevec=sim.custatevec,
        partition=profile.slurm.partition,
        nodes=1,
        ntasks_per_node=1,
        cpus_per_task=profile.slurm.cpus_per_task,
        gpus_per_node=0,
        mem=profile.slurm.mem,
        time_limit=profile.slurm.time_limit,
        state_bytes=0,
        estimated_runtime_seconds=0,
    )


def _choose_partition(profile: ClusterProfile, nodes: int, wanted_seconds: int,
                      preferred: Sequence[str] = ()) -> tuple[Partition, int]:
    """The first partition that takes ``nodes`` and ``wanted_seconds``, trying
    the ``preferred`` ones (a tier's, in its order) and then the automatic
    ones in profile order; else the one of those taking ``nodes`` with the
    longest limit. Returns it and the time limit in seconds, clamped.
    :class:`SizingError` for a preferred name the profile does not have."""
    known = {p.name: p for p in profile.partitions}
    unknown = [name for name in preferred if name not in known]
    if unknown:
        raise SizingError(f"profile {profile.name} has no partition {', '.join(unknown)}")
    candidates = [known[name] for name in preferred]
    candidates += [p for p in profile.partitions if p.auto and p.name not in preferred]
    fitting = [p for p in candidates if p.max_nodes >= nodes]
    if not fitting:
        largest = max((p for p in profile.partitions if p.auto), key=lambda p: p.max_nodes)
        raise SizingError(
            f"needs {nodes} nodes; the largest partition of profile {profile.name} "
            f"({largest.name}) takes {largest.max_nodes}"
        )
    for partition in fitting:
        if parse_time_limit(partition.max_time) >= wanted_seconds:
            return partition, wanted_seconds
    longest = max(fitting, key=lambda p: parse_time_limit(p.max_time))
    return longest, parse_time_limit(longest.max_time)


def _wanted_seconds(profile: ClusterProfile, estimate: int) -> int:
    return max(parse_time_limit(profile.slurm.time_limit), WALLTIME_FACTOR * estimate + WALLTIME_EXTRA_SECONDS)


def size_job(
    profile: ClusterProfile,
    *,
    num_qubits: int,
    num_operations: int,
    shots: int,
    clifford: bool = False,
    precision: str | None = None,
    shot_by_shot: bool = False,
    partitions: Sequence[str] = (),
) -> JobResources:
    """Resources for one circuit on ``profile``'s cluster.

    ``num_qubits``, ``num_operations`` (``CircuitSummary.size``), ``shots``
    and ``clifford`` (``CircuitSummary.is_clifford``) describe the job;
    ``precision`` overrides the profile's (``"double"``/``"single"``);
    ``shot_by_shot`` (mid-circuit measurement) multiplies the state-vector
    work by ``shots`` in the runtime estimate; ``partitions``: the caller's
    tier's preferred partitions (:class:`hpc_jobs.accounting.TierScheduling`),
    tried first, in order, before the profile's automatic ones.

    Method: a Clifford circuit gets ``stabilizer`` (CPU, tiny memory) when
    the profile says ``automatic``; any other circuit ``statevector``, which
    needs 16·2ⁿ (8·2ⁿ single) bytes × ``simulator.memory_headroom``. On a
    GPU profile that memory is split over a power of two of GPUs, filled
    node by node; on a CPU profile it must fit one node. The partition is
    the first automatic one in profile order that takes the node count and
    the time limit (2 × estimate + 5 min, at least ``slurm.time_limit``),
    else the one with the longest limit, clamped to it.

    Raises :class:`SizingError` when the state does not fit the largest
    allocation (the message gives needed and available memory), and
    :class:`~hpc_jobs.profiles.ProfileError` when the profile lacks a valid
    account.
    """
    check_account(profile)
    sim, node = profile.simulator, profile.node
    precision = precision or sim.precision
    if precision not in ("double", "single"):
        raise SizingError(f"precision must be double or single, not {precision!r}")
    if num_qubits < 1 or num_operations < 0 or shots < 1:
        raise SizingError("a job needs at least one qubit and one shot")

    method = sim.method
    if method == "automatic":
        method = "stabilizer" if clifford else "statevector"
    if method == "stabilizer" and not clifford:
        raise SizingError(
            f"profile {profile.name} runs every circuit with the stabilizer method, "
            "which simulates only Clifford circuits; this one has non-Clifford gates"
        )
    on_gpu_node = node.gpus > 0
    # LUMI-G style partitions are GPU partitions, billed per GPU: a job there
    # always holds at least one, even when it simulates on the CPU.
    min_gpus = 1 if on_gpu_node else 0

    if method == "stabilizer":
        estimate = estimate_runtime_seconds(num_qubits, num_operations, shots, clifford=True)
        partition, seconds = _choose_partition(profile, 1, _wanted_seconds(profile, estimate), partitions)
        # Tableau of 2n rows of 2n+1 bits.
        state = math.ceil(2 * num_qubits * (2 * num_qubits + 1) / 8)
        host = max(parse_memory(profile.slurm.mem), RUNNER_BASE_BYTES)
        return JobResources(
            method=method, precision=precision, device="CPU", custatevec=False,
            partition=partition.name, nodes=1, ntasks_per_node=1,
            cpus_per_task=max(profile.slurm.cpus_per_task, node.cpus_per_gpu * min_gpus),
            gpus_per_node=min_gpus, mem=format_memory(host),
            time_limit=format_time_limit(seconds), state_bytes=state,
            estimated_runtime_seconds=estimate,
        )
    if method != "statevector":
        # Other Aer methods (matrix_product_state, ...) have no closed-form
        # memory; they get the profile's defaults.
        resources = default_resources(profile)
        return JobResources(**{**resources.__dict__, "method": method, "precision": precision,
                               "gpus_per_node": min_gpus})

    state = statevector_bytes(num_qubits, precision=precision)
    needed = math.ceil(state * sim.memory_headroom)
    what = (f"a {num_qubits}-qubit {precision}-precision state vector "
            f"({format_bytes(state)} plus {sim.memory_headroom - 1:.0%} headroom)")
    largest = max((p for p in profile.partitions if p.auto), key=lambda p: p.max_nodes)

    if sim.device == "GPU" and on_gpu_node:
        per_gpu = parse_memory(node.gpu_memory)
        usable_per_node = _power_of_two_at_most(node.gpus)
        most_gpus = _power_of_two_at_most(largest.max_nodes * usable_per_node)
        available = most_gpus * per_gpu
        if needed > available:
            raise SizingError(
                f"needs {format_bytes(needed)} for {what}; the largest allocation of profile "
                f"{profile.name} holds {format_bytes(available)} "
                f"({max(1, most_gpus // usable_per_node)} nodes × {min(most_gpus, usable_per_node)} GPUs × "
                f"{format_bytes(per_gpu)}, partition {largest.name})"
            )
        gpus = max(min_gpus, _power_of_two_at_least(math.ceil(needed / per_gpu)))
        nodes, gpus_per_node = (1, gpus) if gpus <= usable_per_node else (gpus // usable_per_node, usable_per_node)
        # Across nodes every gate on a high qubit swaps chunks over the
        # network: count half the GPUs' rate there.
        rate = GPU_AMPLITUDE_UPDATES_PER_SECOND * gpus * (0.5 if nodes > 1 else 1.0)
        estimate = estimate_runtime_seconds(num_qubits, num_operations, shots, amplitude_updates_per_second=rate,
                                            shot_by_shot=shot_by_shot)
        partition, seconds = _choose_partition(profile, nodes, _wanted_seconds(profile, estimate), partitions)
        # The node's host memory in proportion to the GPUs used (LUMI-G: 60 GiB
        # per GCD), and never less than the profile's default.
        host = max(parse_memory(profile.slurm.mem), parse_memory(node.memory) * gpus_per_node // node.gpus)
        return JobResources(
            method=method, precision=precision, device="GPU", custatevec=sim.custatevec,
            partition=partition.name, nodes=nodes, ntasks_per_node=1,
            cpus_per_task=min(node.cores, node.cpus_per_gpu * gpus_per_node),
            gpus_per_node=gpus_per_node, mem=format_memory(host),
            time_limit=format_time_limit(seconds), state_bytes=state,
            estimated_runtime_seconds=estimate,
        )

    # CPU: one process on one node (Aer without MPI does not span nodes).
    available = parse_memory(node.memory)
    host_needed = needed + RUNNER_BASE_BYTES
    if host_needed > available:
        raise SizingError(
            f"needs {format_bytes(host_needed)} for {what} and the runner; the largest allocation of "
            f"profile {profile.name} holds {format_bytes(available)} (one node of partition {largest.name})"
        )
    cpus = profile.slurm.cpus_per_task
    if num_qubits >= PARALLEL_THRESHOLD_QUBITS:
        cpus = max(cpus, node.cores)
    estimate = estimate_runtime_seconds(num_qubits, num_operations, shots, shot_by_shot=shot_by_shot)
    partition, seconds = _choose_partition(profile, 1, _wanted_seconds(profile, estimate), partitions)
    return JobResources(
        method=method, precision=precision, device="CPU", custatevec=False,
        partition=partition.name, nodes=1, ntasks_per_node=1, cpus_per_task=cpus,
        gpus_per_node=min_gpus, mem=format_memory(max(parse_memory(profile.slurm.mem), host_needed)),
        time_limit=format_time_limit(seconds), state_bytes=state,
        estimated_runtime_seconds=estimate,
    )

