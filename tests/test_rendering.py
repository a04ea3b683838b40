"""Cluster profiles and the sbatch scripts rendered from them."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from hpc_jobs.profiles import PROFILES_DIR, ProfileError, load_profile
from hpc_jobs.rendering import render_sbatch, slurm_job_name
from hpc_jobs.staging import stage_job, work_dir_for
from hpc_jobs.workdir import CIRCUIT_FILE, PARAMS_FILE, SCRIPT_FILE, RunParameters

from tests.conftest import BELL


def test_dev_profile_renders_a_complete_script():
    script = render_sbatch(load_profile("dev"), job_id="bell-1", work_dir=Path("/srv/qcos/jobs/bell-1"))
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for directive in ("--job-name=qcos-bell-1", "--partition=debug", "--time=00:10:00", "--ntasks=1",
                      "--cpus-per-task=1", "--mem=2G", "--output=/srv/qcos/jobs/bell-1/stdout.log",
                      "--error=/srv/qcos/jobs/bell-1/stderr.log"):
        assert f"#SBATCH {directive}" in lines
    assert not any(line.startswith(("#SBATCH --account", "#SBATCH --qos", "#SBATCH --gres")) for line in lines)
    assert lines[-1] == f"exec {sys.executable} -m hpc_jobs.runner /srv/qcos/jobs/bell-1"


def test_optional_directives_appear_when_set():
    profile = load_profile("dev")
    profile = dataclasses.replace(profile, slurm=dataclasses.replace(profile.slurm, account="project_465000001",
                                                                      qos="normal", gres="gpu:1"))
    script = render_sbatch(profile, job_id="x", work_dir=Path("/w/x"))
    assert "#SBATCH --account=project_465000001" in script
    assert "#SBATCH --qos=normal" in script and "#SBATCH --gres=gpu:1" in script


@pytest.mark.parametrize("work_dir", ["relative/x", "/tmp/with space", "/tmp/new\nline", "/tmp/$(id)"])
def test_unsafe_work_dirs_never_reach_a_script(work_dir):
    with pytest.raises(ValueError):
        render_sbatch(load_profile("dev"), job_id="x", work_dir=Path(work_dir))


@pytest.mark.parametrize("job_id", ["", "../up", "a/b", "-x", "x y", "x;rm", "a" * 65])
def test_unsafe_job_ids_are_refused(job_id, tmp_path):
    with pytest.raises(ValueError):
        slurm_job_name(job_id)
    with pytest.raises(ValueError):
        work_dir_for(tmp_path, job_id)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("slurm", "partition", "debug\n#SBATCH --uid=0"),
        ("slurm", "account", "a b"),
        ("slurm", "time_limit", "forever"),
        ("slurm", "mem", "lots"),
        ("slurm", "cpus_per_task", 0),
        ("simulator", "device", "TPU"),
    ],
)
def test_profiles_with_bad_values_are_refused(tmp_path, section, key, value):
    import json

    text = (PROFILES_DIR / "dev.toml").read_text()
    rendered = json.dumps(value) if isinstance(value, str) else str(value)
    lines = [f"{key} = {rendered}" if line.split("=")[0].strip() == key else line for line in text.splitlines()]
    bad = tmp_path / "bad.toml"
    bad.write_text("\n".join(lines))
    with pytest.raises(ProfileError):
        load_profile(str(bad))


def test_unknown_profile_name_is_a_clear_error():
    with pytest.raises(ProfileError, match="not found"):
        load_profile("nowhere")


def test_staging_writes_circuit_params_and_script(tmp_path):
    params = RunParameters(job_id="stage-1", shots=100, seed=1)
    path = stage_job(tmp_path, job_id="stage-1", qasm=BELL, params=params, profile=load_profile("dev"))
    assert path == tmp_path.resolve() / "stage-1"
    assert (path / CIRCUIT_FILE).read_text() == BELL
    assert RunParameters.from_json((path / PARAMS_FILE).read_text()) == params
    assert "#SBATCH --job-name=qcos-stage-1" in (path / SCRIPT_FILE).read_text()
