"""``estimated_time_seconds`` from the dispatcher's model of its queue.

No scheduler call happens in a request. The dispatcher and poller keep one
:class:`gateway.models.QueueModel` row per executor (written only when a
figure changes); a request reads it (cached for a second per process) and
estimates, in seconds::

    estimate = wait for a free Slurm job slot     (Slurm's expected start of the
                                                   earliest pending pack, when every
                                                   slot of QCOS_MAX_LIVE_SLURM_JOBS is taken)
             + work waiting ahead in its class    (Σ runtime estimates not yet in
               / max live packs                    a pack, shared by the live slots)
             + linger                             (QCOS_PACK_LINGER, packs fill first)
             + batch-job start-up                 (hpc_jobs.sizing.STARTUP_SECONDS)
             + its own runtime estimate           (hpc_jobs.sizing)

It is a first-order figure for planning, not a promise.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from gateway.models import QueueModel
from hpc_jobs.sizing import STARTUP_SECONDS

#: Estimates are hints; keep them within a 32-bit column (about 68 years).
MAX_ESTIMATE_SECONDS = 2**31 - 1
#: Seconds a process reuses the queue model row it read.
CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class QueueFigures:
    """What an estimate needs of :class:`QueueModel` (zeros when the dispatcher wrote none yet)."""

    waiting: dict
    live_packs: int
    max_live_packs: int
    pending_start_seconds: int
    scheduler_connected: bool
    checked_at: object
    accounting_connected: bool | None = None


_EMPTY = QueueFigures({}, 0, 1, 0, False, None)
_cache: dict[tuple[str, str], tuple[float, QueueFigures]] = {}
_lock = threading.Lock()


def queue_figures(runtime) -> QueueFigures:
    """This executor's queue model, read at most once a second per process."""
    key = (runtime.settings.database_url, runtime.executor.name)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    with runtime.db.session() as session:
        row = session.scalar(select(QueueModel).where(QueueModel.executor == runtime.executor.name))
    figures = _EMPTY if row is None else QueueFigures(
        dict(row.waiting or {}), row.live_packs, max(1, row.max_live_packs), row.pending_start_seconds,
        row.scheduler_connected, row.checked_at, row.accounting_connected)
    with _lock:
        _cache[key] = (now, figures)
    return figures


def estimated_seconds(runtime, plan) -> int:
    """Seconds until a job of this :class:`gateway.jobs.JobPlan` should be
    complete (see the module docstring), within 1 … 2³¹−1."""
    figures = queue_figures(runtime)
    slots = max(1, figures.max_live_packs)
    wait = figures.pending_start_seconds if figures.live_packs >= slots else 0
    ahead = float(figures.waiting.get(plan.dispatch_class, 0)) / slots
    total = (wait + ahead + runtime.settings.pack_linger_seconds + STARTUP_SECONDS + plan.runtime_seconds)
    return max(1, min(int(round(total)), MAX_ESTIMATE_SECONDS))


def _fresh(runtime, figures: QueueFigures) -> bool:
    """Whether the poller's last check is within ``max(30 s, 5 × QCOS_POLL_INTERVAL)``."""
    from datetime import timedelta

    from gateway.models import utcnow

    if figures.checked_at is None:
        return False
    return utcnow() - figures.checked_at <= timedelta(seconds=max(30.0, 5 * runtime.settings.poll_interval_seconds))


def scheduler_connected(runtime) -> bool:
    """Whether the poller's last scheduler call answered, within the last
    ``max(30 s, 5 × QCOS_POLL_INTERVAL)`` (no poller running: not connected)."""
    figures = queue_figures(runtime)
    return figures.scheduler_connected and _fresh(runtime, figures)


def accounting_connected(runtime) -> bool | None:
    """Whether the poller's last accounting query (sacct, or its cheap check
    when no job needed one) answered, as recorded within the same window as
    :func:`scheduler_connected`. ``None`` when nothing recent is known (no
    poller running, which :func:`scheduler_connected` reports) or the
    executor has no accounting (local)."""
    figures = queue_figures(runtime)
    return figures.accounting_connected if _fresh(runtime, figures) else None
