"""Database engine and sessions, one engine per process.

gunicorn forks workers from a master that may already have built the app
(``--preload``). A pooled connection must never cross a fork, so
:class:`Database` notices a new pid and builds a fresh engine there, after
telling the inherited pool to forget (not close) the parent's connections —
the recipe of SQLAlchemy's "Using Connection Pools with Multiprocessing".

A SQLite database file holds API key hashes and every job's circuit: it is
created mode 0600 before SQLite opens it (SQLite gives its ``-wal`` and
``-shm`` files the database file's mode), whatever the umask.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker


class Database:
    """Lazily created, fork-aware engine for ``url`` plus a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def engine(self) -> Engine:
        """This process's engine (created on first use after start or fork)."""
        pid = os.getpid()
        if self._engine is not None and self._pid == pid:
            return self._engine
        with self._lock:
            if self._engine is not None and self._pid != pid:
                self._engine.dispose(close=False)
                self._engine = None
            if self._engine is None:
                self._engine = self._create_engine()
                self._sessions = sessionmaker(self._engine, expire_on_commit=False)
                self._pid = pid
        return self._engine

    def _create_engine(self) -> Engine:
        if self.is_sqlite:
            make_sqlite_file_private(self.url)
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
                cursor = dbapi_connection.cursor()
                # WAL lets the poller write while gateway workers read.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            return engine
        return create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    def session(self) -> Session:
        """A new session; use ``with db.session() as s, s.begin(): ...``."""
        self.engine
        assert self._sessions is not None
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error."""
        with self.session() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close this process's pooled connections."""
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None


def make_sqlite_file_private(url: str) -> None:
    """For a ``sqlite:///PATH`` URL: create PATH mode 0600 if it is missing,
    and set 0600 on it and on its journal files if they exist (an older
    install's may be 0644). Other URLs, in-memory databases and missing
    folders are left alone. Raises ``OSError`` for a file it may not change."""
    if not url.startswith("sqlite"):
        return
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except FileNotFoundError:
        return  # no folder: SQLite reports it when it connects
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass
