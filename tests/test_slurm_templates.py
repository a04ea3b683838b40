"""Every cluster profile's rendered sbatch script, dry-run by the real Slurm controller.

Site profiles (lumi-g, nvidia) name partitions, accounts and GPUs the dev
cluster does not have, so each is dry-run as :func:`dry_run_variant` of
itself against the dev profile: its own template, container and
environment, with the dev cluster's partition (``debug``), account (none),
node (no GPUs) and limits. ``sbatch --test-only`` then checks the site
template's ``#SBATCH`` lines against a real controller; it submits nothing,
so the container command is never run. The GPU lines themselves are pinned
by the golden files of ``tests/test_rendering.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_jobs.executors.slurm import SlurmExecutor
from hpc_jobs.profiles import PROFILES_DIR, dry_run_variant, load_profile
from hpc_jobs.rendering import slurm_job_name
from hpc_jobs.sizing import size_job
from hpc_jobs.staging import PackMember, stage_pack
from hpc_jobs.workdir import SCRIPT_FILE, RunParameters
from tests.conftest import BELL

PROFILES = sorted(path.stem for path in PROFILES_DIR.glob("*.toml"))
# Values a real deployment would set; the dry-run variant replaces them anyway.
SITE_OVERRIDES = {"lumi-g": {"slurm": {"account": "project_465000001"}}}


def _dry_run(profile_name: str, slurm_cluster, tmp_path: Path, *, num_qubits: int, clifford: bool):
    dev = load_profile("dev")
    profile = dry_run_variant(load_profile(profile_name, overrides=SITE_OVERRIDES.get(profile_name)), dev)
    resources = size_job(profile, num_qubits=num_qubits, num_operations=10, shots=10, clifford=clifford)
    job_id = f"dry-{profile_name}-{num_qubits}"
    params = RunParameters(job_id=job_id, shots=10, seed=1, **resources.run_options())
    work_dir = stage_pack(tmp_path, pack_id=f"pack-{job_id}", profile=profile, resources=resources,
                          members=[PackMember(job_id, BELL, params)])[-1]
    estimate = SlurmExecutor(slurm_cluster).test_only(work_dir, job_name=slurm_job_name(f"pack-{job_id}"))
    return profile, resources, work_dir, estimate


@pytest.mark.slurm
@pytest.mark.parametrize("profile_name", PROFILES)
@pytest.mark.parametrize(("num_qubits", "clifford"), [(2, True), (20, False)])
def test_sbatch_test_only_accepts_the_rendered_script(profile_name, num_qubits, clifford, slurm_cluster, tmp_path):
    _, resources, work_dir, estimate = _dry_run(profile_name, slurm_cluster, tmp_path,
                                                num_qubits=num_qubits, clifford=clifford)
    assert estimate.partition == "debug" == resources.partition
    assert estimate.processors == resources.cpus_per_task
    assert estimate.start is not None
    script = (Path(work_dir) / SCRIPT_FILE).read_text()
    assert "#SBATCH --partition=debug" in script and "#SBATCH --account" not in script
    # --test-only submits nothing: no output files appear.
    assert not (Path(work_dir) / "stdout.log").exists()


def test_dry_run_variant_keeps_the_site_template_and_takes_the_dev_cluster_limits():
    dev = load_profile("dev")
    lumi = load_profile("lumi-g", overrides=SITE_OVERRIDES["lumi-g"])
    variant = dry_run_variant(lumi, dev)
    assert (variant.template, variant.container) == (lumi.template, lumi.container)
    assert (variant.slurm.partition, variant.slurm.account, variant.slurm.account_pattern) == ("debug", "", "")
    assert variant.partitions == dev.partitions and variant.node.gpus == 0
    assert variant.simulator.device == "CPU"
