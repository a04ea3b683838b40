"""Packs on the real Slurm dev cluster and PostgreSQL, as separate processes.

Gunicorn and ``qcos poller`` (with its dispatcher) run as an operator starts
them (:func:`tests.stack.gateway_stack`) and slurmctld runs the packs. What
the API does not show (the pack a job ran in, how often it was dispatched,
the pack's Slurm id) is read from the database. A test's Slurm jobs that are
still alive when it ends are cancelled, so the next test finds the node free.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from gateway.models import Pack
from tests.helpers import shot_by_shot_circuit
from tests.slurm_fixtures import scancel_unended_packs, slurm_states
from tests.stack import BIN, REPO_ROOT, Records, Stack, gateway_stack, second_poller, wait_until
from tests.test_end_to_end import _corpus, _direct_aer_counts, _total_variation

pytestmark = [pytest.mark.slurm, pytest.mark.postgres, pytest.mark.e2e]

#: 5–10 ms per shot on one core: 1,000 shots keep a runner busy for seconds,
#: 100,000 for far longer than any test waits (those packs are killed).
SLOW = shot_by_shot_circuit()


@contextmanager
def packs_stack(tmp_path: Path, postgres_url: str, *, tier: str = "enterprise", **env: str):
    """A gateway on Slurm and PostgreSQL with ``env`` settings; yields
    ``(stack, records)``. On exit, every Slurm job of a pack not ended is
    scancelled. The stack's user is ``enterprise``: no daily limit, 300 requests a minute."""
    records = Records(postgres_url)
    try:
        with gateway_stack(tmp_path, database_url=postgres_url, executor="slurm", tier=tier, env=env) as stack:
            yield stack, records
    finally:
        scancel_unended_packs(records)
        records.close()


def progress_records(pack: Pack) -> list[dict]:
    """The lines the pack's runner appended to its ``progress.jsonl``."""
    path = Path(pack.work_dir) / "progress.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def another_user(stack: Stack, email: str, tier: str) -> Stack:
    """``stack`` as seen by a new user of ``tier`` (``qcos users create``)."""
    created = subprocess.run([str(BIN / "qcos"), "users", "create", "--email", email, "--tier", tier],
                             env=stack.env, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60)
    return dataclasses.replace(stack, api_key=re.search(r"api_key: (\S+)", created.stdout).group(1))


#: Non-Clifford QASMBench circuits: all simulated as state vectors, so they share a dispatch class (and a pack).
MIXED = ["adder_n4", "qft_n4", "teleportation_n3", "toffoli_n3", "fredkin_n3", "simon_n6", "variational_n4"]


def test_a_circuit_that_fails_in_the_runner_fails_alone_and_its_pack_mates_agree_with_aer(
        tmp_path, slurm_cluster, postgres_url):
    shots = 4000
    circuits = [{"qasm": _corpus(name), "shots": shots} for name in MIXED]
    bad_index = 3
    circuits.insert(bad_index, {"qasm": _corpus("qaoa_n3"), "shots": shots})
    with packs_stack(tmp_path, postgres_url) as (stack, records):
        batch = stack.submit_batch(circuits)
        bad = batch["job_ids"][bad_index]
        circuit = stack.work_root / bad / "circuit.qasm"
        wait_until(circuit.exists, timeout=60, what="the pack staged", pause=0.02)
        # Lost as a scratch purge would lose it: after staging, before the runner (which
        # reads it only after importing Qiskit) gets to it.
        circuit.unlink()
        done = stack.wait_batch(batch["batch_id"])
        jobs = records.jobs(batch["job_ids"])
        [pack_id] = {job.pack_id for job in jobs.values()}
        pack = records.pack(pack_id)
        progress = progress_records(pack)
    outcomes = {job["job_id"]: job for job in done["jobs"]}
    assert done["counts"] == {"queued": 0, "processing": 0, "completed": len(MIXED), "failed": 1}
    assert outcomes[bad]["status"] == "failed" and outcomes[bad]["result"] is None
    assert "circuit.qasm is missing" in outcomes[bad]["error"]
    good = [job_id for index, job_id in enumerate(batch["job_ids"]) if index != bad_index]
    for name, job_id in zip(MIXED, good):
        counts = outcomes[job_id]["result"]["counts"]
        assert sum(counts.values()) == shots
        assert _total_variation(counts, _direct_aer_counts(_corpus(name), shots)) < 0.08, name
    # One batch job ran all eight, each once, and ended cleanly despite the bad one.
    assert pack.job_count == len(circuits) and pack.error is None
    assert {job.dispatch_count for job in jobs.values()} == {1}
    assert [r["job_id"] for r in progress if "job_id" in r] == batch["job_ids"]
    assert slurm_states([pack.scheduler_job_id])[pack.scheduler_job_id] == "COMPLETED"


def _lower_time_limit(scheduler_job_id: str) -> None:
    # One minute is Slurm's resolution: slurmctld ends the job TIMEOUT at its
    # next time-limit check (every 30 s) after a minute of running.
    subprocess.run(["scontrol", "update", f"JobId={scheduler_job_id}", "TimeLimit=1"], check=True, timeout=30)


def _admin_scancel(scheduler_job_id: str) -> None:
    subprocess.run(["scancel", scheduler_job_id], check=True, timeout=30)


@pytest.mark.parametrize(("kill", "reason", "slurm_state"), [
    (_lower_time_limit, "reached its time limit", "TIMEOUT"),
    (_admin_scancel, "was cancelled", "CANCELLED"),
], ids=["time-limit", "admin-scancel"])
def test_a_pack_that_dies_keeps_its_results_and_runs_the_rest_once_more_then_fails_them(
        tmp_path, slurm_cluster, postgres_url, kill, reason, slurm_state):
    # The first job completes; the slow one is being simulated when the pack
    # dies; the last never starts. A small-job runtime bound of an hour lets
    # the slow one share the pack.
    circuits = [{"qasm": _corpus("qft_n4"), "shots": 1000}, {"qasm": SLOW, "shots": 100_000},
                {"qasm": _corpus("toffoli_n3"), "shots": 1000}]
    with packs_stack(tmp_path, postgres_url, QCOS_PACK_MAX_JOB_SECONDS="3600") as (stack, records):
        ids = stack.submit_batch(circuits)["job_ids"]
        first, slow, last = ids
        wait_until(lambda: records.status(first) == "completed" and records.status(slow) == "processing",
                   timeout=120, what="the first job done, the slow one running")
        jobs = records.jobs(ids)
        assert jobs[first].pack_id == jobs[slow].pack_id == jobs[last].pack_id
        first_pack = records.pack(jobs[first].pack_id)
        kill(first_pack.scheduler_job_id)

        def second_pack_running():
            pack_ids = {job.pack_id for job in records.jobs([slow, last]).values()}
            if len(pack_ids) != 1 or pack_ids & {None, first_pack.id}:
                return None
            pack = records.pack(pack_ids.pop())
            return pack if pack.state == "running" else None

        second_pack = wait_until(second_pack_running, timeout=180, what="the unfinished jobs in a new running pack")
        assert records.status(first) == "completed"
        kill(second_pack.scheduler_job_id)
        finals = {job_id: stack.wait_final(job_id, timeout=180) for job_id in (first, slow, last)}
        jobs = records.jobs(ids)
        packs = [records.pack(first_pack.id), records.pack(second_pack.id)]
        progress = [progress_records(pack) for pack in packs]

    assert finals[first]["status"] == "completed" and sum(finals[first]["result"]["counts"].values()) == 1000
    assert (jobs[first].pack_id, jobs[first].dispatch_count) == (first_pack.id, 1)
    for job_id in (slow, last):
        assert finals[job_id]["status"] == "failed" and finals[job_id]["result"] is None
        assert reason in finals[job_id]["error"] and "second batch job" in finals[job_id]["error"]
        assert (jobs[job_id].pack_id, jobs[job_id].dispatch_count) == (second_pack.id, 2)
    for pack in packs:
        assert pack.state == "ended" and reason in pack.error
    # The runner of the first pack reported the first job only; the second pack's, nothing.
    assert [r.get("job_id") for r in progress[0] if "job_id" in r] == [first]
    assert not [r for r in progress[1] if "job_id" in r]
    states = slurm_states([pack.scheduler_job_id for pack in packs])
    assert {state.split()[0] for state in states.values()} == {slurm_state}


def test_a_job_cancelled_by_its_user_in_a_running_pack_is_skipped_and_the_others_complete(
        tmp_path, slurm_cluster, postgres_url):
    circuits = [{"qasm": _corpus("qft_n4"), "shots": 1000}, {"qasm": SLOW, "shots": 1000},
                {"qasm": _corpus("adder_n4"), "shots": 1000}, {"qasm": _corpus("toffoli_n3"), "shots": 1000}]
    with packs_stack(tmp_path, postgres_url) as (stack, records):
        batch = stack.submit_batch(circuits)
        first, slow, cancelled, last = batch["job_ids"]
        # The runner is now simulating the slow job, for seconds.
        wait_until(lambda: records.status(first) == "completed" and records.status(slow) == "processing",
                   timeout=120, what="the first job done, the slow one running")
        answer = requests.delete(f"{stack.base_url}/jobs/{cancelled}", headers=stack.headers(), timeout=30).json()
        assert answer["status"] == "failed"
        done = stack.wait_batch(batch["batch_id"])
        [pack_id] = {job.pack_id for job in records.jobs(batch["job_ids"]).values()}
        pack = records.pack(pack_id)
        progress = progress_records(pack)
        leftovers = sorted(p.name for p in (stack.work_root / cancelled).iterdir())
    outcomes = {job["job_id"]: job for job in done["jobs"]}
    assert (outcomes[cancelled]["status"], outcomes[cancelled]["error"]) == ("failed", "cancelled by the user")
    assert [outcomes[job_id]["status"] for job_id in (first, slow, last)] == ["completed"] * 3
    assert {"job_id": cancelled, "outcome": "skipped"} in progress
    assert "result.json" not in leftovers and "error.json" not in leftovers
    # The pack still had work: it ran to its end, not scancelled.
    assert pack.error is None
    assert slurm_states([pack.scheduler_job_id])[pack.scheduler_job_id] == "COMPLETED"


def test_two_dispatchers_on_one_database_run_every_job_exactly_once(tmp_path, slurm_cluster, postgres_url):
    # No lingering, small packs and room for all of them in Slurm: both
    # dispatchers plan and submit while circuits keep arriving.
    names = ["adder_n4", "qft_n4", "toffoli_n3"]
    settings = {"QCOS_PACK_MAX_JOBS": "4", "QCOS_PACK_LINGER": "0", "QCOS_PACK_MAX_LINGER": "0",
                "QCOS_MAX_LIVE_SLURM_JOBS": "20"}
    second_log = tmp_path / "logs" / "poller-2.log"
    with packs_stack(tmp_path, postgres_url, **settings) as (stack, records), second_poller(stack, second_log):
        wait_until(lambda: "poller started" in second_log.read_text(), timeout=60, what="the second poller")
        batches = []
        for _ in range(8):
            batches.append(stack.submit_batch([{"qasm": _corpus(name), "shots": 256} for name in names]))
            time.sleep(0.25)
        done = [stack.wait_batch(batch["batch_id"], timeout=300) for batch in batches]
        ids = [job_id for batch in batches for job_id in batch["job_ids"]]
        jobs = records.jobs(ids)

        def every_pack_ended():
            packs = records.packs()
            return packs if all(pack.state == "ended" for pack in packs) else None

        packs = wait_until(every_pack_ended, timeout=60, what="every pack ended")
        progress = [record for pack in packs for record in progress_records(pack)]
    assert all(batch["counts"]["completed"] == len(names) for batch in done)
    assert all(sum(job["result"]["counts"].values()) == 256 for batch in done for job in batch["jobs"])
    # Every job was claimed into exactly one pack, once; every pack was submitted once.
    assert {job.dispatch_count for job in jobs.values()} == {1}
    assert sorted(job.pack_id for job in jobs.values()) == sorted(
        pack.id for pack in packs for _ in range(pack.job_count))
    assert [(pack.error, pack.submit_attempts) for pack in packs] == [(None, 1)] * len(packs)
    states = slurm_states([pack.scheduler_job_id for pack in packs])
    assert len(states) == len(packs) and set(states.values()) == {"COMPLETED"}
    # No circuit ran twice: each job has one line in all the runners' progress files.
    ran = sorted(record["job_id"] for record in progress if "job_id" in record)
    assert ran == sorted(ids)
    # Each pack was planned by one dispatcher and submitted by one; both took part.
    logs = [(tmp_path / "logs" / name).read_text() for name in ("poller.log", "poller-2.log")]
    planned = [set(re.findall(r"pack (pack-[0-9a-f]+) planned", log)) for log in logs]
    submitted = [set(re.findall(r"pack (pack-[0-9a-f]+) submitted as", log)) for log in logs]
    assert not planned[0] & planned[1] and planned[0] | planned[1] == {pack.id for pack in packs}
    assert not submitted[0] & submitted[1] and submitted[0] | submitted[1] == {pack.id for pack in packs}
    assert all(planned[i] | submitted[i] for i in (0, 1)), (planned, submitted)


def test_a_single_circuit_waits_for_at_most_one_pack_of_another_users_two_thousand(
        tmp_path, slurm_cluster, postgres_url):
    pack_size = 100
    settings = {"QCOS_PACK_MAX_JOBS": str(pack_size), "QCOS_MAX_LIVE_SLURM_JOBS": "2"}
    circuit = {"qasm": _corpus("qft_n4"), "shots": 64}
    with packs_stack(tmp_path, postgres_url, **settings) as (heavy, records):
        light = another_user(heavy, "light@example.org", "pro")
        heavy_ids = [job_id for _ in range(2) for job_id in heavy.submit_batch([circuit] * 1000)["job_ids"]]
        wait_until(lambda: sum(1 for p in records.packs() if p.scheduler_job_id) >= 2, timeout=120,
                   what="the heavy user's first two packs submitted")
        single = light.submit(circuit["qasm"], circuit["shots"])["job_id"]
        assert light.wait_final(single, timeout=240)["status"] == "completed"
        jobs = records.jobs([single, *heavy_ids])
        packs = records.packs()
    arrived, finished = jobs[single].created_at, jobs[single].completed_at
    after = sorted((p for p in packs if p.submitted_at and p.submitted_at >= arrived), key=lambda p: p.submitted_at)
    assert jobs[single].pack_id in [p.id for p in after[:2]], [(p.id, p.job_count) for p in after]
    # It was done while most of the 2,000 still waited (a pack or two of them ran before it).
    heavy_done = sum(1 for job_id in heavy_ids
                     if jobs[job_id].completed_at is not None and jobs[job_id].completed_at <= finished)
    assert heavy_done < 1000, heavy_done
