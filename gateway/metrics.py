"""Every Prometheus metric of the gateway, the poller and the dispatcher.

``GET /metrics`` (:mod:`gateway.api.ops`) serves them in Prometheus' text
format. Names are ``qcos_<what>_<unit>``; counters end in ``_total``.
The cluster-side metrics (Slurm commands, SSH connections) are defined in
:mod:`hpc_jobs.metrics`, which must not import this package, and re-exported
here so this module lists everything.

**Several processes.** gunicorn runs several worker processes, and the
poller (with the dispatcher) is another. With ``PROMETHEUS_MULTIPROC_DIR``
set *before* prometheus_client is first imported, every process writes its
values to files there and ``/metrics`` sums them (prometheus_client's
multiprocess mode): ``deploy/gunicorn.conf.py`` and ``deploy/run-local.sh``
set it up, and gunicorn's ``child_exit`` hook drops a dead worker's live
gauges. Without the variable (tests, one process) values stay in memory.

**Scrape-time values.** ``qcos_jobs_waiting``, ``qcos_jobs_running``,
``qcos_dispatcher_lag_seconds``, ``qcos_database_up``, ``qcos_scheduler_up``,
``qcos_accounting_up`` and ``qcos_ratelimit_storage_up`` are not kept by any
process: :class:`DatabaseCollector` reads them from the database (two
indexed queries), the poller's recorded scheduler and accounting checks and
the cached rate-limit storage check at each scrape, so they are right even
when the poller is down — a stopped dispatcher shows as a growing lag, not
as a frozen gauge.

**Fed by the poller and dispatcher.** Job outcomes, packs and the poll
cycle are recorded through the small functions below (:func:`job_accepted`,
:func:`job_completed`, :func:`job_failed`, :func:`job_cancelled`,
:func:`pack_submitted`, :func:`set_packs_running`, :func:`poll_cycle`).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hpc_jobs.lifecycle import FAILURE_CLASSES
from hpc_jobs.metrics import (  # noqa: F401 - re-exported: this module lists every metric
    SLURM_COMMAND_DURATION,
    SLURM_COMMAND_ERRORS,
    SLURM_COMMANDS,
    SSH_CONNECTIONS_OPENED,
    SSH_RECONNECTS,
)

if TYPE_CHECKING:
    from gateway.runtime import Runtime

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: HTTP methods counted by name; anything else is ``other`` (bounded label values).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The ``route`` label of a request that matched no URL rule (404s, bad methods).
UNMATCHED_ROUTE = "unmatched"

# --------------------------------------------------------------------- HTTP

HTTP_REQUESTS = Counter(
    "qcos_http_requests", "HTTP requests answered, by URL rule (e.g. /status/<job_id>), method and status code.",
    ["route", "method", "status"])
HTTP_REQUEST_DURATION = Histogram(
    "qcos_http_request_duration_seconds", "Time from the first request hook to the response, seconds.",
    ["route", "method"], buckets=_LATENCY_BUCKETS)

# --------------------------------------------------------------------- jobs

JOBS_ACCEPTED = Counter("qcos_jobs_accepted", "Jobs stored for running (new jobs only, not idempotent repeats).",
                        ["tier"])
JOBS_COMPLETED = Counter("qcos_jobs_completed", "Jobs that ended completed, with a result.")
JOBS_FAILED = Counter(
    "qcos_jobs_failed", "Jobs that ended failed, by reason class (hpc_jobs.lifecycle.FAILURE_CLASSES); "
    "cancelled jobs are counted in qcos_jobs_cancelled_total instead.", ["reason"])
JOBS_CANCELLED = Counter("qcos_jobs_cancelled", "Jobs cancelled while queued or running, by who: user or admin.",
                         ["by"])

# --------------------------------------------------------------------- packs and the dispatcher

PACKS_SUBMITTED = Counter("qcos_packs_submitted", "Packs (Slurm batch jobs holding one or more circuits) submitted.")
PACKS_RUNNING = Gauge("qcos_packs_running", "Packs submitted and not yet finished, as the dispatcher last counted.",
                      multiprocess_mode="mostrecent")
PACK_SIZE = Histogram("qcos_pack_size_jobs", "Jobs per submitted pack.",
                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))

# --------------------------------------------------------------------- poller

POLL_CYCLE_DURATION = Histogram(
    "qcos_poll_cycle_duration_seconds", "Wall time of one poll cycle (successful or not), seconds.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
POLL_CYCLE_ERRORS = Counter("qcos_poll_cycle_errors", "Poll cycles that ended in an error (scheduler or database).")
POLL_CYCLE_LAST_SUCCESS = Gauge(
    "qcos_poll_cycle_last_success_timestamp_seconds", "Unix time the last poll cycle ended without error.",
    multiprocess_mode="mostrecent")

# --------------------------------------------------------------------- database pool

DB_POOL_IN_USE = Gauge(
    "qcos_db_pool_connections_in_use", "Database connections checked out of the pool now, summed over live processes.",
    multiprocess_mode="livesum")
DB_CONNECTIONS_OPENED = Counter("qcos_db_connections_opened", "New database connections the pools opened.")


# --------------------------------------------------------------------- the small API

def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency. ``route``: the matched URL
    rule (``request.url_rule.rule``), ``None`` when nothing matched."""
    route = route or UNMATCHED_ROUTE
    method = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_REQUEST_DURATION.labels(route, method).observe(seconds)


def job_accepted(tier: str) -> None:
    """A new job was stored (call once per created job, after its transaction commits)."""
    JOBS_ACCEPTED.labels(tier).inc()


def job_completed() -> None:
    """A job turned ``completed`` (call when the conditional UPDATE changed its row)."""
    JOBS_COMPLETED.inc()


def job_failed(reason: str) -> None:
    """A job turned ``failed``; ``reason`` is a class from
    :func:`hpc_jobs.lifecycle.failure_class` (unknown values count as ``other``)."""
    JOBS_FAILED.labels(reason if reason in FAILURE_CLASSES else "other").inc()


def job_cancelled(by: str) -> None:
    """A live job was cancelled; ``by``: ``"user"`` or ``"admin"``."""
    JOBS_CANCELLED.labels("admin" if by == "admin" else "user").inc()


def pack_submitted(size: int) -> None:
    """sbatch accepted one pack of ``size`` jobs."""
    PACKS_SUBMITTED.inc()
    PACK_SIZE.observe(size)


def set_packs_running(count: int) -> None:
    """The number of packs submitted and not yet finished, as the dispatcher counted it."""
    PACKS_RUNNING.set(count)


@contextmanager
def poll_cycle() -> Iterator[None]:
    """Time one poll cycle: ``with metrics.poll_cycle(): poll_cycle(runtime)``.
    An exception is counted in ``qcos_poll_cycle_errors_total`` and re-raised."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        POLL_CYCLE_ERRORS.inc()
        raise
    else:
        POLL_CYCLE_LAST_SUCCESS.set(time.time())
    finally:
        POLL_CYCLE_DURATION.observe(time.perf_counter() - started)


_pool_events_installed = False


def instrument_database_pools() -> None:
    """Count connections checked out of every SQLAlchemy pool of this process
    (pool events on the :class:`~sqlalchemy.pool.Pool` class, so engines
    created later are covered). Idempotent."""
    global _pool_events_installed
    if _pool_events_installed:
        return
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    # record_info outlives invalidation, so a connection is never counted back twice.
    @event.listens_for(Pool, "checkout")
    def _checkout(_dbapi_connection, record, _proxy):
        if not record.record_info.get("qcos_out"):
            record.record_info["qcos_out"] = True
            DB_POOL_IN_USE.inc()

    @event.listens_for(Pool, "checkin")
    def _checkin(_dbapi_connection, record):
        if record is not None and record.record_info.pop("qcos_out", False):
            DB_POOL_IN_USE.dec()

    @event.listens_for(Pool, "connect")
    def _connect(_dbapi_connection, _record):
        DB_CONNECTIONS_OPENED.inc()

    _pool_events_installed = True


# --------------------------------------------------------------------- scrape time

@dataclass(frozen=True)
class QueueCounts:
    """Jobs ``queued`` and ``processing`` now, and when the oldest job that
    has no batch job yet was accepted (aware UTC, ``None`` when none waits)."""

    queued: int
    processing: int
    oldest_undispatched: datetime | None


def queue_counts(session) -> QueueCounts:
    """Two queries on the ``status`` index. "Undispatched" is the one place
    that says which jobs wait for the dispatcher: queued without a Slurm id."""
    from sqlalchemy import func, select

    from gateway.models import Job
    from hpc_jobs.lifecycle import JobStatus

    counts = dict(session.execute(
        select(Job.status, func.count()).where(Job.status.in_([JobStatus.QUEUED.value, JobStatus.PROCESSING.value]))
        .group_by(Job.status)).all())
    # min() keeps the column's type, so this is an aware UTC datetime.
    oldest = session.scalar(select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED.value,
                                                                   Job.pack_id.is_(None)))
    return QueueCounts(counts.get(JobStatus.QUEUED.value, 0), counts.get(JobStatus.PROCESSING.value, 0), oldest)


class DatabaseCollector(Collector):
    """Gauges read at scrape time: jobs waiting (``queued``) and running
    (``processing``), the dispatcher lag (age of the oldest job that has no
    batch job yet), whether the database, the scheduler, accounting and
    shared rate-limit storage answer.

    Costs the two queries of :func:`queue_counts` per scrape; the scheduler
    and accounting checks are the poller's last calls
    (:func:`gateway.estimates.scheduler_connected`,
    :func:`~gateway.estimates.accounting_connected`), the storage check is
    :class:`gateway.ratelimit.StorageCheck` (cached). Accounting and storage
    read 1 where there is none to be down (local executor, ``memory://``).
    """

    def __init__(self, runtime: "Runtime") -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from gateway.models import utcnow

        counts = None
        try:
            with self._runtime.db.session() as session:
                counts = queue_counts(session)
        except Exception:  # noqa: BLE001 - a scrape reports the outage, it does not fail
            pass
        yield GaugeMetricFamily("qcos_database_up", "1 when the job database answered this scrape, else 0.",
                                value=0 if counts is None else 1)
        if counts is not None:
            yield GaugeMetricFamily("qcos_jobs_waiting", "Jobs queued: accepted and not yet running.",
                                    value=counts.queued)
            yield GaugeMetricFamily("qcos_jobs_running", "Jobs processing: their batch job is running.",
                                    value=counts.processing)
            oldest = counts.oldest_undispatched
            yield GaugeMetricFamily(
                "qcos_dispatcher_lag_seconds",
                "Age of the oldest job accepted but not yet in a batch job (0 when none waits), seconds.",
                value=max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0)
        from gateway import estimates

        try:
            scheduler_up = 1 if estimates.scheduler_connected(self._runtime) else 0
        except Exception:  # noqa: BLE001
            scheduler_up = 0
        yield GaugeMetricFamily("qcos_scheduler_up", "1 when the scheduler answered its last (cached) check, else 0.",
                                value=scheduler_up)
        try:
            accounting_up = 0 if estimates.accounting_connected(self._runtime) is False else 1
        except Exception:  # noqa: BLE001 - the database is down: qcos_database_up says so
            accounting_up = 1
        yield GaugeMetricFamily("qcos_accounting_up",
                                "0 when the poller's last accounting query (sacct) failed, else 1.",
                                value=accounting_up)
        check = self._runtime.ratelimit_check
        yield GaugeMetricFamily("qcos_ratelimit_storage_up",
                                "0 when the shared rate-limit storage did not answer its last (cached) check, else 1.",
                                value=0 if check is not None and not check.up() else 1)


class _Forward(Collector):
    """Collects another registry's metrics (the process's default one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self):
        return self._registry.collect()


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set: values are shared through files there."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def exposition(runtime: "Runtime") -> tuple[bytes, str]:
    """This gateway's metrics in Prometheus' text format: ``(body, content type)``.

    In multiprocess mode the values of every process writing to
    ``PROMETHEUS_MULTIPROC_DIR`` are merged; otherwise this process's own.
    Scrape-time gauges (:class:`DatabaseCollector`) are added either way.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, disable_created_metrics, generate_latest

    # The *_created series double the output and no dashboard reads them.
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(DatabaseCollector(runtime))
    return generate_latest(registry), CONTENT_TYPE_LATEST
