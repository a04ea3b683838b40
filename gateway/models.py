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


class Job(Base):
    """A submitted circuit and everything known about its batch job.

    ``id`` is the public ``job_id``. ``scheduler_job_id`` is Slurm's job id
    (``slurm_job_id``; a ``local-<hex>`` id under the local executor), a
    string, NULL until sbatch answered. ``status`` is one of
    :class:`hpc_jobs.lifecycle.JobStatus`. ``request_hash`` is the SHA-256 of
    the canonical request body, for idempotent retries of a custom job_id.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
        Index("ix_jobs_user_completed", "user_id", "completed_at"),
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
    scheduler_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    slurm_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    estimated_time_seconds: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The simulator's own time of a completed job, copied from the result for usage sums.
    execution_time_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DailyUsage(Base):
    """Jobs a user submitted on one UTC day: the counter the daily job limit
    is enforced on, with a conditional UPDATE (``jobs < limit``) so that
    concurrent submissions can never exceed the limit."""

    __tablename__ = "daily_usage"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
