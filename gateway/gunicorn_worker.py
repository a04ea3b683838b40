"""gunicorn's gthread worker, with its own error answers in the API's JSON format.

Requests that are not valid HTTP (a bad request line or method, a NUL in a
header, two ``Content-Length``, a request line or headers over gunicorn's
limits...) never reach Flask: gunicorn answers them itself, with an HTML
page. :class:`JsonErrorWorker` (``worker_class`` in
``deploy/gunicorn.conf.py``) lets gunicorn decide, log and count as before,
and only replaces the page with ``{"detail", "error_code", "request_id"}``.
"""

from __future__ import annotations

import json
import re
import secrets

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ([^\r\n]*)")
_WORD_START = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class _Unsent:
    """A client socket whose writes are kept (the answer gunicorn meant to send), not sent."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self.data = b""

    def sendall(self, data) -> None:
        self.data += bytes(data)

    def send(self, data) -> int:
        self.sendall(data)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class JsonErrorWorker(ThreadWorker):
    """A gthread worker whose answers to malformed requests are JSON errors.

    gunicorn's ``handle_error`` still chooses the status, logs the request and
    writes its access-log line; its HTML page is caught before it is sent and
    replaced by a JSON body with the same status and ``Connection: close``.
    The detail names only the kind of error, never the request's bytes.
    """

    def handle_error(self, req, client, addr, exc):
        unsent = _Unsent(client)
        super().handle_error(req, unsent, addr, exc)
        status = _STATUS_LINE.match(unsent.data)
        if status is None:  # gunicorn wrote nothing (or something unexpected): leave it as it was
            if unsent.data:
                self._send(client, unsent.data)
            return
        code, reason = int(status.group(1)), status.group(2).decode("latin-1")
        request_id = "req_" + secrets.token_hex(8)
        body = json.dumps({"detail": self._detail(code, exc), "error_code": _error_code(code),
                           "request_id": request_id}).encode()
        head = (f"HTTP/1.1 {code} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n\r\n")
        self._send(client, head.encode("latin-1") + body)

    def _detail(self, code: int, exc: BaseException) -> str:
        if code == 414:
            return f"Request line longer than {self.cfg.limit_request_line} bytes"
        if code == 431:
            return (f"Too many request header fields (over {self.cfg.limit_request_fields}) "
                    f"or one longer than {self.cfg.limit_request_field_size} bytes")
        if code >= 500 and code != 501:
            return "Internal server error"
        # The exception's class name (InvalidHTTPVersion: "invalid http version"), not its
        # message, which quotes the request.
        kind = _WORD_START.sub(" ", type(exc).__name__).lower()
        return f"Malformed HTTP request ({kind})"

    def _send(self, client, data: bytes) -> None:
        try:
            util.write_nonblock(client, data)
        except Exception:  # noqa: BLE001 - the client may be gone; gunicorn ignores it too
            self.log.debug("Failed to send error message.")


def _error_code(code: int) -> str:
    if code == 403:
        return "FORBIDDEN"
    if code >= 500 and code != 501:
        return "INTERNAL_ERROR"
    # 400, 414, 417, 431, 501 (an unsupported Transfer-Encoding): the request itself is wrong.
    return "INVALID_REQUEST"
