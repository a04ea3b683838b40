"""Observing packs: what the scheduler and a pack's progress file say, decided.

Pure functions; applying the decisions to the database is
:mod:`gateway.poller`'s business, which keeps this package free of
SQLAlchemy. What a Slurm state means comes from :mod:`hpc_jobs.lifecycle`
only.

Two sources, each used for what it can tell:

- the scheduler (one ``squeue`` and at most one ``sacct`` per cycle for all
  live packs, :meth:`hpc_jobs.executors.slurm.SlurmExecutor.observe`): is the
  pack waiting, running, or over, and why;
- the pack's ``progress.jsonl`` (one read per pack per cycle, from the offset
  already ingested): which of its jobs finished, with their results, while
  the rest still runs.

A pack is over when the scheduler says so, or, when the scheduler cannot
tell (sacct down), when the runner wrote its ``finished`` line. A pack the
scheduler no longer reports at all (not in squeue, and not in sacct or
sacct down) is given up after the grace period; one
in a state the lifecycle table does not know, after its own grace period.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from hpc_jobs.executors.base import JobObservation
from hpc_jobs.lifecycle import JobStatus, status_for_slurm_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    """One finished job of a pack, from a progress line or its outcome file.

    ``status``: ``completed`` or ``failed``. ``result``: the runner's result
    document (completed). ``error``: the reason (failed). ``skipped``: the
    runner skipped a cancelled job (already ``failed`` in the database).
    """

    job_id: str
    status: JobStatus
    result: dict[str, Any] | None = None
    error: str | None = None
    skipped: bool = False


@dataclass(frozen=True)
class Progress:
    """What a slice of a progress file says: job outcomes in order, and
    whether the runner started and finished."""

    outcomes: list[JobOutcome]
    started: bool
    finished: bool


def read_progress(records: Iterable[dict[str, Any]]) -> Progress:
    """Interpret progress records (:func:`hpc_jobs.workdir.complete_lines`)."""
    outcomes, started, finished = [], False, False
    for record in records:
        event = record.get("event")
        if event == "started":
            started = True
        elif event == "finished":
            finished = True
        elif isinstance(record.get("job_id"), str):
            outcome = record.get("outcome")
            if outcome == "completed" and isinstance(record.get("result"), dict):
                outcomes.append(JobOutcome(record["job_id"], JobStatus.COMPLETED, result=record["result"]))
            elif outcome == "failed":
                outcomes.append(JobOutcome(record["job_id"], JobStatus.FAILED, error=str(record.get("error"))))
            elif outcome == "skipped":
                outcomes.append(JobOutcome(record["job_id"], JobStatus.FAILED, skipped=True))
    return Progress(outcomes, started, finished)


def checked_result(result: dict[str, Any], shots: int) -> str | None:
    """Why a result document cannot be accepted for ``shots`` shots, or ``None``."""
    counts = result.get("counts")
    if not isinstance(counts, dict) or not counts:
        return "the batch job wrote a result without counts"
    total = sum(v for v in counts.values() if isinstance(v, int))
    if total != shots:
        return f"the result's counts sum to {total}, not to the {shots} shots asked for"
    return None


def outcome_from_files(job_id: str, result_text: str | None, error_text: str | None) -> JobOutcome | None:
    """A job's outcome from its own ``result.json``/``error.json`` (read once,
    when its pack ended without a progress line for it), or ``None``."""
    if result_text is not None:
        try:
            result = json.loads(result_text)
        except json.JSONDecodeError:
            return JobOutcome(job_id, JobStatus.FAILED, error="the batch job wrote an unreadable result")
        if isinstance(result, dict):
            return JobOutcome(job_id, JobStatus.COMPLETED, result=result)
    if error_text is not None:
        try:
            error = json.loads(error_text).get("error")
        except (json.JSONDecodeError, AttributeError):
            error = None
        return JobOutcome(job_id, JobStatus.FAILED, error=str(error or "the job failed in the runner"))
    return None


@dataclass(frozen=True)
class PackVerdict:
    """What to do with a pack after one look.

    ``running``: the pack holds resources (its jobs are ``processing``).
    ``ended``: the pack is over; ``reason`` says why when that was not a
    clean exit. ``missing_since``/``unknown_since``: the new values of those
    timers (unchanged when equal to the pack's). ``unknown_state``: a state
    word to log once. ``cancel``: the batch job still exists in Slurm (given
    up in a state unknown to QCOS) and must be scancelled before the pack ends.
    """

    running: bool
    ended: bool
    reason: str | None
    missing_since: datetime | None
    unknown_since: datetime | None
    unknown_state: str | None = None
    cancel: bool = False


def judge_pack(
    observation: JobObservation | None,
    *,
    complete: bool,
    finished: bool,
    started: bool,
    missing_since: datetime | None,
    unknown_since: datetime | None,
    now: datetime,
    missing_grace: float,
    unknown_grace: float,
) -> PackVerdict:
    """Decide a pack's state from the scheduler's ``observation`` (``None``:
    not reported; ``complete`` False: sacct failed, so only the live queue
    was asked: absence from it still counts towards ``missing_grace``, with
    a reason that says accounting could not tell) and its progress
    (``started``/``finished`` lines seen).
    """
    if observation is None:
        if finished:
            return PackVerdict(False, True, None, None, None)
        # squeue (the controller) answered and lists every live job, so absence
        # from it counts even when sacct failed; only the reason differs.
        since = missing_since or now
        if now - since > timedelta(seconds=missing_grace):
            if complete:
                reason = (f"the scheduler lost track of the batch job: it was in neither squeue nor sacct"
                          f" for {missing_grace:g} s")
            else:
                reason = (f"the batch job left the queue (squeue) and accounting (sacct) could not say how it"
                          f" ended for {missing_grace:g} s")
            return PackVerdict(False, True, reason, since, None)
        return PackVerdict(started, False, None, since, unknown_since)
    try:
        status, reason = status_for_slurm_state(observation.state)
    except KeyError:
        since = unknown_since or now
        if now - since > timedelta(seconds=unknown_grace):
            return PackVerdict(False, True,
                               f"Slurm reported state {observation.state!r}, unknown to QCOS, for {unknown_grace:g} s",
                               None, since, cancel=True)
        return PackVerdict(started, False, None, None, since,
                           unknown_state=observation.state if unknown_since is None else None)
    if status is JobStatus.COMPLETED:
        return PackVerdict(False, True, None, None, None)
    if status is JobStatus.FAILED:
        parts = [reason or f"the batch job ended in state {observation.state}"]
        if observation.exit_code and observation.exit_code != "0:0":
            parts.append(f"exit code {observation.exit_code}")
        if observation.reason and observation.reason not in ("None", ""):
            parts.append(f"Slurm reason: {observation.reason}")
        return PackVerdict(False, True, "; ".join(parts), None, None)
    return PackVerdict(status is JobStatus.PROCESSING or started, False, None, None, None)
