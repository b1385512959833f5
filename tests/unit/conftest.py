"""Unit tests run under blockbuster (as aiohttp's own suite does): a blocking call made on
a running event loop (file or socket I/O, time.sleep, a lock wait, sqlite3) raises
``BlockingError`` and fails the test. Synchronous tests and other threads (asyncio.to_thread,
aiosqlite's connection thread) are not watched.

Only what must block is allowed, each with its reason; gateway code never is: a blocking
call it makes on the loop is fixed there (asyncio.to_thread, or the async API)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

import pytest
from blockbuster import BlockBuster

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


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A test that runs a CLI command leaves the CLI's stderr handler on the root logger
    (``gateway.logs.setup``); later tests must not inherit it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
from tests.dbfixtures import database_url, empty_database_url, postgres_server, store  # noqa: F401,E402 - fixtures
