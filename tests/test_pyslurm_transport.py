"""The pyslurm executor (hpc_jobs.executors.pyslurm) against a fake pyslurm module.

pyslurm must match the cluster's libslurm (pyslurm 25.11 ↔ Slurm 25.11);
the dev cluster runs Debian's Slurm 22.05, so these tests replace the
module in ``sys.modules`` and ``scontrol --version`` with a fake transport.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from hpc_jobs.executors.base import ExecutorError, JobObservation
from hpc_jobs.executors.pyslurm import PyslurmExecutor, PyslurmUnavailable, major_minor
from hpc_jobs.transports.base import CommandResult


class FakeTransport:
    def __init__(self, stdout: str = "slurm 25.11.2\n"):
        self.stdout = stdout
        self.calls: list[list[str]] = []

    def run(self, argv, *, timeout=30.0):
        self.calls.append(list(argv))
        return CommandResult(argv=tuple(argv), returncode=0, stdout=self.stdout, stderr="")


def _job(job_id, state, reason=None, exit_code=0, signal=0):
    return SimpleNamespace(id=job_id, state=state, state_reason=reason, exit_code=exit_code,
                           exit_code_signal=signal, partition="small-g", allocated_nodes=None,
                           array_id=None, array_task_id=None, name=f"qcos-{job_id}")


@pytest.fixture
def fake_pyslurm(mocker):
    module = mocker.MagicMock(name="pyslurm")
    module.__version__ = "25.11.0"
    module.Jobs.load.return_value = {
        101: _job(101, "PENDING", reason="Priority"),
        102: _job(102, "RUNNING"),
        103: _job(103, "FAILED", exit_code=1),
        999: _job(999, "RUNNING"),  # someone else's job
    }
    module.db.Jobs.load.return_value = [_job(90, "COMPLETED")]
    module.JobSubmitDescription.return_value.submit.return_value = 4242
    mocker.patch.dict(sys.modules, {"pyslurm": module})
    return module


def test_construction_checks_pyslurm_against_scontrol_version(fake_pyslurm):
    transport = FakeTransport()
    executor = PyslurmExecutor(transport=transport)
    assert transport.calls == [["scontrol", "--version"]]
    assert executor.slurm_version == "slurm 25.11.2"


def test_a_version_mismatch_is_a_clear_error_naming_both_versions(fake_pyslurm):
    with pytest.raises(PyslurmUnavailable) as caught:
        PyslurmExecutor(transport=FakeTransport("slurm 22.05.8\n"))
    message = str(caught.value)
    assert "pyslurm 25.11.0" in message and "Slurm 25.11" in message and "slurm 22.05.8" in message


def test_a_missing_pyslurm_is_a_clear_error(mocker):
    mocker.patch.dict(sys.modules, {"pyslurm": None})  # import raises ImportError
    with pytest.raises(PyslurmUnavailable, match="pyslurm is not installed"):
        PyslurmExecutor(transport=FakeTransport())


def test_submit_passes_the_script_names_and_log_files(fake_pyslurm, tmp_path):
    executor = PyslurmExecutor(transport=FakeTransport())
    assert executor.submit(tmp_path, job_name="qcos-abc") == "4242"
    fake_pyslurm.JobSubmitDescription.assert_called_once_with(
        name="qcos-abc",
        script=str(tmp_path / "job.sbatch"),
        working_directory=str(tmp_path),
        standard_output=str(tmp_path / "stdout.log"),
        standard_error=str(tmp_path / "stderr.log"),
    )
    description = fake_pyslurm.JobSubmitDescription.return_value
    description.load_sbatch_options.assert_called_once_with(overwrite=False)
    description.submit.assert_called_once_with()


def test_submit_refuses_bad_job_names_before_any_call(fake_pyslurm, tmp_path):
    with pytest.raises(ValueError):
        PyslurmExecutor(transport=FakeTransport()).submit(tmp_path, job_name="bad name")
    fake_pyslurm.JobSubmitDescription.assert_not_called()


def test_a_refused_submission_is_an_executor_error(fake_pyslurm, tmp_path):
    fake_pyslurm.JobSubmitDescription.return_value.submit.side_effect = RuntimeError("Invalid account")
    with pytest.raises(ExecutorError, match="Invalid account"):
        PyslurmExecutor(transport=FakeTransport()).submit(tmp_path, job_name="qcos-x")


def test_observe_loads_the_controller_view_once_for_any_number_of_jobs(fake_pyslurm):
    executor = PyslurmExecutor(transport=FakeTransport())
    observed = executor.observe(["101", "102", "103"])
    assert fake_pyslurm.Jobs.load.call_count == 1
    fake_pyslurm.db.Jobs.load.assert_not_called()  # nothing missing: no database query
    assert observed == {
        "101": JobObservation("101", "PENDING", reason="Priority", exit_code="0:0", source="pyslurm"),
        "102": JobObservation("102", "RUNNING", exit_code="0:0", source="pyslurm"),
        "103": JobObservation("103", "FAILED", exit_code="1:0", source="pyslurm"),
    }


def test_jobs_the_controller_forgot_come_from_one_database_query(fake_pyslurm):
    executor = PyslurmExecutor(transport=FakeTransport())
    observed = executor.observe(["90", "101", "7"])
    assert fake_pyslurm.Jobs.load.call_count == 1
    fake_pyslurm.db.JobFilter.assert_called_once_with(ids=[7, 90])
    assert fake_pyslurm.db.Jobs.load.call_count == 1
    assert observed["90"].state == "COMPLETED" and observed["90"].source == "pyslurm-db"
    assert "7" not in observed  # unknown to both: absent


def test_a_failing_accounting_query_keeps_the_controllers_answers(fake_pyslurm):
    fake_pyslurm.db.Jobs.load.side_effect = RuntimeError("Unable to connect to database (slurmdbd down)")
    observed = PyslurmExecutor(transport=FakeTransport()).observe(["90", "101"])
    assert observed == {"101": JobObservation("101", "PENDING", reason="Priority", exit_code="0:0",
                                              source="pyslurm")}
    # Absence of 90 proves nothing now, and the poller learns accounting is down.
    assert observed.complete is False and observed.accounting_ok is False


def test_accounting_ping_asks_the_database_and_never_raises(fake_pyslurm):
    executor = PyslurmExecutor(transport=FakeTransport())
    assert executor.accounting_ping() is True
    fake_pyslurm.db.Jobs.load.side_effect = RuntimeError("Unable to connect to database")
    assert executor.accounting_ping() is False
    del fake_pyslurm.db  # a pyslurm without the database API: no accounting to report on
    assert executor.accounting_ping() is None


def test_observe_of_nothing_makes_no_call(fake_pyslurm):
    assert PyslurmExecutor(transport=FakeTransport()).observe([]) == {}
    fake_pyslurm.Jobs.load.assert_not_called()


def test_cancel_cancels_each_job(fake_pyslurm):
    PyslurmExecutor(transport=FakeTransport()).cancel(["12", "11"])
    assert [c.args for c in fake_pyslurm.Job.call_args_list] == [(11,), (12,)]
    assert fake_pyslurm.Job.return_value.cancel.call_count == 2


def test_ping_never_raises(fake_pyslurm):
    executor = PyslurmExecutor(transport=FakeTransport())
    assert executor.ping() is True
    fake_pyslurm.Jobs.load.side_effect = RuntimeError("Unable to contact slurm controller")
    assert executor.ping() is False


def test_an_unreachable_controller_is_retryable(fake_pyslurm):
    fake_pyslurm.Jobs.load.side_effect = RuntimeError("Unable to contact slurm controller (connect failure)")
    with pytest.raises(ExecutorError) as caught:
        PyslurmExecutor(transport=FakeTransport()).observe(["1"])
    assert caught.value.retryable


@pytest.mark.parametrize(("text", "expected"), [("slurm 25.11.2", "25.11"), ("25.11.0", "25.11"),
                                                 ("slurm-wlm 22.05.8", "22.05"), ("", None)])
def test_major_minor(text, expected):
    assert major_minor(text) == expected
