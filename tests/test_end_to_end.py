"""The whole path, as separate processes: HTTP → database → scheduler → runner → poller → HTTP.

Through the embedded default (SQLite, local executor) and through the real
local Slurm cluster on PostgreSQL, the way it runs in production.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import BELL, CORPUS
from tests.helpers import shot_by_shot_circuit
from tests.slurm_fixtures import scancel_unended_packs, slurm_states
from tests.stack import Records, gateway_stack, wait_until

pytestmark = pytest.mark.e2e


def _assert_bell(status: dict, shots: int) -> None:
    assert status["status"] == "completed", status
    counts = status["result"]["counts"]
    assert set(counts) <= {"00", "11"}
    assert sum(counts.values()) == shots
    # 1024 fair coin flips: 512 ± 5 standard deviations (16 each).
    assert all(abs(counts.get(key, 0) - shots / 2) < 80 for key in ("00", "11"))


@pytest.mark.parametrize("preload", [False, True], ids=["fork", "preload"])
def test_embedded_default_runs_the_bell_circuit(tmp_path, preload):
    with gateway_stack(tmp_path, database_url=f"sqlite:///{tmp_path / 'qcos.db'}", preload=preload) as stack:
        job = stack.submit(BELL, 1024)
        _assert_bell(stack.wait_final(job["job_id"], timeout=90), 1024)


@pytest.fixture
def slurm_stack(tmp_path, slurm_cluster, postgres_url):
    with gateway_stack(tmp_path, database_url=postgres_url, executor="slurm", preload=True) as stack:
        yield stack


@pytest.mark.slurm
@pytest.mark.postgres
class TestThroughSlurm:
    def test_bell_runs_as_a_slurm_batch_job(self, slurm_stack):
        job = slurm_stack.submit(BELL, 1024, job_id="bell-e2e-slurm")
        health = slurm_stack.wait_connected()
        assert health["status"] == "healthy" and "degraded" not in health
        _assert_bell(slurm_stack.wait_final(job["job_id"]), 1024)
        # The batch job is in Slurm's accounting under our name (slurmdbd
        # may take a few seconds to index a just-finished job by time window).
        deadline = time.monotonic() + 30
        while True:
            accounting = subprocess.run(
                ["sacct", "-P", "--noheader", "-X", "--format=JobName,State", "--starttime=now-1hour"],
                capture_output=True, text=True, timeout=30,
            ).stdout.splitlines()
            packs = [line for line in accounting if line.startswith("qcos-pack-") and line.endswith("|COMPLETED")]
            if packs or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert packs, accounting

    def test_a_circuit_that_fails_in_the_batch_job_ends_failed_with_its_reason(self, slurm_stack):
        job = slurm_stack.submit(BELL, 10)
        circuit = Path(slurm_stack.env["QCOS_STATE_DIR"]) / "jobs" / job["job_id"] / "circuit.qasm"
        deadline = time.monotonic() + 30
        while not circuit.exists():  # written by the dispatcher with the pack
            assert time.monotonic() < deadline
            time.sleep(0.05)
        circuit.unlink()
        status = slurm_stack.wait_final(job["job_id"])
        assert status["status"] == "failed" and status["result"] is None
        assert "circuit.qasm" in status["error"]
        response = requests.get(f"{slurm_stack.base_url}/results/{job['job_id']}", headers=slurm_stack.headers(),
                                timeout=10)
        assert response.json()["error_code"] == "JOB_FAILED"

    def test_a_job_cancelled_while_its_pack_runs_is_cancelled_in_slurm_and_stays_failed(self, slurm_stack):
        # Alone in its pack, and slow: once it is cancelled the pack has nothing
        # left to run, so the poller scancels it.
        records = Records(slurm_stack.env["QCOS_DATABASE_URL"])
        try:
            job = slurm_stack.submit(shot_by_shot_circuit(), 100_000, job_id="cancel-e2e-slurm")
            wait_until(lambda: records.status(job["job_id"]) == "processing", timeout=120, what="the pack running")
            response = requests.delete(f"{slurm_stack.base_url}/jobs/{job['job_id']}",
                                       headers=slurm_stack.headers(), timeout=30)
            assert response.json()["status"] == "failed"
            pack = records.pack(records.jobs([job["job_id"]])[job["job_id"]].pack_id)
            wait_until(lambda: records.pack(pack.id).state == "ended", timeout=60, what="the pack ended")
            status = requests.get(f"{slurm_stack.base_url}/status/{job['job_id']}", headers=slurm_stack.headers(),
                                  timeout=10).json()
        finally:
            scancel_unended_packs(records)
            records.close()
        assert (status["status"], status["error"], status["result"]) == ("failed", "cancelled by the user", None)
        assert slurm_states([pack.scheduler_job_id])[pack.scheduler_job_id].startswith("CANCELLED")

    def test_admin_sees_the_cluster_and_a_dry_run_asks_slurm(self, slurm_stack):
        import re

        from tests.stack import BIN, REPO_ROOT

        issued = subprocess.run([str(BIN / "qcos"), "keys", "issue", "e2e@example.org", "--admin"],
                                env=slurm_stack.env, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        admin = {"X-API-Key": re.search(r"api_key: (\S+)", issued.stdout).group(1)}
        cluster = requests.get(f"{slurm_stack.base_url}/admin/cluster", headers=admin, timeout=30).json()
        assert cluster["executor"] == "slurm" and "debug" in [p["partition"] for p in cluster["partitions"]]
        queue = requests.get(f"{slurm_stack.base_url}/admin/queue", headers=admin, timeout=30).json()
        assert queue["executor"] == "slurm" and isinstance(queue["jobs"], list)
        dry = requests.post(f"{slurm_stack.base_url}/execute?dry_run=true", json={"qasm": BELL, "shots": 10},
                            headers=slurm_stack.headers(), timeout=30).json()
        assert dry["slurm_test_only"]["accepted"] is True and dry["slurm_test_only"]["partition"] == "debug"

    def test_qasmbench_circuits_agree_with_a_direct_aer_run(self, slurm_stack):
        shots = 4000
        submitted = {name: slurm_stack.submit(_corpus(name), shots)["job_id"] for name in QASMBENCH_SAMPLE}
        for name, job_id in submitted.items():
            status = slurm_stack.wait_final(job_id)
            assert status["status"] == "completed", (name, status)
            ours = status["result"]["counts"]
            assert sum(ours.values()) == shots
            distance = _total_variation(ours, _direct_aer_counts(_corpus(name), shots))
            assert distance < 0.08, (name, distance)


#: Small QASMBench circuits with different shapes: deterministic outputs
#: (adder, bit order shows at once), uniform-ish ones, mid-circuit measurement.
QASMBENCH_SAMPLE = ["adder_n4", "grover_n2", "qft_n4", "teleportation_n3", "wstate_n3", "toffoli_n3"]


def _corpus(name: str) -> str:
    return (Path(CORPUS) / "small" / name / f"{name}.qasm").read_text()


def _direct_aer_counts(qasm: str, shots: int) -> dict[str, int]:
    from qiskit import qasm2, transpile
    from qiskit_aer import AerSimulator

    circuit = qasm2.loads(qasm, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    simulator = AerSimulator()
    return simulator.run(transpile(circuit, simulator), shots=shots, seed_simulator=7).result().get_counts()


def _total_variation(a: dict[str, int], b: dict[str, int]) -> float:
    total_a, total_b = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a.get(k, 0) / total_a - b.get(k, 0) / total_b) for k in set(a) | set(b))


@pytest.mark.slurm
@pytest.mark.postgres
def test_the_gateway_reaches_slurm_over_ssh(tmp_path, slurm_cluster, sshd_server, postgres_url):
    """The LUMI setup in miniature: Slurm commands on a "login node" over SSH,
    work dirs uploaded and results read back by SFTP, nothing shared but SSH."""
    remote_root = tmp_path / "cluster-scratch"  # the cluster's file system, reached only over SFTP
    env = {"QCOS_SSH_HOST": sshd_server.host, "QCOS_SSH_PORT": str(sshd_server.port),
           "QCOS_SSH_USER": sshd_server.username, "QCOS_SSH_KEY": str(sshd_server.user_key),
           "QCOS_SSH_KNOWN_HOSTS": str(sshd_server.known_hosts), "QCOS_WORK_ROOT": str(remote_root)}
    logins_before = sshd_server.logins()
    with gateway_stack(tmp_path, database_url=postgres_url, executor="slurm", env=env) as stack:
        assert "degraded" not in stack.wait_connected()  # squeue and sacct answer over SSH
        job = stack.submit(BELL, 512, job_id="bell-over-ssh")
        _assert_bell(stack.wait_final(job["job_id"]), 512)
        assert (remote_root / "bell-over-ssh" / "result.json").exists()
        assert list((remote_root / "_packs").glob("pack-*/progress.jsonl"))
        assert not list((tmp_path / "state" / "staging").glob(".pack-*"))
        dry = requests.post(f"{stack.base_url}/execute?dry_run=true", json={"qasm": BELL, "shots": 10},
                            headers=stack.headers(), timeout=30).json()
        assert dry["slurm_test_only"]["accepted"] is True
    # One connection per process (2 gunicorn workers, the poller, the CLI's none),
    # not one per command: dozens of Slurm calls and SFTP transfers happened.
    assert sshd_server.logins() - logins_before <= 4


@pytest.mark.slurm
@pytest.mark.postgres
def test_a_pack_whose_sbatch_answer_was_lost_is_found_by_its_name(tmp_path, slurm_cluster, postgres_url, mocker):
    """The dispatcher lost sbatch's answer (or died right after sbatch): the
    next recovery finds the batch job by its name (qcos-pack-<hex>) and adopts
    it instead of submitting the pack again."""
    from datetime import timedelta

    from gateway import create_app, dispatcher
    from gateway.config import Settings
    from gateway.migrations import upgrade_database
    from gateway.models import utcnow
    from hpc_jobs.executors.base import SubmissionUnconfirmed
    from tests.gateway.test_dispatch import _drive

    upgrade_database(postgres_url)
    settings = Settings.from_env({"QCOS_STATE_DIR": str(tmp_path / "state"), "QCOS_EXECUTOR": "slurm",
                                          "QCOS_DATABASE_URL": postgres_url}).model_copy(update={"submit_recovery_seconds": 0})
    app = create_app({"QCOS_SETTINGS": settings})
    runtime = app.extensions["qcos"]
    from tests.conftest import make_user

    key = make_user(runtime)[1]
    client = app.test_client()
    ids = [client.post("/execute", json={"qasm": BELL, "shots": 64}, headers={"X-API-Key": key}).get_json()["job_id"]
           for _ in range(3)]
    time.sleep(settings.pack_linger_seconds + 0.1)
    [pack_id] = dispatcher.plan_cycle(runtime, now=utcnow())
    real_submit = runtime.executor.submit
    submitted = []

    def answer_lost(work_dir, **kwargs):
        submitted.append(real_submit(work_dir, **kwargs))
        raise SubmissionUnconfirmed("sbatch printed no job id")

    mocker.patch.object(runtime.executor, "submit", side_effect=answer_lost)
    dispatcher.submit_cycle(runtime, now=utcnow())
    deadline = time.monotonic() + 30
    while not dispatcher.recover_cycle(runtime, now=utcnow() + timedelta(seconds=1)):
        assert time.monotonic() < deadline  # slurmdbd indexes a new job by name within moments
        time.sleep(1)
    mocker.stopall()
    jobs = _drive(runtime, ids)
    assert {job.status for job in jobs.values()} == {"completed"}
    assert {job.scheduler_job_id for job in jobs.values()} == set(submitted) and len(submitted) == 1
