"""Create a job's work dir: circuit, runner parameters and the rendered sbatch script."""

from __future__ import annotations

import shutil
from pathlib import Path

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
) -> Path:
    """Write the work dir of ``job_id`` and return its path.

    ``resources``: the job's sized resources (:func:`hpc_jobs.sizing.size_job`)
    for the script; ``None`` renders the profile's defaults.

    A leftover folder of the same id (from a submission that crashed before
    its database row was written) is replaced. Raises ``OSError`` when the
    work root is not writable, ``ValueError`` for an invalid id or path.
    """
    path = work_dir_for(work_root, job_id)
    script = render_sbatch(profile, job_id=job_id, work_dir=path, resources=resources)
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
