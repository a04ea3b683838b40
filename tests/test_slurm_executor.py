"""SlurmExecutor: call budget with a fake transport, behaviour on the real dev cluster."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.models import utcnow
from hpc_jobs.executors.base import ExecutorError, JobObservation
from hpc_jobs.executors.slurm import SlurmExecutor
from hpc_jobs.lifecycle import base_state, status_for_slurm_state
from hpc_jobs.slurm.commands import Squeue
from hpc_jobs.transports.base import CommandResult, TransportError
from hpc_jobs.workdir import SCRIPT_FILE, STDERR_FILE, STDOUT_FILE
from tests.helpers import wait_for_observation
from tests.slurm_fixtures import slurm_cluster  # noqa: F401  (fixture)

# ------------------------------------------------------------------ fake transport


def squeue_line(job_id: str, state: str = "RUNNING", reason: str = "None") -> str:
    return f"{job_id}|{state}|debug|0:01|1:00:00|2024-05-01T10:00:01|2024-05-01T10:00:00|vm|{job_id}|N/A|{reason}|qcos-{job_id}"


def sacct_line(job_id: str, state: str = "COMPLETED", exit_code: str = "0:0") -> str:
    return (
        f"{job_id}|{job_id}|{state}|{exit_code}|debug|00:00:03|2024-05-01T10:00:00|"
        f"2024-05-01T10:00:01|2024-05-01T10:00:04|vm|qcos-dev|None|qcos-{job_id}"
    )


#: sacct's answer with slurmdbd stopped, as captured (tests/fixtures/slurm).
SACCT_DBD_DOWN = (Path(__file__).parent / "fixtures" / "slurm" / "sacct_error_dbd_down.stderr").read_text()


class FakeSlurm:
    """Answers squeue/sacct from canned lines; records every argv."""

    def __init__(self, squeue: list[str] = (), sacct: list[str] = (), squeue_rc: int = 0, squeue_err: str = "",
                 sacct_rc: int = 0, sacct_err: str = ""):
        self.squeue, self.sacct = list(squeue), list(sacct)
        self.squeue_rc, self.squeue_err = squeue_rc, squeue_err
        self.sacct_rc, self.sacct_err = sacct_rc, sacct_err

    def run(self, argv, *, timeout=30.0):
        if argv[0] == "squeue":
            out = "\n".join(self.squeue) + "\n" if self.squeue else ""
            return CommandResult(tuple(argv), self.squeue_rc, out, self.squeue_err)
        if argv[0] == "sacct":
            return CommandResult(tuple(argv), self.sacct_rc, "\n".join(self.sacct) + "\n" if self.sacct else "",
                                 self.sacct_err)
        return CommandResult(tuple(argv), 0, "", "")


def spy(mocker, fake: FakeSlurm):
    transport = mocker.Mock(wraps=fake)
    return transport, SlurmExecutor(transport)


def called_commands(transport) -> list[str]:
    return [c.args[0][0] for c in transport.run.call_args_list]


def jobs_arg(argv) -> set[str]:
    [arg] = [a for a in argv if a.startswith("--jobs=")]
    return set(arg.removeprefix("--jobs=").split(","))


def test_observe_of_50_ids_is_one_squeue_and_one_sacct(mocker):
    ids = [str(1000 + i) for i in range(50)]
    live, finished, forgotten = ids[:20], ids[20:45], ids[45:]
    transport, executor = spy(mocker, FakeSlurm(
        squeue=[squeue_line(j) for j in live],
        sacct=[sacct_line(j, "FAILED", "3:0") for j in finished],
    ))

    observed = executor.observe(ids)

    assert called_commands(transport) == ["squeue", "sacct"]
    squeue_argv, sacct_argv = (c.args[0] for c in transport.run.call_args_list)
    assert jobs_arg(squeue_argv) == set(ids)
    assert jobs_arg(sacct_argv) == set(finished) | set(forgotten)
    assert set(observed) == set(live) | set(finished)
    assert observed["1000"] == JobObservation("1000", "RUNNING", None, None, "squeue")
    assert observed["1020"] == JobObservation("1020", "FAILED", None, "3:0", "sacct")


def test_observe_skips_sacct_when_squeue_knows_every_id(mocker):
    ids = [str(i) for i in range(1, 51)]
    transport, executor = spy(mocker, FakeSlurm(squeue=[squeue_line(j, "PENDING", "Priority") for j in ids]))
    observed = executor.observe(ids)
    assert called_commands(transport) == ["squeue"]
    assert observed["7"].reason == "Priority"


def test_observe_says_whether_accounting_answered(mocker):
    _, executor = spy(mocker, FakeSlurm(squeue=[squeue_line("5")]))
    assert executor.observe(["5"]).accounting_ok is None  # sacct not asked: nothing learned
    _, executor = spy(mocker, FakeSlurm(squeue=[squeue_line("5")], sacct=[sacct_line("6")]))
    assert executor.observe(["5", "6"]).accounting_ok is True
    _, executor = spy(mocker, FakeSlurm(squeue=[squeue_line("5")], sacct_rc=1, sacct_err=SACCT_DBD_DOWN))
    observed = executor.observe(["5", "6"])
    assert set(observed) == {"5"} and observed.accounting_ok is False and observed.complete is False


def test_accounting_ping_is_one_sacct_for_a_name_no_job_has(mocker):
    transport, executor = spy(mocker, FakeSlurm())
    assert executor.accounting_ping() is True
    [argv] = [c.args[0] for c in transport.run.call_args_list]
    assert argv[0] == "sacct" and "--name=qcos-accounting-check" in argv and "--starttime=now" in argv
    _, down = spy(mocker, FakeSlurm(sacct_rc=1, sacct_err=SACCT_DBD_DOWN))
    assert down.accounting_ping() is False


def test_squeue_wins_over_sacct(mocker):
    transport, executor = spy(mocker, FakeSlurm(squeue=[squeue_line("5", "RUNNING")], sacct=[sacct_line("5", "PENDING")]))
    assert executor.observe(["5"])["5"].state == "RUNNING"
    assert called_commands(transport) == ["squeue"]


def test_observe_never_matches_ids_by_prefix(mocker):
    transport, executor = spy(mocker, FakeSlurm(squeue=[squeue_line("123")], sacct=[sacct_line("1234")]))
    assert executor.observe(["12"]) == {}
    assert called_commands(transport) == ["squeue", "sacct"]


def test_observe_when_squeue_knows_none_of_the_ids(mocker):
    transport, executor = spy(mocker, FakeSlurm(
        squeue_rc=1, squeue_err="slurm_load_jobs error: Invalid job id specified\n", sacct=[sacct_line("8")],
    ))
    assert executor.observe(["8", "9"]) == {"8": JobObservation("8", "COMPLETED", None, "0:0", "sacct")}


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.observe([]),
        lambda e: e.observe(set()),
        lambda e: e.cancel([]),
        lambda e: e.find_by_name([], since=utcnow()),
    ],
)
def test_empty_id_sets_make_no_call(mocker, call):
    transport, executor = spy(mocker, FakeSlurm())
    assert call(executor) in ({}, None)
    transport.run.assert_not_called()


def test_cancel_is_one_scancel_call(mocker):
    transport, executor = spy(mocker, FakeSlurm())
    executor.cancel(["3", "1", "2"])
    transport.run.assert_called_once()
    assert transport.run.call_args.args[0] == ["scancel", "1", "2", "3"]


def test_submit_builds_sbatch_for_the_work_dir(mocker, tmp_path):
    transport = mocker.Mock()
    transport.run.return_value = CommandResult(("sbatch",), 0, "77\n", "")
    executor = SlurmExecutor(transport, extra_sbatch_args=("--partition=debug",))
    assert executor.submit(tmp_path, job_name="qcos-abc") == "77"
    assert transport.run.call_args.args[0] == [
        "sbatch", "--parsable", "--job-name=qcos-abc", f"--chdir={tmp_path}",
        f"--output={tmp_path / STDOUT_FILE}", f"--error={tmp_path / STDERR_FILE}",
        "--partition=debug", str(tmp_path / SCRIPT_FILE),
    ]


def test_transport_failure_is_a_retryable_executor_error(mocker):
    transport = mocker.Mock()
    transport.run.side_effect = TransportError("squeue did not answer within 30 s")
    executor = SlurmExecutor(transport)
    with pytest.raises(ExecutorError) as caught:
        executor.observe(["1"])
    assert caught.value.retryable
    assert executor.ping() is False


def test_find_by_name_asks_squeue_and_sacct_once_and_takes_the_newest(mocker):
    lines = [sacct_line("31", "FAILED", "1:0").replace("qcos-31", "qcos-x"),
             sacct_line("9", "CANCELLED by 0").replace("qcos-9", "qcos-x")]
    transport, executor = spy(mocker, FakeSlurm(sacct=lines))
    found = executor.find_by_name(["qcos-x", "qcos-y"], since=utcnow())
    assert sorted(called_commands(transport)) == ["sacct", "squeue"]
    assert found == {"qcos-x": "31"}


# ------------------------------------------------------------------ real cluster


def work_dir(tmp_path: Path, body: str) -> Path:
    directory = tmp_path / secrets.token_hex(4)
    directory.mkdir()
    (directory / SCRIPT_FILE).write_text("#!/bin/bash\n" + body)
    return directory


def job_name() -> str:
    return "qcos-test-" + secrets.token_hex(4)


def is_final(observation: JobObservation) -> bool:
    return status_for_slurm_state(observation.state)[0].is_final


@pytest.fixture
def executor(slurm_cluster) -> SlurmExecutor:  # noqa: F811
    return SlurmExecutor(slurm_cluster)


@pytest.mark.slurm
def test_ping_reports_the_controller_up(executor):
    assert executor.ping() is True


@pytest.mark.slurm
def test_a_job_runs_to_completed_and_sacct_has_its_exit_code(executor, tmp_path):
    directory = work_dir(tmp_path, 'echo "hello from $SLURM_JOB_ID in $PWD"\necho oops >&2\n')
    job_id = executor.submit(directory, job_name=job_name())
    assert job_id.isdigit()

    done = wait_for_observation(executor, job_id, lambda o: o.source == "sacct" and is_final(o))

    assert (done.state, done.exit_code) == ("COMPLETED", "0:0")
    assert (directory / STDOUT_FILE).read_text() == f"hello from {job_id} in {directory}\n"
    assert (directory / STDERR_FILE).read_text() == "oops\n"


@pytest.mark.slurm
def test_a_failing_job_is_failed_with_its_exit_status(executor, tmp_path):
    job_id = executor.submit(work_dir(tmp_path, "exit 3\n"), job_name=job_name())
    done = wait_for_observation(executor, job_id, is_final)
    assert (done.state, done.exit_code, done.source) == ("FAILED", "3:0", "sacct")


@pytest.mark.slurm
def test_a_cancelled_job_ends_cancelled(executor, tmp_path):
    job_id = executor.submit(work_dir(tmp_path, "sleep 300\n"), job_name=job_name())
    live = wait_for_observation(executor, job_id, lambda o: o.source == "squeue")
    assert live.state in {"PENDING", "RUNNING", "CONFIGURING"}

    executor.cancel([job_id])

    done = wait_for_observation(executor, job_id, is_final)
    assert base_state(done.state) == "CANCELLED"
    executor.cancel([job_id])  # cancelling again is harmless


@pytest.mark.slurm
def test_find_by_name_recovers_a_lost_id(executor, tmp_path):
    name = job_name()
    job_id = executor.submit(work_dir(tmp_path, "true\n"), job_name=name)
    wait_for_observation(executor, job_id, lambda o: o.source == "sacct" and is_final(o))
    # slurmdbd may record the end before the eligible time that sacct's
    # time-window (--name) queries filter on, so allow it a moment.
    deadline = time.monotonic() + 30
    since = utcnow() - timedelta(minutes=5)
    while not (found := executor.find_by_name([name], since=since)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert found == {name: job_id}


@pytest.mark.slurm
def test_test_only_estimates_a_start_without_submitting(executor, slurm_cluster, tmp_path):  # noqa: F811
    name = job_name()
    estimate = executor.test_only(work_dir(tmp_path, "true\n"), job_name=name)
    assert estimate.partition == "debug"
    assert estimate.processors >= 1
    assert executor.find_by_name([name], since=utcnow() - timedelta(minutes=5)) == {}
    assert Squeue([estimate.job_id]).parse(slurm_cluster.run(Squeue([estimate.job_id]).argv())) == {}


@pytest.mark.slurm
def test_a_refused_submission_is_not_retryable(slurm_cluster, tmp_path):  # noqa: F811
    executor = SlurmExecutor(slurm_cluster, extra_sbatch_args=("--partition=no-such-partition",))
    with pytest.raises(ExecutorError) as caught:
        executor.submit(work_dir(tmp_path, "true\n"), job_name=job_name())
    assert "Invalid partition name specified" in str(caught.value)
    assert not caught.value.retryable


@pytest.mark.slurm
def test_with_accounting_unreachable_squeue_answers_still_count(slurm_cluster, tmp_path):  # noqa: F811
    from tests.slurm_fixtures import AccountingOutage

    transport = AccountingOutage(tmp_path / "outage")
    executor = SlurmExecutor(transport)
    job_id = executor.submit(work_dir(tmp_path, "sleep 300\n"), job_name=job_name())
    try:
        transport.down = True
        observed = executor.observe([job_id, "999999"])  # 999999: unknown, so sacct is asked
        assert observed[job_id].source == "squeue"
        assert observed.accounting_ok is False and observed.complete is False
        assert executor.accounting_ping() is False
        transport.down = False
        assert executor.accounting_ping() is True
        assert executor.observe([job_id, "999999"]).accounting_ok is True
    finally:
        executor.cancel([job_id])


@pytest.mark.slurm
def test_unknown_ids_are_absent(executor):
    assert executor.observe(["999999", "999998"]) == {}
