"""Sizing a job from its circuit's shape and a cluster profile (hpc_jobs.sizing)."""

from __future__ import annotations

import pytest

from hpc_jobs.profiles import ProfileError, load_profile, parse_time_limit
from hpc_jobs.sizing import (
    SizingError,
    estimate_runtime_seconds,
    format_memory,
    format_time_limit,
    size_job,
    statevector_bytes,
)

GIB = 1 << 30
TIB = 1 << 40
ACCOUNT = {"slurm": {"account": "project_465000001"}}


@pytest.fixture(scope="module")
def lumi():
    return load_profile("lumi-g", overrides=ACCOUNT)


@pytest.fixture(scope="module")
def dev():
    return load_profile("dev")


@pytest.mark.parametrize(
    ("num_qubits", "precision", "expected"),
    [(1, "double", 32), (30, "double", 16 * GIB), (30, "single", 8 * GIB), (40, "double", 16 * TIB)],
)
def test_statevector_bytes_are_16_or_8_times_two_to_the_n(num_qubits, precision, expected):
    assert statevector_bytes(num_qubits, precision=precision) == expected


@pytest.mark.parametrize(
    ("profile_name", "num_qubits", "clifford", "method", "device", "nodes", "gpus_per_node", "partition"),
    [
        ("lumi-g", 100, True, "stabilizer", "CPU", 1, 1, "small-g"),    # Clifford: O(n²), one GCD held
        ("lumi-g", 2, False, "statevector", "GPU", 1, 1, "small-g"),
        ("lumi-g", 30, False, "statevector", "GPU", 1, 1, "small-g"),    # 16 GiB ×1.25 in one 64 GB GCD
        ("lumi-g", 33, False, "statevector", "GPU", 1, 4, "small-g"),    # 160 GiB → 3 GCDs → 4
        ("lumi-g", 34, False, "statevector", "GPU", 1, 8, "small-g"),    # 320 GiB → 5 GCDs → 8
        ("lumi-g", 36, False, "statevector", "GPU", 4, 8, "small-g"),    # 32 GCDs: small-g's 4 nodes
        ("lumi-g", 37, False, "statevector", "GPU", 8, 8, "standard-g"),  # beyond small-g
        ("lumi-g", 44, False, "statevector", "GPU", 1024, 8, "standard-g"),
        ("nvidia", 33, False, "statevector", "GPU", 1, 2, "gpu"),        # 160 GiB over 80 GB GPUs
        ("dev", 100, True, "stabilizer", "CPU", 1, 0, "debug"),
        ("dev", 20, False, "statevector", "CPU", 1, 0, "debug"),
    ],
)
def test_method_gpus_nodes_and_partition(profile_name, num_qubits, clifford, method, device, nodes,
                                         gpus_per_node, partition):
    profile = load_profile(profile_name, overrides=ACCOUNT if profile_name == "lumi-g" else None)
    resources = size_job(profile, num_qubits=num_qubits, num_operations=100, shots=1000, clifford=clifford)
    assert (resources.method, resources.device) == (method, device)
    assert (resources.nodes, resources.gpus_per_node, resources.partition) == (nodes, gpus_per_node, partition)
    assert resources.gpus & (resources.gpus - 1) == 0  # a power of two (or zero)


def test_thirty_qubits_double_precision_is_16_gib(lumi):
    resources = size_job(lumi, num_qubits=30, num_operations=10, shots=100)
    assert resources.state_bytes == 16 * GIB
    assert (resources.cpus_per_task, resources.mem) == (7, "60G")  # one GCD's share of the node


def test_single_precision_halves_the_state_and_the_gpus(lumi):
    double = size_job(lumi, num_qubits=34, num_operations=10, shots=100)
    single = size_job(lumi, num_qubits=34, num_operations=10, shots=100, precision="single")
    assert single.state_bytes * 2 == double.state_bytes
    assert (single.precision, single.gpus * 2) == ("single", double.gpus)


def test_a_state_beyond_the_largest_allocation_is_refused_with_needed_and_available(lumi):
    with pytest.raises(SizingError) as caught:
        size_job(lumi, num_qubits=45, num_operations=10, shots=100)
    message = str(caught.value)
    assert "needs 640.0 TiB" in message and "45-qubit double-precision state vector" in message
    assert "holds 512.0 TiB" in message and "1024 nodes × 8 GPUs × 64.0 GiB" in message
    assert "standard-g" in message


def test_a_cpu_profile_refuses_a_state_beyond_one_node(dev):
    with pytest.raises(SizingError, match=r"needs .* GiB .* holds 16.0 GiB"):
        size_job(dev, num_qubits=30, num_operations=10, shots=100)


def test_lumi_without_a_valid_account_is_refused_before_sbatch(lumi):
    with pytest.raises(ProfileError, match="project_"):
        load_profile("lumi-g")
    for account in ("", "465000001", "project_abc", "myproject"):
        with pytest.raises(ProfileError, match="not a valid account"):
            size_job(lumi.model_copy(update={"slurm": lumi.slurm.model_copy(update={"account": account})}),
                     num_qubits=2, num_operations=1, shots=1)


def test_walltime_is_twice_the_estimate_plus_five_minutes(dev):
    resources = size_job(dev, num_qubits=20, num_operations=100_000, shots=10)
    wanted = 2 * resources.estimated_runtime_seconds + 300
    assert parse_time_limit(resources.time_limit) == pytest.approx(wanted, abs=60)


def test_walltime_is_clamped_to_the_longest_partition_limit(lumi, dev):
    huge = {"num_qubits": 36, "num_operations": 10**9, "shots": 10}
    assert size_job(lumi, **huge).time_limit == "3-00:00:00"                 # small-g's limit
    assert size_job(lumi, **{**huge, "num_qubits": 40}).time_limit == "2-00:00:00"  # standard-g's
    assert size_job(dev, num_qubits=20, num_operations=10**9, shots=10).time_limit == "01:00:00"


def test_walltime_never_drops_below_the_profile_default(lumi):
    assert size_job(lumi, num_qubits=2, num_operations=1, shots=1).time_limit == "00:15:00"


def test_a_longer_job_moves_to_the_next_partition_whose_limit_holds_it(dev):
    from hpc_jobs.profiles import Partition

    two = dev.model_copy(update={"partitions": (Partition(name="short", max_nodes=1, max_time="01:00:00"),
                                                Partition(name="long", max_nodes=1, max_time="1-00:00:00"))})
    assert size_job(two, num_qubits=10, num_operations=10, shots=10).partition == "short"
    long_job = size_job(two, num_qubits=24, num_operations=50_000, shots=10)  # about 2.3 h of estimate
    assert (long_job.partition, parse_time_limit(long_job.time_limit) > 3600) == ("long", True)


@pytest.mark.parametrize(("seconds", "text"), [(1, "00:01:00"), (3600, "01:00:00"), (90061, "1-01:02:00"),
                                                (259200, "3-00:00:00")])
def test_time_limits_are_formatted_for_slurm(seconds, text):
    assert format_time_limit(seconds) == text


@pytest.mark.parametrize(("num_bytes", "text"), [(60 * GIB, "60G"), (1536 << 20, "1536M"), (1, "1M")])
def test_memory_is_formatted_for_slurm(num_bytes, text):
    assert format_memory(num_bytes) == text


def test_runtime_estimate_is_kept_for_the_gateway():
    assert estimate_runtime_seconds(2, 3, 1024) >= 1
    assert estimate_runtime_seconds(30, 100, 1024) > estimate_runtime_seconds(20, 100, 1024)
    assert estimate_runtime_seconds(100, 100, 1024, clifford=True) < 60


def test_a_profile_forcing_stabilizer_refuses_non_clifford_circuits(dev):
    forced = dev.model_copy(update={"simulator": dev.simulator.model_copy(update={"method": "stabilizer"})})
    with pytest.raises(SizingError, match="Clifford"):
        size_job(forced, num_qubits=3, num_operations=3, shots=10, clifford=False)


def test_run_options_carry_method_and_device_to_params_json(lumi):
    options = size_job(lumi, num_qubits=30, num_operations=10, shots=100).run_options()
    assert options == {"method": "statevector", "device": "GPU", "custatevec": False, "precision": "double"}



def test_shot_by_shot_circuits_pay_their_operations_per_shot():
    from hpc_jobs.sizing import estimate_runtime_seconds

    once = estimate_runtime_seconds(14, 100, 200_000)
    per_shot = estimate_runtime_seconds(14, 100, 200_000, shot_by_shot=True)
    assert once < 10 and per_shot > 100 * once


def test_a_tiers_preferred_partitions_come_first_then_the_profile_order(lumi):
    assert size_job(lumi, num_qubits=30, num_operations=10, shots=10).partition == "small-g"
    preferring = size_job(lumi, num_qubits=30, num_operations=10, shots=10, partitions=("standard-g",))
    assert preferring.partition == "standard-g"
    # A preferred partition that cannot hold the job is passed over, not forced.
    big = size_job(lumi, num_qubits=38, num_operations=10, shots=10, partitions=("small-g",))
    assert big.partition == "standard-g" and big.nodes > 4
    # A development partition sizing never picks by itself may be preferred by name.
    assert size_job(lumi, num_qubits=30, num_operations=10, shots=10, partitions=("dev-g",)).partition == "dev-g"
    with pytest.raises(SizingError, match="no partition gpu"):
        size_job(lumi, num_qubits=30, num_operations=10, shots=10, partitions=("gpu",))
