"""gateway_dev.postgres: a private PostgreSQL server starts, serves a database, and leaves nothing behind."""

from __future__ import annotations

import subprocess

import pytest

from gateway_dev.postgres import PostgresServer


def test_given_a_private_server_when_stopped_then_its_process_and_directory_are_gone():
    with PostgresServer() as pg:
        url = pg.create_database("harness_check")
        assert url.startswith(f"postgresql+asyncpg://gateway:{pg.password}@127.0.0.1:{pg.port}/harness_check?ssl=disable")
        assert pg.psql("SHOW fsync").strip() == "on"
        assert pg.psql("SELECT current_database()", "harness_check").strip() == "harness_check"
        pid, directory = pg.proc.pid, pg.dir
    assert not directory.exists()
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_given_a_wrong_password_when_connecting_then_refused():
    with PostgresServer() as pg:
        pg.password, right = "wrong", pg.password
        with pytest.raises(RuntimeError, match="password authentication failed"):
            pg.psql("SELECT 1")
        pg.password = right
