"""``/healthz``'s database check: can the database take a write *now*?

A read ping says "ok" while the database is locked or read-only; the call path's writes
then wait and fail. This check tries a write transaction with a short timeout and undoes
it: ``ok``, ``locked``, ``read-only``, ``slow`` (no answer in time) or ``down``.

* SQLite: a file (or its WAL) the process may not write is ``read-only`` (``os.access``:
  a mode, an immutable flag, a read-only mount); then a fresh connection of its own
  (``mode=rw``: a missing file is ``down``, not created) commits ``BEGIN IMMEDIATE;
  PRAGMA user_version = <its value>`` (a real write of the header, nothing changed)
  with a short busy timeout; in a thread.
* Other databases (PostgreSQL): a transaction on the store's engine that reads the
  server's ``transaction_read_only`` (a standby or a read-only database says ``on``), within
  the timeout.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from gateway.settings import sqlite_path

TIMEOUT = 0.5  # seconds


def _sqlite_check(path: Path, timeout: float) -> str:
    if not path.exists():
        return "down"
    wal = path.with_name(path.name + "-wal")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK) or (
            wal.exists() and not os.access(wal, os.W_OK)):
        return "read-only"
    try:
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error:
        return "down"
    try:
        connection.execute("BEGIN IMMEDIATE")
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        connection.execute(f"PRAGMA user_version = {version}")
        connection.execute("COMMIT")
        return "ok"
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return "locked"
        if "readonly" in text or "read-only" in text:
            return "read-only"
        return "down"
    except sqlite3.Error:
        return "down"
    finally:
        connection.close()


async def _engine_check(engine) -> str:
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            value = (await connection.execute(sa.text("SHOW transaction_read_only"))).scalar()
            return "read-only" if str(value).lower() == "on" else "ok"
        await connection.execute(sa.text("SELECT 1"))
        return "ok"


async def database_state(database_url: str, engine, timeout: float = TIMEOUT) -> str:
    """``ok`` | ``locked`` | ``read-only`` | ``slow`` | ``down``; never raises."""
    path = sqlite_path(database_url)
    if path is not None:
        return await asyncio.to_thread(_sqlite_check, path, timeout)
    check = asyncio.ensure_future(_engine_check(engine))
    try:
        return await asyncio.wait_for(asyncio.shield(check), timeout * 4)
    except asyncio.TimeoutError:
        check.add_done_callback(lambda t: t.cancelled() or t.exception())
        return "slow"
    except Exception:  # noqa: BLE001 - a health check reports, never raises
        return "down"
