"""Create work dirs: each job's circuit and runner parameters, and each pack's manifest and sbatch script."""

from __future__ import annotations

import json
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Iterator, Sequence

from hpc_jobs import workdir
from hpc_jobs.profiles import ClusterProfile
from hpc_jobs.rendering import JOB_ID_PATTERN, render_sbatch
from hpc_jobs.sizing import JobResources


def work_dir_for(work_root: Path, job_id: str, *, resolved: bool = False) -> Path:
    """``<work_root>/<job_id>``, ``work_root`` resolved unless ``resolved``
    says it is; raises ``ValueError`` for an id outside :data:`JOB_ID_PATTERN`
    (so no id can climb out of the work root)."""
    if not JOB_ID_PATTERN.fullmatch(job_id) or job_id in (".", ".."):
        raise ValueError(f"invalid job id {job_id!r}")
    return (Path(work_root) if resolved else Path(work_root).resolve()) / job_id


@dataclass(frozen=True)
class PackMember:
    """One job of a pack as staging needs it: its id, OpenQASM source and runner parameters."""

    job_id: str
    qasm: str
    params: workdir.RunParameters


def pack_dir_for(work_root: PurePath, pack_id: str) -> PurePath:
    """``<work_root>/_packs/<pack_id>`` (``_`` cannot start a job id, so no
    job's work dir can collide); ``ValueError`` for an invalid pack id."""
    if not JOB_ID_PATTERN.fullmatch(pack_id):
        raise ValueError(f"invalid pack id {pack_id!r}")
    return work_root / workdir.PACKS_DIR / pack_id


def stage_pack(
    work_root: Path,
    *,
    pack_id: str,
    members: Sequence[PackMember],
    profile: ClusterProfile,
    resources: JobResources | None = None,
    script_root: PurePath | None = None,
) -> list[Path]:
    """Write the work dir of every member and the pack's own folder
    (manifest and sbatch script; layout in :mod:`hpc_jobs.workdir`).

    ``resources``: the pack's sized resources (:func:`hpc_jobs.packing.size_pack`);
    ``None`` renders the profile's defaults. ``script_root``: the work root
    as the batch job will see it, when that is not where it is written
    (staged here, uploaded to a cluster). A leftover folder of the same id is
    replaced. Returns the folders written, the pack's last. Raises
    ``OSError`` when the work root is not writable, ``ValueError`` for an
    invalid id or path.
    """
    work_root = Path(work_root).resolve()
    seen_root = script_root or work_root
    pack_dir = Path(pack_dir_for(work_root, pack_id))
    script = render_sbatch(profile, job_id=pack_id, work_dir=pack_dir_for(seen_root, pack_id), resources=resources)
    manifest = {"pack_id": pack_id,
                "jobs": [{"job_id": m.job_id, "work_dir": str(seen_root / m.job_id)} for m in members]}
    written = []
    for member in members:
        path = _fresh_dir(work_dir_for(work_root, member.job_id))
        (path / workdir.CIRCUIT_FILE).write_text(member.qasm, encoding="utf-8")
        (path / workdir.PARAMS_FILE).write_text(member.params.to_json(), encoding="utf-8")
        written.append(path)
    _fresh_dir(pack_dir)
    (pack_dir / workdir.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    (pack_dir / workdir.SCRIPT_FILE).write_text(script, encoding="utf-8")
    written.append(pack_dir)
    return written


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    # The parent too (``_packs``): mkdir applies its mode to the last folder only.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.mkdir(mode=0o700)
    return path


def remove_work_dir(work_dir: Path) -> None:
    """Delete a work dir; missing is fine."""
    shutil.rmtree(work_dir, ignore_errors=True)


class LocalWorkDirs:
    """Work dirs on a file system this process shares with the compute nodes
    (or the local executor): written and read in place under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Resolved once (each submission asks for a path; resolving is a system call per component).
        self._resolved_root = self.root.resolve()

    def path_for(self, job_id: str) -> Path:
        """Where ``job_id``'s work dir is; ``ValueError`` for an invalid id."""
        return work_dir_for(self._resolved_root, job_id, resolved=True)

    def pack_path_for(self, pack_id: str) -> Path:
        """Where pack ``pack_id``'s folder is; ``ValueError`` for an invalid id."""
        return Path(pack_dir_for(self._resolved_root, pack_id))

    def stage_pack(self, *, pack_id: str, members: Sequence[PackMember], profile: ClusterProfile,
                   resources: JobResources | None = None) -> Path:
        """Write the pack's folders (see :func:`stage_pack`); returns the pack's folder."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return stage_pack(self.root, pack_id=pack_id, members=members, profile=profile, resources=resources)[-1]

    def read_texts(self, paths: Sequence[PurePath]) -> list[str | None]:
        """Work dir files' texts, in order; ``None`` for a missing one."""
        texts: list[str | None] = []
        for path in paths:
            try:
                texts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
            except FileNotFoundError:
                texts.append(None)
        return texts

    def read_from(self, path: PurePath, offset: int) -> bytes | None:
        """The bytes of ``path`` from ``offset`` on, ``None`` if the file does not exist."""
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                return handle.read()
        except FileNotFoundError:
            return None

    def mark_cancelled(self, job_work_dirs: Sequence[PurePath]) -> None:
        """Leave the ``cancelled`` marker the pack runner checks before each job."""
        for path in job_work_dirs:
            try:
                (Path(path) / workdir.CANCELLED_FILE).touch()
            except FileNotFoundError:
                pass  # not staged yet: the dispatcher leaves cancelled jobs out

    def remove(self, path: PurePath) -> None:
        """Delete a work dir."""
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
    ``staging``, uploaded with SFTP under ``remote_root``, read back with
    SFTP. ``transport`` is an :class:`hpc_jobs.transports.ssh.SSHTransport`.
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

    def pack_path_for(self, pack_id: str) -> PurePosixPath:
        """Where pack ``pack_id``'s folder is on the cluster; ``ValueError`` for an invalid id."""
        return PurePosixPath(pack_dir_for(self.root, pack_id))

    def stage_pack(self, *, pack_id: str, members: Sequence[PackMember], profile: ClusterProfile,
                   resources: JobResources | None = None) -> PurePosixPath:
        """Write the pack's folders locally, upload them in one SFTP session,
        return the pack's remote folder. Raises :class:`hpc_jobs.transports.base.TransportError`."""
        local_root = self.staging / f".{pack_id}"
        remove_work_dir(local_root)
        local_root.mkdir(parents=True, mode=0o700)
        try:
            written = stage_pack(local_root, pack_id=pack_id, members=members, profile=profile,
                                 resources=resources, script_root=self.root)
            self.transport.upload_dirs([
                (path, self.root / path.resolve().relative_to(local_root.resolve())) for path in written
            ])
        finally:
            remove_work_dir(local_root)
        return self.pack_path_for(pack_id)

    def read_texts(self, paths: Sequence[PurePath]) -> list[str | None]:
        """Remote work dir files' texts, in order, in one SFTP session; ``None``
        for a missing or unreadable one. Raises
        :class:`hpc_jobs.transports.base.TransportError` when the session fails."""
        return self.transport.read_texts([PurePosixPath(path) for path in paths])

    def read_from(self, path: PurePath, offset: int) -> bytes | None:
        """The remote file's bytes from ``offset`` on (one SFTP read), ``None`` if missing."""
        return self.transport.read_bytes_from(PurePosixPath(path), offset)

    def mark_cancelled(self, job_work_dirs: Sequence[PurePath]) -> None:
        """Leave the ``cancelled`` markers, in one SFTP session."""
        self.transport.touch_files([PurePosixPath(p) / workdir.CANCELLED_FILE for p in job_work_dirs])

    def remove(self, path: PurePath) -> None:
        """Delete a remote work dir."""
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
