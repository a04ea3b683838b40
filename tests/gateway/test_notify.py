"""Changes announced across processes (gateway/notify.py): waking ``/results?wait=true``
on a job's change, and forgetting cached API keys on an account change."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import select, update

from gateway import jobs as job_service
from gateway.accounts import revoke_key, set_active, set_tier
from gateway.db import Database
from gateway.models import ApiKey, Job, utcnow
from gateway.notify import JOBS_CHANNEL, JobWaiters, notify_jobs_changed
from tests.conftest import BELL, make_user
from tests.helpers import dispatch_one_pack


def _queued_job(runtime, user_id: str, job_id: str) -> None:
    with runtime.db.transaction() as session:
        session.add(Job(id=job_id, user_id=user_id, status="queued", qasm=BELL, shots=8, num_qubits=2,
                        request_hash="-", executor="slurm", cluster_profile="dev", work_dir="/nonexistent",
                        created_at=utcnow()))


def _complete_elsewhere(url: str, job_id: str) -> None:
    """What the poller process does: mark the job completed and announce it, in one transaction."""
    other_process = Database(url)
    try:
        with other_process.transaction() as session:
            session.execute(update(Job).where(Job.id == job_id).values(
                status="completed", completed_at=utcnow(),
                result={"counts": {"00": 5, "11": 3}, "num_qubits": 2, "shots": 8}))
            notify_jobs_changed(session, [job_id])
    finally:
        other_process.dispose()


def _wait_until_listening(runtime, limit: float = 10) -> None:
    runtime.start_listening()
    deadline = time.monotonic() + limit
    while not runtime.listening:
        assert time.monotonic() < deadline, "the change listener did not connect"
        time.sleep(0.05)


def _count_job_reads(monkeypatch) -> list:
    reads = []
    original = job_service.get_job

    def counting(*args, **kwargs):
        reads.append(time.monotonic())
        return original(*args, **kwargs)

    monkeypatch.setattr(job_service, "get_job", counting)
    return reads


@pytest.fixture
def postgres_app(tmp_path, postgres_url):
    from gateway import create_app
    from gateway.config import Settings
    from gateway.migrations import upgrade_database

    upgrade_database(postgres_url)
    settings = Settings.from_env({"QCOS_STATE_DIR": str(tmp_path / "state"), "QCOS_DATABASE_URL": postgres_url,
                                  "QCOS_RATELIMIT_ENABLED": "false"})
    app = create_app({"QCOS_SETTINGS": settings, "TESTING": True})
    yield app
    app.extensions["qcos"].close()


class TestWaitingForResults:
    def test_a_waiting_request_wakes_on_the_change_and_reads_the_job_only_then(self, postgres_app, monkeypatch):
        runtime = postgres_app.extensions["qcos"]
        user_id, key = make_user(runtime)
        _queued_job(runtime, user_id, "wake-me")
        _wait_until_listening(runtime)
        reads = _count_job_reads(monkeypatch)
        answers = []
        waiter = threading.Thread(target=lambda: answers.append(postgres_app.test_client().get(
            "/results/wake-me?wait=true&timeout=20", headers={"X-API-Key": key})))
        waiter.start()
        time.sleep(3)  # polling every 0.1-1 s would have read the job 6 times by now
        changed_at = time.monotonic()
        _complete_elsewhere(runtime.settings.database_url, "wake-me")
        waiter.join(timeout=10)
        answered_after = time.monotonic() - changed_at
        assert answers and answers[0].status_code == 200
        assert answers[0].get_json() == {"job_id": "wake-me", "status": "completed",
                                         "result": {"counts": {"00": 5, "11": 3}}}
        assert answered_after < 1.0
        # Once at the start and once on the change (a listener reconnect would add one); polling: 6 or more.
        assert len(reads) <= 3, f"the job was read {len(reads)} times while waiting"

    def test_without_notifications_waiting_falls_back_to_reading_the_job(self, client, runtime, api_key):
        if runtime.changes is not None:
            runtime.changes.stop()  # PostgreSQL without its listener: as on SQLite
        _queued_job(runtime, _user_of(runtime, api_key), "poll-me")
        threading.Timer(1.0, _complete_directly, (runtime, "poll-me")).start()
        started = time.monotonic()
        body = client.get("/results/poll-me?wait=true&timeout=20", headers={"X-API-Key": api_key}).get_json()
        assert body["status"] == "completed"
        assert time.monotonic() - started < 3

    def test_stopping_answers_every_waiting_request_at_once_with_its_job_as_it_is(self, client, runtime, api_key):
        user_id = _user_of(runtime, api_key)
        _queued_job(runtime, user_id, "still-queued")
        answers = []
        waiters = [threading.Thread(target=lambda: answers.append(client.get(
            "/results/still-queued?wait=true&timeout=30", headers={"X-API-Key": api_key}))) for _ in range(3)]
        for waiter in waiters:
            waiter.start()
        time.sleep(0.5)
        stopped_at = time.monotonic()
        runtime.stop_waiting()
        for waiter in waiters:
            waiter.join(timeout=5)
        assert time.monotonic() - stopped_at < 1.0
        assert [answer.get_json()["status"] for answer in answers] == ["pending"] * 3
        # Once stopping, a new wait does not block either.
        started = time.monotonic()
        client.get("/results/still-queued?wait=true&timeout=30", headers={"X-API-Key": api_key})
        assert time.monotonic() - started < 1.0


def _user_of(runtime, api_key: str) -> str:
    from gateway.accounts import credentials_for_key

    with runtime.db.session() as session:
        return credentials_for_key(session, api_key)[0].id


def _complete_directly(runtime, job_id: str) -> None:
    with runtime.db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(
            status="completed", completed_at=utcnow(), result={"counts": {"1": 8}, "num_qubits": 1, "shots": 8}))


class TestAnnouncements:
    def _listen(self, url: str) -> psycopg.Connection:
        connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        connection.execute(f"LISTEN {JOBS_CHANNEL}")
        return connection

    def test_only_a_committed_change_is_announced(self, postgres_url):
        from gateway.migrations import upgrade_database

        upgrade_database(postgres_url)
        listener = self._listen(postgres_url)
        database = Database(postgres_url)
        try:
            with pytest.raises(RuntimeError), database.transaction() as session:
                notify_jobs_changed(session, ["rolled-back"])
                raise RuntimeError("the change fails")
            with database.transaction() as session:
                notify_jobs_changed(session, ["a", "b"])
            payloads = [n.payload for n in listener.notifies(timeout=1)]
            assert payloads == ["a,b"]
        finally:
            listener.close()
            database.dispose()

    def test_many_ids_are_split_under_postgresqls_payload_limit(self, postgres_url):
        listener = self._listen(postgres_url)
        database = Database(postgres_url)
        ids = [f"job-{i:05d}-{'x' * 50}" for i in range(500)]  # ~30 kB of ids
        try:
            with database.transaction() as session:
                notify_jobs_changed(session, ids)
            payloads = [n.payload for n in listener.notifies(timeout=1)]
            assert len(payloads) > 1 and all(len(p.encode()) < 8000 for p in payloads)
            assert [job_id for p in payloads for job_id in p.split(",")] == ids
        finally:
            listener.close()
            database.dispose()

    def test_sqlite_announces_nothing_and_does_not_fail(self, tmp_path):
        from gateway.migrations import upgrade_database

        url = f"sqlite:///{tmp_path / 'q.db'}"
        upgrade_database(url)
        database = Database(url)
        with database.transaction() as session:
            notify_jobs_changed(session, ["a"])
        database.dispose()


class TestJobWaiters:
    def test_a_change_wakes_only_the_threads_watching_that_job(self):
        waiters = JobWaiters()
        with waiters.watch("a") as a, waiters.watch("b") as b:
            waiters.wake(["a"])
            assert a.wait(1, listening=True) is True
            assert b.wait(0.05, listening=True) is False
        assert waiters.count == 0

    def test_a_change_between_read_and_wait_is_not_lost(self):
        waiters = JobWaiters()
        with waiters.watch("a") as watch:
            waiters.wake(["a"])  # arrives before the thread starts waiting
            started = time.monotonic()
            assert watch.wait(5, listening=True) is True
            assert time.monotonic() - started < 0.1

    def test_without_notifications_the_wait_is_a_short_poll(self):
        waiters = JobWaiters()
        with waiters.watch("a") as watch:
            started = time.monotonic()
            assert watch.wait(5, listening=False) is False
            assert time.monotonic() - started < 0.5


class TestCachedKeys:
    """PostgreSQL: keys are cached while listening, and forgotten on every account change."""

    def _lookups(self, monkeypatch) -> list:
        from gateway import auth

        calls = []
        original = auth.credentials_for_key
        monkeypatch.setattr(auth, "credentials_for_key", lambda *a: calls.append(1) or original(*a))
        return calls

    def _until_status(self, client, key: str, path: str, status: int, limit: float = 1.0) -> float:
        started = time.monotonic()
        while True:
            response = client.get(path, headers={"X-API-Key": key})
            if response.status_code == status:
                return time.monotonic() - started
            assert time.monotonic() - started < limit, f"still {response.status_code} after {limit} s"

    def test_a_cached_key_needs_no_query(self, postgres_app, monkeypatch):
        runtime = postgres_app.extensions["qcos"]
        key = make_user(runtime)[1]
        _wait_until_listening(runtime)
        lookups = self._lookups(monkeypatch)
        client = postgres_app.test_client()
        for _ in range(5):
            assert client.get("/user/me", headers={"X-API-Key": key}).status_code == 200
        assert len(lookups) == 1

    def test_a_revoked_key_is_refused_within_milliseconds(self, postgres_app):
        runtime = postgres_app.extensions["qcos"]
        user_id, key = make_user(runtime)
        _wait_until_listening(runtime)
        client = postgres_app.test_client()
        assert client.get("/user/me", headers={"X-API-Key": key}).status_code == 200  # now cached
        with runtime.db.transaction() as session:
            key_id = session.query(ApiKey.id).filter(ApiKey.user_id == user_id).scalar()
        cli = Database(runtime.settings.database_url)  # as `qcos keys revoke` does, in its own process
        with cli.transaction() as session:
            revoke_key(session, key_id)
        cli.dispose()
        assert self._until_status(client, key, "/user/me", 401) < 0.5

    def test_disabling_a_user_and_changing_a_tier_apply_at_once(self, postgres_app):
        runtime = postgres_app.extensions["qcos"]
        user_id, key = make_user(runtime, tier="free")
        _wait_until_listening(runtime)
        client = postgres_app.test_client()
        assert client.get("/user/me", headers={"X-API-Key": key}).get_json()["tier"] == "free"
        with runtime.db.transaction() as session:
            set_tier(session, user_id, "pro", runtime.tiers)
        started = time.monotonic()
        while client.get("/user/me", headers={"X-API-Key": key}).get_json()["tier"] != "pro":
            assert time.monotonic() - started < 0.5
        with runtime.db.transaction() as session:
            set_active(session, user_id, False)
        assert self._until_status(client, key, "/user/me", 401) < 0.5

    def test_while_not_listening_every_request_looks_its_key_up(self, postgres_app, monkeypatch):
        runtime = postgres_app.extensions["qcos"]
        key = make_user(runtime)[1]
        _wait_until_listening(runtime)
        runtime.changes.stop()
        lookups = self._lookups(monkeypatch)
        client = postgres_app.test_client()
        for _ in range(3):
            assert client.get("/user/me", headers={"X-API-Key": key}).status_code == 200
        assert len(lookups) == 3


class TestWritersAnnounceFinalJobs:
    """The poller and dispatcher announce every job they make final, in the
    transaction that does it, so waiting requests of any process wake."""

    @pytest.fixture
    def listener(self, postgres_url):
        connection = psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        connection.execute(f"LISTEN {JOBS_CHANNEL}")
        yield connection
        connection.close()

    @staticmethod
    def _announced(listener) -> set[str]:
        return {job_id for n in listener.notifies(timeout=0.5) for job_id in n.payload.split(",")}

    @staticmethod
    def _submit(postgres_app, count: int) -> list[str]:
        from tests.gateway.test_dispatch import _quiet, _submit

        runtime = postgres_app.extensions["qcos"]
        key = make_user(runtime, tier="enterprise")[1]
        ids = [_submit(postgres_app.test_client(), key) for _ in range(count)]
        _quiet(runtime)
        return ids

    def test_results_the_poller_ingests_are_announced(self, postgres_app, listener):
        from tests.gateway.test_dispatch import _drive

        ids = self._submit(postgres_app, 3)
        jobs = _drive(postgres_app.extensions["qcos"], ids)
        assert {job.status for job in jobs.values()} == {"completed"}
        assert set(ids) <= self._announced(listener)

    def test_jobs_of_a_pack_the_scheduler_refuses_are_announced(self, postgres_app, listener, mocker):
        from gateway import dispatcher
        from hpc_jobs.executors.base import ExecutorError

        runtime = postgres_app.extensions["qcos"]
        ids = self._submit(postgres_app, 2)
        mocker.patch.object(runtime.executor, "submit", side_effect=ExecutorError("sbatch: invalid partition"))
        dispatcher.dispatch_cycle(runtime)
        with runtime.db.session() as session:
            assert set(session.scalars(select(Job.status).where(Job.id.in_(ids)))) == {"failed"}
        assert set(ids) <= self._announced(listener)

    def test_jobs_failed_with_their_dead_pack_are_announced(self, postgres_app, listener):
        from gateway.poller import MAX_DISPATCHES, poll_cycle

        runtime = postgres_app.extensions["qcos"]
        ids = self._submit(postgres_app, 2)
        with runtime.db.transaction() as session:  # their last dispatch
            session.execute(update(Job).where(Job.id.in_(ids)).values(dispatch_count=MAX_DISPATCHES - 1))
        pack = dispatch_one_pack(runtime)
        runtime.executor.cancel([pack.scheduler_job_id])
        deadline = time.monotonic() + 30
        while not poll_cycle(runtime).ended_packs:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with runtime.db.session() as session:
            assert set(session.scalars(select(Job.status).where(Job.id.in_(ids)))) == {"failed"}
        assert set(ids) <= self._announced(listener)
