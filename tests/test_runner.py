"""hpc_jobs.runner: what the batch job writes into the work dir, run as the sbatch script runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from qiskit import transpile
from qiskit_aer import AerSimulator

from hpc_jobs import runner
from hpc_jobs.circuits import load_circuit
from hpc_jobs.workdir import RunParameters

REPO = Path(__file__).resolve().parents[1]
QASMBENCH = REPO.parent / "shared" / "corpus" / "qasmbench"
BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'
CPU_ONLY = "GPU" not in AerSimulator().available_devices()


def make_work_dir(path: Path, circuit: str | None, **params) -> Path:
    if circuit is not None:
        (path / "circuit.qasm").write_text(circuit)
    fields = {"job_id": "job-1", "shots": 1000, "seed": 7, **params}
    (path / "params.json").write_text(RunParameters(**fields).to_json())
    return path


def run_runner(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hpc_jobs.runner", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def total_variation_distance(p: dict[str, int], q: dict[str, int]) -> float:
    p_total, q_total = sum(p.values()), sum(q.values())
    return 0.5 * sum(abs(p.get(k, 0) / p_total - q.get(k, 0) / q_total) for k in p.keys() | q.keys())


# --- success ----------------------------------------------------------------


def test_bell_circuit_writes_counts_and_what_ran(tmp_path):
    work_dir = make_work_dir(tmp_path, BELL, shots=1000)

    completed = run_runner(str(work_dir))

    assert completed.returncode == 0, completed.stderr
    assert not (work_dir / "error.json").exists()
    result = read(work_dir / "result.json")
    assert set(result["counts"]) <= {"00", "11"}
    assert sum(result["counts"].values()) == 1000
    assert result["shots"] == 1000 and result["num_qubits"] == 2 and result["seed"] == 7
    assert result["backend"] == "aer_simulator"
    assert result["device"] == "CPU"
    assert result["method"] == "stabilizer"  # what "automatic" chose for a Clifford circuit
    assert isinstance(result["execution_time_seconds"], float) and result["execution_time_seconds"] >= 0
    assert result["qiskit_aer_version"]


def test_the_same_seed_gives_the_same_counts(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_work_dir(tmp_path / "a", BELL, seed=99)
    second = make_work_dir(tmp_path / "b", BELL, seed=99)
    assert run_runner(str(first)).returncode == 0
    assert run_runner(str(second)).returncode == 0
    assert read(first / "result.json")["counts"] == read(second / "result.json")["counts"]


def test_mid_circuit_measurement_and_reset_keep_qiskit_bit_order(tmp_path):
    # c[0] is a coin toss; c[1] is always 1 after reset and x. Qiskit prints
    # c[0] rightmost, so every key starts with "1".
    circuit = (
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[2];\n'
        "h q[0];\nmeasure q[0] -> c[0];\nreset q[0];\nx q[0];\nmeasure q[0] -> c[1];\n"
    )
    work_dir = make_work_dir(tmp_path, circuit, method="statevector")

    assert run_runner(str(work_dir)).returncode == 0
    result = read(work_dir / "result.json")
    assert set(result["counts"]) == {"10", "11"}
    assert result["method"] == "statevector"


def test_a_100_qubit_clifford_circuit_runs_with_the_stabilizer_method(tmp_path):
    # Far beyond a state vector in memory: "automatic" must be free to choose.
    ghz = "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(99))
    circuit = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[100];\ncreg c[100];\nh q[0];\n{ghz}measure q -> c;\n'
    work_dir = make_work_dir(tmp_path, circuit, shots=100)

    completed = run_runner(str(work_dir))
    assert completed.returncode == 0, completed.stderr
    result = read(work_dir / "result.json")
    assert set(result["counts"]) <= {"0" * 100, "1" * 100}
    assert result["method"] == "stabilizer" and result["num_qubits"] == 100


# Chosen because reversing their keys moves the distribution far (a bit-order
# bug fails the check); bell_n4 and qec_sm_n5 have several registers.
QASMBENCH_CASES = ["bell_n4", "linearsolver_n3", "shor_n5", "qec_sm_n5", "teleportation_n3"]


@pytest.mark.skipif(not QASMBENCH.is_dir(), reason=f"QASMBench corpus not at {QASMBENCH}")
@pytest.mark.parametrize("name", QASMBENCH_CASES)
def test_qasmbench_counts_match_a_direct_aer_run(tmp_path, name):
    source = (QASMBENCH / "small" / name / f"{name}.qasm").read_text()
    shots = 4000
    work_dir = make_work_dir(tmp_path, source, shots=shots, seed=11)

    completed = run_runner(str(work_dir))
    assert completed.returncode == 0, completed.stderr
    counts = read(work_dir / "result.json")["counts"]

    simulator = AerSimulator(seed_simulator=12345)
    circuit = load_circuit(source)
    reference = simulator.run(transpile(circuit, simulator), shots=20_000).result().get_counts()
    reversed_reference = {key[::-1]: value for key, value in reference.items()}
    # <= 16 outcomes at 4000 vs 20000 shots: sampling noise stays near 0.04.
    tolerance = 0.1
    assert sum(counts.values()) == shots
    assert total_variation_distance(counts, reference) < tolerance
    assert total_variation_distance(reference, reversed_reference) > 2 * tolerance


# --- failure ----------------------------------------------------------------


def assert_failed(work_dir: Path, completed: subprocess.CompletedProcess, words: str) -> str:
    assert completed.returncode == 1
    assert not (work_dir / "result.json").exists()
    reason = read(work_dir / "error.json")["error"]
    assert words in reason
    assert reason in completed.stderr
    return reason


def test_a_garbage_circuit_fails_with_the_position(tmp_path):
    work_dir = make_work_dir(tmp_path, "OPENQASM 2.0;\nthis is not qasm;\n")
    reason = assert_failed(work_dir, run_runner(str(work_dir)), "circuit.qasm: line 2, column 1")
    assert "not defined" in reason or "needed" in reason


def test_a_missing_params_file_fails(tmp_path):
    (tmp_path / "circuit.qasm").write_text(BELL)
    assert_failed(tmp_path, run_runner(str(tmp_path)), "params.json is missing")


def test_a_missing_circuit_file_fails(tmp_path):
    work_dir = make_work_dir(tmp_path, None)
    assert_failed(work_dir, run_runner(str(work_dir)), "circuit.qasm is missing")


def test_a_failure_removes_a_previous_attempts_result(tmp_path):
    work_dir = make_work_dir(tmp_path, BELL, method="no_such_method")
    (work_dir / "result.json").write_text('{"counts": {"00": 1}}')
    assert_failed(work_dir, run_runner(str(work_dir)), "unknown simulation method 'no_such_method'")


def test_an_aer_failure_is_reported(tmp_path):
    # 40 qubits of entangled state vector need 16 TiB; Aer refuses.
    circuit = (
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[40];\ncreg c[40];\n'
        "h q;\nt q;\ncx q[0],q[39];\nmeasure q -> c;\n"
    )
    work_dir = make_work_dir(tmp_path, circuit, method="statevector")
    assert_failed(work_dir, run_runner(str(work_dir)), "Insufficient memory")


def test_usage_errors_exit_2(tmp_path):
    assert run_runner().returncode == 2
    assert run_runner(str(tmp_path / "nowhere")).returncode == 2
    assert not (tmp_path / "nowhere").exists()


# --- devices ----------------------------------------------------------------


@pytest.mark.skipif(not CPU_ONLY, reason="this Aer build has a GPU")
def test_a_gpu_request_without_a_gpu_runs_on_the_cpu_and_says_so(tmp_path):
    work_dir = make_work_dir(tmp_path, BELL, device="GPU", custatevec=True)

    assert run_runner(str(work_dir)).returncode == 0
    result = read(work_dir / "result.json")
    assert result["device"] == "CPU"
    assert result["device_requested"] == "GPU"
    assert result["backend"] == "aer_simulator"


def test_gpu_and_custatevec_are_asked_of_aer_when_a_gpu_is_listed(tmp_path, mocker):
    methods, _ = runner.aer_capabilities()
    mocker.patch.object(runner, "aer_capabilities", return_value=(methods, ("CPU", "GPU")))
    constructed = []

    def aer_simulator(**options):
        constructed.append(options)
        # Run on the CPU: this machine has no GPU, and the result must say so.
        return AerSimulator(**{**options, "device": "CPU", "cuStateVec_enable": False})

    mocker.patch.object(runner, "AerSimulator", side_effect=aer_simulator)
    runner._simulator.cache_clear()
    runner._basis.cache_clear()
    work_dir = make_work_dir(tmp_path, BELL, device="GPU", custatevec=True, precision="single")

    result = runner.run_job(work_dir)
    runner._simulator.cache_clear()
    runner._basis.cache_clear()

    # The seed goes to run(), so one simulator serves a whole pack.
    assert constructed == [
        {"method": "automatic", "precision": "single", "device": "GPU", "cuStateVec_enable": True}
    ]
    assert result["device"] == "CPU" and result["backend"] == "aer_simulator"


@pytest.mark.parametrize(
    "requested, custatevec, devices, expected",
    [
        ("CPU", True, ("CPU", "GPU"), {"device": "CPU"}),
        ("GPU", False, ("CPU",), {"device": "CPU"}),
        ("GPU", True, ("CPU",), {"device": "CPU"}),
        ("GPU", False, ("CPU", "GPU"), {"device": "GPU"}),
        ("GPU", True, ("CPU", "GPU"), {"device": "GPU", "cuStateVec_enable": True}),
    ],
)
def test_simulator_options(requested, custatevec, devices, expected):
    params = RunParameters(job_id="j", shots=1, seed=3, device=requested, custatevec=custatevec)
    assert runner.simulator_options(params, devices) == {
        "method": "automatic",
        "precision": "double",
        "seed_simulator": 3,
        **expected,
    }


# --- what the compute node must not need ------------------------------------


def test_the_runner_imports_neither_flask_sqlalchemy_nor_the_gateway():
    probe = (
        "import sys, hpc_jobs.runner\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'sqlalchemy', 'gateway', 'werkzeug'})\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_only_rank_zero_writes_the_outcome(tmp_path):
    """In a multi-node job every MPI rank runs the runner; one result file only."""
    import json as _json
    import subprocess as _subprocess
    import sys as _sys

    from hpc_jobs.workdir import CIRCUIT_FILE, PARAMS_FILE, RESULT_FILE, RunParameters

    (tmp_path / CIRCUIT_FILE).write_text(
        'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1]; x q[0]; measure q -> c;')
    (tmp_path / PARAMS_FILE).write_text(RunParameters(job_id="ranks", shots=8, seed=1).to_json())
    import os as _os

    for rank, writes in (("1", False), ("0", True)):
        done = _subprocess.run([_sys.executable, "-m", "hpc_jobs.runner", str(tmp_path)],
                               env={**_os.environ, "SLURM_PROCID": rank}, capture_output=True, timeout=120)
        assert done.returncode == 0
        assert (tmp_path / RESULT_FILE).exists() is writes
    assert _json.loads((tmp_path / RESULT_FILE).read_text())["counts"] == {"1": 8}
