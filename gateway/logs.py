"""Log lines of the gateway, the poller and the dispatcher: plain text or JSON.

``QCOS_LOG_FORMAT=text`` (default, for ``make run``) keeps the classic
``<time> <LEVEL> <logger>: <message>`` lines. ``QCOS_LOG_FORMAT=json`` makes
every line one JSON object (python-json-logger)::

    {"time": "2024-01-15T10:30:00.123456+00:00", "level": "INFO", "logger": "gateway.access",
     "message": "GET /status/j1 200", "request_id": "req_…", "job_id": "j1", "user_id": "user_…", …}

``request_id``, ``job_id``, ``slurm_job_id`` and ``user_id`` appear where
known: from the record's ``extra=`` or from the context bound with
:func:`log_context` (a :mod:`contextvars` variable, so it follows one
request or one dispatcher step and never leaks into another thread). Any
other ``extra=`` field is kept as its own key. API keys are never bound or
logged, by anyone: callers pass ids, not credentials.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

#: The context fields a JSON line carries when they are known.
CONTEXT_FIELDS = ("request_id", "job_id", "slurm_job_id", "user_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("qcos_log_context", default={})
# Marks the handler configure_logging installed, so calling it again replaces it.
_OURS = "_qcos_handler"


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (``request_id``, ``job_id``, ``slurm_job_id``,
    ``user_id``; ``None`` values are skipped) to every line logged inside the
    ``with`` block, in this thread or task only::

        with log_context(job_id=job.id, slurm_job_id=job.scheduler_job_id):
            log.info("submitted")
    """
    token = _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """Add ``fields`` to this context until :func:`clear` (for request hooks,
    which cannot wrap the request in a ``with`` block)."""
    _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}})


def clear() -> None:
    """Forget every bound field of this context (end of a request)."""
    _context.set({})


def current_context() -> dict[str, str]:
    """The fields bound in this context (a copy)."""
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the bound context fields onto each record that does not set them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (test
    runners and process managers may replace it after start)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def json_formatter() -> logging.Formatter:
    """One JSON object per record: ``time`` (ISO 8601, UTC, milliseconds),
    ``level``, ``logger``, ``message``, the context fields and any ``extra=``
    keys; ``exc_info`` holds a traceback when there is one."""
    from pythonjsonlogger.json import JsonFormatter

    class _TimeFirst(JsonFormatter):
        def add_fields(self, log_data, record, message_dict) -> None:
            log_data["time"] = datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds")
            super().add_fields(log_data, record, message_dict)

    return _TimeFirst("{levelname}{name}{message}", style="{",
                      rename_fields={"levelname": "level", "name": "logger"})


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``QCOS_LOG_FORMAT`` (``"text"`` or ``"json"``)."""
    return json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Send the root logger's records to stderr in ``log_format``, at ``level``.

    Idempotent: a second call replaces the handler the first one installed
    (tests build many apps in one process). Handlers installed by others
    (pytest's capture, gunicorn's own) are left alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(level)


def gunicorn_logconfig(log_format: str) -> dict | None:
    """gunicorn's ``logconfig_dict`` for ``log_format``: ``None`` for text
    (gunicorn's own format), else its error log as JSON lines on stderr.

    gunicorn's access log is switched off in ``deploy/gunicorn.conf.py``
    whatever the format: the application logs the one access line of each
    request (logger ``gateway.access``), with its request id.
    """
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # The workers' applications install their own root handler (configure_logging).
        "root": {"level": "INFO", "handlers": []},
        "formatters": {"json": {"()": "gateway.logs.json_formatter"}},
        "filters": {"context": {"()": "gateway.logs.ContextFilter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "json", "filters": ["context"]}},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }
