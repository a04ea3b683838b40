"""Who a batch job is for (sbatch --comment/--wckey) and each tier's own scheduling."""

from __future__ import annotations

import pytest

from hpc_jobs.accounting import (
    MAX_COMMENT_LENGTH,
    AccountingError,
    TierScheduling,
    check_against_profile,
    sbatch_accounting_args,
    sbatch_comment,
)
from hpc_jobs.profiles import load_profile


class TestComment:
    def test_names_tier_users_and_jobs_once_each(self):
        comment = sbatch_comment(tier="pro", user_ids=["user_a1", "user_b2", "user_a1"], job_ids=["j-1", "j.2"])
        assert comment == "qcos tier=pro users=user_a1,user_b2 jobs=j-1,j.2"

    def test_a_large_pack_is_cut_at_the_bound_and_counted(self):
        jobs = [f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd" for i in range(500)]
        comment = sbatch_comment(tier="enterprise", user_ids=["user_1", "user_2"], job_ids=jobs)
        assert len(comment) <= MAX_COMMENT_LENGTH
        assert comment.startswith("qcos tier=enterprise users=user_1,user_2 jobs=00000000-aaaa")
        listed = comment.split(" jobs=")[1].split("(+")[0].split(",")
        assert listed == jobs[:len(listed)] and comment.endswith(f"(+{500 - len(listed)} more)")

    def test_users_are_counted_too_when_even_they_do_not_fit(self):
        comment = sbatch_comment(tier="free", user_ids=[f"user_{i:04d}" for i in range(200)], job_ids=["j1"],
                                 max_length=120)
        assert len(comment) <= 120 and "more)" in comment.split(" jobs=")[0] and comment.endswith("jobs=j1")

    @pytest.mark.parametrize("bad", ["j 1", "j;rm -rf", "$(id)", "j\n1", "", "-j", "x" * 65, "a|b", "a'b"])
    def test_unsafe_ids_are_refused(self, bad):
        with pytest.raises(AccountingError):
            sbatch_comment(tier="pro", user_ids=["user_a"], job_ids=[bad])
        with pytest.raises(AccountingError):
            sbatch_comment(tier="pro", user_ids=[bad], job_ids=["j1"])

    def test_an_unsafe_tier_is_refused(self):
        with pytest.raises(AccountingError):
            sbatch_comment(tier="pro x", user_ids=["u"], job_ids=["j"])


class TestOptions:
    def test_comment_and_wckey_always_then_the_tiers_own_settings(self):
        args = sbatch_accounting_args(tier="enterprise", user_ids=["user_a"], job_ids=["j1"],
                                      scheduling=TierScheduling(account="proj_ent", qos="high", nice=-5,
                                                                partitions=("gpu",)))
        assert args == ["--comment=qcos tier=enterprise users=user_a jobs=j1", "--wckey=enterprise",
                        "--account=proj_ent", "--qos=high", "--nice=-5"]

    def test_no_tier_settings_means_only_who_it_is_for(self):
        assert sbatch_accounting_args(tier="free", user_ids=["u1"], job_ids=["j1"]) == [
            "--comment=qcos tier=free users=u1 jobs=j1", "--wckey=free"]


class TestTierScheduling:
    def test_from_a_toml_table(self):
        scheduling = TierScheduling.from_mapping({"account": "a1", "qos": "q-1", "partitions": ["p1", "p2"],
                                                  "nice": 100})
        assert scheduling == TierScheduling("a1", "q-1", ("p1", "p2"), 100)

    @pytest.mark.parametrize("table, complaint", [
        ({"acount": "x"}, "unknown"),
        ({"account": "a b"}, "not a Slurm name"),
        ({"qos": "q;x"}, "not a Slurm name"),
        ({"partitions": "debug"}, "list"),
        ({"partitions": ["debug", "debug"]}, "twice"),
        ({"partitions": ["--all"]}, "not a Slurm name"),
        ({"nice": "high"}, "whole number"),
        ({"nice": True}, "whole number"),
        ({"nice": 2**40}, "within"),
        ("qos=high", "table"),
    ])
    def test_bad_values_are_refused_with_a_reason(self, table, complaint):
        with pytest.raises(AccountingError, match=complaint):
            TierScheduling.from_mapping(table, where="tier pro")

    def test_partitions_and_account_must_suit_the_profile(self):
        lumi = load_profile("lumi-g", overrides={"slurm": {"account": "project_465000001"}})
        check_against_profile(TierScheduling(account="project_465000002", partitions=("standard-g",)), lumi)
        with pytest.raises(AccountingError, match="does not have"):
            check_against_profile(TierScheduling(partitions=("gpu",)), lumi)
        with pytest.raises(AccountingError, match="account_pattern"):
            check_against_profile(TierScheduling(account="qcos"), lumi)


@pytest.mark.slurm
def test_slurm_keeps_who_the_job_is_for(slurm_cluster, tmp_path):
    """A real sbatch takes the options; scontrol and squeue show them back, and
    sacct keeps the comment once the job is over (slurm.conf: AccountingStoreFlags=job_comment)."""
    from hpc_jobs.executors.slurm import SlurmExecutor
    from hpc_jobs.slurm.commands import Scancel
    from hpc_jobs.workdir import SCRIPT_FILE

    (tmp_path / SCRIPT_FILE).write_text("#!/bin/bash\nsleep 60\n")
    args = sbatch_accounting_args(tier="pro", user_ids=["user_ab12"], job_ids=["job-1", "job-2"],
                                  scheduling=TierScheduling(qos="normal", nice=10))
    executor = SlurmExecutor(slurm_cluster, extra_sbatch_args=[*args, "--hold"])
    slurm_job_id = executor.submit(tmp_path, job_name="qcos-accounting-test")
    try:
        shown = slurm_cluster.run(["scontrol", "show", "job", slurm_job_id]).stdout
        assert "Comment=qcos tier=pro users=user_ab12 jobs=job-1,job-2" in shown
        assert "Nice=10" in shown and "QOS=normal" in shown
        listed = slurm_cluster.run(["squeue", "--noheader", "-j", slurm_job_id, "-o", "%k"]).stdout.strip()
        assert listed == "qcos tier=pro users=user_ab12 jobs=job-1,job-2"
    finally:
        slurm_cluster.run(Scancel([slurm_job_id]).argv())
    import time

    deadline = time.monotonic() + 60
    while True:
        kept = slurm_cluster.run(["sacct", "-P", "--noheader", "-X", "-j", slurm_job_id,
                                  "--format=Comment%300"]).stdout.strip()
        if kept or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert kept == "qcos tier=pro users=user_ab12 jobs=job-1,job-2"
