"""The real system for end-to-end tests: one sandbox Asterisk and one ``gateway serve``
per test session, started by the project's own commands (see ``gateway_dev.system``).
The configuration is a private copy of ``config/`` that tests may change.

The shared System's calls do not hear their ticket number read (``System(tell_number=False)``,
see ``gateway_dev.system``): 12 s a call that no test of this System listens to. The reading
is tested by the files that start a System of their own (test_ticket_number.py and others).

``make test`` runs these files on two pytest-xdist workers with ``--dist loadfile``, which hands
out whole files in collection order: :func:`pytest_collection_modifyitems` puts the longest files
first (:data:`FILE_SECONDS`), so that the two workers finish together instead of one running the
last long file alone."""

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


# Seconds each file takes in `make test` (two workers on the 2-core development VM): read from a
# fresh clone's run of 2026-12-02 (each file's span in the gateway logs' timestamps and its
# screenshots in test-artifacts/), less what a file gained since, measured alone before and
# after. "~" marks a file whose span could only be guessed (small files, the shared System).
# Only the order matters (with --dist loadfile a worker takes its next file while its last two
# tests run): refresh from the log's --durations when a file grows by a minute or more.
# A file not listed counts as UNLISTED_SECONDS.
FILE_SECONDS = {
    "test_desk_browser.py": 255,
    "test_hotline_admin.py": 200,
    "test_two_gateways.py": 165,
    "test_calls.py": 155,
    "test_speech.py": 150,
    "test_ticket_number.py": 150,
    "test_callback.py": 140,
    "test_fault_database.py": 135,
    "test_site.py": 135,
    "test_two_nodes.py": 135,
    "test_followup.py": 130,
    "test_progress.py": 95,
    "test_keyloss.py": 85,  # ~
    "test_fault_asterisk.py": 80,
    "test_postgres_calls.py": 70,
    "test_fault_recordings.py": 70,  # ~
    "test_units.py": 62,
    "test_supervisor_figures.py": 62,
    "test_desk_api.py": 60,  # ~
    "test_fault_gateway.py": 55,
    "test_mandarin.py": 55,
    "test_ticket_number_browser.py": 55,
    "test_admin_browser.py": 45,
    "test_typeahead.py": 40,  # ~
    "test_pbx_privacy.py": 35,  # ~
    "test_supervisor_focus_browser.py": 30,  # ~
    "test_config_reload.py": 30,  # ~
    "test_reports_browser.py": 25,  # ~
    "test_outbound.py": 20,  # ~
    "test_security.py": 20,  # ~
    "test_kamailio_failover.py": 15,  # ~ (no System: two scripted SIP nodes)
    "test_rates_browser.py": 10,  # ~ (no Asterisk)
    "test_warnings_browser.py": 10,  # ~ (no Asterisk)
    "test_common_js_browser.py": 3,  # (no server: static files in the browser)
}
UNLISTED_SECONDS = 120


def pytest_collection_modifyitems(config, items):
    """Longest files first (then by name), each file's tests in their own order: with
    ``--dist loadfile`` the last file a worker starts is then a short one."""
    def weight(item) -> tuple:
        name = item.path.name if item.path.parent == Path(__file__).parent else ""
        return (-FILE_SECONDS.get(name, UNLISTED_SECONDS) if name else 0, str(item.path))

    items.sort(key=weight)  # stable: a file's tests keep their order


@contextlib.contextmanager
def own_system(name: str, *, env: dict[str, str] | None = None, console: bool = False,
               **options: Any) -> Iterator[System]:
    """A System of a file's own, up for the ``with`` block (the module-scoped fixture of a file
    whose configuration differs from the shared System's), then down, its gateway log kept as
    ``test-artifacts/e2e-<name>-gateway.log`` (and Asterisk's console log with ``console``) and
    its state dir removed. ``options`` go to :class:`System` (``test_clock``, ``extra_env``...);
    ``env`` is added to the System's environment after it is made.

        @pytest.fixture(scope="module")
        def system():
            with own_system("callback", env={"GATEWAY_SPEECH": "false"}) as sysm:
                yield sysm
    """
    sysm = System(prefix=f"gw-e2e-{name}-", log_level="INFO", **options)
    sysm.env.update(env or {})

    def logs(s: System) -> list[tuple[Path, str]]:
        kept = [(s.log_path, f"e2e-{name}-gateway.log")]
        return kept + [(s.console_log, f"e2e-{name}-asterisk.console.log")] if console else kept

    with running(sysm, logs=logs):
        yield sysm


@pytest.fixture(scope="session")
def system():
    # One system per pytest-xdist worker (gw0, gw1...): private state dir and ports each.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    suffix = f"-{worker}" if worker else ""
    sysm = System(prefix=f"gw-e2e{suffix}-", log_level="INFO", test_clock=True, tell_number=False)
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
