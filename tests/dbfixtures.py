"""Database fixtures: every database-touching test runs on SQLite and on PostgreSQL.

``database_url`` is parameterised ``[sqlite, postgresql]``: a migrated SQLite file in the
test's tmp_path, or a fresh PostgreSQL database copied from a migrated template
(``CREATE DATABASE … TEMPLATE``: ~0.1 s, no Alembic run per test). The PostgreSQL server
(:class:`gateway_dev.postgres.PostgresServer`) starts once per session, i.e. once per
xdist worker, on first use, and is stopped at the end of the session.

Both fixtures are synchronous on purpose: the migrations and the server's start block,
and pytest runs sync fixtures outside the test's event loop (blockbuster watches that loop).

``TEST_DATABASES=sqlite`` (or ``postgresql``) runs one side only, e.g. on a machine
without PostgreSQL; the default is both.
"""

from __future__ import annotations

import itertools
import os
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
        url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'db' / 'gateway.db'}"
        migrate.upgrade(url)
        yield url


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
