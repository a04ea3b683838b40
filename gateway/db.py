"""Database engine and sessions, one engine per process, and the connection budget.

gunicorn forks workers from a master that may already have built the app
(``--preload``). A pooled connection must never cross a fork, so
:class:`Database` notices a new pid and builds a fresh engine there, after
telling the inherited pool to forget (not close) the parent's connections —
the recipe of SQLAlchemy's "Using Connection Pools with Multiprocessing".

PostgreSQL pool (per process): ``pool_size`` connections kept open
(``QCOS_DB_POOL_SIZE``), up to ``max_overflow`` more opened under load and
closed when given back (``QCOS_DB_MAX_OVERFLOW``, default 0: no connection
churn), and a request that finds none free waits up to ``pool_timeout``
seconds (``QCOS_DB_POOL_TIMEOUT``) before it is answered 503. No ping before
each checkout: a connection the server dropped (restart, failover) fails the
one statement that finds it, that error invalidates every connection of the
pool opened before it (SQLAlchemy's disconnect handling), and the next
checkout connects afresh; ``pool_recycle`` replaces connections older than
an hour. See :func:`connection_budget` for how many connections a site needs.

PostgreSQL connections rest in autocommit: the hot reads (:meth:`Database.read`,
:meth:`Database.fetch_one`, :meth:`Database.read_session`) are one round trip
per SELECT. :attr:`Database.engine` and the sessions put a connection in READ
COMMITTED transactions for as long as they hold it, as any SQLAlchemy engine.
A SQLite database file holds API key hashes and every job's circuit: it is
created mode 0600 before SQLite opens it (SQLite gives its ``-wal`` and
``-shm`` files the database file's mode), whatever the umask.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import Connection, Engine, Executable, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

#: Seconds after which a pooled connection is replaced at its next checkout.
POOL_RECYCLE_SECONDS = 3600


class Database:
    """Lazily created, fork-aware engine for ``url`` plus session factories.

    ``pool_size``, ``max_overflow``, ``pool_timeout`` (seconds): the
    PostgreSQL connection pool of each process (see the module docstring);
    SQLite ignores them.
    """

    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 0, pool_timeout: float = 10.0) -> None:
        self.url = url
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.pool_timeout = pool_timeout
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._reads: sessionmaker[Session] | None = None
        self._read_engine: Engine | None = None
        #: Statements run by fetch_one, by id(statement): (statement, SQL text, literal parameters).
        self._compiled: dict[int, tuple[Executable, str, dict]] = {}
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def is_postgresql(self) -> bool:
        return self.url.startswith("postgresql")

    @property
    def engine(self) -> Engine:
        """This process's engine (created on first use after start or fork)."""
        pid = os.getpid()
        if self._engine is not None and self._pid == pid:
            return self._engine
        with self._lock:
            if self._engine is not None and self._pid != pid:
                self._read_engine.dispose(close=False)
                self._engine = None
            if self._engine is None:
                reads = self._create_engine()
                # PostgreSQL connections rest in autocommit, so a hot read is one SELECT (no
                # BEGIN/ROLLBACK, no isolation switch at checkout); everything else uses the
                # engine below, which puts a connection in READ COMMITTED transactions while
                # it holds it: db.engine.begin(), sessions and transactions behave as usual.
                engine = reads if self.is_sqlite else reads.execution_options(isolation_level="READ COMMITTED")
                self._sessions = sessionmaker(engine, expire_on_commit=False)
                self._reads = sessionmaker(reads, expire_on_commit=False)
                self._engine, self._read_engine, self._pid = engine, reads, pid
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
        return create_engine(self.url, pool_size=self.pool_size, max_overflow=self.max_overflow,
                             pool_timeout=self.pool_timeout, pool_recycle=POOL_RECYCLE_SECONDS,
                             pool_pre_ping=False, pool_use_lifo=True, isolation_level="AUTOCOMMIT")

    def session(self) -> Session:
        """A new session; use ``with db.session() as s, s.begin(): ...``."""
        self.engine
        assert self._sessions is not None
        return self._sessions()

    def read_session(self) -> Session:
        """A session for reads only: on PostgreSQL each statement runs on its
        own (autocommit), so one SELECT is one round trip. Never write with it:
        nothing it does is atomic with anything else."""
        self.engine
        assert self._reads is not None
        return self._reads()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A Core connection for reads only (autocommit on PostgreSQL), for hot
        paths: a few hundred microseconds cheaper than an ORM session. Rows come
        back as :class:`sqlalchemy.Row` (attribute access by column name)."""
        self.engine
        assert self._read_engine is not None
        with self._read_engine.connect() as connection:
            yield connection

    def fetch_one(self, statement: Executable, params: dict) -> tuple | None:
        """The first row of one statement run on its own, as a plain tuple, or
        ``None``: the leanest read, for the hot paths (``/status``,
        ``/user/me``), and on PostgreSQL also the leanest single-statement
        write (an ``INSERT … RETURNING`` is committed by itself, atomically).

        On PostgreSQL the statement is compiled once (keep it a module-level
        constant with ``bindparam`` parameters) and its SQL runs straight on
        the pooled psycopg connection, without SQLAlchemy's result machinery
        (half the CPU of a Core query): values are psycopg's own (``json`` →
        ``dict``, ``timestamptz`` → aware ``datetime``; a ``dict`` parameter is
        sent as JSON, a ``datetime`` must be aware). Errors are raised as
        SQLAlchemy's (``OperationalError``…), and a lost connection
        invalidates the pool as SQLAlchemy would. On SQLite: a Core query.
        """
        if not self.is_postgresql:
            with self.read() as connection:
                row = connection.execute(statement, params).first()
            return None if row is None else tuple(row)
        compiled = self._compiled.get(id(statement))
        if compiled is None or compiled[0] is not statement:
            sql_compiled = statement.compile(dialect=self.engine.dialect)
            # Literals in the statement (coalesce(..., 0)) are parameters too: keep their values.
            literals = {name: bind.effective_value for name, bind in sql_compiled.binds.items() if not bind.required}
            compiled = (statement, sql_compiled.string, literals)
            self._compiled[id(statement)] = compiled
        from psycopg.types.json import Json  # the postgres extra

        _, sql, defaults = compiled
        params = {**defaults, **{name: Json(value) if isinstance(value, dict) else value
                                 for name, value in params.items()}}
        with self.read() as connection:
            dbapi_connection = connection.connection.dbapi_connection
            try:
                return dbapi_connection.execute(sql, params).fetchone()
            except self.engine.dialect.loaded_dbapi.Error as exc:
                disconnected = self.engine.dialect.is_disconnect(exc, dbapi_connection, None)
                if disconnected:
                    connection.invalidate(exc)
                    # Every pooled connection predates the outage: replace the pool, as SQLAlchemy does.
                    self._read_engine.dispose(close=False)
                raise sa_exc.DBAPIError.instance(sql, params, exc, self.engine.dialect.loaded_dbapi.Error,
                                                 connection_invalidated=disconnected,
                                                 dialect=self.engine.dialect) from exc

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error."""
        with self.session() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close this process's pooled connections."""
        if self._read_engine is not None and self._pid == os.getpid():
            self._read_engine.dispose()
        self._engine = self._read_engine = None


@dataclass(frozen=True)
class ConnectionBudget:
    """PostgreSQL connections a site needs against what the server allows.

    ``needed``: ``gateways × workers × (pool_size + max_overflow + 1)``
    (the 1: each worker's LISTEN connection, :mod:`gateway.notify`) plus
    ``other_processes × (pool_size + max_overflow)`` (poller, dispatcher).
    ``available``: ``max_connections - superuser_reserved_connections -
    reserved_connections`` (the last from PostgreSQL 16 on), less
    ``headroom`` for ``qcos`` commands and ``psql``.
    """

    needed: int
    available: int

    @property
    def fits(self) -> bool:
        return self.needed <= self.available


#: Connections left for ``qcos`` commands, migrations and an operator's psql.
BUDGET_HEADROOM = 3


def connection_budget(*, gateways: int, workers: int, pool_size: int, max_overflow: int, other_processes: int,
                      max_connections: int, reserved: int) -> ConnectionBudget:
    """The site's connection budget (see :class:`ConnectionBudget` for the formula)."""
    per_pool = pool_size + max_overflow
    needed = gateways * workers * (per_pool + 1) + other_processes * per_pool
    return ConnectionBudget(needed=needed, available=max_connections - reserved - BUDGET_HEADROOM)


def server_connection_limits(engine: Engine) -> tuple[int, int]:
    """``(max_connections, reserved)`` of a PostgreSQL server; ``reserved`` sums
    the superuser and (16+) ``pg_use_reserved_connections`` slots."""
    with engine.connect() as connection:
        rows = dict(connection.execute(text(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
        )).all())
    reserved = int(rows.get("superuser_reserved_connections", 0)) + int(rows.get("reserved_connections", 0))
    return int(rows["max_connections"]), reserved


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
