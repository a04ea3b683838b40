"""Every cluster profile's rendered sbatch script, dry-run by the real Slurm controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_jobs.executors.slurm import SlurmExecutor
from hpc_jobs.profiles import PROFILES_DIR, load_profile
from hpc_jobs.rendering import slurm_job_name
from hpc_jobs.staging import stage_job
from hpc_jobs.workdir import RunParameters

from tests.conftest import BELL

PROFILES = sorted(path.stem for path in PROFILES_DIR.glob("*.toml"))


@pytest.mark.slurm
@pytest.mark.parametrize("profile_name", PROFILES)
def test_sbatch_test_only_accepts_the_rendered_script(profile_name, slurm_cluster, tmp_path):
    profile = load_profile(profile_name)
    work_dir = stage_job(tmp_path, job_id=f"dry-{profile_name}", qasm=BELL,
                         params=RunParameters(job_id=f"dry-{profile_name}", shots=10, seed=1), profile=profile)
    estimate = SlurmExecutor(slurm_cluster).test_only(work_dir, job_name=slurm_job_name(f"dry-{profile_name}"))
    assert estimate.partition == profile.slurm.partition
    assert estimate.start is not None
    # --test-only submits nothing: no output files appear.
    assert not (Path(work_dir) / "stdout.log").exists()

