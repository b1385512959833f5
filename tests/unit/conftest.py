"""Unit tests run under blockbuster (as aiohttp's own suite does): a blocking call made on
a running event loop (file or socket I/O, time.sleep, a lock wait, sqlite3) raises
``BlockingError`` and fails the test. Synchronous tests and other threads (asyncio.to_thread,
aiosqlite's connection thread) are not watched.

Only what must block is allowed, each with its reason; gateway code never is: a blocking
call it makes on the loop is fixed there (asyncio.to_thread, or the async API)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster

# Speech workers started by unit tests warm no Vosk recogniser while idle (each costs a worker
# ~4 CPU s at start: gateway.asr.worker.Worker.plan_warming); tests of warming set their own.
os.environ.setdefault("GATEWAY_SPEECH_WARM", "0")

# (watched function, file, function in the stack that may make it)
ALLOWED = [
    # SQLAlchemy makes a SQLite file path absolute when an engine is created (TicketStore.open):
    # os.getcwd at most, once per engine, no disk access.
    ("os.path.abspath", "sqlalchemy/dialects/sqlite/pysqlite.py", "create_connect_args"),
]


def _or_devnull(predicate: Callable[..., bool]) -> Callable[..., bool]:
    """Writes to /dev/null cannot block: pytest's log-file handler writes every record there
    when no --log-file is given."""

    def allowed(file, *args, **kwargs) -> bool:
        return getattr(file, "name", None) == os.devnull or predicate(file, *args, **kwargs)

    return allowed


# Files whose tests measure wall-clock time or the event loop's lag (LagMeter, "answered within
# x s", pacing of 20 ms frames). ``make test`` runs the rest of the unit suite on two pytest-xdist
# workers, then these alone (``-m timed``), so that the other worker's CPU does not skew them.
# A single test elsewhere is marked ``@pytest.mark.timed`` in its file.
TIMED_FILES = {
    "test_admin_hostile.py",  # a hostile document refused within 5 s; /healthz answered meanwhile
    "test_ami_client.py",  # keep-alive gaps, reconnect back-off and kill-to-close within bounds
    "test_asr_supervision.py",  # a killed speech worker restarted (its model reloaded) within 30 s
    "test_audiosocket.py",  # 20 ms frame pacing, LagMeter
    "test_fastagi_hostile.py",  # LagMeter: a hostile peer must not stall the loop 50 ms
    "test_whisper_engine.py",  # finals within 30 s of decoding on a loaded CPU; a worker restarted
    "test_yaml_hostile.py",  # YAML bombs refused within 3 s
}
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.parent == HERE and item.path.name in TIMED_FILES:
            item.add_marker(pytest.mark.timed)


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    bb = BlockBuster()
    for function, filename, caller in ALLOWED:
        bb.functions[function].can_block_in(filename, caller)
    for function in ("io.TextIOWrapper.write", "io.BufferedWriter.write"):
        bb.functions[function].can_block_predicate = _or_devnull(bb.functions[function].can_block_predicate)
    bb.activate()
    try:
        yield bb
    finally:
        bb.deactivate()


@pytest.fixture()
def config_dir(tmp_path) -> Path:
    """A private copy of the shipped config/ that a test may change (break)."""
    target = tmp_path / "config"
    shutil.copytree(HERE.parents[1] / "config", target)
    return target


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A test that runs a CLI command leaves the CLI's stderr handler on the root logger
    (``gateway.logs.setup``); later tests must not inherit it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
from tests.dbfixtures import (  # noqa: F401,E402 - fixtures
    database_url, empty_database_url, postgres_server, sqlite_database_url, sqlite_template, store)
