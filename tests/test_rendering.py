"""Cluster profiles and the sbatch scripts rendered from them.

Golden files: ``tests/golden/<case>.sbatch`` hold the script each profile
renders for a fixed job id, work dir and resources (:data:`GOLDEN_CASES`).
After an intended change to a template or profile, regenerate them with

    QCOS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_rendering.py -k golden

and review the diff (``git diff tests/golden``) like any other change.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from hpc_jobs.profiles import PROFILES_DIR, ProfileError, load_profile
from hpc_jobs.rendering import render_sbatch, slurm_job_name
from hpc_jobs.sizing import JobResources
from hpc_jobs.staging import PackMember, stage_pack, work_dir_for
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
    assert lines[-1] == f"exec {sys.executable} -m hpc_jobs.runner --pack /srv/qcos/jobs/bell-1"


def test_optional_directives_appear_when_set():
    profile = load_profile("dev")
    profile = profile.model_copy(update={"slurm": profile.slurm.model_copy(
        update={"account": "project_465000001", "qos": "normal", "gres": "gpu:1"})})
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


def test_staging_a_pack_writes_each_jobs_dir_and_the_packs_manifest_and_script(tmp_path):
    import json

    params = [RunParameters(job_id=f"stage-{i}", shots=100, seed=i) for i in (1, 2)]
    written = stage_pack(tmp_path, pack_id="pack-1", profile=load_profile("dev"),
                         members=[PackMember(p.job_id, BELL, p) for p in params])
    root = tmp_path.resolve()
    assert written == [root / "stage-1", root / "stage-2", root / "_packs" / "pack-1"]
    assert (root / "stage-2" / CIRCUIT_FILE).read_text() == BELL
    assert RunParameters.from_json((root / "stage-2" / PARAMS_FILE).read_text()) == params[1]
    manifest = json.loads((written[-1] / "pack.json").read_text())
    assert [job["work_dir"] for job in manifest["jobs"]] == [str(root / "stage-1"), str(root / "stage-2")]
    script = (written[-1] / SCRIPT_FILE).read_text()
    assert "#SBATCH --job-name=qcos-pack-1" in script
    assert script.rstrip().endswith(f"-m hpc_jobs.runner --pack {root / '_packs' / 'pack-1'}")


def test_pack_folders_and_the_local_registry_are_private_whatever_the_umask(tmp_path):
    import os
    import stat

    from hpc_jobs.executors.local import LocalExecutor

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    previous = os.umask(0)
    try:
        params = RunParameters(job_id="private-1", shots=10, seed=1)
        written = stage_pack(tmp_path / "work", pack_id="pack-p", profile=load_profile("dev"),
                             members=[PackMember(params.job_id, BELL, params)])
        executor = LocalExecutor(tmp_path / "registry", slots=1)
        job_id = executor.submit(written[-1], job_name="qcos-pack-p")
    finally:
        os.umask(previous)
    pack_dir = written[-1]
    assert {mode(p) for p in (written[0], pack_dir.parent, pack_dir)} == {0o700}
    assert mode(tmp_path / "registry") == 0o700 and mode(tmp_path / "registry" / job_id) == 0o700
    executor.cancel([job_id])


def test_the_services_and_the_runner_start_with_umask_077():
    """The entry points, which tests otherwise bypass: gunicorn's config, ``qcos``, ``python -m hpc_jobs.runner``."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    starts = {
        "gunicorn": "import runpy; runpy.run_path('deploy/gunicorn.conf.py')",
        "qcos": "from gateway import cli; sys.argv = ['qcos', '--help']; cli.run()",
        "runner": "import runpy; sys.argv = ['runner']; runpy.run_module('hpc_jobs.runner', run_name='__main__')",
    }
    for name, start in starts.items():
        code = f"import os, sys\nos.umask(0)\ntry:\n    {start}\nexcept SystemExit:\n    pass\nprint(oct(os.umask(0)))"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
        assert done.stdout.strip().splitlines()[-1:] == ["0o77"], (name, done.stdout[-500:], done.stderr[-2000:])


# --------------------------------------------------------------------------- golden scripts

GOLDEN_DIR = Path(__file__).parent / "golden"
LUMI_ACCOUNT = {"slurm": {"account": "project_465000001"}}


def _resources(**changes) -> JobResources:
    base = JobResources(
        method="statevector", precision="double", device="GPU", custatevec=False, partition="small-g",
        nodes=1, ntasks_per_node=1, cpus_per_task=56, gpus_per_node=8, mem="480G", time_limit="00:15:00",
        state_bytes=16 << 34, estimated_runtime_seconds=220,
    )
    return dataclasses.replace(base, **changes)


#: case name -> (profile name, load overrides, work dir, resources or None for the profile defaults)
GOLDEN_CASES = {
    "dev": ("dev", {"runner": {"python": "/opt/qcos/venv/bin/python"}}, "/srv/qcos/jobs/golden-1", None),
    "dev-sized": ("dev", {"runner": {"python": "/opt/qcos/venv/bin/python"}}, "/srv/qcos/jobs/golden-1",
                  _resources(device="CPU", partition="debug", cpus_per_task=2, gpus_per_node=0, mem="3G",
                             time_limit="00:20:00", state_bytes=16 << 24, estimated_runtime_seconds=9)),
    "lumi-g": ("lumi-g", LUMI_ACCOUNT, "/scratch/project_465000001/qcos/jobs/golden-1", _resources()),
    "lumi-g-multinode": ("lumi-g", LUMI_ACCOUNT, "/scratch/project_465000001/qcos/jobs/golden-1",
                         _resources(partition="standard-g", nodes=8, state_bytes=16 << 37,
                                    time_limit="1-02:00:00")),
    "nvidia": ("nvidia", None, "/scratch/qcos/jobs/golden-1",
               _resources(partition="gpu", custatevec=True, cpus_per_task=32, gpus_per_node=2, mem="240G",
                          state_bytes=16 << 33, time_limit="00:20:00", estimated_runtime_seconds=435)),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_scripts(case):
    profile_name, overrides, work_dir, resources = GOLDEN_CASES[case]
    profile = load_profile(profile_name, overrides=overrides)
    script = render_sbatch(profile, job_id="golden-1", work_dir=Path(work_dir), resources=resources)
    golden = GOLDEN_DIR / f"{case}.sbatch"
    if os.environ.get("QCOS_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        golden.write_text(script, encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}; run with QCOS_UPDATE_GOLDEN=1"
    assert script == golden.read_text(encoding="utf-8"), f"{case} differs from {golden} (QCOS_UPDATE_GOLDEN=1 updates it)"


def test_every_shipped_profile_has_a_golden_script():
    assert {path.stem for path in PROFILES_DIR.glob("*.toml")} <= {p for p, *_ in GOLDEN_CASES.values()}


def test_lumi_script_binds_the_full_project_paths_and_asks_for_gcds():
    profile = load_profile("lumi-g", overrides=LUMI_ACCOUNT)
    script = render_sbatch(profile, job_id="x", work_dir=Path("/scratch/project_465000001/q/x"),
                           resources=_resources(gpus_per_node=2, cpus_per_task=14, mem="120G"))
    lines = script.splitlines()
    for directive in ("--account=project_465000001", "--partition=small-g", "--gpus-per-node=2",
                      "--cpus-per-task=14", "--mem=120G", "--nodes=1"):
        assert f"#SBATCH {directive}" in lines
    assert "set -euo pipefail" in lines
    assert lines[-1] == ("exec singularity exec --bind /scratch/project_465000001,/project/project_465000001 "
                         "/project/project_465000001/qcos/qcos-sim-rocm.sif python3 -m hpc_jobs.runner --pack "
                         "/scratch/project_465000001/q/x")
    assert "MPICH_GPU_SUPPORT_ENABLED" not in script  # one node: no MPI


def test_lumi_multinode_runs_one_rank_per_node_with_gpu_aware_mpich():
    profile = load_profile("lumi-g", overrides=LUMI_ACCOUNT)
    script = render_sbatch(profile, job_id="x", work_dir=Path("/scratch/project_465000001/q/x"),
                           resources=_resources(partition="standard-g", nodes=4))
    assert "export MPICH_GPU_SUPPORT_ENABLED=1" in script
    assert "exec srun --ntasks-per-node=1 --cpus-per-task=56" in script


def test_nvidia_script_asks_for_gres_and_runs_apptainer_with_nv():
    profile = load_profile("nvidia", overrides={"node": {"gpu_type": "a100"}})
    script = render_sbatch(profile, job_id="x", work_dir=Path("/scratch/q/x"),
                           resources=_resources(partition="gpu", gpus_per_node=2))
    assert "#SBATCH --gres=gpu:a100:2" in script.splitlines()
    assert "exec apptainer exec --nv --bind /scratch /opt/qcos/qcos-sim-nvidia.sif python3 -m hpc_jobs.runner" in script


@pytest.mark.parametrize("account", ["", "project_", "project_12a", "other_465000001"])
def test_lumi_refuses_to_render_without_a_valid_account(account):
    profile = load_profile("lumi-g", overrides=LUMI_ACCOUNT)
    profile = profile.model_copy(update={"slurm": profile.slurm.model_copy(update={"account": account})})
    with pytest.raises(ProfileError, match="not a valid account"):
        render_sbatch(profile, job_id="x", work_dir=Path("/scratch/x"), resources=_resources())


@pytest.mark.parametrize(
    "change",
    [{"partition": "small-g\n#SBATCH --uid=0"}, {"time_limit": "soon"}, {"mem": "lots"}, {"nodes": 0},
     {"method": "statevector; rm -rf /"}],
)
def test_bad_resources_never_reach_a_script(change):
    profile = load_profile("lumi-g", overrides=LUMI_ACCOUNT)
    with pytest.raises(ValueError):
        render_sbatch(profile, job_id="x", work_dir=Path("/scratch/x"), resources=_resources(**change))


@pytest.mark.parametrize(
    "overrides",
    [{"container": {"image": "/p/$(id).sif"}}, {"container": {"binds": ["/scratch /etc"]}},
     {"container": {"flags": ["--nv; id"]}}, {"environment": {"variables": {"lower": "x"}}},
     {"environment": {"modules": ["rocm; id"]}}, {"partitions": [{"name": "a b", "max_nodes": 1}]},
     {"node": {"gpus": -1}}, {"simulator": {"memory_headroom": 0.5}}],
)
def test_site_values_that_reach_shell_lines_are_validated(overrides):
    with pytest.raises(ProfileError):
        load_profile("lumi-g", overrides={**LUMI_ACCOUNT, **overrides})
