"""The SDK installs and imports without the server: no Flask, SQLAlchemy or Aer."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points, requires

SERVER_MODULES = ("flask", "sqlalchemy", "qiskit_aer", "gunicorn", "paramiko", "gateway", "hpc_jobs")


def test_the_distribution_needs_only_http_retry_and_progress_libraries():
    required, extras = set(), {}
    for requirement in requires("qcos-sdk"):
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        extra = re.search(r"extra == ['\"](\w+)['\"]", requirement)
        if extra:
            extras.setdefault(extra.group(1), set()).add(name)
        else:
            required.add(name)
    assert required == {"httpx", "tenacity", "tqdm"}
    assert extras["qiskit"] == {"qiskit"}


def test_importing_the_sdk_loads_nothing_of_the_server():
    code = ("import sys, qcos_sdk, qcos_sdk.cli, qcos_sdk.qiskit; "
            f"print(sorted(m for m in {SERVER_MODULES!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_command_is_installed_as_qcos_client():
    [script] = [entry for entry in entry_points(group="console_scripts") if entry.name == "qcos-client"]
    assert script.value == "qcos_sdk.cli:main"
