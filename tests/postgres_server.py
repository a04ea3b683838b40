"""A private PostgreSQL server for tests that restart it or need its whole
connection limit: ``initdb`` into a temporary folder, ``pg_ctl`` on a free
loopback port, stopped and removed at the end. Never the shared server.

As root, ``initdb`` refuses to run: the server then runs as the ``postgres``
user (``runuser``), in a folder that user owns.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.components import missing


def _binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """A running private server; ``url`` is its ``postgres`` database (trust authentication)."""

    bin_dir: Path
    data_dir: Path
    port: int
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        argv = [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", *args]
        # The server's own output goes to its log file (-l), never to these pipes.
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90, cwd="/")
        assert done.returncode == 0, f"pg_ctl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c max_connections=100 "
                   "-c fsync=off")
        self._pg_ctl("-o", options, "-l", str(self.data_dir / "server.log"), "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def restart(self) -> None:
        """A fast restart: every session is ended, the server is down for about a second."""
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_private_postgres() -> PostgresServer:
    """Create and start a server; fails (CI) or skips the test without PostgreSQL's binaries."""
    bin_dir = _binaries()
    if bin_dir is None:
        missing("PostgreSQL server binaries", "no /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="qcos-pg-"))
    data_dir = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            missing("runuser", "initdb refuses root and runuser is not available")
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    done = subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "-A", "trust",
                           "--no-sync"], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, f"initdb failed:\n{done.stdout}\n{done.stderr}"
    server = PostgresServer(bin_dir, data_dir, _free_port(), run_as)
    server.start()
    return server


def remove_private_postgres(server: PostgresServer) -> None:
    """Stop the server (if running) and delete its folder."""
    try:
        server.stop()
    except AssertionError:
        pass  # already stopped
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)
