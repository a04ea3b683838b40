"""The objects a gateway process shares: settings, database, profile, executor.

Built once per app (and once in the poller); nothing here connects anywhere
until first used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from hpc_jobs.executors.base import Executor
from hpc_jobs.profiles import ClusterProfile, load_profile

from gateway.config import Settings
from gateway.db import Database
from gateway.tiers import Tier, load_tiers


def build_executor(settings: Settings) -> Executor:
    """The executor ``QCOS_EXECUTOR`` names: the local one, or Slurm through local commands."""
    if settings.executor == "slurm":
        from hpc_jobs.executors.slurm import SlurmExecutor
        from hpc_jobs.transports.local import LocalTransport

        return SlurmExecutor(LocalTransport())
    from hpc_jobs.executors.local import LocalExecutor

    return LocalExecutor(settings.local_registry)


@dataclass
class QueueCheck:
    """``executor.ping()`` cached for ``ttl`` seconds, so ``GET /`` stays cheap
    under load while still reporting a real check."""

    executor: Executor
    ttl: float
    _value: bool = False
    _checked_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def connected(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at < self.ttl:
            return self._value
        with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl:
                self._value = bool(self.executor.ping())
                self._checked_at = time.monotonic()
        return self._value


@dataclass
class Runtime:
    """Everything a request handler or the poller needs, built from :class:`Settings`."""

    settings: Settings
    db: Database
    profile: ClusterProfile
    executor: Executor
    queue_check: QueueCheck
    tiers: dict[str, Tier]

    @classmethod
    def from_settings(cls, settings: Settings, *, executor: Executor | None = None) -> "Runtime":
        """Raises :class:`hpc_jobs.profiles.ProfileError` for a bad cluster profile and
        :class:`gateway.tiers.TierConfigError` for a bad tiers file."""
        executor = executor or build_executor(settings)
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            profile=load_profile(settings.cluster_profile),
            executor=executor,
            queue_check=QueueCheck(executor, settings.queue_check_ttl_seconds),
            tiers=load_tiers(settings.tiers_file),
        )
