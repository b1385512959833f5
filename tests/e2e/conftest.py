"""The real system for end-to-end tests: one sandbox Asterisk and one ``gateway serve``
per test session, started by the project's own commands (see ``gateway.devsystem``).
The configuration is a private copy of ``config/`` that tests may change."""

from __future__ import annotations

import shutil

import pytest

from gateway.devsystem import ROOT, System

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def system():
    sysm = System(prefix="gw-e2e-", log_level="INFO", test_clock=True)
    try:
        sysm.up()
        yield sysm
    finally:
        sysm.down()
        ARTIFACTS.mkdir(exist_ok=True)
        if sysm.log_path.exists():
            shutil.copy(sysm.log_path, ARTIFACTS / "e2e-gateway.log")
        if sysm.console_log.exists():
            shutil.copy(sysm.console_log, ARTIFACTS / "e2e-asterisk.console.log")
        shutil.rmtree(sysm.state, ignore_errors=True)
