"""Persistent records: users, their API keys, and jobs (SQLAlchemy 2 typed models).

The schema is owned by Alembic (``gateway/migrations``); these classes must
match the newest revision.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql import false


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone; PostgreSQL ``timestamptz`` does. Both come back as
    aware UTC datetimes, so comparisons never mix naive and aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    """A researcher (or admin) account. ``id`` is the API's ``user_id`` (``user_<hex>``)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    tier: Mapped[str] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Jobs stored before the daily counters counted every job (set by
    #: migration 0005): ``jobs_total`` is this plus the sum of the user's
    #: :class:`DailyUsage` rows, so it costs one row per day, not one per job.
    uncounted_jobs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="user")


class ApiKey(Base):
    """One API key of a user, stored only as its SHA-256 hash.

    ``prefix`` is the key's first characters (``qcos_ab12``), kept so an admin
    can tell keys apart without the secret.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Admin keys may also use the /admin endpoints (queue, cluster, any job's cancel).
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    user: Mapped[User] = relationship(back_populates="api_keys")


class Batch(Base):
    """Circuits submitted together by ``POST /batches``; each is also an ordinary job.

    ``id`` is the API's ``batch_id`` (``batch_<hex>``); ``count`` the number of jobs.
    """

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Pack(Base):
    """One Slurm batch job running several jobs in turn (or one big job).

    ``state`` is one of :class:`hpc_jobs.packing.PackState`: ``planned``
    (jobs claimed, not yet handed to sbatch), ``submitting`` (sbatch may have
    run: recovered by ``job_name`` if its answer is lost), ``submitted``
    (``scheduler_job_id`` known), ``running``, ``ended``. ``job_name`` is
    unique, so one Slurm lookup by name tells whether a pack reached Slurm.
    ``scheduler_job_id`` is Slurm's id, ``"<id>;<cluster>"`` where sbatch
    named a cluster. ``progress_offset``: bytes of the runner's progress
    file already ingested. ``resources``: the pack's sized
    :class:`hpc_jobs.sizing.JobResources` as a dict.
    """

    __tablename__ = "packs"
    __table_args__ = (Index("ix_packs_executor_state", "executor", "state"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    executor: Mapped[str] = mapped_column(String(16))
    cluster_profile: Mapped[str] = mapped_column(String(64))
    dispatch_class: Mapped[str] = mapped_column(String(200))
    job_name: Mapped[str] = mapped_column(String(128), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    work_dir: Mapped[str] = mapped_column(Text)
    job_count: Mapped[int] = mapped_column(Integer)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON)
    scheduler_job_id: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    slurm_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    progress_offset: Mapped[int] = mapped_column(Integer, default=0)
    #: The runner wrote its ``finished`` line: every job of the pack has its outcome.
    runner_finished: Mapped[bool] = mapped_column(Boolean, default=False)
    submit_attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Earliest time the dispatcher may call sbatch again (backoff after a transient error).
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submit_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: When the scheduler stopped reporting the pack (NULL while it is seen).
    missing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: When Slurm first reported a state the lifecycle table does not know.
    unknown_state_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    """A submitted circuit and everything known about it.

    ``id`` is the public ``job_id``. ``pack_id``: the pack that runs it
    (NULL while it waits for the dispatcher). ``scheduler_job_id`` is that
    pack's Slurm job id (``slurm_job_id``; ``local-<hex>`` under the local
    executor), copied when the pack is submitted. ``status`` is one of
    :class:`hpc_jobs.lifecycle.JobStatus`. ``request_hash`` is the SHA-256
    of the canonical request body, for idempotent retries of a custom
    job_id. ``dispatch_class``: which jobs may share a pack
    (:func:`hpc_jobs.packing.dispatch_class`). ``resources``: the job's own
    sized :class:`hpc_jobs.sizing.JobResources`; ``runtime_seconds`` its
    simulation estimate without batch-job start-up. ``dispatch_count``: packs
    the job was put in (a job left unfinished by a dead pack runs once
    more). ``cancel_pending``: cancelled while in a pack; the poller still
    has to tell the runner (a marker file) or scancel a pack left empty.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
        Index("ix_jobs_user_completed", "user_id", "completed_at"),
        Index("ix_jobs_dispatch", "executor", "status", "pack_id", "created_at"),
        Index("ix_jobs_pack", "pack_id"),
        Index("ix_jobs_batch", "batch_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    qasm: Mapped[str] = mapped_column(Text)
    shots: Mapped[int] = mapped_column(Integer)
    num_qubits: Mapped[int] = mapped_column(Integer)
    request_hash: Mapped[str] = mapped_column(String(64))
    executor: Mapped[str] = mapped_column(String(16))
    cluster_profile: Mapped[str] = mapped_column(String(64))
    work_dir: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    dispatch_class: Mapped[str] = mapped_column(String(200), default="")
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    runtime_seconds: Mapped[int] = mapped_column(Integer, default=1)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id", ondelete="SET NULL"), nullable=True)
    pack_id: Mapped[str | None] = mapped_column(ForeignKey("packs.id", ondelete="SET NULL"), nullable=True)
    dispatch_count: Mapped[int] = mapped_column(Integer, default=0)
    cancel_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    scheduler_job_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    estimated_time_seconds: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The simulator's own time of a completed job, copied from the result for usage sums.
    execution_time_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class QueueModel(Base):
    """The dispatcher's view of its queue, for ``estimated_time_seconds``
    without a scheduler call in the request. One row per executor, written
    by the dispatcher only when a figure changes; see
    :func:`gateway.estimates.estimated_seconds`.

    ``waiting``: ``{dispatch_class: seconds of estimated work not yet in a
    pack}``; ``live_packs``/``max_live_packs``: packs holding a Slurm job and
    the bound; ``pending_start_seconds``: seconds until Slurm expects its
    earliest pending pack to start (0: none pending or no estimate).
    ``scheduler_connected``: whether the poller's last scheduler call
    answered, at ``checked_at`` (``GET /`` reads this instead of calling the
    scheduler in the request). ``accounting_connected``: whether its last
    accounting query (sacct) answered, as of the same ``checked_at``;
    ``None`` for an executor without accounting (local).
    """

    __tablename__ = "queue_model"

    executor: Mapped[str] = mapped_column(String(16), primary_key=True)
    waiting: Mapped[dict[str, Any]] = mapped_column(JSON)
    live_packs: Mapped[int] = mapped_column(Integer, default=0)
    max_live_packs: Mapped[int] = mapped_column(Integer, default=1)
    pending_start_seconds: Mapped[int] = mapped_column(Integer, default=0)
    scheduler_connected: Mapped[bool] = mapped_column(Boolean, default=False)
    accounting_connected: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DailyUsage(Base):
    """Jobs a user submitted on one UTC day: the counter the daily job limit
    is enforced on, with a conditional upsert (``jobs <= limit - n``) so
    that concurrent submissions can never exceed the limit
    (:mod:`gateway.quotas`)."""

    __tablename__ = "daily_usage"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
