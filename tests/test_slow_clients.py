"""Clients that stop in the middle of a request, against the deployed gateway
(gunicorn with deploy/gunicorn.conf.py): with ``QCOS_CLIENT_READ_TIMEOUT``
they lose their thread after it, instead of holding it for as long as they
keep the connection open."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.conftest import BELL
from tests.stack import gateway_stack

pytestmark = pytest.mark.e2e

THREADS = 32  # the default
STALLED = 40


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("slow")
    env = {"QCOS_CLIENT_READ_TIMEOUT": "1", "QCOS_THREADS": str(THREADS), "QCOS_RATELIMIT_ENABLED": "false"}
    with gateway_stack(tmp_path, database_url=f"sqlite:///{tmp_path / 'qcos.db'}", workers=1, env=env) as stack:
        stack.log = tmp_path / "logs" / "gunicorn.log"
        yield stack


def _address(stack) -> tuple[str, int]:
    host, port = stack.base_url.removeprefix("http://").split(":")
    return host, int(port)


def _until_closed(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def _response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """One response (with Content-Length) read off a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {key.lower(): value.strip() for key, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return lines[0], headers, body


def _post_head(stack, length: int, path: str = "/execute") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {stack.api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def test_stalled_bodies_do_not_starve_other_requests(stack):
    sockets = []
    try:
        for _ in range(STALLED):
            sock = socket.create_connection(_address(stack), timeout=15)
            sock.sendall(_post_head(stack, 1000) + b"{")
            sockets.append(sock)
        time.sleep(0.3)  # every thread is now reading a stalled body
        started = time.monotonic()
        assert requests.get(stack.base_url + "/", timeout=10).status_code == 200
        assert time.monotonic() - started < 6
        for sock in sockets:
            answer = _until_closed(sock)  # the server closes: no socket timeout here
            if answer:  # a 408 in the API's format, where it could still be sent
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408 "), head
                assert b"\r\nConnection: close" in head, head
                error = json.loads(body)
                assert error["error_code"] == "REQUEST_TIMEOUT" and error["request_id"].startswith("req_")
    finally:
        for sock in sockets:
            sock.close()
    log = stack.log.read_text()
    assert log.count("too slow sending its request body") == STALLED, log
    assert "Traceback" not in log and '" 500 ' not in log and " 500 " not in log


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickled"])
def test_slow_headers_are_closed_after_the_timeout(stack, trickle):
    request = f"GET /user/me HTTP/1.1\r\nHost: x\r\nX-API-Key: {stack.api_key}\r\n".encode()
    with socket.create_connection(_address(stack), timeout=15) as sock:
        started = time.monotonic()
        if trickle:  # one byte every 0.2 s: never silent for a whole second, but slow
            try:
                for byte in request:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
            except OSError:  # closed by the gateway while still sending
                pass
        else:
            sock.sendall(request)
        answer = _until_closed(sock)
        assert time.monotonic() - started < 5
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ") and json.loads(body)["error_code"] == "REQUEST_TIMEOUT", answer
    log = stack.log.read_text()
    assert "too slow sending its request line and headers" in log
    assert "Traceback" not in log


def _large_dry_run() -> bytes:
    # ~1.5 MiB of JSON: a program padded with blank lines (each one "\n" in JSON)
    body = json.dumps({"qasm": BELL + "\n" * 780_000, "shots": 10}).encode()
    assert 1.4 * 2**20 < len(body) < 2 * 2**20
    return body


def test_large_and_slow_but_steady_bodies_are_served(stack):
    body = _large_dry_run()
    fast = requests.post(stack.base_url + "/execute?dry_run=true", data=body, timeout=30,
                         headers={**stack.headers(), "Content-Type": "application/json"})
    assert fast.status_code == 200, fast.text
    with socket.create_connection(_address(stack), timeout=15) as sock:
        sock.sendall(_post_head(stack, len(body), "/execute?dry_run=true"))
        pieces = 8  # 8 pauses of 0.4 s: over 3 s in all, each pause under the 1 s timeout
        size = -(-len(body) // pieces)
        for start in range(0, len(body), size):
            time.sleep(0.4)
            sock.sendall(body[start:start + size])
        status, _, answer = _response(sock)
        assert status.startswith("HTTP/1.1 200 "), (status, answer)
        served = json.loads(answer)
        assert served["dry_run"] is True and served.keys() == fast.json().keys()


def test_kept_alive_connections_wait_longer_than_the_timeout(stack):
    request = f"GET /user/me HTTP/1.1\r\nHost: x\r\nX-API-Key: {stack.api_key}\r\n\r\n".encode()
    with socket.create_connection(_address(stack), timeout=15) as sock:
        for _ in range(2):
            sock.sendall(request)
            status, headers, _ = _response(sock)
            assert status.startswith("HTTP/1.1 200 ") and headers.get("connection") != "close"
            time.sleep(2.5)  # idle in the poller, past the 1 s read timeout
    # A new connection may also stay silent longer than the timeout before its request.
    with socket.create_connection(_address(stack), timeout=15) as sock:
        time.sleep(2.5)
        sock.sendall(request)
        status, _, _ = _response(sock)
        assert status.startswith("HTTP/1.1 200 ")

