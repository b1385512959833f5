"""Run the ticketing schema migrations (Alembic, synchronous).

``upgrade(url)`` brings the database to ``head``; ``current(url)`` reports the
revision it is at. Both are blocking: call them from the CLI before the event
loop starts, or through ``asyncio.to_thread`` from async code.

Alembic runs on a synchronous engine, so an async URL is translated first
(``sqlite+aiosqlite`` -> ``sqlite``, ``postgresql+asyncpg`` -> ``postgresql``).

    python -m gateway.ticketing.migrate upgrade [--database-url URL]
    python -m gateway.ticketing.migrate current [--database-url URL]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, make_url

from gateway.settings import load_settings, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg2",
}


def sync_url(database_url: str | URL) -> URL:
    """The same database, addressed through a synchronous driver."""
    url = make_url(database_url)
    driver = _SYNC_DRIVERS.get(url.drivername)
    return url.set(drivername=driver) if driver else url


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


def _quiet_alembic() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest)."""
    from alembic import command

    _quiet_alembic()
    ensure_sqlite_dir(database_url)
    command.upgrade(_alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    _quiet_alembic()
    path = sqlite_path(database_url)
    if path is not None and not path.exists():
        return None  # do not create an empty file just to look
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.ticketing.migrate")
    parser.add_argument("action", choices=("upgrade", "current"))
    parser.add_argument("--database-url", help="default: DATABASE_URL / the gateway settings")
    args = parser.parse_args(argv)
    url = args.database_url
    if not url:
        url = load_settings().database_url
    if args.action == "upgrade":
        upgrade(url)
    print(current(url) or "(none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
