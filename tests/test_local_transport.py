"""The local transport: a command past its timeout ends with everything it started."""

from __future__ import annotations

import os
import secrets
import time

import pytest

from hpc_jobs.transports.base import TransportError
from hpc_jobs.transports.local import LocalTransport
from tests.helpers import processes_with_argument


def test_a_command_past_its_timeout_is_ended_with_its_children():
    # A site wrapper around squeue: killing the shell alone left its child re-parented to init.
    duration = f"600.{secrets.randbelow(10**6):06d}"
    try:
        started = time.monotonic()
        with pytest.raises(TransportError, match="did not answer within 1 s"):
            LocalTransport().run(["sh", "-c", f"sleep {duration}; echo done"], timeout=1)
        assert time.monotonic() - started < 5
        deadline = time.monotonic() + 5
        while processes_with_argument(duration) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes_with_argument(duration)
    finally:
        for pid in processes_with_argument(duration):
            os.kill(pid, 9)


def test_output_and_status_come_back():
    result = LocalTransport().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_a_missing_program_is_a_transport_error():
    with pytest.raises(TransportError, match="command not found"):
        LocalTransport().run(["/nonexistent/squeue"])
