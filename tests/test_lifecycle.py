"""The Slurm state → job status table, and the allowed transitions."""

import pytest

from hpc_jobs.lifecycle import (
    SLURM_COMPACT_STATES,
    SLURM_STATE_TO_STATUS,
    JobStatus,
    base_state,
    can_transition,
    status_for_slurm_state,
)

Q, P, C, F = JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED


@pytest.mark.parametrize(
    ("raw", "status", "reason_contains"),
    [
        ("PENDING", Q, None),
        ("REQUEUED", Q, None),
        ("REQUEUE_HOLD", Q, None),
        ("REQUEUE_FED", Q, None),
        ("RESV_DEL_HOLD", Q, None),
        ("CONFIGURING", P, None),
        ("RUNNING", P, None),
        ("COMPLETING", P, None),
        ("SUSPENDED", P, None),
        ("STOPPED", P, None),
        ("SIGNALING", P, None),
        ("STAGE_OUT", P, None),
        ("RESIZING", P, None),
        ("COMPLETED", C, None),
        ("FAILED", F, "non-zero"),
        ("CANCELLED", F, "cancelled"),
        ("CANCELLED by 1000", F, "CANCELLED by 1000"),
        ("CANCELLED by 0", F, "CANCELLED by 0"),
        ("TIMEOUT", F, "time limit"),
        ("OUT_OF_MEMORY", F, "memory"),
        ("NODE_FAIL", F, "node"),
        ("BOOT_FAIL", F, "boot"),
        ("DEADLINE", F, "deadline"),
        ("PREEMPTED", F, "preempted"),
        ("REVOKED", F, "revoked"),
        ("SPECIAL_EXIT", F, "special"),
        # Forms seen in real output: sacct's truncation mark, compact squeue codes.
        ("COMPLETED+", C, None),
        ("PD", Q, None),
        ("R", P, None),
        ("CG", P, None),
        ("OOM", F, "memory"),
        ("running", P, None),
    ],
)
def test_every_slurm_state_maps_to_one_status(raw, status, reason_contains):
    got_status, reason = status_for_slurm_state(raw)
    assert got_status is status
    if reason_contains is None:
        assert reason is None
    else:
        assert reason_contains in reason


def test_every_compact_code_names_a_known_state():
    assert set(SLURM_COMPACT_STATES.values()) <= set(SLURM_STATE_TO_STATUS)


def test_unknown_state_is_an_error_not_a_guess():
    with pytest.raises(KeyError):
        status_for_slurm_state("SOMETHING_NEW")


def test_base_state_strips_flags_and_actor():
    assert base_state("CANCELLED by 1000") == "CANCELLED"
    assert base_state(" PENDING,REQUEUED ") == "PENDING"


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (Q, P, True), (Q, C, True), (Q, F, True),
        (P, C, True), (P, F, True), (P, Q, True),
        (C, F, False), (C, P, False), (C, Q, False),
        (F, C, False), (F, Q, False), (F, P, False),
        (Q, Q, True), (C, C, True),
    ],
)
def test_final_statuses_never_change(current, new, allowed):
    assert can_transition(current, new) is allowed


@pytest.mark.parametrize(("state", "runner_reported", "expected"), [
    ("TIMEOUT", False, "timeout"),
    ("OUT_OF_MEMORY", False, "out_of_memory"),
    ("NODE_FAIL", False, "node_failure"),
    ("CANCELLED by 0", False, "cancelled_in_slurm"),
    ("FAILED", False, "batch_job"),
    ("FAILED", True, "runner"),
    ("COMPLETED", False, "runner"),          # exited 0 without a valid result
    (None, False, "lost"),
    ("SOMETHING_NEW", False, "other"),
])
def test_failures_fall_into_a_few_classes_for_counting(state, runner_reported, expected):
    from hpc_jobs.lifecycle import FAILURE_CLASSES, failure_class

    assert failure_class(state, runner_reported=runner_reported) == expected
    assert expected in FAILURE_CLASSES
