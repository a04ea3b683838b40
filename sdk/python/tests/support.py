"""The gateway the live tests talk to, and the circuits they send.

With ``QCOS_URL`` and ``QCOS_API_KEY`` set, the tests use that gateway (how
``make sdk-test`` passes one it started). Otherwise they start one from
this repository on the embedded default, as an operator would: ``qcos db
upgrade`` and ``qcos users create`` on a temporary ``QCOS_STATE_DIR``
(SQLite, local executor), then gunicorn and ``qcos poller``. The server's
programs come from ``QCOS_SERVER_BIN`` (default: the repository's
``.venv/bin``, made by ``make install``); the SDK's own venv never holds
the server. Without them the live tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from qcos_sdk import Client

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVER_BIN = Path(os.environ.get("QCOS_SERVER_BIN", REPO_ROOT / ".venv" / "bin"))

BELL = ('OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; '
        "measure q -> c;")
GHZ3 = ('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\n'
        "measure q -> c;\n")
# Line 4 calls a gate qelib1.inc does not define.
BROKEN = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nfoo q[0];\ncreg c[2];\nmeasure q -> c;\n'


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(component: str, hint: str) -> None:
    """Fail (CI) or skip (elsewhere) the current test, or module, for a missing component."""
    message = f"{component} is not available: {hint}"
    if in_ci():
        pytest.fail(message + " (CI=true: real components are required)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_qiskit():
    """The ``qiskit`` module; without the ``[qiskit]`` extra the caller skips (fails under CI)."""
    try:
        import qiskit
    except ImportError:
        missing("Qiskit", "install the SDK with its extras: pip install './sdk/python[qiskit,test]'")
    return qiskit


@dataclass
class Gateway:
    """A running gateway: its URL, a key, and (when the tests started it) the
    environment its processes run with, to create more users."""

    url: str
    api_key: str
    env: dict[str, str] | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def managed(self) -> bool:
        return self.env is not None

    def client(self, api_key: str | None = None, **kwargs) -> Client:
        """A client of this gateway (the SDK's default retries: a rate-limited key waits, it does not fail)."""
        return Client(self.url, self.api_key if api_key is None else api_key, **kwargs)

    def create_user(self, email: str, tier: str) -> str:
        """A new user's API key (gateways the tests started only)."""
        assert self.env is not None, "only a gateway the tests started can create users"
        created = _run([str(SERVER_BIN / "qcos"), "users", "create", "--email", email, "--tier", tier], self.env)
        return re.search(r"api_key: (\S+)", created).group(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def start_gateway(state_dir: Path) -> Gateway:
    """Start gunicorn and the poller on ``state_dir``; the caller stops them with :func:`stop_gateway`."""
    if not (SERVER_BIN / "qcos").exists() or not (SERVER_BIN / "gunicorn").exists():
        missing("the QCOS server", f"no qcos/gunicorn in {SERVER_BIN}: run `make install` in {REPO_ROOT}, "
                                   "set QCOS_SERVER_BIN, or point QCOS_URL/QCOS_API_KEY at a running gateway")
    port = _free_port()
    # Only this gateway's settings: none of the caller's QCOS_* variables leak in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("QCOS_")}
    env.update({
        "QCOS_STATE_DIR": str(state_dir),
        "QCOS_DATABASE_URL": f"sqlite:///{state_dir / 'qcos.db'}",
        "QCOS_EXECUTOR": "local",
        "QCOS_POLL_INTERVAL": "0.5",
        "QCOS_BIND": f"127.0.0.1:{port}",
    })
    state_dir.mkdir(parents=True, exist_ok=True)
    _run([str(SERVER_BIN / "qcos"), "db", "upgrade"], env)
    gateway = Gateway(f"http://127.0.0.1:{port}", "", env)
    gateway.api_key = gateway.create_user("sdk@example.org", "enterprise")
    logs = state_dir / "logs"
    logs.mkdir(exist_ok=True)
    for name, argv in (("gunicorn", [str(SERVER_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py",
                                     "gateway.wsgi:app"]),
                       ("poller", [str(SERVER_BIN / "qcos"), "poller"])):
        gateway.processes.append(subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=open(logs / f"{name}.log", "w"),
                                                  stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(gateway.url + "/", timeout=5).status_code == 200:
                return gateway
        except httpx.TransportError:  # not listening yet
            pass
        if time.monotonic() > deadline or gateway.processes[0].poll() is not None:
            stop_gateway(gateway)
            raise AssertionError("the gateway did not start:\n" + (logs / "gunicorn.log").read_text())
        time.sleep(0.2)


def stop_gateway(gateway: Gateway) -> None:
    for process in gateway.processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in gateway.processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
