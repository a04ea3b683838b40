"""The job lifecycle: the one place that decides what a Slurm state means.

QCOS statuses (API reference, "Status Values"): ``queued`` → ``processing`` →
``completed`` | ``failed``. Every Slurm job state (``squeue``/``sacct``
``State`` column, Slurm 22.05–25.x; see ``man squeue`` "JOB STATE CODES")
maps through :data:`SLURM_STATE_TO_STATUS`. The local executor reports the
same Slurm state names, so both paths share this table.
"""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    """A job's status as the API reports it."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


#: Slurm base state → (QCOS status, human reason for a failure or ``None``).
#: A state that is waiting (or waiting again, after a requeue or preemption
#: with requeue) is ``queued``; one that holds resources is ``processing``.
#: ``COMPLETED`` means the batch script exited 0; whether a result exists is
#: checked separately by the poller before the job becomes ``completed``.
SLURM_STATE_TO_STATUS: dict[str, tuple[JobStatus, str | None]] = {
    "PENDING": (JobStatus.QUEUED, None),
    "REQUEUED": (JobStatus.QUEUED, None),
    "REQUEUE_FED": (JobStatus.QUEUED, None),
    "REQUEUE_HOLD": (JobStatus.QUEUED, None),
    "RESV_DEL_HOLD": (JobStatus.QUEUED, None),
    "CONFIGURING": (JobStatus.PROCESSING, None),
    "RUNNING": (JobStatus.PROCESSING, None),
    "COMPLETING": (JobStatus.PROCESSING, None),
    "SUSPENDED": (JobStatus.PROCESSING, None),
    "STOPPED": (JobStatus.PROCESSING, None),
    "SIGNALING": (JobStatus.PROCESSING, None),
    "STAGE_OUT": (JobStatus.PROCESSING, None),
    "RESIZING": (JobStatus.PROCESSING, None),
    "UPDATE_DB": (JobStatus.PROCESSING, None),
    "POWER_UP_NODE": (JobStatus.PROCESSING, None),
    "COMPLETED": (JobStatus.COMPLETED, None),
    "FAILED": (JobStatus.FAILED, "the batch job exited with a non-zero status"),
    "CANCELLED": (JobStatus.FAILED, "the batch job was cancelled"),
    "TIMEOUT": (JobStatus.FAILED, "the batch job reached its time limit"),
    "OUT_OF_MEMORY": (JobStatus.FAILED, "the batch job ran out of memory"),
    "NODE_FAIL": (JobStatus.FAILED, "a node allocated to the batch job failed"),
    "BOOT_FAIL": (JobStatus.FAILED, "a node of the batch job failed to boot"),
    "DEADLINE": (JobStatus.FAILED, "the batch job missed its deadline"),
    "PREEMPTED": (JobStatus.FAILED, "the batch job was preempted"),
    "REVOKED": (JobStatus.FAILED, "the batch job was revoked by a sibling cluster"),
    "SPECIAL_EXIT": (JobStatus.FAILED, "the batch job ended in a special exit state"),
}

#: Compact codes printed by ``squeue --format=%t`` and the long names they stand for.
SLURM_COMPACT_STATES: dict[str, str] = {
    "PD": "PENDING", "R": "RUNNING", "CF": "CONFIGURING", "CG": "COMPLETING",
    "CD": "COMPLETED", "F": "FAILED", "CA": "CANCELLED", "TO": "TIMEOUT",
    "OOM": "OUT_OF_MEMORY", "NF": "NODE_FAIL", "BF": "BOOT_FAIL", "DL": "DEADLINE",
    "PR": "PREEMPTED", "RQ": "REQUEUED", "RH": "REQUEUE_HOLD", "RF": "REQUEUE_FED",
    "RD": "RESV_DEL_HOLD", "RV": "REVOKED", "SE": "SPECIAL_EXIT", "S": "SUSPENDED",
    "ST": "STOPPED", "SI": "SIGNALING", "SO": "STAGE_OUT", "RS": "RESIZING",
}

#: Transitions a stored job may take. A final status never changes again, so a
#: late or out-of-order observation cannot resurrect a finished job.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED}),
    # A requeued job goes back to waiting.
    JobStatus.PROCESSING: frozenset({JobStatus.QUEUED, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


def base_state(raw: str) -> str:
    """Reduce a raw Slurm state to its base name.

    ``"CANCELLED by 1000"`` → ``"CANCELLED"``; ``"R"`` → ``"RUNNING"``;
    ``"COMPLETED+"`` (sacct's truncation mark) → ``"COMPLETED"``;
    ``"PENDING,REQUEUED"``-style flag lists keep their first word.
    """
    word = raw.strip().split(" ", 1)[0].split(",", 1)[0].rstrip("+").upper()
    return SLURM_COMPACT_STATES.get(word, word)


def status_for_slurm_state(raw: str) -> tuple[JobStatus, str | None]:
    """Map a raw Slurm state to ``(status, failure_reason)``.

    Raises ``KeyError`` for a state this table does not know, so a new Slurm
    state is noticed instead of silently misfiled.
    """
    state = base_state(raw)
    status, reason = SLURM_STATE_TO_STATUS[state]
    if state == "CANCELLED" and " by " in raw:
        reason = f"the batch job was cancelled (Slurm: {raw.strip()})"
    return status, reason


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    """True when a job in ``current`` may move to ``new`` (same status is a no-op, allowed)."""
    return current == new or new in ALLOWED_TRANSITIONS[current]


#: Why a job failed, in a few classes for counting (the ``reason`` label of
#: ``qcos_jobs_failed_total``); the full reason stays in the job's ``error``.
FAILURE_CLASSES = ("runner", "batch_job", "timeout", "out_of_memory", "node_failure", "preempted",
                   "cancelled_in_slurm", "lost", "not_submitted", "other")

_FAILURE_CLASS_OF_STATE: dict[str, str] = {
    # The script exited 0 but left no valid result: the runner's fault.
    "COMPLETED": "runner",
    "FAILED": "batch_job",
    "SPECIAL_EXIT": "batch_job",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "OUT_OF_MEMORY": "out_of_memory",
    "NODE_FAIL": "node_failure",
    "BOOT_FAIL": "node_failure",
    "PREEMPTED": "preempted",
    "REVOKED": "preempted",
    "CANCELLED": "cancelled_in_slurm",
}


def failure_class(slurm_state: str | None, *, runner_reported: bool = False) -> str:
    """The class of a failure, one of :data:`FAILURE_CLASSES`.

    ``slurm_state``: the raw state the job ended in, or ``None`` when the
    scheduler lost track of it (``lost``). ``runner_reported``: the runner
    wrote ``error.json`` (the circuit or the simulator failed): ``runner``
    whatever the state. A job the gateway itself cancelled is counted as
    cancelled, not failed; a row that never got a Slurm id is
    ``not_submitted`` (the caller knows that case and passes it directly).
    """
    if runner_reported:
        return "runner"
    if slurm_state is None:
        return "lost"
    return _FAILURE_CLASS_OF_STATE.get(base_state(slurm_state), "other")
