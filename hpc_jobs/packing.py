"""Packs: many small jobs in one Slurm batch job. Pure planning, no I/O.

A *pack* is one batch job whose runner (``python -m hpc_jobs.runner --pack
<pack dir>``) imports Qiskit once and simulates its jobs in turn. Jobs may
share a pack when they share a *dispatch class*: the same cluster profile,
device, method class and Slurm account/QOS, and each is *small*: its state
fits ``max_state_bytes`` and its estimated runtime ``max_job_seconds``. A
job that is not small gets a pack of its own, sized for it alone, as a
single job always was.

Planning (:func:`plan_packs`) takes waiting jobs in *fair order*: round-robin
across users, oldest first within a user (rank 1 of every user, then rank 2,
...). Packs are filled in that order up to ``max_jobs`` jobs and
``max_seconds`` of estimated work, so one user's 10,000 circuits delay
another user's single circuit by at most one pack. A pack that is not full
is left to fill while its users are still submitting (one of them sent a
job, of any class, less than ``linger_seconds`` ago) and its oldest job has
waited less than ``max_linger_seconds``. Lifecycle of a pack: see :class:`PackState`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from hpc_jobs.profiles import ClusterProfile, parse_memory, parse_time_limit
from hpc_jobs.rendering import slurm_job_name
from hpc_jobs.sizing import (
    STARTUP_SECONDS,
    WALLTIME_EXTRA_SECONDS,
    WALLTIME_FACTOR,
    JobResources,
    _choose_partition,
    format_time_limit,
)

#: Dispatch class of a job that runs alone, in a pack sized for it.
SOLO = "solo"


class PackState(str, enum.Enum):
    """Where a pack is in its life. Only :mod:`gateway.dispatcher` and
    :mod:`gateway.poller` move it, with conditional UPDATEs.

    ``planned`` → ``submitting`` (sbatch may have run) → ``submitted`` →
    ``running`` → ``ended``. ``submitting`` goes back to ``planned`` when a
    lookup by job name proves sbatch never created it; ``planned`` goes to
    ``ended`` when Slurm refuses it.
    """

    PLANNED = "planned"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    RUNNING = "running"
    ENDED = "ended"

    @property
    def holds_slurm_job(self) -> bool:
        """True while the pack has (or may have) a Slurm job, counted against the live bound."""
        return self is not PackState.ENDED


@dataclass(frozen=True)
class PackLimits:
    """How big packs may be. ``max_jobs``: jobs per pack. ``max_seconds``:
    estimated simulation seconds per pack (its ``--time`` covers the sum
    with headroom). ``max_state_bytes`` and ``max_job_seconds``: the largest
    state and runtime estimate of a job that may share a pack. Lingering:
    see the module docstring."""

    max_jobs: int = 250
    max_seconds: int = 900
    max_state_bytes: int = 1 << 30
    max_job_seconds: int = 120
    linger_seconds: float = 0.5
    max_linger_seconds: float = 10.0


def dispatch_class(profile: ClusterProfile, resources: JobResources, limits: PackLimits,
                   *, runtime_seconds: int, slurm_options: Sequence[str] = ()) -> str:
    """The dispatch class of a job: ``"<profile>|<device>|<method>|<options>"``
    for a small job, :data:`SOLO` for one that runs alone.

    ``runtime_seconds``: the job's simulation estimate without start-up.
    ``slurm_options``: per-tier sbatch options (account, QOS) that must be
    the same for every job of a pack.
    """
    small = (resources.nodes == 1 and resources.state_bytes <= limits.max_state_bytes
             and runtime_seconds <= limits.max_job_seconds)
    if not small:
        return SOLO
    return "|".join([profile.name, resources.device, resources.method, resources.precision, *slurm_options])


def simulation_seconds(resources: JobResources) -> int:
    """A job's estimated runtime without the batch job's start-up (≥ 1 s)."""
    return max(1, math.ceil(resources.estimated_runtime_seconds - STARTUP_SECONDS))


@dataclass(frozen=True)
class Candidate:
    """A waiting job as the planner sees it. ``rank``: its place among its
    user's waiting jobs (1 = oldest). Times are aware UTC."""

    job_id: str
    user_id: str
    created_at: datetime
    dispatch_class: str
    runtime_seconds: int
    rank: int


@dataclass(frozen=True)
class PlannedPack:
    """Jobs that go together into one batch job, in run order."""

    dispatch_class: str
    job_ids: tuple[str, ...]
    runtime_seconds: int


def fair_order(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Round-robin across users, oldest first within a user: by (rank, age)."""
    return sorted(candidates, key=lambda c: (c.rank, c.created_at, c.job_id))


def plan_packs(candidates: Sequence[Candidate], limits: PackLimits, *, now: datetime,
               max_packs: int) -> list[PlannedPack]:
    """Group waiting jobs into at most ``max_packs`` packs (see the module docstring).

    ``candidates`` may come in any order; they are taken in :func:`fair_order`.
    Within a class, jobs fill packs in that order; every full pack goes, and
    the class's last, partial pack goes only once it is ready (:func:`_ready`).
    Returns packs in the order they should be submitted: by the fair-order
    place of their first job.
    """
    if max_packs <= 0:
        return []
    ordered = fair_order(candidates)
    place = {c.job_id: i for i, c in enumerate(ordered)}
    by_class: dict[str, list[Candidate]] = {}
    newest: dict[str, datetime] = {}
    for candidate in ordered:
        by_class.setdefault(candidate.dispatch_class, []).append(candidate)
        newest[candidate.user_id] = max(newest.get(candidate.user_id, candidate.created_at), candidate.created_at)
    groups: list[list[Candidate]] = []
    for name, jobs in by_class.items():
        if name == SOLO:
            groups += [[job] for job in jobs]
            continue
        filled = _fill(jobs, limits)
        last = filled[-1]
        if not (len(last) >= limits.max_jobs or sum(c.runtime_seconds for c in last) >= limits.max_seconds
                or _ready(last, newest, limits, now)):
            filled.pop()
        groups += filled
    groups.sort(key=lambda group: place[group[0].job_id])
    return [PlannedPack(group[0].dispatch_class, tuple(c.job_id for c in group),
                        sum(c.runtime_seconds for c in group)) for group in groups[:max_packs]]


def _fill(jobs: list[Candidate], limits: PackLimits) -> list[list[Candidate]]:
    """``jobs`` (one class, in order) cut into packs of at most ``max_jobs``
    jobs and ``max_seconds`` of estimated work (a longer job alone)."""
    groups: list[list[Candidate]] = [[]]
    seconds = 0
    for job in jobs:
        if groups[-1] and (len(groups[-1]) >= limits.max_jobs or seconds + job.runtime_seconds > limits.max_seconds):
            groups.append([])
            seconds = 0
        groups[-1].append(job)
        seconds += job.runtime_seconds
    return groups


def _ready(members: list[Candidate], newest: dict[str, datetime], limits: PackLimits, now: datetime) -> bool:
    """A partial pack goes when its users have submitted nothing, in any
    class, for ``linger_seconds`` (a user's stream of mixed circuits fills
    each class's pack instead of cutting one at every gap in that class), or
    when its oldest job waited ``max_linger_seconds``. ``newest``: each
    user's newest waiting job."""
    latest = max(newest[c.user_id] for c in members)
    oldest = min(c.created_at for c in members)
    return (now - latest >= timedelta(seconds=limits.linger_seconds)
            or now - oldest >= timedelta(seconds=limits.max_linger_seconds))


def size_pack(profile: ClusterProfile, members: Sequence[JobResources],
              preferred_partitions: Sequence[str] = ()) -> JobResources:
    """Resources of a pack: the largest member's node shape, and a time
    limit covering the members' summed runtime with the same headroom a
    single job gets (``WALLTIME_FACTOR`` × estimate + ``WALLTIME_EXTRA_SECONDS``,
    within the partition's limit), in the first of ``preferred_partitions``
    (a tier's) that takes it. A pack of one keeps its job's resources.

    Raises ``ValueError`` for an empty pack.
    """
    if not members:
        raise ValueError("a pack needs at least one job")
    if len(members) == 1:
        return members[0]
    largest = max(members, key=lambda r: (r.state_bytes, parse_memory(r.mem), r.cpus_per_task, r.gpus_per_node))
    estimate = math.ceil(STARTUP_SECONDS + sum(simulation_seconds(r) for r in members))
    wanted = max(parse_time_limit(profile.slurm.time_limit), WALLTIME_FACTOR * estimate + WALLTIME_EXTRA_SECONDS)
    partition, seconds = _choose_partition(profile, largest.nodes, wanted, preferred_partitions)
    return dataclasses.replace(largest, partition=partition.name, time_limit=format_time_limit(seconds),
                               estimated_runtime_seconds=estimate)


def pack_job_name(pack_id: str) -> str:
    """The Slurm job name of a pack: ``qcos-<pack_id>`` (``qcos-pack-<hex>``),
    unique, so a lookup by name tells whether sbatch created it. Raises
    ``ValueError`` for an invalid id."""
    return slurm_job_name(pack_id)
