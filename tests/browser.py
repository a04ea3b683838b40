"""Pages in a real browser: Debian's headless Chromium.

Two ways to drive it: from its command line (:func:`rendered_dom`,
:func:`screenshot`), with every host name but the loopback addresses made
unresolvable, so a page that needs a CDN cannot render; and through Selenium
with Debian's ``chromium-driver`` (the ``chromium`` fixture), for pages a test
clicks through, with OCR of screenshots by ``tesseract-ocr``
(:func:`ocr_text`). Locally a missing browser skips the test; under
``CI=true`` it fails it (``.ci/run`` installs them).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.components import missing

__all__ = ["chromium", "chromium_binary", "ocr_text", "rendered_dom", "screenshot"]

#: Virtual milliseconds the page may run (fetches, rendering) before the DOM is read.
VIRTUAL_TIME_BUDGET_MS = 15_000


def chromium_binary() -> str:
    """The path of the ``chromium`` binary; fails (CI) or skips the test without one."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("Chromium", "install Debian's chromium package (apt-get install chromium)")
    return path


def _argv(url: str, *extra: str) -> list[str]:
    return [
        chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
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


@pytest.fixture
def chromium():
    """A Selenium WebDriver on headless Chromium, 1400×1000, closed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        missing("Chromium", "apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    # Both paths given: Selenium never tries to download a browser or driver.
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=2"):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


#: tesseract's page segmentation modes: a whole page, one line, one word.
_SEGMENTATION = {"page": "3", "line": "7", "word": "8"}


def ocr_text(image: Path, *, layout: str = "page") -> str:
    """The text tesseract reads in a screenshot (what a person would see).
    ``layout``: ``page``, or ``line``/``word`` for a small element such as a button."""
    tesseract = shutil.which("tesseract")
    if not tesseract:
        missing("tesseract", "apt-get install tesseract-ocr")
    argv = [tesseract, str(image), "stdout", "--psm", _SEGMENTATION[layout]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
