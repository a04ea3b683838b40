"""The objects a gateway process shares: settings, database, profile, executor.

Built once per app (and once in the poller); nothing here connects anywhere
until first used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from hpc_jobs.executors.base import Executor
from hpc_jobs.profiles import ClusterProfile, load_profile
from hpc_jobs.staging import LocalWorkDirs, RemoteWorkDirs

WorkDirs = LocalWorkDirs | RemoteWorkDirs

from gateway.accounts import CredentialCache
from gateway.config import Settings
from gateway.db import Database
from gateway.jobcache import FinalJobCache
from gateway.notify import ChangeListener, JobWaiters
from gateway.quotas import JobCountCache
from gateway.tiers import Tier, check_tiers_against_profile, load_tiers


def build_site(settings: Settings) -> tuple[Executor, WorkDirs]:
    """The executor ``QCOS_EXECUTOR`` names and where its work dirs live:

    - ``local``: the local executor, work dirs under ``QCOS_WORK_ROOT``;
    - ``slurm``: Slurm commands run here, work dirs on a shared file system;
    - ``slurm`` with ``QCOS_SSH_HOST``: Slurm commands on a login node over
      one SSH connection per process, work dirs uploaded and read by SFTP.
    """
    if settings.executor == "slurm" and settings.ssh_host:
        from hpc_jobs.executors.slurm import SlurmExecutor
        from hpc_jobs.transports.ssh import SSHTransport

        transport = SSHTransport(settings.ssh_host, port=settings.ssh_port, username=settings.ssh_user,
                                 key_filename=settings.ssh_key, known_hosts=settings.ssh_known_hosts)
        staging = settings.state_dir / "staging"
        return (SlurmExecutor(transport, timeout=settings.slurm_command_timeout_seconds),
                RemoteWorkDirs(transport, str(settings.work_root), staging))
    if settings.executor == "slurm":
        from hpc_jobs.executors.slurm import SlurmExecutor
        from hpc_jobs.transports.local import LocalTransport

        return (SlurmExecutor(LocalTransport(), timeout=settings.slurm_command_timeout_seconds),
                LocalWorkDirs(settings.work_root))
    from hpc_jobs.executors.local import LocalExecutor

    return LocalExecutor(settings.local_registry), LocalWorkDirs(settings.work_root)


@dataclass
class DatabaseCheck:
    """``SELECT 1``, a success reused for ``ttl`` seconds, so ``GET /`` under
    load costs no query while an outage still shows within ``ttl``. A
    failure is never reused: the next call checks again."""

    db: Database
    ttl: float
    _ok_at: float = float("-inf")

    def reachable(self) -> bool:
        if time.monotonic() - self._ok_at < self.ttl:
            return True
        try:
            with self.db.read() as connection:
                connection.execute(_PING)
        except Exception:  # noqa: BLE001 - any failure means "unreachable" here
            return False
        self._ok_at = time.monotonic()
        return True


_PING = text("SELECT 1")


@dataclass
class Runtime:
    """Everything a request handler or the poller needs, built from :class:`Settings`."""

    settings: Settings
    db: Database
    profile: ClusterProfile
    executor: Executor
    tiers: dict[str, Tier]
    work_dirs: WorkDirs
    #: Requests of this process that may block in ``/results?wait=true`` at once.
    waiting_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(16))
    #: Threads of this process waiting in ``/results?wait=true``, by job.
    job_waiters: JobWaiters = field(default_factory=JobWaiters)
    #: Valid API keys looked up recently (used only while ``changes`` listens).
    credentials: CredentialCache = field(default_factory=lambda: CredentialCache(0))
    #: What ``GET /user/me`` shows of users' job counts, read recently.
    job_counts: JobCountCache = field(default_factory=lambda: JobCountCache(0))
    #: ``GET /``'s database check.
    db_check: DatabaseCheck | None = None
    #: What the API shows of final jobs, cached (they never change).
    final_jobs: FinalJobCache = field(default_factory=lambda: FinalJobCache(0))
    #: The LISTEN connection feeding ``job_waiters`` and ``credentials`` (PostgreSQL only).
    changes: ChangeListener | None = None
    #: Shared rate-limit storage's health (:class:`gateway.ratelimit.StorageCheck`), set by
    #: :func:`gateway.ratelimit.init_app`; ``None`` with process-local storage or limits off.
    ratelimit_check: Any = None

    def __post_init__(self) -> None:
        if self.db_check is None:
            self.db_check = DatabaseCheck(self.db, self.settings.db_ping_ttl_seconds)
        if self.changes is None and self.db.is_postgresql:
            self.changes = ChangeListener(self.db, self.job_waiters, self.credentials.clear)

    @property
    def listening(self) -> bool:
        """Whether job and account changes reach this process by notification now."""
        return self.changes is not None and self.changes.listening

    def start_listening(self) -> None:
        """Start this process's listener if there is one and it is not running (cheap when it is)."""
        if self.changes is not None:
            self.changes.ensure_started()

    def close(self) -> None:
        """Stop the listener and close this process's pooled connections (tests, commands)."""
        if self.changes is not None:
            self.changes.stop()
        self.db.dispose()

    def stop_waiting(self) -> None:
        """Shutdown: answer every waiting ``/results?wait=true`` now, with its job as it is."""
        self.job_waiters.stop()

    @classmethod
    def from_settings(cls, settings: Settings, *, executor: Executor | None = None) -> "Runtime":
        """Raises :class:`hpc_jobs.profiles.ProfileError` for a bad cluster profile and
        :class:`gateway.tiers.TierConfigError` for a bad tiers file."""
        site_executor, work_dirs = build_site(settings)
        executor = executor or site_executor
        overrides = {"slurm": {"account": settings.slurm_account}} if settings.slurm_account else None
        profile = load_profile(settings.cluster_profile, overrides=overrides)
        tiers = load_tiers(settings.tiers_file)
        check_tiers_against_profile(tiers, profile)
        return cls(
            settings=settings,
            db=Database(settings.database_url, pool_size=settings.db_pool_size,
                        max_overflow=settings.db_max_overflow, pool_timeout=settings.db_pool_timeout_seconds),
            profile=profile,
            executor=executor,
            tiers=tiers,
            work_dirs=work_dirs,
            waiting_slots=threading.BoundedSemaphore(settings.max_waiting_requests),
            credentials=CredentialCache(settings.auth_cache_seconds if settings.uses_postgresql else 0),
            job_counts=JobCountCache(settings.job_count_cache_seconds),
            final_jobs=FinalJobCache(int(settings.final_job_cache_mb * 1024 * 1024)),
        )
