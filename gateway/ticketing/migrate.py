"""Run the ticketing schema migrations (Alembic, synchronous).

``upgrade(url)`` brings the database to ``head``; ``current(url)`` reports the
revision it is at. Both are blocking: call them from the CLI before the event
loop starts, or through ``asyncio.to_thread`` from async code.

Alembic runs on a synchronous engine, so an async URL is translated first
(``sqlite+aiosqlite`` -> ``sqlite``, ``postgresql+asyncpg`` -> ``postgresql+psycopg2``,
asyncpg's ``ssl=`` query option -> libpq's ``sslmode=``). A synchronous driver, not asyncpg
under ``asyncio.run``: migrations run in a worker thread beside the gateway's event loop,
and a second loop there would be a loop that blocks. On PostgreSQL an upgrade is one
transaction (its DDL is transactional).

    python -m gateway.ticketing.migrate upgrade [--database-url URL]
    python -m gateway.ticketing.migrate downgrade REVISION [--database-url URL]
    python -m gateway.ticketing.migrate current [--database-url URL]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, make_url

from gateway.settings import load_settings, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")

_SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg2",
}


def sync_url(database_url: str | URL) -> URL:
    """The same database, addressed through a synchronous driver."""
    url = make_url(database_url)
    driver = _SYNC_DRIVERS.get(url.drivername)
    if driver is None:
        return url
    if url.drivername == "postgresql+asyncpg" and "ssl" in url.query:
        query = dict(url.query)
        query.setdefault("sslmode", query.pop("ssl"))
        url = url.set(query=query)
    return url.set(drivername=driver)


def ensure_sqlite_dir(database_url: str | URL) -> None:
    """Create the directory of a SQLite database file if it is missing."""
    path = sqlite_path(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _alembic_config(database_url: str | URL):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: URLs may contain '%'.
    config.attributes["database_url"] = sync_url(database_url)
    return config


def run_sync(database_url: str | URL, work: Callable[..., T]) -> T:
    """Call ``work(connection)`` with a synchronous connection to the database, in one
    transaction committed when ``work`` returns (blocking, like the rest of this module)."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as connection:
            return work(connection)
    finally:
        engine.dispose()


def _quiet_alembic() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest)."""
    from alembic import command

    _quiet_alembic()
    ensure_sqlite_dir(database_url)
    command.upgrade(_alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Migrate the database back to ``revision`` (``base``: no tables at all)."""
    from alembic import command

    _quiet_alembic()
    command.downgrade(_alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    _quiet_alembic()
    path = sqlite_path(database_url)
    if path is not None and not path.exists():
        return None  # do not create an empty file just to look
    return run_sync(database_url, lambda conn: MigrationContext.configure(conn).get_current_revision())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.ticketing.migrate")
    parser.add_argument("action", choices=("upgrade", "downgrade", "current"))
    parser.add_argument("revision", nargs="?", help="downgrade: the revision to go back to (or base)")
    parser.add_argument("--database-url", help="default: DATABASE_URL / the gateway settings")
    args = parser.parse_args(argv)
    url = args.database_url
    if not url:
        url = load_settings().database_url
    if args.action == "upgrade":
        upgrade(url)
    elif args.action == "downgrade":
        if not args.revision:
            parser.error("downgrade needs a revision (e.g. 0004, or base)")
        downgrade(url, args.revision)
    print(current(url) or "(none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
