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

Metrics: every worker writes its Prometheus values to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` merges them. The variable must
be set before prometheus_client is first imported, so it is set here, in the
master, before the application loads: to the operator's directory (shared
with a poller on this host; emptied by whoever starts both, see
``deploy/run-local.sh``) or else to a fresh private one, removed at exit.
The access log is the application's (one line per request, with its request
id); gunicorn's own is off. ``QCOS_LOG_FORMAT=json`` makes gunicorn's error
log JSON lines too.
"""

import multiprocessing
import os
import shutil
import tempfile

_private_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _private_metrics_dir = tempfile.mkdtemp(prefix="qcos-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _private_metrics_dir
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from gateway.config import Settings  # noqa: E402 - after PROMETHEUS_MULTIPROC_DIR
from gateway.logs import gunicorn_logconfig  # noqa: E402

_settings = Settings.from_env()
# Counters in process memory: only one process may count (see the docstring).
_single_process = _settings.ratelimit_enabled and _settings.ratelimit_storage_is_process_local

bind = os.environ.get("QCOS_BIND", "127.0.0.1:8000")
workers = 1 if _single_process else int(os.environ.get("QCOS_WORKERS", min(4, multiprocessing.cpu_count())))
worker_class = "gthread"
# Waiting /results requests sleep in their threads; keep plenty for everyone else.
threads = int(os.environ.get("QCOS_THREADS", 32))
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn), which
# two gateways on one machine would share; QCOS does not use it.
control_socket_disable = True
timeout = 60
graceful_timeout = 30
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


def child_exit(server, worker):
    """Drop a dead worker's live gauges (its counters stay summed)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the private metrics directory made at start (not an operator's)."""
    if _private_metrics_dir:
        shutil.rmtree(_private_metrics_dir, ignore_errors=True)
