"""Headless Chromium for the browser tests: where it is, how it starts, how it is stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("DRIFTGUARD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DRIFTGUARD_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


def webdriver_or_skip() -> Any:
    """Selenium's webdriver module, or skip loudly (fail with DRIFTGUARD_REQUIRE_BROWSER=1)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    reason = None
    if missing:
        reason = f"{', '.join(missing)} missing: run scripts/install_browser.sh (apt-get chromium chromium-driver)"
    else:
        try:
            from selenium import webdriver
        except ImportError:
            reason = "selenium is not installed in the venv (pip install selenium)"
    if reason is not None:
        if os.environ.get("DRIFTGUARD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required (DRIFTGUARD_REQUIRE_BROWSER=1) but {reason}")
        pytest.skip(f"BROWSER TEST SKIPPED: {reason}")
    return webdriver


@contextlib.contextmanager
def chromium(tmp_path: Path, logging_prefs: Mapping[str, str]) -> Iterator[Any]:
    """A Chrome driver with its own profile in tmp_path; chromedriver and every Chromium child run
    in one process group of their own, so they are stopped together whatever happened."""
    webdriver = webdriver_or_skip()
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path / "chromium-profile"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", dict(logging_prefs))
    service = Service(
        executable_path=CHROMEDRIVER,
        log_output=str(tmp_path / "chromedriver.log"),
        popen_kw={"start_new_session": True},
    )
    driver = None
    try:
        driver = webdriver.Chrome(options=options, service=service)
        yield driver
    finally:
        pid = service.process.pid if getattr(service, "process", None) else None
        if driver is not None:
            with contextlib.suppress(Exception):  # the group kill below still cleans up
                driver.quit()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)
