"""The real system for end-to-end tests: one sandbox Asterisk and one ``gateway serve``
per test session, started by the project's own commands (see ``gateway_dev.system``).
The configuration is a private copy of ``config/`` that tests may change."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gateway_dev.system import ROOT, System

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def system():
    # One system per pytest-xdist worker (gw0, gw1...): private state dir and ports each.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    suffix = f"-{worker}" if worker else ""
    sysm = System(prefix=f"gw-e2e{suffix}-", log_level="INFO", test_clock=True)
    try:
        sysm.up()
        yield sysm
    finally:
        sysm.down()
        ARTIFACTS.mkdir(exist_ok=True)
        if sysm.log_path.exists():
            shutil.copy(sysm.log_path, ARTIFACTS / f"e2e-gateway{suffix}.log")
        if sysm.console_log.exists():
            shutil.copy(sysm.console_log, ARTIFACTS / f"e2e-asterisk{suffix}.console.log")
        shutil.rmtree(sysm.state, ignore_errors=True)


CHROMIUM = "/usr/bin/chromium"  # Debian's; never a downloaded browser
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium driven by Playwright (skips when either is missing)."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium fonts-wqy-microhei)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
