"""What the gateway builds from its settings (gateway/runtime.py)."""

from __future__ import annotations

import time

import pytest

from gateway.config import ConfigError, Settings
from gateway.runtime import build_site
from hpc_jobs.executors.base import ExecutorError, SubmissionUnconfirmed


def test_a_slurm_command_is_given_up_after_qcos_slurm_command_timeout(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "squeue"):  # a controller that never answers
        (bin_dir / name).write_text("#!/bin/sh\nexec sleep 60\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    settings = Settings.from_env({"QCOS_STATE_DIR": str(tmp_path / "state"), "QCOS_EXECUTOR": "slurm",
                                  "QCOS_SLURM_COMMAND_TIMEOUT": "1.5"})
    executor, _ = build_site(settings)
    started = time.monotonic()
    with pytest.raises(SubmissionUnconfirmed, match="within 1.5 s"):
        executor.submit(tmp_path, job_name="qcos-pack-0")
    with pytest.raises(ExecutorError, match="within 1.5 s"):
        executor.observe(["7"])
    assert time.monotonic() - started < 10


def test_the_slurm_command_timeout_defaults_to_30_s_and_refuses_less_than_1():
    assert Settings.from_env({}).slurm_command_timeout_seconds == 30
    with pytest.raises(ConfigError, match="QCOS_SLURM_COMMAND_TIMEOUT"):
        Settings.from_env({"QCOS_SLURM_COMMAND_TIMEOUT": "0.5"})
