"""gunicorn's gthread worker, with its own error answers in the API's JSON format.

Requests that are not valid HTTP (a bad request line or method, a NUL in a
header, two ``Content-Length``, a request line or headers over gunicorn's
limits...) never reach Flask: gunicorn answers them itself, with an HTML
page. :class:`JsonErrorWorker` (``worker_class`` in
``deploy/gunicorn.conf.py``) lets gunicorn decide, log and count as before,
and only replaces the page with ``{"detail", "error_code", "request_id"}``.

It also bounds how long a client may hold a request thread while it sends
its request (``QCOS_CLIENT_READ_TIMEOUT``). gthread waits for a new
connection's first bytes in its poller, but once a thread reads a request it
blocks on the socket without a limit: a few dozen clients that stop in the
middle of their headers or body held every thread, and the gateway answered
nobody else. Now the request line and headers must arrive within the timeout
of the thread starting to read them, and a body may pause no longer than the
timeout between two reads; past it the client gets a 408 JSON error
(``REQUEST_TIMEOUT``) where it can still be sent, the connection is closed
and one warning is logged. Only reads are bounded: a response to a client on
a slow link may take as long as it takes.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import time

from gunicorn import util
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

from gateway.errors import ClientReadTimeout

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

    def init_process(self):
        from gateway.config import Settings

        self.client_read_timeout = Settings.from_env().client_read_timeout_seconds
        super().init_process()

    def enqueue_req(self, conn):
        # Every connection passes here each time a thread is to serve it:
        # new, kept alive, or back from the poller's first-data wait.
        if type(conn) is TConn:
            conn.__class__ = _TimedConn
            conn.read_timeout = self.client_read_timeout
            conn.log = self.log
        super().enqueue_req(conn)

    def handle_request(self, req, conn):
        # The headers are read; the application reads the body (if it does).
        unreader = _timed_unreader(conn)
        if unreader is not None:
            unreader.reading_body = True
        try:
            return super().handle_request(req, conn)
        finally:
            if unreader is not None:
                unreader.reading_body = False

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, ClientReadTimeout):
            # The request line or headers did not arrive in time (logged by the
            # reader): no traceback, a 408 if the client still reads it, close.
            self._send(client, _json_error(408, "Request Timeout", "REQUEST_TIMEOUT", exc.description))
            return
        unsent = _Unsent(client)
        super().handle_error(req, unsent, addr, exc)
        status = _STATUS_LINE.match(unsent.data)
        if status is None:  # gunicorn wrote nothing (or something unexpected): leave it as it was
            if unsent.data:
                self._send(client, unsent.data)
            return
        code, reason = int(status.group(1)), status.group(2).decode("latin-1")
        self._send(client, _json_error(code, reason, _error_code(code), self._detail(code, exc)))

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


def _json_error(code: int, reason: str, error_code: str, detail: str) -> bytes:
    """A whole HTTP answer with the API's JSON error body and ``Connection: close``."""
    request_id = "req_" + secrets.token_hex(8)
    body = json.dumps({"detail": detail, "error_code": error_code, "request_id": request_id}).encode()
    head = (f"HTTP/1.1 {code} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n\r\n")
    return head.encode("latin-1") + body


class _TimedConn(TConn):
    """gthread's connection, whose request reads wait ``read_timeout`` seconds at most.

    ``init`` runs each time a thread picks the connection up, right before it
    reads the next request: the reader's header deadline starts there.
    """

    read_timeout: float
    log = None

    def init(self):
        super().init()
        if self.parser is None or self.is_http2:
            return  # HTTP/2 reads frames through its own connection object
        unreader = self.parser.unreader
        if type(unreader) is SocketUnreader:
            unreader.__class__ = _TimedUnreader
            unreader.conn = self
        if isinstance(unreader, _TimedUnreader):
            unreader.start_request()


class _TimedUnreader(SocketUnreader):
    """gunicorn's socket reader with a time limit on each read of a request.

    The request line and headers must arrive by a deadline set when the
    thread starts reading them; a body read waits ``read_timeout`` for the
    next bytes. A read that someone else already bounds (gunicorn's drain of
    an unread body sets its own socket timeout) is left alone. Past the
    limit: one warning, the read side is shut (later reads see the end at
    once, the main loop's graceful close does not linger), the request is
    marked to close the connection, and :class:`ClientReadTimeout` is raised
    (a 408 from the view reading the body, or from the worker's
    ``handle_error`` for headers).
    """

    conn: _TimedConn
    reading_body = False
    header_deadline = None

    def start_request(self) -> None:
        self.reading_body = False
        self.header_deadline = time.monotonic() + self.conn.read_timeout

    def chunk(self, size_hint=None):
        prior = self.sock.gettimeout()
        if prior is not None or self.header_deadline is None:
            return super().chunk(size_hint)
        if self.reading_body:
            limit = self.conn.read_timeout
        else:
            limit = self.header_deadline - time.monotonic()
        try:
            if limit <= 0:
                raise TimeoutError
            self.sock.settimeout(limit)
            try:
                return super().chunk(size_hint)
            finally:
                self.sock.settimeout(None)
        except (TimeoutError, socket.timeout):
            raise self._timed_out() from None

    def _timed_out(self) -> ClientReadTimeout:
        seconds = self.conn.read_timeout
        what = "its request body" if self.reading_body else "its request line and headers"
        host, port = (self.conn.client[:2] if isinstance(self.conn.client, tuple) else (self.conn.client, ""))
        if self.conn.log is not None:
            self.conn.log.warning("Client %s:%s too slow sending %s (QCOS_CLIENT_READ_TIMEOUT=%gs): "
                                  "closing the connection", host, port, what, seconds)
        mesg = getattr(self.conn.parser, "mesg", None)
        if mesg is not None and self.reading_body:
            mesg.must_close = True
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        if self.reading_body:
            detail = f"The request body paused for more than {seconds:g} seconds; the connection is closed"
        else:
            detail = (f"The request line and headers did not arrive within {seconds:g} seconds; "
                      "the connection is closed")
        return ClientReadTimeout(detail)


def _timed_unreader(conn) -> _TimedUnreader | None:
    unreader = getattr(getattr(conn, "parser", None), "unreader", None)
    return unreader if isinstance(unreader, _TimedUnreader) else None


def _error_code(code: int) -> str:
    if code == 403:
        return "FORBIDDEN"
    if code >= 500 and code != 501:
        return "INTERNAL_ERROR"
    # 400, 414, 417, 431, 501 (an unsupported Transfer-Encoding): the request itself is wrong.
    return "INVALID_REQUEST"
