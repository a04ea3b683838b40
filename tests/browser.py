"""Pages in a real browser: Debian's headless Chromium, driven from its command line.

The page is loaded with every host name but the loopback addresses made
unresolvable, so a page that needs a CDN cannot render. Locally a missing
``chromium`` skips the test; under ``CI=true`` it fails it (``.ci/run``
installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.components import missing

#: Virtual milliseconds the page may run (fetches, rendering) before the DOM is read.
VIRTUAL_TIME_BUDGET_MS = 15_000


def chromium() -> str:
    """The path of the ``chromium`` binary; fails (CI) or skips the test without one."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("Chromium", "install Debian's chromium package (apt-get install chromium)")
    return path


def _argv(url: str, *extra: str) -> list[str]:
    return [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", "--window-size=1280,2000", *extra, url,
    ]


def rendered_dom(url: str) -> str:
    """The page's DOM as HTML after its scripts ran (``--dump-dom``)."""
    done = subprocess.run(_argv(url, "--dump-dom"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def screenshot(url: str, path: Path) -> Path:
    """A PNG of the page, 1280 × 2000 pixels, after its scripts ran; returns ``path``."""
    done = subprocess.run(_argv(url, f"--screenshot={path}"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and path.exists(), f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return path
