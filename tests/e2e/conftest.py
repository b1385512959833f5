"""The real system for end-to-end tests: one sandbox Asterisk and one ``gateway serve``
per test session, started by the project's own commands (see ``gateway_dev.system``).
The configuration is a private copy of ``config/`` that tests may change."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_dev.system import ROOT, System

ARTIFACTS = ROOT / "test-artifacts"


def keep_logs(logs: Iterable[tuple[Path, str]]) -> None:
    """Copy each existing ``(log file, name)`` into test-artifacts/ (CI keeps that folder)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for path, name in logs:
        if path.exists():
            shutil.copy(path, ARTIFACTS / name)


@contextlib.contextmanager
def running(sysm: Any, *, logs: Callable[[Any], Iterable[tuple[Path, str]]] = lambda s: (),
            start: Callable[[Any], Any] = lambda s: s.up(), stop: Callable[[Any], Any] = lambda s: s.down(),
            ) -> Iterator[Any]:
    """A test system (System, NodesSystem, SiteSystem) from ``start`` to ``stop``, whatever happens:
    then its logs kept (``logs(sysm)``, read after the stop) and its state dir removed."""
    try:
        start(sysm)
        yield sysm
    finally:
        try:
            stop(sysm)
        finally:
            keep_logs(logs(sysm))
            shutil.rmtree(sysm.state, ignore_errors=True)


def skip_unless(**needs: object) -> None:
    """Skip the module's tests, naming every missing need (``name=truthy if present``)."""
    missing = [name for name, present in needs.items() if not present]
    if missing:
        pytest.skip("missing: " + ", ".join(missing))


@pytest.fixture(scope="session")
def system():
    # One system per pytest-xdist worker (gw0, gw1...): private state dir and ports each.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    suffix = f"-{worker}" if worker else ""
    sysm = System(prefix=f"gw-e2e{suffix}-", log_level="INFO", test_clock=True)
    with running(sysm, logs=lambda s: [(s.log_path, f"e2e-gateway{suffix}.log"),
                                       (s.console_log, f"e2e-asterisk{suffix}.console.log")]):
        yield sysm


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
