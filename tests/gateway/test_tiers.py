"""Tiers from TOML, including their own Slurm settings ([tier.slurm])."""

from __future__ import annotations

import pytest

from gateway.tiers import DEFAULT_TIERS_FILE, TierConfigError, load_tiers
from hpc_jobs.accounting import TierScheduling

_TIER = """
[[tier]]
name = "{name}"
daily_job_limit = 10
max_qubits = 20
max_shots = 1000
{extra}
"""


def _write(tmp_path, *tiers: tuple[str, str]):
    path = tmp_path / "tiers.toml"
    path.write_text("".join(_TIER.format(name=name, extra=extra) for name, extra in tiers))
    return path


def test_the_shipped_tiers_carry_no_slurm_settings_by_default():
    assert all(tier.slurm == TierScheduling() for tier in load_tiers(DEFAULT_TIERS_FILE).values())


def test_a_tier_may_set_account_qos_partitions_and_nice(tmp_path):
    path = _write(tmp_path, ("free", ""), ("enterprise", '[tier.slurm]\naccount = "qcos_ent"\nqos = "high"\n'
                                                         'partitions = ["debug"]\nnice = -10\n'))
    tiers = load_tiers(path)
    assert tiers["free"].slurm == TierScheduling()
    assert tiers["enterprise"].slurm == TierScheduling("qcos_ent", "high", ("debug",), -10)


@pytest.mark.parametrize("table", ['qos = "a b"', 'partition = "debug"', 'nice = 1.5', 'partitions = "debug"'])
def test_a_bad_slurm_setting_names_the_tier_and_file(tmp_path, table):
    path = _write(tmp_path, ("pro", f"[tier.slurm]\n{table}\n"))
    with pytest.raises(TierConfigError, match=r"tiers\.toml.*tier pro"):
        load_tiers(path)


def test_the_gateway_refuses_to_start_with_a_partition_the_profile_lacks(tmp_path, settings):
    from gateway import create_app

    path = _write(tmp_path, ("pro", '[tier.slurm]\npartitions = ["gpu"]\n'))
    with pytest.raises(TierConfigError, match="gpu.*profile dev"):
        create_app({"QCOS_SETTINGS": settings.model_copy(update={"tiers_file": path})})
    good = _write(tmp_path, ("pro", '[tier.slurm]\npartitions = ["debug"]\n'))
    assert create_app({"QCOS_SETTINGS": settings.model_copy(update={"tiers_file": good})}).extensions["qcos"].tiers["pro"].slurm \
        .partitions == ("debug",)
