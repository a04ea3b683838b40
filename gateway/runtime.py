"""The objects a gateway process shares: settings, database, profile, executor.

Built once per app (and once in the poller); nothing here connects anywhere
until first used.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from hpc_jobs.executors.base import Executor
from hpc_jobs.profiles import ClusterProfile, load_profile
from hpc_jobs.staging import LocalWorkDirs, RemoteWorkDirs

WorkDirs = LocalWorkDirs | RemoteWorkDirs

from gateway.config import Settings
from gateway.db import Database
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
            db=Database(settings.database_url),
            profile=profile,
            executor=executor,
            tiers=tiers,
            work_dirs=work_dirs,
            waiting_slots=threading.BoundedSemaphore(settings.max_waiting_requests),
        )
