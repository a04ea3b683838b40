"""The poller process applies updates with conditional writes."""

from __future__ import annotations

from sqlalchemy import update

from gateway.models import Job
from gateway.poller import run_cycle
from tests.conftest import BELL, make_user
from tests.helpers import drive_until_final


def _submit(client, key, **body):
    return client.post("/execute", json={"qasm": BELL, "shots": 64, **body}, headers={"X-API-Key": key}).get_json()


def test_a_status_changed_elsewhere_is_not_overwritten(client, runtime, api_key):
    job_id = _submit(client, api_key)["job_id"]
    # Another process (a cancellation, a second poller) finished the job first.
    with runtime.db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="failed", error="cancelled by admin"))
    import time

    time.sleep(4)  # the batch job itself completes meanwhile
    run_cycle(runtime)
    with runtime.db.session() as session:
        job = session.get(Job, job_id)
    assert (job.status, job.error, job.result) == ("failed", "cancelled by admin", None)


def test_completed_job_records_times_and_slurm_state(client, runtime, api_key):
    job_id = _submit(client, api_key)["job_id"]
    job = drive_until_final(runtime, job_id)
    assert job.status == "completed" and job.slurm_state == "COMPLETED"
    assert job.submitted_at <= job.completed_at and job.last_seen_at is not None


def test_a_row_that_never_reached_the_scheduler_fails_after_the_grace_period(client, runtime, api_key):
    from datetime import timedelta

    from gateway.models import utcnow

    user_id = make_user(runtime)[0]
    with runtime.db.transaction() as session:
        session.add(Job(id="orphan", user_id=user_id, status="queued", qasm=BELL, shots=1, num_qubits=2,
                        request_hash="x", executor="local", cluster_profile="dev", work_dir="/nonexistent",
                        created_at=utcnow() - timedelta(seconds=120)))
    runtime.settings = runtime.settings.model_copy(update={"missing_grace_seconds": 60})
    run_cycle(runtime)
    with runtime.db.session() as session:
        job = session.get(Job, "orphan")
    assert job.status == "failed" and "never reached the scheduler" in job.error
