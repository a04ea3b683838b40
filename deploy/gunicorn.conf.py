"""gunicorn settings for the QCOS gateway (``gunicorn -c deploy/gunicorn.conf.py gateway.wsgi:app``).

Threads, not only processes: ``GET /results?wait=true`` holds a request up
to ``QCOS_RESULTS_MAX_WAIT`` seconds while sleeping, and must not take a
whole worker with it. Override any value with ``GUNICORN_CMD_ARGS``.
"""

import multiprocessing
import os

bind = os.environ.get("QCOS_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("QCOS_WORKERS", min(4, multiprocessing.cpu_count())))
worker_class = "gthread"
threads = int(os.environ.get("QCOS_THREADS", 8))
timeout = 60
graceful_timeout = 30
accesslog = "-"
errorlog = "-"


def on_starting(server):
    """Migrate the schema once, in the master, before any worker starts."""
    from gateway.config import Settings
    from gateway.migrations import upgrade_database

    settings = Settings.from_env()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.work_root.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)
