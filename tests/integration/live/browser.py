"""Headless Chromium for the browser tests: Debian's chromium and chromedriver, never a download.

Selenium Manager fetches a browser and a driver when it cannot find them; giving both paths
explicitly keeps it from ever running (no internet on these machines, and CI must not depend on it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def headless_chromium(*, width: int = 1600, height: int = 1000, log_path: str | None = None) -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it may not get
        "--disable-dev-shm-usage",  # /dev/shm is small in containers; Chromium crashes on a full one
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    service = Service(CHROMEDRIVER, log_output=log_path) if log_path else Service(CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
