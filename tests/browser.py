"""Headless Chromium for page tests (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium), and OCR of screenshots (``tesseract-ocr``).

Locally a missing browser skips the page tests; under ``CI=true`` it fails them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.components import missing

__all__ = ["chromium", "ocr_text"]


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
