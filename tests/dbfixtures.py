"""Database fixtures: every database-touching test runs on SQLite and on PostgreSQL.

``database_url`` is parameterised ``[sqlite, postgresql]``: a migrated SQLite file in the
test's tmp_path, or a fresh PostgreSQL database copied from a migrated template
(``CREATE DATABASE … TEMPLATE``: ~0.1 s, no Alembic run per test). The SQLite file is
likewise a copy of one migrated once per session (``sqlite_template``): a file copy
instead of a ~1 s Alembic run per test; the migrations themselves are tested from an
empty database (``empty_database_url``, test_schema.py). ``sqlite_database_url`` is the
SQLite side alone, for tests that need a database but test nothing of SQL. The PostgreSQL server
(:class:`gateway_dev.postgres.PostgresServer`) starts once per session, i.e. once per
xdist worker, on first use, and is stopped at the end of the session.

Both fixtures are synchronous on purpose: the migrations and the server's start block,
and pytest runs sync fixtures outside the test's event loop (blockbuster watches that loop).

``TEST_DATABASES=sqlite`` (or ``postgresql``) runs one side only, e.g. on a machine
without PostgreSQL; the default is both.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
from collections.abc import Iterator

import pytest

from gateway.ticketing import migrate

TEMPLATE = "gateway_migrated"
DATABASES = tuple(d.strip() for d in os.environ.get("TEST_DATABASES", "sqlite,postgresql").split(",") if d.strip())
_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server():
    from gateway_dev.postgres import PostgresServer

    with PostgresServer(prefix="gw-pg-test-") as server:
        migrate.upgrade(server.create_database(TEMPLATE))
        yield server


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    """A SQLite file migrated to head once per session (per xdist worker); ``database_url``
    hands each test a copy. Alembic leaves it in rollback-journal mode: one file, nothing
    in a WAL beside it (checked), so a byte copy is the same database."""
    path = tmp_path_factory.mktemp("sqlite-template") / "gateway.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal", "the template must be a single file"
    return str(path)


def _postgres_database(request, *, template: str) -> Iterator[str]:
    server = request.getfixturevalue("postgres_server")
    name = f"t{next(_names)}"
    url = server.create_database(name, template=template)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path) -> Iterator[str]:
    """A migrated, empty database (SQLite file or PostgreSQL database) for this test."""
    if request.param == "postgresql":
        yield from _postgres_database(request, template=TEMPLATE)
    else:
        yield request.getfixturevalue("sqlite_database_url")


@pytest.fixture
def sqlite_database_url(request, tmp_path) -> str:
    """A migrated, empty SQLite database only: for tests that need a database behind the app
    but test nothing of SQL (the HTTP edge, hostile input refused before anything is written,
    prompt files served). Running them on PostgreSQL too would only repeat them."""
    path = tmp_path / "state" / "db" / "gateway.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=DATABASES)
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """A database with no tables at all (not migrated): for the migrations' own tests."""
    if request.param == "postgresql":
        yield from _postgres_database(request, template="template0")
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'state' / 'db' / 'gateway.db'}"


@pytest.fixture
async def store(database_url):
    """A :class:`TicketStore` on the migrated ``database_url`` (both databases), closed after."""
    from gateway.ticketing.store import TicketStore

    store = await TicketStore.open(database_url)
    try:
        yield store
    finally:
        await store.close()
