"""Requests that are not valid HTTP, sent raw to the deployed gateway (gunicorn
with deploy/gunicorn.conf.py): gunicorn refuses them before Flask, and its
answers are JSON errors in the API's format too."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from tests.stack import gateway_stack

pytestmark = pytest.mark.e2e

MALFORMED = {
    "bad method": (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "NUL in a header value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00<b>\r\n\r\n", 400),
    "two Content-Lengths": (b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                            400),
    "8 KB request line": (b"GET /" + b"a" * 8192 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "200 headers": (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n",
                    431),
}


def _exchange(address: tuple[str, int], request: bytes) -> tuple[bytes, bytes]:
    """Send ``request`` raw; the answer's head and body, read until the server closes."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def test_malformed_requests_are_answered_with_json_errors(tmp_path):
    with gateway_stack(tmp_path, database_url=f"sqlite:///{tmp_path / 'qcos.db'}", workers=1) as stack:
        host, port = stack.base_url.removeprefix("http://").split(":")
        for name, (request, status) in MALFORMED.items():
            head, body = _exchange((host, int(port)), request)
            lines = head.decode("latin-1").split("\r\n")
            headers = {key.lower(): value.strip() for key, _, value in (line.partition(":") for line in lines[1:])}
            assert lines[0].startswith(f"HTTP/1.1 {status} "), (name, head)
            assert headers["content-type"] == "application/json", (name, head)
            assert headers["connection"] == "close" and int(headers["content-length"]) == len(body), (name, head)
            error = json.loads(body)
            assert set(error) == {"detail", "error_code", "request_id"}, (name, error)
            assert error["error_code"] == "INVALID_REQUEST", (name, error)
            assert error["request_id"].startswith("req_") and headers["x-request-id"] == error["request_id"]
            assert "<" not in error["detail"] and "aaaa" not in error["detail"], (name, error)
        # The worker still serves well-formed requests.
        assert requests.get(stack.base_url + "/healthz", timeout=10).status_code == 200
        log = (tmp_path / "logs" / "gunicorn.log").read_text()
        assert "Invalid request from ip=127.0.0.1" in log
