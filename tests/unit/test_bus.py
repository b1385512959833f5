"""The cross-instance bus (gateway.bus): the in-process bus, and the PostgreSQL bus against an
in-memory stand-in for the server (two buses on two connections; a connection cut)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.bus import (MAX_PAYLOAD, PG_CHANNEL, BusError, LocalBus, PgBus, asyncpg_dsn, check_instance_id,
                         decode, encode, make_bus)
from gateway_dev.eventually import aeventually

PG_URL = "postgresql+asyncpg://gw:pw@127.0.0.1:5433/gw"


def test_given_ids_when_encoded_then_decoded_alike():
    text = encode("desk.pop", "a-1", {"uniqueid": "171.2", "agent": "8001", "ticket_id": 7})
    message = decode(text)
    assert (message.channel, message.origin, message.data) == ("desk.pop", "a-1", {"uniqueid": "171.2",
                                                                                   "agent": "8001", "ticket_id": 7})


@pytest.mark.parametrize("channel,data,error", [
    ("Desk Pop", {}, "lowercase"),
    ("desk.pop", ["x"], "must be a dict"),
    ("desk.pop", {"ticket": {"id": 1}}, "not an id"),
    ("desk.pop", {"text": "x" * MAX_PAYLOAD}, "send ids"),
])
def test_given_not_ids_when_encoded_then_refused_with_reason(channel, data, error):
    with pytest.raises(BusError, match=error):
        encode(channel, "a", data)


def test_instance_ids_and_urls():
    assert check_instance_id("gw-a.1") == "gw-a.1"
    with pytest.raises(BusError):
        check_instance_id("a b")
    assert asyncpg_dsn(PG_URL) == ("postgresql://gw:pw@127.0.0.1:5433/gw", {})
    assert asyncpg_dsn(PG_URL + "?ssl=disable") == ("postgresql://gw:pw@127.0.0.1:5433/gw", {"ssl": False})
    with pytest.raises(BusError, match="postgresql"):
        asyncpg_dsn("sqlite+aiosqlite:///x.db")
    assert isinstance(make_bus("sqlite+aiosqlite:///x.db", "a"), LocalBus)
    assert isinstance(make_bus(PG_URL, "a"), PgBus)


async def test_given_local_bus_when_published_then_own_subscribers_get_it_in_order():
    bus = LocalBus("only")
    got, other = [], []

    async def on_pop(message):
        got.append((message.data["n"], message.mine, message.origin))

    async def failing(message):
        raise RuntimeError("a subscriber's bug")

    bus.subscribe("desk.pop", failing)
    bus.subscribe("desk.pop", on_pop)
    bus.subscribe("board", lambda m: other.append(m))  # never called: other channel
    await bus.start()
    try:
        for n in range(3):
            bus.publish("desk.pop", {"n": n})
        await bus.drain()
    finally:
        await bus.close()
    assert got == [(0, True, "only"), (1, True, "only"), (2, True, "only")]
    assert other == [] and bus.counters.failed_callbacks == 3 and bus.leader and bus.state()["connected"]


class FakeServer:
    """What the bus needs of PostgreSQL: NOTIFY to every listening connection, connections that
    drop, one advisory lock."""

    def __init__(self) -> None:
        self.conns: list[FakeConn] = []
        self.lock_holder = None
        self.refuse = False

    async def connect(self, dsn, timeout=None, **kwargs):
        if self.refuse:
            raise ConnectionRefusedError("refused")
        conn = FakeConn(self)
        self.conns.append(conn)
        return conn


class FakeConn:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.listeners = {}
        self.terminations = []
        self.closed = False

    async def add_listener(self, channel, callback):
        self.listeners[channel] = callback

    def add_termination_listener(self, callback):
        self.terminations.append(callback)

    def is_closed(self):
        return self.closed

    async def execute(self, query, channel, payload):
        assert query == "SELECT pg_notify($1, $2)" and not self.closed
        for conn in list(self.server.conns):
            if not conn.closed and channel in conn.listeners:
                asyncio.get_running_loop().call_soon(conn.listeners[channel], conn, 1, channel, payload)

    async def fetchval(self, query, *args):
        if self.closed:
            raise ConnectionResetError("closed")
        if "advisory" in query:
            if self.server.lock_holder in (None, self) or self.server.lock_holder.closed:
                self.server.lock_holder = self
                return True
            return False
        return 1

    async def close(self, timeout=None):
        self.closed = True

    def terminate(self):
        self.closed = True

    def cut(self):
        """The server side ends the connection (a restart, a network cut)."""
        self.closed = True
        for callback in self.terminations:
            callback(self)


async def test_given_two_pg_buses_when_one_publishes_then_both_get_it_once_and_one_is_leader():
    server = FakeServer()
    a = PgBus(PG_URL, "a", connect=server.connect, keepalive=0.05)
    b = PgBus(PG_URL, "b", connect=server.connect, keepalive=0.05)
    got = {"a": [], "b": []}
    for name, bus in (("a", a), ("b", b)):
        bus.subscribe("desk.pop", lambda m, name=name: _append(got[name], (m.origin, m.data["id"], m.mine)))
    await a.start()
    await b.start()
    try:
        assert a.connected and b.connected
        a.publish("desk.pop", {"id": 1})
        b.publish("desk.pop", {"id": 2})
        await aeventually(lambda: len(got["a"]) == 2 and len(got["b"]) == 2, timeout=5)
        assert sorted(got["a"]) == [("a", 1, True), ("b", 2, False)]
        assert sorted(got["b"]) == [("a", 1, False), ("b", 2, True)]
        await aeventually(lambda: [a.leader, b.leader].count(True) == 1, timeout=5)
        assert a.leader  # started first
        assert all(PG_CHANNEL in c.listeners for c in server.conns)
    finally:
        await a.close()
        await b.close()


async def _append(items, item):
    items.append(item)


async def test_given_pg_connection_cut_when_back_then_messages_of_the_gap_sent_and_everyone_resyncs():
    server = FakeServer()
    a = PgBus(PG_URL, "a", connect=server.connect, keepalive=0.05, backoff=(0.01, 0.05))
    b = PgBus(PG_URL, "b", connect=server.connect, keepalive=0.05, backoff=(0.01, 0.05))
    got_b, resyncs = [], {"a": 0, "b": 0}

    async def resync(name):
        resyncs[name] += 1

    b.subscribe("config.changed", lambda m: _append(got_b, m.data["version_id"]))
    a.on_resync(lambda: resync("a"))
    b.on_resync(lambda: resync("b"))
    await a.start()
    await b.start()
    try:
        server.refuse = True
        a._conn.cut()  # a's connection drops; reconnects are refused for a while
        await aeventually(lambda: not a.connected, timeout=5)
        a.publish("config.changed", {"version_id": 5})  # waits in the outbox
        assert a.state()["backlog"] == 1 and a.state()["connected"] is False
        server.refuse = False
        await aeventually(lambda: got_b == [5], timeout=5)
        await aeventually(lambda: resyncs == {"a": 1, "b": 1}, timeout=5)
        assert a.counters.reconnects == 1 and a.state()["backlog"] == 0
        await aeventually(lambda: b.leader or a.leader, timeout=5)
    finally:
        await a.close()
        await b.close()


@pytest.fixture()
def pg_url(request):
    if "postgresql" not in __import__("tests.dbfixtures", fromlist=["DATABASES"]).DATABASES:
        pytest.skip("TEST_DATABASES leaves PostgreSQL out")
    server = request.getfixturevalue("postgres_server")
    return server.url("postgres")


async def test_given_real_postgresql_when_two_buses_listen_then_each_gets_the_others_message_and_one_leads(pg_url):
    a, b = PgBus(pg_url, "pg-a", keepalive=0.2), PgBus(pg_url, "pg-b", keepalive=0.2)
    got = {"pg-a": [], "pg-b": []}
    resyncs = []
    for bus in (a, b):
        bus.subscribe("desk.pop", lambda m, name=bus.instance_id: _append(got[name], (m.origin, m.data["uniqueid"])))
    b.on_resync(lambda: _append(resyncs, "b"))
    await a.start()
    await b.start()
    try:
        assert a.connected and b.connected
        a.publish("desk.pop", {"uniqueid": "1733.1", "agent": "8001"})
        await aeventually(lambda: got["pg-b"] == [("pg-a", "1733.1")], timeout=10)
        assert got["pg-a"] == [("pg-a", "1733.1")]  # its own: once, locally (the server's echo is dropped)
        await aeventually(lambda: [a.leader, b.leader].count(True) == 1, timeout=10)
        # the server ends B's session (as a restart or a network cut would): B listens again and resyncs
        assert await a._conn.fetchval("SELECT pg_terminate_backend($1)", b._conn.get_server_pid())
        await aeventually(lambda: b.counters.reconnects == 1 and b.connected, timeout=15)
        await aeventually(lambda: resyncs == ["b"], timeout=10)
        a.publish("desk.pop", {"uniqueid": "1733.2", "agent": "8001"})
        await aeventually(lambda: got["pg-b"][-1] == ("pg-a", "1733.2"), timeout=10)
    finally:
        await a.close()
        await b.close()
