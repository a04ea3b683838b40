"""A throwaway OpenSSH server on a loopback port, for the SSH transport tests.

``sshd_server`` starts Debian's ``/usr/sbin/sshd`` in the foreground with its
own config, a fresh ed25519 host key and one authorized ed25519 user key
(the current user, root included), all under a temporary folder, and stops
it at the end of the session. Without sshd (``apt-get install
openssh-server``) the tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import pytest

from tests.components import missing

__all__ = ["SSHServer", "child_pids", "free_port", "generate_key", "prepare_sshd", "sshd_server", "start_sshd",
           "stop_sshd"]

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SSHServer:
    """A running test sshd.

    ``known_hosts``: a file holding its host key as ``[127.0.0.1]:<port>``.
    ``user_key``: private key of ``username``, authorized on the server.
    ``log``: sshd's log file (one ``Accepted publickey`` line per login).
    """

    host: str
    port: int
    username: str
    user_key: Path
    known_hosts: Path
    host_public_key: str
    log: Path
    pid: int
    folder: Path

    def transport_kwargs(self) -> dict:
        """Keyword arguments for :class:`hpc_jobs.transports.ssh.SSHTransport`."""
        return {
            "port": self.port,
            "username": self.username,
            "key_filename": self.user_key,
            "known_hosts": self.known_hosts,
        }

    def logins(self) -> int:
        """How many public-key logins sshd has accepted so far."""
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes (children of the listener)."""
        return child_pids(self.pid)


def child_pids(parent: int) -> list[int]:
    """Pids of the processes whose parent is ``parent`` (read from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


def generate_key(path: Path) -> str:
    """Write a new ed25519 key pair at ``path`` (+ ``.pub``); returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "qcos-test", "-f", str(path)],
        check=True, stdin=subprocess.DEVNULL, capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port}: {log.read_text(errors='replace')[-2000:]}")


def prepare_sshd(folder: Path, *, extra_config: Sequence[str] = ()) -> SSHServer:
    """Write keys, ``known_hosts`` and an ``sshd_config`` for a test sshd on a
    free loopback port into ``folder``; returns its :class:`SSHServer` with
    ``pid`` 0 (not started: :func:`start_sshd`). ``extra_config``: more
    ``sshd_config`` lines (e.g. ``SetEnv SLURM_CONF=...``). Raises
    ``RuntimeError`` when ``sshd -t`` refuses the configuration."""
    host_key = folder / "ssh_host_ed25519_key"
    host_public_key = generate_key(host_key)
    user_key = folder / "id_ed25519"
    (folder / "authorized_keys").write_text(generate_key(user_key) + "\n")
    port = free_port()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_public_key.split()[:2])}\n")
    config = folder / "sshd_config"
    config.write_text(
        "\n".join([
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key}",
            f"PidFile {folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            # The temporary folder's owner and modes are not what sshd demands of ~/.ssh.
            "StrictModes no",
            "Subsystem sftp internal-sftp",
            "LogLevel INFO",
            *extra_config,
            "",
        ])
    )
    # sshd refuses to start without its privilege separation directory.
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"sshd -t rejected the test config: {check.stderr.strip()}")
    return SSHServer(
        host="127.0.0.1", port=port, username=getpass.getuser(), user_key=user_key,
        known_hosts=folder / "known_hosts", host_public_key=host_public_key, log=folder / "sshd.log",
        pid=0, folder=folder,
    )


def start_sshd(server: SSHServer) -> subprocess.Popen:
    """Start the sshd that :func:`prepare_sshd` configured (again, after
    :func:`stop_sshd`: same port and keys, log appended) and wait until it
    listens. Raises ``RuntimeError`` when it does not within 15 s."""
    process = subprocess.Popen(
        [SSHD, "-D", "-E", str(server.log), "-f", str(server.folder / "sshd_config")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(server.port, process, server.log, time.monotonic() + 15)
    except RuntimeError:
        stop_sshd(process)
        raise
    return process


def stop_sshd(process: subprocess.Popen) -> None:
    """Stop a test sshd and every session it still serves."""
    # The listener's SIGTERM leaves open sessions alone; end them too.
    for pid in child_pids(process.pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory) -> SSHServer:
    """Start a test sshd on 127.0.0.1:<free port>; stopped after the session."""
    if not os.access(SSHD, os.X_OK) or not shutil.which("ssh-keygen"):
        missing("sshd", "install Debian's openssh-server (apt-get install openssh-server)")
    try:
        server = prepare_sshd(tmp_path_factory.mktemp("sshd"))
    except RuntimeError as exc:
        missing("sshd", str(exc))
    process = start_sshd(server)
    try:
        yield replace(server, pid=process.pid)
    finally:
        stop_sshd(process)
