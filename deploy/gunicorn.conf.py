"""gunicorn settings for the QCOS gateway (``gunicorn -c deploy/gunicorn.conf.py gateway.wsgi:app``).

Threads, not only processes: ``GET /results?wait=true`` holds a request up
to ``QCOS_RESULTS_MAX_WAIT`` seconds while sleeping, and must not take a
whole worker with it. Override any value with ``GUNICORN_CMD_ARGS``.

Rate-limit counters must be shared by every worker process. With the
embedded default storage (``QCOS_RATELIMIT_STORAGE_URI=memory://``) each
process would count on its own, multiplying every limit by the number of
workers, so gunicorn then runs exactly one worker process (with
``QCOS_THREADS`` threads), whatever ``QCOS_WORKERS``, ``--workers`` or
``TTIN`` ask for, and logs so at start. With ``redis://`` storage it runs
``QCOS_WORKERS`` workers.

Database connections: each worker holds at most ``QCOS_DB_POOL_SIZE +
QCOS_DB_MAX_OVERFLOW`` pooled connections plus one LISTEN connection; at
start the master compares what the whole site needs (see
:func:`gateway.db.connection_budget`) with PostgreSQL's ``max_connections``
and logs a warning when it does not fit.

Stopping (SIGTERM, or SIGINT/Ctrl-C): every worker first answers the
requests waiting in ``/results?wait=true`` with their job's current state,
then finishes its other requests; ``graceful_timeout`` bounds that.

Metrics: every worker writes its Prometheus values to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` merges them. The variable must
be set before prometheus_client is first imported, so it is set here, in the
master, before the application loads: to the operator's directory (shared
with a poller on this host; emptied by whoever starts both, see
``deploy/run-local.sh``) or else to a fresh private one, removed at exit.
Requests that are not valid HTTP never reach the app; gunicorn's worker
(:class:`gateway.gunicorn_worker.JsonErrorWorker`) answers them with JSON errors.
The access log is the application's (one line per request, with its request
id); gunicorn's own is off. ``QCOS_LOG_FORMAT=json`` makes gunicorn's error
log JSON lines too.
"""

import gc
import os
import shutil
import signal
import tempfile

# Job data, secrets and metrics files belong to the service user only, whatever
# the umask the service was started with; forked workers inherit it.
os.umask(0o077)
_private_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _private_metrics_dir = tempfile.mkdtemp(prefix="qcos-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _private_metrics_dir
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], mode=0o700, exist_ok=True)

from gateway.config import Settings  # noqa: E402 - after PROMETHEUS_MULTIPROC_DIR
from gateway.logs import gunicorn_logconfig  # noqa: E402

_settings = Settings.from_env()
# Counters in process memory: only one process may count (see the docstring).
_single_process = _settings.ratelimit_enabled and _settings.ratelimit_storage_is_process_local

bind = _settings.bind
workers = 1 if _single_process else _settings.workers
# gunicorn's gthread worker, answering requests that are not valid HTTP with JSON
# errors in the API's format instead of gunicorn's HTML pages.
worker_class = "gateway.gunicorn_worker.JsonErrorWorker"
# Waiting /results requests sleep in their threads (at most QCOS_MAX_WAITING_REQUESTS
# of them); keep plenty for everyone else.
threads = _settings.threads
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn), which
# two gateways on one machine would share; QCOS does not use it.
control_socket_disable = True
timeout = 60
# Waiting clients are answered at once on stop; this only bounds slow requests
# (a submission over SSH) before gunicorn would kill the worker.
graceful_timeout = 10
# Idle keep-alive connections stay open longer than clients keep theirs (Node's
# fetch 4 s, httpx 5 s, Go 90 s is capped by the server): with gunicorn's 2 s
# default the server closed connections just as clients reused them, and a
# request failed with "fetch failed" / "Server disconnected". gthread parks
# idle connections in its poller, so they cost no thread.
keepalive = 75
accesslog = None
errorlog = "-"
logconfig_dict = gunicorn_logconfig(_settings.log_format) or {}


def on_starting(server):
    """Migrate the schema once, in the master, before any worker starts;
    log the rate-limit storage and the number of worker processes."""
    from gateway.migrations import upgrade_database

    settings = _settings
    settings.prepare_dirs()
    upgrade_database(settings.database_url)
    if settings.uses_postgresql:
        _check_connection_budget(server, settings)
    # The scheme only: a Redis URI may hold a password.
    storage = settings.ratelimit_storage_uri.partition(":")[0] + "://"
    if not settings.ratelimit_enabled:
        server.log.info("rate limits: disabled; %d worker processes", server.num_workers)
    elif _single_process:
        server.num_workers = 1
        server.log.info("rate limits: storage %s counts per process, so 1 worker process with %d threads "
                        "(QCOS_RATELIMIT_STORAGE_URI=redis://... allows more)", storage, server.cfg.threads)
    else:
        server.log.info("rate limits: storage %s shared by %d worker processes", storage, server.num_workers)


def nworkers_changed(server, new_value, old_value):
    """Keep one worker process with process-local rate-limit counters
    (``--workers``, ``TTIN`` would ask for more)."""
    if _single_process and new_value > 1:
        server.log.warning("rate limits: %d workers asked for, but counters are in process memory; "
                           "running 1 worker process", new_value)
        server.num_workers = 1


def _check_connection_budget(server, settings):
    """Log the site's PostgreSQL connection budget; warn when it exceeds the server's limit."""
    from gateway.db import Database, connection_budget, server_connection_limits

    database = Database(settings.database_url, pool_size=1)
    try:
        max_connections, reserved = server_connection_limits(database.engine)
    except Exception as exc:  # noqa: BLE001 - only a check; the workers report real outages
        server.log.warning("connection budget: cannot read max_connections (%s)", exc.__class__.__name__)
        return
    finally:
        database.dispose()
    budget = connection_budget(gateways=settings.gateway_instances, workers=server.num_workers,
                               pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow,
                               other_processes=2, max_connections=max_connections, reserved=reserved)
    numbers = (f"{settings.gateway_instances} gateway(s) x {server.num_workers} workers x "
               f"({settings.db_pool_size} pooled + {settings.db_max_overflow} overflow + 1 listener) "
               f"+ poller and dispatcher x {settings.db_pool_size + settings.db_max_overflow} = {budget.needed} "
               f"connections; the server allows {budget.available} "
               f"(max_connections {max_connections} - {reserved} reserved - 3 for commands)")
    if budget.fits:
        server.log.info("connection budget: %s", numbers)
    else:
        server.log.warning("connection budget exceeded: %s. Lower QCOS_DB_POOL_SIZE, QCOS_DB_MAX_OVERFLOW or "
                           "QCOS_WORKERS, or raise max_connections; otherwise requests fail with 503 under load",
                           numbers)


def post_worker_init(worker):
    """Freeze the loaded app for the garbage collector; on SIGTERM, answer
    waiting ``/results?wait=true`` requests before gunicorn's graceful stop;
    take one quick-stop signal only."""
    # The app and its libraries (Qiskit) are ~10^5 long-lived objects: a full
    # collection that scans them pauses every thread of the worker for ~0.1 s.
    # Frozen, they are never scanned again (they live as long as the worker).
    gc.freeze()
    graceful_stop = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        _release_waiters(worker)
        graceful_stop(signum, frame)

    signal.signal(signal.SIGTERM, stop)
    # As gunicorn's own handler: let SIGTERM not interrupt system calls of active requests.
    signal.siginterrupt(signal.SIGTERM, False)

    # Ctrl-C sends SIGINT to the worker and the master sends SIGQUIT right
    # after: gunicorn's handler, entered again while it shuts the thread pool
    # down, deadlocks on the pool's lock until the master kills the worker.
    quick_stop = signal.getsignal(signal.SIGQUIT)

    def stop_now(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        quick_stop(signum, frame)

    signal.signal(signal.SIGINT, stop_now)
    signal.signal(signal.SIGQUIT, stop_now)


def worker_int(worker):
    """SIGINT/SIGQUIT (Ctrl-C, quick stop): answer waiting requests before the
    worker exits; the interpreter then waits for the request threads, which
    write their answers."""
    _release_waiters(worker)


def _release_waiters(worker):
    runtime = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("qcos")
    if runtime is not None:
        runtime.stop_waiting()
def child_exit(server, worker):
    """Drop a dead worker's live gauges (its counters stay summed)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the private metrics directory made at start (not an operator's)."""
    if _private_metrics_dir:
        shutil.rmtree(_private_metrics_dir, ignore_errors=True)
