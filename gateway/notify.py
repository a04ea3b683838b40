"""Changes to jobs and accounts, announced across processes: PostgreSQL LISTEN/NOTIFY.

Writers call, inside the transaction that makes the change:

- :func:`notify_jobs_changed` when jobs became final (or otherwise changed
  in a way a ``/results?wait=true`` client waits for): the poller, a
  cancellation, a dispatcher that fails a job;
- :func:`notify_accounts_changed` when a key is revoked or a user is
  disabled or changes tier.

On PostgreSQL both are ``pg_notify`` calls, delivered by the server when
(and only if) the transaction commits; on SQLite they do nothing.

Each gateway process has one :class:`ChangeListener`: a daemon thread with
its own connection (outside the pool) that ``LISTEN``\\ s on both channels,
started on first use, never at import. It wakes the threads of that process
waiting in :class:`JobWaiters` for the named jobs and clears the API key
cache on an account change. While it is not connected (SQLite, or the
database restarting) waiters fall back to re-reading the job every 0.1–1 s,
and the key cache is not used; after every (re)connect all waiters re-read
once and the key cache starts empty, since notifications sent meanwhile
are lost. The thread reconnects with exponential backoff (0.5 s to 5 s).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

JOBS_CHANNEL = "qcos_jobs"
ACCOUNTS_CHANNEL = "qcos_accounts"
#: PostgreSQL refuses payloads of 8000 bytes or more; job ids go in comma-separated batches below that.
_PAYLOAD_BYTES = 7900
#: Seconds the listener waits for notifications before it checks its connection with a query.
_KEEPALIVE_SECONDS = 10.0
#: Even with notifications a waiter re-reads its job this often, in case a writer did not notify.
SAFETY_RECHECK_SECONDS = 10.0


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def notify_jobs_changed(session: Session, job_ids: Iterable[str]) -> None:
    """Announce, when ``session``'s transaction commits, that ``job_ids`` changed.

    Call it inside the transaction that changes the jobs (a rolled-back
    change announces nothing). Job ids must not contain commas (API job ids
    cannot). PostgreSQL: one ``pg_notify`` per ~7900 bytes of ids; SQLite: no-op.
    """
    if not _is_postgresql(session):
        return
    batch: list[str] = []
    size = 0
    for job_id in job_ids:
        if batch and size + len(job_id) + 1 > _PAYLOAD_BYTES:
            session.execute(select(func.pg_notify(JOBS_CHANNEL, ",".join(batch))))
            batch, size = [], 0
        batch.append(job_id)
        size += len(job_id.encode("utf-8")) + 1
    if batch:
        session.execute(select(func.pg_notify(JOBS_CHANNEL, ",".join(batch))))


def notify_accounts_changed(session: Session) -> None:
    """Announce, when ``session``'s transaction commits, that a key or user
    changed: every gateway process then forgets its cached keys. SQLite: no-op."""
    if _is_postgresql(session):
        session.execute(select(func.pg_notify(ACCOUNTS_CHANNEL, "")))


class JobWatch:
    """One thread's interest in one job; see :meth:`JobWaiters.watch`."""

    def __init__(self, waiters: "JobWaiters") -> None:
        self._waiters = waiters
        self._event = threading.Event()
        self._pause = 0.1

    @property
    def stopping(self) -> bool:
        """The process is shutting down: answer now instead of waiting."""
        return self._waiters.stopping

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float, *, listening: bool) -> bool:
        """Sleep until the job may have changed, or ``timeout`` seconds.

        ``listening``: notifications arrive (:attr:`ChangeListener.listening`);
        then only a notification, a reconnect or shutdown ends the wait early
        (and :data:`SAFETY_RECHECK_SECONDS` at most); without, the wait lasts
        0.1 s, growing to 1 s over successive calls (polling). Returns
        whether it was woken rather than timed out.
        """
        if listening:
            limit = min(timeout, SAFETY_RECHECK_SECONDS)
        else:
            limit = min(timeout, self._pause)
            self._pause = min(self._pause * 1.5, 1.0)
        woken = self._event.wait(max(0.0, limit))
        self._event.clear()
        return woken


class JobWaiters:
    """The threads of one process waiting for jobs to change.

    Thread-safe. ``watch`` registers interest before the caller reads the
    job, so a change committed between that read and the wait still wakes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, set[JobWatch]] = {}
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def count(self) -> int:
        """Threads watching now."""
        with self._lock:
            return sum(len(watches) for watches in self._watches.values())

    @contextmanager
    def watch(self, job_id: str) -> Iterator[JobWatch]:
        """``with waiters.watch(job_id) as watch: read; watch.wait(...)``."""
        watch = JobWatch(self)
        with self._lock:
            self._watches.setdefault(job_id, set()).add(watch)
        if self._stopping:
            watch.wake()
        try:
            yield watch
        finally:
            with self._lock:
                watches = self._watches.get(job_id)
                if watches is not None:
                    watches.discard(watch)
                    if not watches:
                        del self._watches[job_id]

    def wake(self, job_ids: Iterable[str]) -> None:
        """Wake the threads watching any of ``job_ids``."""
        with self._lock:
            woken = [watch for job_id in job_ids for watch in self._watches.get(job_id, ())]
        for watch in woken:
            watch.wake()

    def wake_all(self) -> None:
        """Wake every watching thread (it re-reads its job)."""
        with self._lock:
            woken = [watch for watches in self._watches.values() for watch in watches]
        for watch in woken:
            watch.wake()

    def stop(self) -> None:
        """Shutdown: wake everyone now and let no later wait block."""
        self._stopping = True
        self.wake_all()


class ChangeListener:
    """A process's LISTEN connection to PostgreSQL (see the module docstring).

    ``database``: a :class:`gateway.db.Database`, where to connect (its
    engine's URL and connect arguments; the connection is not taken from its
    pool). Held weakly: the thread ends once the database object is gone.
    ``waiters``: woken by job id. ``on_accounts_changed``: called on every
    account notification and after every (re)connect.
    """

    def __init__(self, database, waiters: JobWaiters, on_accounts_changed: Callable[[], None]) -> None:
        self._database = weakref.ref(database)
        self._waiters = waiters
        self._on_accounts_changed = on_accounts_changed
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._connected = False
        self._stop = threading.Event()

    @property
    def listening(self) -> bool:
        """Connected and listening in this process now (cheap: read on every request)."""
        return self._connected and self._pid == os.getpid() and not self._stop.is_set()

    def ensure_started(self) -> None:
        """Start the listener thread of this process unless it runs (after a fork: again)."""
        if self._pid == os.getpid() or self._stop.is_set():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._connected = False
            threading.Thread(target=self._run, name="qcos-listener", daemon=True).start()

    def stop(self) -> None:
        """Stop listening (the thread ends within its keepalive interval)."""
        self._stop.set()
        self._connected = False

    def _run(self) -> None:
        import psycopg
        from tenacity import Retrying, retry_if_exception_type, wait_exponential

        retrying = Retrying(
            retry=retry_if_exception_type(psycopg.Error),
            wait=wait_exponential(multiplier=0.5, max=5),
            sleep=self._stop.wait,
            before_sleep=lambda state: log.warning("change listener disconnected (%s); reconnecting",
                                                   state.outcome.exception().__class__.__name__),
        )
        try:
            retrying(self._listen)
        except Exception:  # noqa: BLE001 - a listener bug must not go unnoticed, nor kill the worker
            log.exception("change listener stopped; waiting clients poll the database instead")
        finally:
            self._connected = False
            self._waiters.wake_all()

    def _listen(self) -> None:
        import psycopg

        database = self._database()
        if database is None or self._stop.is_set():
            return
        engine = database.engine
        del database
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.setdefault("connect_timeout", 5)
        try:
            with psycopg.connect(*args, **kwargs, autocommit=True) as connection:
                connection.execute(f"LISTEN {JOBS_CHANNEL}")
                connection.execute(f"LISTEN {ACCOUNTS_CHANNEL}")
                self._connected = True
                # Whatever was announced while not listening is lost: start afresh.
                self._on_accounts_changed()
                self._waiters.wake_all()
                log.info("change listener: listening on %s, %s", JOBS_CHANNEL, ACCOUNTS_CHANNEL)
                while not self._stop.is_set() and self._database() is not None:
                    for notification in connection.notifies(timeout=_KEEPALIVE_SECONDS):
                        self._dispatch(notification.channel, notification.payload)
                    connection.execute("SELECT 1")
        finally:
            self._connected = False
            self._waiters.wake_all()

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == JOBS_CHANNEL:
            self._waiters.wake(payload.split(","))
        elif channel == ACCOUNTS_CHANNEL:
            self._on_accounts_changed()

