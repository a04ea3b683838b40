"""Slurm command objects: the argv they build and how they read real output.

Fixtures in ``tests/fixtures/slurm`` were captured from the dev cluster
(Slurm 22.05) except the ``handwritten_*`` ones; see the README there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hpc_jobs.executors.base import ExecutorError, SubmissionUnconfirmed
from hpc_jobs.lifecycle import status_for_slurm_state
from hpc_jobs.slurm.commands import (
    Sacct,
    Sbatch,
    SbatchAnswerLost,
    SbatchTestOnly,
    Scancel,
    ScontrolPing,
    Sinfo,
    Squeue,
    SqueueAll,
    SqueueByName,
    SqueueStart,
    StartEstimate,
    SubmittedJob,
    parse_slurm_datetime,
    parse_slurm_duration,
    scrub_slurm_message,
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
        ("sbatch_parsable_cluster", SubmittedJob("37", "qcos-dev")),
        ("sbatch_submitted", SubmittedJob("38", None)),
        ("sbatch_submitted_on_cluster", SubmittedJob("39", "qcos-dev")),
        ("handwritten_sbatch_parsable_warning_in_stdout", SubmittedJob("1234", None)),
        ("handwritten_sbatch_notice_before_id", SubmittedJob("1234", None)),
        ("handwritten_sbatch_submitted_on_cluster_with_notices", SubmittedJob("1234", "lumi")),
    ],
)
def test_sbatch_finds_the_job_id_among_notices_in_every_answer_form(fixture, expected):
    assert sbatch().parse(captured(fixture)) == expected


def test_sbatch_reads_submitted_batch_job_on_stderr_too():
    answer = result(stdout="site notice\n", stderr="Submitted batch job 77 on cluster c2\n")
    assert sbatch().parse(answer) == SubmittedJob("77", "c2")


@pytest.mark.parametrize(
    ("fixture", "retryable", "message"),
    [
        ("sbatch_error_invalid_partition", False, "Invalid partition name specified"),
        ("sbatch_error_too_many_cpus", False, "More processors requested than permitted"),
        ("sbatch_error_time_limit", False, "Requested time limit is invalid"),
        ("sbatch_error_missing_script", False, "sbatch: error: Unable to open file <path>"),
        ("sbatch_error_unknown_cluster", False, "No cluster 'nocluster' known by database"),
        ("sbatch_error_controller_down", True, "Unable to contact slurm controller"),
        ("handwritten_sbatch_error_socket_timeout", True, "Socket timed out"),
        ("handwritten_sbatch_error_controller_busy", True, "Slurm temporarily unable to accept job"),
        ("handwritten_sbatch_error_invalid_account", False,
         "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"),
    ],
)
def test_sbatch_refusal_raises_with_slurms_own_reason(fixture, retryable, message):
    with pytest.raises(ExecutorError) as caught:
        sbatch().parse(captured(fixture))
    assert message in str(caught.value)
    assert caught.value.retryable is retryable
    assert not isinstance(caught.value, SubmissionUnconfirmed)


def test_sbatch_refusal_names_no_path_or_host_of_the_service():
    with pytest.raises(ExecutorError) as caught:
        sbatch().parse(captured("handwritten_sbatch_error_with_paths_and_hosts"))
    message = str(caught.value)
    for secret in ("/scratch", "project_465000001/qcos", "qcos@", "login1", "hpc.example.org", "10.1.2.3", "6819"):
        assert secret not in message
    assert "Batch job submission failed: Unable to open file <path>" in message
    assert "<user>@<host>" in message and "<address>" in message


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (captured("handwritten_sbatch_notices_without_id"), "no job id"),
        (result(stdout="sbatch: warning: odd\n"), "no job id"),
        (result(), "no job id"),
        (result(stdout="1234\n1235\n"), "several job ids"),
        (result(stdout="Submitted batch job 5\n", stderr="sbatch: error: lost\n", returncode=1), "after naming"),
    ],
    ids=["notices-only", "warning-only", "empty", "two-ids", "id-then-failure"],
)
def test_sbatch_answer_without_one_id_means_look_it_up_never_submit_again(answer, why):
    with pytest.raises(SbatchAnswerLost, match=why) as caught:
        sbatch().parse(answer)
    assert isinstance(caught.value, ExecutorError) and isinstance(caught.value, SubmissionUnconfirmed)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
         "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"),
        ("sbatch: error: Unable to open file /home/qcos/w/job.sbatch", "sbatch: error: Unable to open file <path>"),
        ("cannot read '~/.ssh/x' or ~qcos/y", "cannot read '<path>' or ~qcos/y"),
        ("connect to 10.0.0.7:6817 failed", "connect to <address> failed"),
        ("connect to slurmctld-1:6817 failed", "connect to <address> failed"),
        ("as qcos@login1 on login2.lumi.csc.fi", "as <user>@<host> on <host>"),
        ("Reason=N/A 1/0 job.sbatch slurm 22.05.8 at 2026-05-01T12:30:45",
         "Reason=N/A 1/0 job.sbatch slurm 22.05.8 at 2026-05-01T12:30:45"),
    ],
)
def test_scrub_slurm_message(text, expected):
    assert scrub_slurm_message(text) == expected


def test_scrubbed_messages_are_bounded():
    assert len(scrub_slurm_message("x" * 10_000)) == 500

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
    assert set(rows) == {"43_2", "48"} and rows["43_2"].job_id_raw == "48"
    assert rows["48"] is rows["43_2"]


def test_an_array_task_tracked_by_its_own_id_is_found():
    # sacct --jobs=35 answers the task as 34_1 (JobID) with JobIDRaw 35.
    rows = Sacct(job_ids=["35"]).parse(captured("sacct_array_task_by_its_own_id"))
    assert rows["35"].job_id == "34_1" and rows["35"].state == "COMPLETED"
    assert rows["34_1"] is rows["35"]


def test_an_array_by_its_array_id_lists_every_task_each_under_its_own_id_too():
    rows = Sacct(job_ids=["34"]).parse(captured("sacct_array_by_array_id"))
    assert {row.job_id for row in rows.values()} == {"34_1", "34_2", "34_3"}
    # The array's id is also the raw id of one task (the last): never a prefix match.
    assert {key: row.job_id for key, row in rows.items() if "_" not in key} == {
        "35": "34_1", "36": "34_2", "34": "34_3"}
    assert "3" not in rows and "4" not in rows


def test_a_raw_id_never_hides_another_rows_display_id():
    lines = ("7|7|RUNNING||debug|00:00:01|2024-05-01T10:00:00|2024-05-01T10:00:00||vm|c|None|a\n"
             "5_2|7|COMPLETED|0:0|debug|00:00:01|2024-05-01T10:00:00|2024-05-01T10:00:00|2024-05-01T10:00:01|vm|c|None|b\n")
    rows = Sacct(job_ids=["7"]).parse(result(stdout=lines))
    assert rows["7"].job_id == "7" and rows["5_2"].name == "b"


def test_sacct_timings():
    row = Sacct(job_ids=["40"]).parse(captured("sacct_finished"))["40"]
    assert row.elapsed == timedelta(minutes=1, seconds=16)
    assert row.end - row.start == row.elapsed


def test_sacct_by_name_returns_every_job_of_that_name():
    rows = Sacct(job_names=["qcos-fail", "qcos-het"]).parse(captured("sacct_by_name"))
    assert sorted(r.job_id for r in rows.values() if r.name == "qcos-fail") == ["35", "50"]


def test_sacct_edge_cases():
    rows = Sacct(job_ids=["12"]).parse(captured("handwritten_sacct_edge_cases"))
    assert {row.job_id for row in rows.values()} == {"12", "123", "1234", "125_[1-5%2]", "126"}
    assert rows["125"] is rows["125_[1-5%2]"]  # its raw id
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
        # A row without the format's fields: dropping it could give up a live
        # job, so the cycle waits for a readable answer instead.
        (Squeue(["1"]), "1|RUNNING\n"),
        (Sacct(job_ids=["1"]), "1|1|COMPLETED\n"),
        (Sinfo(), "debug*|up|1:00:00|many|idle|vm|2|100|none\n"),
    ],
)
def test_output_in_an_unknown_shape_is_an_executor_error(command, stdout):
    with pytest.raises(ExecutorError, match="unexpected"):
        command.parse(result(stdout=stdout))


# ---------------------------------------------------------------- clusters (-M)


@pytest.mark.parametrize(
    ("command", "argv_start"),
    [
        (Squeue(["5"], clusters="lumi"), ["squeue", "-M", "lumi", "--noheader"]),
        (SqueueAll(clusters="lumi"), ["squeue", "-M", "lumi", "--noheader"]),
        (SqueueStart("5", clusters="lumi"), ["squeue", "-M", "lumi", "--start"]),
        (SqueueByName(["qcos-p1"], clusters="lumi"), ["squeue", "-M", "lumi", "--noheader"]),
        (Sacct(job_ids=["5"], clusters="lumi"), ["sacct", "-M", "lumi", "--parsable2"]),
        (Scancel(["5"], clusters="lumi"), ["scancel", "-M", "lumi", "5"]),
    ],
)
def test_a_named_cluster_is_passed_with_dash_m(command, argv_start):
    assert command.argv()[: len(argv_start)] == argv_start


def test_without_a_cluster_no_dash_m():
    for command in (Squeue(["5"]), SqueueStart("5"), Sacct(job_ids=["5"]), Scancel(["5"]), SqueueByName(["a"])):
        assert "-M" not in command.argv()


@pytest.mark.parametrize("cluster", ["", "a,b", "all", "-x", "a b", "$(x)", "x" * 65, "ä"])
def test_cluster_names_are_validated(cluster):
    for make in (lambda: Squeue(["5"], clusters=cluster), lambda: Sacct(job_ids=["5"], clusters=cluster),
                 lambda: Scancel(["5"], clusters=cluster), lambda: SqueueStart("5", clusters=cluster),
                 lambda: SqueueByName(["a"], clusters=cluster)):
        with pytest.raises(ValueError):
            make()


def test_answers_with_dash_m_parse_like_the_others():
    assert set(Squeue(["34"], clusters="qcos-dev").parse(captured("squeue_cluster"))) == {"34_1", "34_2", "34_3"}
    assert Sacct(job_ids=["37"], clusters="qcos-dev").parse(captured("sacct_cluster"))["37"].cluster == "qcos-dev"
    assert Scancel(["37"], clusters="qcos-dev").parse(captured("scancel_cluster")) is None
    with_header = "CLUSTER: lumi\n" + captured("squeue_cluster").stdout
    assert set(Squeue(["34"], clusters="lumi").parse(result(stdout=with_header))) == {"34_1", "34_2", "34_3"}


# ---------------------------------------------------------------- squeue by job name


def test_squeue_by_name_asks_for_the_callers_jobs_of_those_names_in_any_state():
    assert SqueueByName(["qcos-b", "qcos-a", "qcos-b"]).argv() == [
        "squeue", "--noheader", f"--format={Squeue.FORMAT}", "--me", "--states=all", "--name=qcos-a,qcos-b"]


@pytest.mark.parametrize("names", [[], ["a,b"], ["a b"], [""], ["x" * 129]])
def test_squeue_by_name_needs_safe_names(names):
    with pytest.raises(ValueError):
        SqueueByName(names)


def test_squeue_by_name_returns_rows_with_name_and_id():
    rows = SqueueByName(["qcos-tasks", "qcos-no-such-job"]).parse(captured("squeue_by_name"))
    assert {(job_id, row.name, row.state) for job_id, row in rows.items()} == {
        ("34_1", "qcos-tasks", "RUNNING"), ("34_2", "qcos-tasks", "RUNNING"), ("34_3", "qcos-tasks", "PENDING")}
    assert SqueueByName(["qcos-no-such-job"]).parse(captured("squeue_by_name_none")) == {}


def test_squeue_by_name_drops_names_it_did_not_ask_for():
    assert SqueueByName(["other"]).parse(captured("squeue_by_name")) == {}


def test_squeue_of_an_array_task_by_its_own_id_parses():
    # squeue shows the task under the array's form: the raw id is only in sacct's rows.
    assert set(Squeue(["35"]).parse(captured("squeue_array_task_by_its_own_id"))) == {"34_1"}


def test_a_field_that_does_not_parse_is_read_as_empty_not_the_whole_answer(caplog):
    good = "7001|RUNNING|debug|0:05|1:00|2026-11-29T18:29:46|2026-11-29T18:29:40|vm|7001|N/A|None|qcos-a"
    odd = "7002|RUNNING|debug|5 minutes|1:00|sometime soon|2026-11-29T18:29:40|vm|7002|N/A|None|qcos-b"
    rows = Squeue(["7001", "7002"]).parse(result(good + "\n" + odd + "\n"))
    assert rows["7001"].start_time == datetime(2026, 11, 29, 18, 29, 46)
    assert (rows["7002"].state, rows["7002"].elapsed, rows["7002"].start_time) == ("RUNNING", None, None)
    assert "squeue: job 7002 has a field that does not parse: 'sometime soon'" in caplog.text
    sacct = Sacct(job_ids=["7003"]).parse(result(
        "7003|7003|COMPLETED|0:0|debug|00:00:07|2026-11-29T18:29:40|2026-11-29T18:29:41|yesterday|vm|qcos|None|qcos-c\n"))
    assert (sacct["7003"].state, sacct["7003"].end, sacct["7003"].elapsed) == ("COMPLETED", None, timedelta(seconds=7))

