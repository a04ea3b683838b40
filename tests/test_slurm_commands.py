"""Slurm command objects: the argv they build and how they read real output.

Fixtures in ``tests/fixtures/slurm`` were captured from the dev cluster
(Slurm 22.05) except the ``handwritten_*`` ones; see the README there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hpc_jobs.executors.base import ExecutorError
from hpc_jobs.lifecycle import status_for_slurm_state
from hpc_jobs.slurm.commands import (
    Sacct,
    Sbatch,
    SbatchTestOnly,
    Scancel,
    ScontrolPing,
    Sinfo,
    Squeue,
    StartEstimate,
    SubmittedJob,
    parse_slurm_datetime,
    parse_slurm_duration,
    validate_job_name,
)
from hpc_jobs.transports.base import CommandResult

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"


def captured(name: str) -> CommandResult:
    """The captured run ``name``: ``.stdout`` plus optional ``.stderr`` and ``.rc``."""
    def read(suffix: str, default: str = "") -> str:
        path = FIXTURES / f"{name}.{suffix}"
        return path.read_text() if path.exists() else default

    return CommandResult(
        argv=(name,),
        returncode=int(read("rc", "0")),
        stdout=read("stdout"),
        stderr=read("stderr"),
    )


def result(stdout: str = "", stderr: str = "", returncode: int = 0) -> CommandResult:
    return CommandResult(argv=("test",), returncode=returncode, stdout=stdout, stderr=stderr)


def sbatch(**overrides) -> Sbatch:
    fields = dict(
        script="/work/7/job.sbatch",
        job_name="qcos-7",
        chdir="/work/7",
        output="/work/7/stdout.log",
        error="/work/7/stderr.log",
    )
    return Sbatch(**{**fields, **overrides})


# ---------------------------------------------------------------- sbatch


def test_sbatch_argv_is_parsable_submission_of_the_script_last():
    assert sbatch(extra_args=["--partition=debug", "--account=qcos"]).argv() == [
        "sbatch",
        "--parsable",
        "--job-name=qcos-7",
        "--chdir=/work/7",
        "--output=/work/7/stdout.log",
        "--error=/work/7/stderr.log",
        "--partition=debug",
        "--account=qcos",
        "/work/7/job.sbatch",
    ]


def test_sbatch_test_only_argv_adds_test_only():
    command = SbatchTestOnly(
        script=Path("/w/job.sbatch"), job_name="j", chdir=Path("/w"),
        output=Path("/w/stdout.log"), error=Path("/w/stderr.log"),
    )
    assert command.argv()[:3] == ["sbatch", "--test-only", "--parsable"]
    assert command.argv()[-1] == "/w/job.sbatch"


@pytest.mark.parametrize(
    "name",
    ["", "has space", "semi;colon", "slash/name", "quote'd", "$(reboot)", "ä", "x" * 129, "a,b"],
)
def test_sbatch_rejects_job_names_outside_the_safe_alphabet(name):
    with pytest.raises(ValueError):
        sbatch(job_name=name)


@pytest.mark.parametrize("name", ["qcos-0f3a", "a", "A.b_c-9", "x" * 128])
def test_safe_job_names_are_accepted(name):
    assert validate_job_name(name) == name
    assert f"--job-name={name}" in sbatch(job_name=name).argv()


def test_sbatch_extra_args_must_be_options():
    with pytest.raises(ValueError):
        sbatch(extra_args=["debug"])


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("sbatch_parsable", SubmittedJob("49", None)),
        ("sbatch_parsable_warning", SubmittedJob("52", None)),
        ("handwritten_sbatch_parsable_cluster", SubmittedJob("1234", "qcos-dev")),
        ("handwritten_sbatch_parsable_warning_in_stdout", SubmittedJob("1234", None)),
    ],
)
def test_sbatch_parses_the_job_id_line(fixture, expected):
    assert sbatch().parse(captured(fixture)) == expected


@pytest.mark.parametrize(
    ("fixture", "retryable", "message"),
    [
        ("sbatch_error_invalid_partition", False, "Invalid partition name specified"),
        ("sbatch_error_too_many_cpus", False, "More processors requested than permitted"),
        ("sbatch_error_time_limit", False, "Requested time limit is invalid"),
        ("sbatch_error_missing_script", False, "Unable to open file"),
        ("sbatch_error_controller_down", True, "Unable to contact slurm controller"),
        ("handwritten_sbatch_error_socket_timeout", True, "Socket timed out"),
    ],
)
def test_sbatch_failure_raises_with_slurms_message(fixture, retryable, message):
    with pytest.raises(ExecutorError) as caught:
        sbatch().parse(captured(fixture))
    assert message in str(caught.value)
    assert caught.value.retryable is retryable


def test_sbatch_without_an_id_line_is_an_error():
    with pytest.raises(ExecutorError, match="no job id"):
        sbatch().parse(result(stdout="sbatch: warning: odd\n"))


def test_sbatch_test_only_reads_the_estimate_from_stderr():
    assert SbatchTestOnly(**vars(sbatch())).parse(captured("sbatch_test_only")) == StartEstimate(
        job_id="46",
        start=datetime(2026, 11, 29, 22, 30, 46),
        processors=1,
        nodes="vm",
        partition="debug",
    )


def test_sbatch_test_only_refusal_raises():
    with pytest.raises(ExecutorError, match="Invalid partition"):
        SbatchTestOnly(**vars(sbatch())).parse(captured("sbatch_error_invalid_partition"))


# ---------------------------------------------------------------- squeue


def test_squeue_asks_for_all_ids_in_one_sorted_list():
    assert Squeue(["123", "12", "9", "12"]).argv() == [
        "squeue",
        "--noheader",
        f"--format={Squeue.FORMAT}",
        "--jobs=9,12,123",
    ]


@pytest.mark.parametrize("ids", [[], ["12,13"], ["12 13"], ["-1"], ["12_[1-3]"], [12], ["abc"]])
def test_squeue_rejects_empty_or_malformed_id_sets(ids):
    with pytest.raises(ValueError):
        Squeue(ids)


@pytest.mark.parametrize(
    ("job_id", "state", "reason", "array_task_id"),
    [
        ("40", "RUNNING", None, None),
        ("41", "RUNNING", None, None),
        ("42", "PENDING", "Resources", None),
        ("43_[1-5%2]", "PENDING", "Priority", "1-5%2"),
        ("44+0", "PENDING", None, None),
        ("44+1", "PENDING", None, None),
    ],
)
def test_squeue_rows_of_live_jobs(job_id, state, reason, array_task_id):
    row = Squeue(["1"]).parse(captured("squeue_live"))[job_id]
    assert (row.state, row.reason, row.array_task_id, row.partition) == (state, reason, array_task_id, "debug")


def test_squeue_row_fields():
    rows = Squeue(["1"]).parse(captured("squeue_live"))
    assert set(rows) == {"40", "41", "42", "43_[1-5%2]", "44+0", "44+1"}
    running = rows["40"]
    assert running.name == "qcos-timeout"
    assert running.time_limit == timedelta(minutes=1)
    assert running.elapsed == timedelta(0)
    assert running.start_time == datetime(2026, 11, 29, 18, 29, 46)
    assert running.node_list == "vm"
    assert rows["42"].start_time is None and rows["42"].node_list is None
    # squeue's %F is the raw id for a het component, not the het job's id.
    assert rows["44+1"].array_job_id == "45"


def test_squeue_lists_running_array_tasks_separately():
    rows = Squeue(["43"]).parse(captured("squeue_array_running"))
    assert {k: (r.state, r.array_job_id, r.array_task_id) for k, r in rows.items()} == {
        "43_[3-5%2]": ("PENDING", "43", "3-5%2"),
        "43_2": ("RUNNING", "43", "2"),
    }


def test_squeue_ignores_unknown_ids_among_known_ones():
    assert set(Squeue(["40", "99999"]).parse(captured("squeue_known_and_unknown"))) == {"40"}


def test_squeue_invalid_job_id_means_none_known():
    assert Squeue(["99999"]).parse(captured("squeue_unknown_only")) == {}


def test_squeue_unreachable_controller_is_retryable():
    with pytest.raises(ExecutorError) as caught:
        Squeue(["1"]).parse(captured("squeue_error_controller_down"))
    assert caught.value.retryable


def test_squeue_keeps_pipes_in_the_job_name():
    line = "7|PENDING|debug|0:00|1:00:00|N/A|2024-05-01T10:00:00||7|N/A|None|a|b\n"
    assert Squeue(["7"]).parse(result(stdout=line))["7"].name == "a|b"


# ---------------------------------------------------------------- sacct


def test_sacct_argv_for_ids():
    argv = Sacct(job_ids=["123", "12", "5_2", "6+1"]).argv()
    assert argv[:4] == ["sacct", "--parsable2", "--noheader", "--allocations"]
    assert argv[4] == "--format=" + ",".join(Sacct.FIELDS)
    assert argv[5:] == ["--jobs=5_2,6+1,12,123"]
    assert {"JobID", "JobName", "State", "ExitCode", "Reason", "Partition", "Elapsed", "Start", "End"} <= set(Sacct.FIELDS)


def test_sacct_argv_for_names_needs_a_window():
    argv = Sacct(job_names=["qcos-b", "qcos-a"], start_time="now-2days").argv()
    assert argv[5:] == ["--name=qcos-a,qcos-b", "--starttime=now-2days"]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"job_ids": ["1"], "job_names": ["a"]}, {"job_ids": ["1;x"]}, {"job_names": ["a,b"]}],
)
def test_sacct_needs_exactly_one_valid_selector(kwargs):
    with pytest.raises(ValueError):
        Sacct(**kwargs)


@pytest.mark.parametrize(
    ("job_id", "state", "exit_code", "started"),
    [
        ("40", "TIMEOUT", "0:0", True),
        ("41", "CANCELLED by 0", "0:0", True),  # cancelled while running
        ("42", "CANCELLED by 0", "0:0", False),  # cancelled while pending
        ("44+0", "CANCELLED by 0", "0:0", False),
        ("44+1", "CANCELLED by 0", "0:0", False),
        ("43_1", "COMPLETED", "0:0", True),
        ("43_5", "COMPLETED", "0:0", True),
        ("49", "COMPLETED", "0:0", True),
        ("50", "FAILED", "3:0", True),
        ("51", "COMPLETED", "0:0", True),
        ("52", "COMPLETED", "0:0", True),
    ],
)
def test_sacct_allocation_rows_of_finished_jobs(job_id, state, exit_code, started):
    row = Sacct(job_ids=["1"]).parse(captured("sacct_finished"))[job_id]
    assert (row.state, row.exit_code, row.start is not None) == (state, exit_code, started)
    assert row.cluster == "qcos-dev" and row.partition == "debug"
    assert (row.node_list == "vm") is started


def test_sacct_skips_step_rows():
    with_steps = Sacct(job_ids=["1"]).parse(captured("sacct_finished_with_steps"))
    assert with_steps == Sacct(job_ids=["1"]).parse(captured("sacct_finished"))
    assert not any("." in job_id for job_id in with_steps)


def test_sacct_array_task_rows_carry_the_raw_id():
    rows = Sacct(job_ids=["43_2"]).parse(captured("sacct_array_task"))
    assert list(rows) == ["43_2"] and rows["43_2"].job_id_raw == "48"


def test_sacct_timings():
    row = Sacct(job_ids=["40"]).parse(captured("sacct_finished"))["40"]
    assert row.elapsed == timedelta(minutes=1, seconds=16)
    assert row.end - row.start == row.elapsed


def test_sacct_by_name_returns_every_job_of_that_name():
    rows = Sacct(job_names=["qcos-fail", "qcos-het"]).parse(captured("sacct_by_name"))
    assert sorted(r.job_id for r in rows.values() if r.name == "qcos-fail") == ["35", "50"]


def test_sacct_edge_cases():
    rows = Sacct(job_ids=["12"]).parse(captured("handwritten_sacct_edge_cases"))
    assert set(rows) == {"12", "123", "1234", "125_[1-5%2]", "126"}
    assert rows["12"].state == "CANCELLED by 1000" and rows["12"].exit_code == "0:15"
    assert rows["123"].state == "RUNNING" and rows["123"].end is None
    assert rows["1234"].cluster == "other" and rows["1234"].job_id_raw == "1234"
    assert rows["1234"].elapsed == timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert rows["125_[1-5%2]"].reason == "JobArrayTaskLimit" and rows["125_[1-5%2]"].node_list is None
    assert rows["126"].name == "name|with|pipes"


def test_sacct_unknown_ids_are_absent():
    assert Sacct(job_ids=["99999"]).parse(captured("sacct_unknown")) == {}


def test_sacct_without_slurmdbd_is_retryable():
    with pytest.raises(ExecutorError) as caught:
        Sacct(job_ids=["1"]).parse(captured("sacct_error_dbd_down"))
    assert caught.value.retryable
    assert "Problem talking to the database" in str(caught.value)


@pytest.mark.parametrize("fixture", ["sacct_finished", "sacct_by_name", "handwritten_sacct_edge_cases"])
def test_every_sacct_state_is_known_to_the_lifecycle(fixture):
    for row in Sacct(job_ids=["1"]).parse(captured(fixture)).values():
        status_for_slurm_state(row.state)


def test_every_squeue_state_is_known_to_the_lifecycle():
    for fixture in ("squeue_live", "squeue_array_running"):
        for row in Squeue(["1"]).parse(captured(fixture)).values():
            status_for_slurm_state(row.state)


# ---------------------------------------------------------------- scancel


def test_scancel_argv_lists_every_id_once():
    assert Scancel(["13", "12", "13"]).argv() == ["scancel", "12", "13"]


@pytest.mark.parametrize(
    "outcome",
    [
        captured("scancel_pending_and_running"),
        captured("scancel_finished"),
        captured("scancel_unknown"),
        result(stderr="scancel: error: Kill job error on job id 5: Job/step already completing or completed\n", returncode=1),
        result(stderr="scancel: error: Kill job error on job id 5: Invalid job id specified\n", returncode=1),
    ],
)
def test_scancel_of_gone_or_finished_jobs_is_fine(outcome):
    assert Scancel(["5"]).parse(outcome) is None


@pytest.mark.parametrize(
    ("outcome", "retryable"),
    [
        (captured("scancel_error_controller_down"), True),
        (result(stderr="scancel: error: Kill job error on job id 5: Access/permission denied\n", returncode=1), False),
        (result(returncode=1), False),
    ],
)
def test_scancel_real_failures_raise(outcome, retryable):
    with pytest.raises(ExecutorError) as caught:
        Scancel(["5"]).parse(outcome)
    assert caught.value.retryable is retryable


# ---------------------------------------------------------------- scontrol ping, sinfo


@pytest.mark.parametrize(
    ("outcome", "up"),
    [
        (captured("scontrol_ping_up"), True),
        (captured("scontrol_ping_down"), False),
        (result(returncode=1, stderr="scontrol: error: ..."), False),
        (result(stdout="Slurmctld(primary) at a is DOWN\nSlurmctld(backup) at b is UP\n"), True),
    ],
)
def test_scontrol_ping(outcome, up):
    assert ScontrolPing().argv() == ["scontrol", "ping"]
    assert ScontrolPing().parse(outcome) is up


@pytest.mark.parametrize(("fixture", "state"), [("sinfo_idle", "planned"), ("sinfo_busy", "allocated")])
def test_sinfo_partition_summary(fixture, state):
    [row] = Sinfo().parse(captured(fixture))
    assert (row.partition, row.is_default, row.available, row.node_count) == ("debug", True, "up", 1)
    assert row.time_limit == timedelta(hours=1)
    assert (row.state, row.node_list, row.cpus, row.memory_mb, row.reason) == (state, "vm", "2", "22900", None)


def test_sinfo_argv():
    assert Sinfo(["gpu", "debug"]).argv() == ["sinfo", "--noheader", f"--format={Sinfo.FORMAT}", "--partition=debug,gpu"]
    with pytest.raises(ValueError):
        Sinfo(["a,b"])


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0:00", timedelta(0)),
        ("0:05", timedelta(seconds=5)),
        ("1:00", timedelta(minutes=1)),
        ("5", timedelta(minutes=5)),
        ("1:00:00", timedelta(hours=1)),
        ("00:01:16", timedelta(minutes=1, seconds=16)),
        ("1-02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("2-12", timedelta(days=2, hours=12)),
        ("UNLIMITED", None),
        ("INVALID", None),
        ("N/A", None),
        ("", None),
    ],
)
def test_parse_slurm_duration(text, expected):
    assert parse_slurm_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "1:2:3:4", "a-01"])
def test_parse_slurm_duration_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_slurm_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T18:29:46", datetime(2026, 11, 29, 18, 29, 46)),
        ("Unknown", None),
        ("None", None),
        ("N/A", None),
    ],
)
def test_parse_slurm_datetime(text, expected):
    assert parse_slurm_datetime(text) == expected


@pytest.mark.parametrize(
    ("command", "stdout"),
    [
        (Squeue(["1"]), "1|RUNNING\n"),
        (Squeue(["1"]), "1|RUNNING|debug|soon|1:00|N/A|N/A||1|N/A|None|n\n"),
        (Sacct(job_ids=["1"]), "1|1|COMPLETED\n"),
        (Sacct(job_ids=["1"]), "1|1|COMPLETED|0:0|debug|00:00:01|yesterday|N/A|N/A|vm|c|None|n\n"),
        (Sinfo(), "debug*|up|1:00:00|many|idle|vm|2|100|none\n"),
    ],
)
def test_output_in_an_unknown_shape_is_an_executor_error(command, stdout):
    with pytest.raises(ExecutorError, match="unexpected"):
        command.parse(result(stdout=stdout))
