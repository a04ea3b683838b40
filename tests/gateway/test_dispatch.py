"""The dispatcher and the poller on a real database and the local executor:
packs, claims that cannot race, exactly-once recovery, dead packs, cancels."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import func, select, update

from gateway import dispatcher
from gateway.models import Job, Pack, utcnow
from gateway.poller import poll_cycle, service_cycle
from gateway.runtime import Runtime
from hpc_jobs.executors.base import SubmissionUnconfirmed
from hpc_jobs.packing import PackState
from tests.conftest import BELL
from tests.helpers import dispatch_one_pack

GHZ3 = ('OPENQASM 2.0; include "qelib1.inc"; qreg q[3]; creg c[3]; h q[0]; cx q[0],q[1]; cx q[1],q[2]; '
        "t q[2]; measure q -> c;")


def _submit(client, key, qasm=BELL, **body):
    response = client.post("/execute", json={"qasm": qasm, "shots": 64, **body}, headers={"X-API-Key": key})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["job_id"]


def _jobs(runtime, ids):
    with runtime.db.session() as session:
        return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(ids)))}


def _drive(runtime, ids, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        service_cycle(runtime)
        jobs = _jobs(runtime, ids)
        if all(job.status in ("completed", "failed") for job in jobs.values()):
            return jobs
        assert time.monotonic() < deadline, {j.id: j.status for j in jobs.values()}
        time.sleep(0.2)


def _quiet(runtime):
    """Let the linger pass so waiting jobs are planned at once."""
    time.sleep(runtime.settings.pack_linger_seconds + 0.1)


def test_a_request_calls_no_scheduler_and_circuits_share_a_pack_per_method(client, runtime, api_key, mocker):
    submit = mocker.spy(runtime.executor, "submit")
    ids = [_submit(client, api_key, qasm=q) for q in (BELL, GHZ3) * 5]
    assert submit.call_count == 0
    jobs = _drive(runtime, ids)
    assert {job.status for job in jobs.values()} == {"completed"}
    assert all(sum(job.result["counts"].values()) == 64 for job in jobs.values())
    # Bell is Clifford (stabilizer), GHZ with a T gate is not (statevector): two packs of five.
    packs = {job.pack_id for job in jobs.values()}
    assert len(packs) == 2 and submit.call_count == 2
    assert {job.result["method"] for job in jobs.values()} == {"stabilizer", "statevector"}


def test_two_dispatchers_never_take_the_same_job(client, runtime, api_key, settings):
    ids = [_submit(client, api_key) for _ in range(40)]
    _quiet(runtime)
    other = Runtime.from_settings(settings.model_copy(update={"pack_max_jobs": 3}))
    runtime.settings = runtime.settings.model_copy(update={"pack_max_jobs": 3})
    errors = []

    def plan(rt):
        try:
            for _ in range(20):
                dispatcher.plan_cycle(rt, now=utcnow())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=plan, args=(rt,)) for rt in (runtime, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with runtime.db.session() as session:
        claimed = session.execute(select(Job.dispatch_count, func.count()).where(Job.id.in_(ids))
                                  .group_by(Job.dispatch_count)).all()
        in_packs = session.scalar(select(func.sum(Pack.job_count)))
    assert dict(claimed) in ({1: 40}, {0: 40 - (in_packs or 0), 1: in_packs or 0})
    assert (in_packs or 0) == sum(n for count, n in claimed if count == 1)


def test_a_pack_whose_sbatch_answer_was_lost_is_adopted_not_submitted_again(client, runtime, api_key, mocker):
    ids = [_submit(client, api_key) for _ in range(3)]
    _quiet(runtime)
    [pack_id] = dispatcher.plan_cycle(runtime, now=utcnow())
    real_submit = runtime.executor.submit

    def answer_lost(work_dir, **kwargs):
        real_submit(work_dir, **kwargs)  # it reached the scheduler...
        raise SubmissionUnconfirmed("sbatch printed no job id")  # ...but the answer did not come back

    mocker.patch.object(runtime.executor, "submit", side_effect=answer_lost)
    assert dispatcher.submit_cycle(runtime, now=utcnow()) == ([], [])
    runtime.settings = runtime.settings.model_copy(update={"submit_recovery_seconds": 0})
    assert dispatcher.recover_cycle(runtime, now=utcnow() + timedelta(seconds=1)) == [pack_id]
    mocker.stopall()
    jobs = _drive(runtime, ids)
    assert {job.status for job in jobs.values()} == {"completed"}
    assert len(list(runtime.executor.registry.glob("local-*"))) == 1  # one batch job, never two


def test_a_pack_that_never_reached_the_scheduler_is_submitted_once_after_recovery(client, runtime, api_key):
    ids = [_submit(client, api_key) for _ in range(2)]
    _quiet(runtime)
    [pack_id] = dispatcher.plan_cycle(runtime, now=utcnow())
    # The dispatcher died right after claiming the pack for sbatch.
    with runtime.db.transaction() as session:
        session.execute(update(Pack).where(Pack.id == pack_id).values(
            state=PackState.SUBMITTING.value, submit_started_at=utcnow() - timedelta(hours=1), submit_attempts=1))
    runtime.settings = runtime.settings.model_copy(update={"submit_recovery_seconds": 1})
    assert dispatcher.recover_cycle(runtime, now=utcnow()) == [pack_id]
    with runtime.db.transaction() as session:
        session.execute(update(Pack).where(Pack.id == pack_id).values(not_before=None))
    jobs = _drive(runtime, ids)
    assert {job.status for job in jobs.values()} == {"completed"}
    assert len(list(runtime.executor.registry.glob("local-*"))) == 1


def test_jobs_of_a_dead_pack_run_once_more_then_fail_with_the_reason(client, runtime, api_key, mocker):
    ids = [_submit(client, api_key) for _ in range(2)]
    reads, read_texts = [], runtime.work_dirs.read_texts

    def flaky_read(paths):
        reads.append(len(paths))
        if len(reads) == 1:
            raise OSError("the work file system did not answer")
        return read_texts(paths)

    mocker.patch.object(runtime.work_dirs, "read_texts", side_effect=flaky_read)
    _quiet(runtime)
    for attempt in (1, 2):
        pack = dispatch_one_pack(runtime)
        runtime.executor.cancel([pack.scheduler_job_id])  # an admin's scancel, a node failure
        deadline = time.monotonic() + 30
        while True:
            report = poll_cycle(runtime)
            if report.ended_packs:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        jobs = _jobs(runtime, ids)
        if attempt == 1:
            # Both jobs' result and error files in one read; the failed read ended nothing.
            assert reads[:2] == [4, 4]
            assert {job.status for job in jobs.values()} == {"queued"}
            _quiet(runtime)
    assert {job.status for job in jobs.values()} == {"failed"}
    assert all("cancelled" in job.error and "second batch job" in job.error for job in jobs.values())


def test_a_job_cancelled_in_a_pack_is_skipped_and_the_others_complete(client, runtime, api_key):
    ids = [_submit(client, api_key) for _ in range(4)]
    _quiet(runtime)
    deadline = time.monotonic() + 30
    while not dispatcher.dispatch_cycle(runtime).submitted:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    client.delete(f"/jobs/{ids[-1]}", headers={"X-API-Key": api_key})
    jobs = _drive(runtime, ids)
    assert [jobs[i].status for i in ids] == ["completed"] * 3 + ["failed"]
    assert jobs[ids[-1]].error == "cancelled by the user" and jobs[ids[-1]].result is None
    assert not jobs[ids[-1]].cancel_pending


def test_a_job_cancelled_while_its_pack_is_being_submitted_is_skipped_and_its_empty_pack_cancelled(
        client, runtime, api_key, mocker):
    """The user cancels while sbatch runs, when the pack has no id to scancel
    yet (and its staging could still replace a marker): the cancel is
    delivered once sbatch has answered, marker and scancel both."""
    from gateway.poller import cancel_cycle

    job_id = _submit(client, api_key)
    _quiet(runtime)
    [pack_id] = dispatcher.plan_cycle(runtime, now=utcnow())
    real_submit = runtime.executor.submit

    def cancelled_meanwhile(work_dir, **kwargs):
        client.delete(f"/jobs/{job_id}", headers={"X-API-Key": api_key})
        cancel_cycle(runtime)  # the poller's cycle meanwhile: no id to scancel yet
        return real_submit(work_dir, **kwargs)

    mocker.patch.object(runtime.executor, "submit", side_effect=cancelled_meanwhile)
    assert dispatcher.submit_cycle(runtime, now=utcnow()) == ([pack_id], [])
    cancel = mocker.spy(runtime.executor, "cancel")
    assert cancel_cycle(runtime) == 1
    with runtime.db.session() as session:
        pack = session.get(Pack, pack_id)
    cancel.assert_called_once_with([pack.scheduler_job_id])
    assert (runtime.work_dirs.path_for(job_id) / "cancelled").exists()
    jobs = _drive(runtime, [job_id])
    assert (jobs[job_id].status, jobs[job_id].error, jobs[job_id].cancel_pending) == (
        "failed", "cancelled by the user", False)


def test_one_cycle_ingests_every_packs_progress_in_one_transaction(runtime):
    from sqlalchemy import event, insert

    from hpc_jobs.workdir import PROGRESS_FILE, append_line
    from tests.conftest import make_user

    user_id = make_user(runtime)[0]
    now = utcnow()
    result = {"counts": {"00": 40, "11": 24}, "execution_time_seconds": 0.001}
    packs = {}
    for name in ("a", "b"):
        pack_id = "pack-" + name * 16
        pack_dir = runtime.work_dirs.pack_path_for(pack_id)
        pack_dir.mkdir(parents=True)
        packs[name] = pack_dir / PROGRESS_FILE
        with runtime.db.transaction() as session:
            session.execute(insert(Pack).values(
                id=pack_id, executor=runtime.executor.name, cluster_profile="dev", dispatch_class="x",
                job_name=f"qcos-{pack_id}", state=PackState.RUNNING.value, work_dir=str(pack_dir), job_count=2,
                resources={}, progress_offset=0, runner_finished=False, submit_attempts=1, created_at=now))
            session.execute(insert(Job), [dict(
                id=f"{name}-{i}", user_id=user_id, status="processing", qasm=BELL, shots=64, num_qubits=2,
                request_hash="-", executor=runtime.executor.name, cluster_profile="dev", work_dir="/nonexistent",
                pack_id=pack_id, created_at=now) for i in range(2)])
    append_line(packs["a"], {"job_id": "a-0", "outcome": "completed", "result": result})
    append_line(packs["a"], {"job_id": "b-1", "outcome": "failed", "error": "not a's job"})
    append_line(packs["b"], {"job_id": "b-0", "outcome": "failed", "error": "Aer failed"})
    commits = []
    event.listen(runtime.db.engine, "commit", commits.append)

    assert poll_cycle(runtime, observe=False).finished_jobs == 2

    assert len(commits) == 1
    jobs = _jobs(runtime, ["a-0", "a-1", "b-0", "b-1"])
    assert {i: j.status for i, j in jobs.items()} == {"a-0": "completed", "a-1": "processing", "b-0": "failed",
                                                      "b-1": "processing"}
    assert jobs["a-0"].result == result and jobs["b-0"].error == "Aer failed"
    with runtime.db.session() as session:
        offsets = dict(session.execute(select(Pack.id, Pack.progress_offset)).all())
    assert offsets == {"pack-" + n * 16: packs[n].stat().st_size for n in ("a", "b")}
    commits.clear()
    assert poll_cycle(runtime, observe=False).finished_jobs == 0
    assert commits == []


def test_an_unreachable_scheduler_stops_the_submissions_of_a_cycle_and_is_reported_at_once(
        client, runtime, api_key, mocker):
    from gateway.models import QueueModel
    from gateway.poller import refresh_queue_model
    from hpc_jobs.executors.base import ExecutorError

    refresh_queue_model(runtime, scheduler_ok=True, pending_start=None, now=utcnow())
    ids = [_submit(client, api_key, qasm=q) for q in (BELL, GHZ3)]  # two dispatch classes: two packs
    _quiet(runtime)
    # slurmctld down: every sbatch waits for Slurm's connect timeout (9 s), then fails.
    submit = mocker.patch.object(runtime.executor, "submit", side_effect=ExecutorError(
        "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
        retryable=True))
    report = dispatcher.dispatch_cycle(runtime)
    assert len(report.planned) == 2 and report.scheduler_unreachable
    assert submit.call_count == 1  # the second pack waits for the next cycle instead of another timeout
    service_cycle(runtime, observe=False)  # a cycle without a squeue of its own
    with runtime.db.session() as session:
        assert session.get(QueueModel, runtime.executor.name).scheduler_connected is False
    mocker.stopall()
    runtime.settings = runtime.settings.model_copy(update={"submit_recovery_seconds": 0})
    jobs = _drive(runtime, ids)
    assert {job.status for job in jobs.values()} == {"completed"}


def test_a_pack_given_up_in_an_unknown_state_is_scancelled_and_its_jobs_fail(client, runtime, api_key, mocker):
    from hpc_jobs.executors.base import ExecutorError, JobObservation, Observations

    job_id = _submit(client, api_key)
    _quiet(runtime)
    pack = dispatch_one_pack(runtime)
    mocker.patch.object(runtime.executor, "observe", side_effect=lambda ids: Observations(
        {i: JobObservation(i, "SOME_NEW_STATE") for i in ids}))
    cancel = mocker.patch.object(runtime.executor, "cancel", side_effect=ExecutorError("controller down"))
    now = utcnow()
    assert not poll_cycle(runtime, now=now).ended_packs
    later = now + timedelta(seconds=runtime.settings.unknown_state_grace_seconds + 1)
    # scancel failed: the pack stays, to be cancelled and ended on a later cycle.
    assert not poll_cycle(runtime, now=later).ended_packs
    cancel.side_effect = None
    assert poll_cycle(runtime, now=later).ended_packs == [pack.id]
    assert cancel.call_args.args[0] == [pack.scheduler_job_id]
    # The job ends with the reason at once: a second batch job would not know the state either.
    status = client.get(f"/status/{job_id}", headers={"X-API-Key": api_key}).get_json()
    assert status["status"] == "failed"
    assert status["error"] == (f"Slurm reported state 'SOME_NEW_STATE', unknown to QCOS, for "
                               f"{runtime.settings.unknown_state_grace_seconds:g} s")
