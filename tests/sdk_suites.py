"""``make sdk-test``: every SDK's own tests against one live gateway.

    python -m tests.sdk_suites [js] [go] [rust] [python]   # default: all four
    python -m tests.sdk_suites --serve                     # just the gateway, until Ctrl-C

Starts the embedded default (SQLite, local executor) in a temporary
``QCOS_STATE_DIR`` on a free port with :func:`tests.stack.gateway_stack`,
creates one enterprise user per SDK (so job lists and usage of one suite are
not another's), and runs each suite with ``QCOS_URL`` and ``QCOS_API_KEY`` set:

- ``js``: ``npm ci`` (installs TypeScript, builds) and ``npm test`` in ``sdk/js``;
- ``go``: ``go test -count=1 ./...`` in ``sdk/go`` (standard library only, no proxy);
- ``rust``: ``cargo test`` in ``sdk/rust`` (offline, on Debian's crates);
- ``python``: ``pip install './sdk/python[qiskit,test]'`` into ``.venv-sdk``,
  then ``.venv-sdk/bin/pytest sdk/python/tests`` (left out while ``sdk/python``
  does not exist).

Every suite runs even when an earlier one fails; the exit status is 1 when
any failed, and a summary with each suite's time ends the output.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.stack import BIN, REPO_ROOT, gateway_stack

SDK_ROOT = REPO_ROOT / "sdk"
SDK_VENV = REPO_ROOT / ".venv-sdk"
SUITES = ("js", "go", "rust", "python")


class MissingTool(Exception):
    """A program a suite needs is not installed."""


def _tool(name: str, *fallbacks: Path) -> str:
    found = shutil.which(name) or next((str(path) for path in fallbacks if os.access(path, os.X_OK)), None)
    if found is None:
        raise MissingTool(f"{name} is not installed (.ci/run installs it)")
    return found


def _commands(suite: str) -> list[tuple[list[str], Path]]:
    """The (argv, working directory) steps of one suite."""
    if suite == "js":
        npm = _tool("npm")
        js = SDK_ROOT / "js"
        # `npm ci` builds too (the package's `prepare` script runs tsc).
        return [([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], js), ([npm, "test"], js)]
    if suite == "go":
        return [([_tool("go"), "test", "-count=1", "./..."], SDK_ROOT / "go")]
    if suite == "rust":
        cargo = _tool("cargo", Path.home() / ".cargo" / "bin" / "cargo")
        return [([cargo, "test", "--offline"], SDK_ROOT / "rust")]
    if suite == "python":
        python = SDK_VENV / "bin" / "python"
        steps = []
        if not python.exists():
            steps.append(([sys.executable, "-m", "venv", str(SDK_VENV)], REPO_ROOT))
        steps.append(([str(python), "-m", "pip", "install", "--quiet", "./sdk/python[qiskit,test]"], REPO_ROOT))
        steps.append(([str(SDK_VENV / "bin" / "pytest"), "-ra", "sdk/python/tests"], REPO_ROOT))
        return steps
    raise ValueError(f"unknown SDK suite {suite!r}; known: {', '.join(SUITES)}")


def _create_user(env: dict[str, str], email: str) -> str:
    done = subprocess.run([str(BIN / "qcos"), "users", "create", "--email", email, "--tier", "enterprise"],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    return re.search(r"api_key: (\S+)", done.stdout).group(1)


def _suite_env(stack_env: dict[str, str], base_url: str, api_key: str) -> dict[str, str]:
    # The suites see the gateway through QCOS_URL/QCOS_API_KEY only, not its own settings.
    env = {name: value for name, value in stack_env.items() if not name.startswith("QCOS_")}
    env.update(QCOS_URL=base_url, QCOS_API_KEY=api_key,
               GOPROXY="off", GOTOOLCHAIN="local", CARGO_TERM_COLOR="never")
    return env


def run_suites(suites: list[str]) -> int:
    """Run ``suites`` against a fresh gateway; 0 when all passed."""
    results: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="qcos-sdk-test-") as tmp, \
            gateway_stack(Path(tmp), database_url=f"sqlite:///{tmp}/state/qcos.db", executor="local",
                          tier="enterprise") as stack:
        print(f"== gateway {stack.base_url} (state in {tmp})", flush=True)
        for suite in suites:
            if suite == "python" and not (SDK_ROOT / "python").is_dir():
                results.append((suite, "left out: sdk/python does not exist yet", 0.0))
                continue
            started = time.monotonic()
            try:
                steps = _commands(suite)
            except MissingTool as exc:
                results.append((suite, f"FAILED: {exc}", 0.0))
                continue
            env = _suite_env(stack.env, stack.base_url, _create_user(stack.env, f"sdk-{suite}@example.org"))
            outcome = "passed"
            for argv, cwd in steps:
                print(f"== {suite}: {' '.join(argv)}  (in {cwd.relative_to(REPO_ROOT)})", flush=True)
                if subprocess.run(argv, cwd=cwd, env=env).returncode != 0:
                    outcome = f"FAILED at: {' '.join(argv)}"
                    break
            results.append((suite, outcome, time.monotonic() - started))
    print("== SDK suites")
    for suite, outcome, seconds in results:
        print(f"  {suite:<7} {outcome}  ({seconds:.0f} s)")
    return 1 if any(outcome.startswith("FAILED") for _, outcome, _ in results) else 0


def serve() -> int:
    """Start the gateway as ``make sdk-test`` does and wait; prints QCOS_URL and a key."""
    with tempfile.TemporaryDirectory(prefix="qcos-sdk-serve-") as tmp, \
            gateway_stack(Path(tmp), database_url=f"sqlite:///{tmp}/state/qcos.db", executor="local",
                          tier="enterprise") as stack:
        print(f"export QCOS_URL={stack.base_url} QCOS_API_KEY={stack.api_key}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"which SDKs ({', '.join(SUITES)}); default all")
    parser.add_argument("--serve", action="store_true", help="only start the gateway and wait")
    args = parser.parse_args(argv)
    # A TERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the gateway is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown SDK suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    if args.serve:
        return serve()
    return run_suites(args.suites or list(SUITES))


if __name__ == "__main__":
    sys.exit(main())
