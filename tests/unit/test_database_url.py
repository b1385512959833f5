"""DATABASE_URL: the gateway's async drivers are filled in, anything else is refused clearly."""

from __future__ import annotations

import re

import pytest

from gateway.errors import SettingsError
from gateway.settings import database_url_of, load_settings
from gateway.ticketing import migrate


@pytest.mark.parametrize("given,wanted", [
    ("postgresql://gw:pw@db:5432/gateway", "postgresql+asyncpg://gw:pw@db:5432/gateway"),
    ("postgres://gw:pw@db/gateway?ssl=require", "postgresql+asyncpg://gw:pw@db/gateway?ssl=require"),
    ("postgresql+asyncpg://gw@db/gateway", "postgresql+asyncpg://gw@db/gateway"),
    ("sqlite:////srv/gw/gateway.db", "sqlite+aiosqlite:////srv/gw/gateway.db"),
    ("sqlite+aiosqlite:////srv/gw/gateway.db", "sqlite+aiosqlite:////srv/gw/gateway.db"),
])
def test_given_a_database_url_when_loaded_then_the_async_driver_is_named(given, wanted, tmp_path):
    assert database_url_of(given) == wanted
    assert load_settings({"DATABASE_URL": given, "GATEWAY_STATE_DIR": str(tmp_path)}).database_url == wanted


@pytest.mark.parametrize("given,says", [
    ("postgresql+psycopg2://gw@db/gateway", "use postgresql+asyncpg://"),
    ("sqlite+pysqlite:////x.db", "use sqlite+aiosqlite://"),
    ("mysql+aiomysql://gw@db/gateway", "'mysql' is not supported"),
    ("gateway.db", "not a database URL"),
])
def test_given_an_unsupported_database_url_when_loaded_then_a_clear_error(given, says, tmp_path):
    with pytest.raises(SettingsError, match=re.escape(says)):
        load_settings({"DATABASE_URL": given, "GATEWAY_STATE_DIR": str(tmp_path)})


def test_given_asyncpgs_ssl_option_when_migrating_then_libpq_gets_sslmode():
    url = migrate.sync_url("postgresql+asyncpg://gw:pw@db/gateway?ssl=disable")
    assert url.drivername == "postgresql+psycopg2" and dict(url.query) == {"sslmode": "disable"}
