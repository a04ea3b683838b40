"""Fixtures: the live gateway (see tests/support.py for how it is found or started)."""

from __future__ import annotations

import os

import httpx
import pytest

from qcos_sdk import Client
from tests.support import Gateway, start_gateway, stop_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory) -> Gateway:
    """The gateway of ``QCOS_URL``/``QCOS_API_KEY``, or one started for the session."""
    url, key = os.environ.get("QCOS_URL"), os.environ.get("QCOS_API_KEY")
    if url and key:
        yield Gateway(url.rstrip("/"), key)
        return
    started = start_gateway(tmp_path_factory.mktemp("gateway"))
    try:
        yield started
    finally:
        stop_gateway(started)


@pytest.fixture(scope="session")
def own_gateway(gateway, tmp_path_factory) -> Gateway:
    """A gateway the tests started (so they can create users): the session's
    own, or a second one when the session uses an external gateway."""
    if gateway.managed:
        yield gateway
        return
    started = start_gateway(tmp_path_factory.mktemp("own-gateway"))
    try:
        yield started
    finally:
        stop_gateway(started)


@pytest.fixture
def client(gateway) -> Client:
    with gateway.client() as client:
        yield client


@pytest.fixture(scope="session")
def batches(gateway) -> None:
    """Fails (never skips) the batch tests clearly when the gateway has no batch endpoint."""
    response = httpx.get(f"{gateway.url}/batches/batch_0", headers={"X-API-Key": gateway.api_key}, timeout=10)
    if response.status_code == 404 and response.json().get("error_code") == "NOT_FOUND":
        pytest.fail(f"the gateway at {gateway.url} has no batch endpoint (GET /batches/<id> answers 404 "
                    "NOT_FOUND, not BATCH_NOT_FOUND): POST /batches and GET /batches/<id> are needed")
