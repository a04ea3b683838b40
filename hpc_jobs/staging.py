"""Create a job's work dir: circuit, runner parameters and the rendered sbatch script."""

from __future__ import annotations

import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path, PurePath, PurePosixPath
from typing import Iterator

from hpc_jobs import workdir
from hpc_jobs.profiles import ClusterProfile
from hpc_jobs.rendering import JOB_ID_PATTERN, render_sbatch
from hpc_jobs.sizing import JobResources


def work_dir_for(work_root: Path, job_id: str) -> Path:
    """``<work_root>/<job_id>``; raises ``ValueError`` for an id outside :data:`JOB_ID_PATTERN`
    (so no id can climb out of the work root)."""
    if not JOB_ID_PATTERN.fullmatch(job_id) or job_id in (".", ".."):
        raise ValueError(f"invalid job id {job_id!r}")
    return Path(work_root).resolve() / job_id


def stage_job(
    work_root: Path,
    *,
    job_id: str,
    qasm: str,
    params: workdir.RunParameters,
    profile: ClusterProfile,
    resources: JobResources | None = None,
    script_work_dir: PurePath | None = None,
) -> Path:
    """Write the work dir of ``job_id`` and return its path.

    ``resources``: the job's sized resources (:func:`hpc_jobs.sizing.size_job`)
    for the script; ``None`` renders the profile's defaults.
    ``script_work_dir``: where the batch job will find this folder, when that
    is not where it is written (staged here, uploaded to a cluster).

    A leftover folder of the same id (from a submission that crashed before
    its database row was written) is replaced. Raises ``OSError`` when the
    work root is not writable, ``ValueError`` for an invalid id or path.
    """
    path = work_dir_for(work_root, job_id)
    script = render_sbatch(profile, job_id=job_id, work_dir=script_work_dir or path, resources=resources)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o750)
    (path / workdir.CIRCUIT_FILE).write_text(qasm, encoding="utf-8")
    (path / workdir.PARAMS_FILE).write_text(params.to_json(), encoding="utf-8")
    (path / workdir.SCRIPT_FILE).write_text(script, encoding="utf-8")
    return path


def remove_work_dir(work_dir: Path) -> None:
    """Delete a work dir that never reached the scheduler; missing is fine."""
    shutil.rmtree(work_dir, ignore_errors=True)


class LocalWorkDirs:
    """Work dirs on a file system this process shares with the compute nodes
    (or the local executor): written and read in place under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, job_id: str) -> Path:
        """Where ``job_id``'s work dir is; ``ValueError`` for an invalid id."""
        return work_dir_for(self.root, job_id)

    def stage(self, *, job_id: str, qasm: str, params: workdir.RunParameters, profile: ClusterProfile,
              resources: JobResources | None = None) -> Path:
        """Write the work dir (see :func:`stage_job`); returns its path."""
        self.root.mkdir(parents=True, exist_ok=True)
        return stage_job(self.root, job_id=job_id, qasm=qasm, params=params, profile=profile, resources=resources)

    def read_text(self, path: PurePath) -> str | None:
        """A work dir file's text, ``None`` if missing (fits :data:`hpc_jobs.poller.ReadText`)."""
        from hpc_jobs.poller import read_local_text

        return read_local_text(Path(path))

    def remove(self, path: PurePath) -> None:
        """Delete a work dir that never reached the scheduler."""
        remove_work_dir(Path(path))

    @contextmanager
    def scratch(self) -> Iterator["LocalWorkDirs"]:
        """A throw-away root beside the real one (for dry runs), removed afterwards."""
        scratch = self.root / f".dry-run-{secrets.token_hex(6)}"
        try:
            yield LocalWorkDirs(scratch)
        finally:
            remove_work_dir(scratch)


class RemoteWorkDirs:
    """Work dirs on a cluster reached over SSH: staged locally under
    ``staging``, uploaded with SFTP to ``remote_root/<job_id>``, read back
    with SFTP. ``transport`` is an :class:`hpc_jobs.transports.ssh.SSHTransport`.
    """

    def __init__(self, transport, remote_root: str, staging: Path) -> None:
        if not str(remote_root).startswith("/"):
            raise ValueError(f"the remote work root must be absolute, not {remote_root!r}")
        self.transport = transport
        self.root = PurePosixPath(remote_root)
        self.staging = Path(staging)

    def path_for(self, job_id: str) -> PurePosixPath:
        """Where ``job_id``'s work dir is on the cluster; ``ValueError`` for an invalid id."""
        work_dir_for(self.staging, job_id)  # validates the id
        return self.root / job_id

    def stage(self, *, job_id: str, qasm: str, params: workdir.RunParameters, profile: ClusterProfile,
              resources: JobResources | None = None) -> PurePosixPath:
        """Write the work dir locally, upload it, and return its remote path.
        Raises :class:`hpc_jobs.transports.base.TransportError`."""
        remote = self.path_for(job_id)
        self.staging.mkdir(parents=True, exist_ok=True)
        local = stage_job(self.staging, job_id=job_id, qasm=qasm, params=params, profile=profile,
                          resources=resources, script_work_dir=remote)
        try:
            self.transport.upload_dir(local, remote)
        finally:
            remove_work_dir(local)
        return remote

    def read_text(self, path: PurePath) -> str | None:
        """A remote work dir file's text, ``None`` if missing."""
        return self.transport.read_text(PurePosixPath(path))

    def remove(self, path: PurePath) -> None:
        """Delete a remote work dir that never reached the scheduler."""
        self.transport.remove_tree(PurePosixPath(path))

    @contextmanager
    def scratch(self) -> Iterator["RemoteWorkDirs"]:
        """A throw-away remote root (for dry runs), removed afterwards."""
        name = f".dry-run-{secrets.token_hex(6)}"
        scratch = RemoteWorkDirs(self.transport, str(self.root / name), self.staging / name)
        try:
            yield scratch
        finally:
            self.transport.remove_tree(self.root / name)
