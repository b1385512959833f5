"""Cross-instance notifications: small messages of ids between the gateway instances of a site.

Theory of operation
-------------------
Several gateway instances may serve one site (FastAGI fails over between them). What
one instance learns and the others must act on goes through this bus: a desk pop for
an agent connected to another instance, a change of the supervisor's board, a new
configuration version. Messages are *notifications*, never the data itself: a dict of
ids and short strings (JSON under :data:`MAX_PAYLOAD` bytes); the receiver reads what it
needs from the database. Nothing on the bus is the only copy of anything.

``publish(channel, data)`` never waits: the call path must not stall on the bus. The
message is delivered to this instance's own subscribers at once (``message.mine`` is
true) and, with PostgreSQL, sent to the others with ``pg_notify``. Subscribers are
awaited one after the other, in publish order, by one dispatcher task; a failing
subscriber is logged and the next one runs.

Backends:

* :class:`LocalBus` (SQLite, one instance): only this instance's subscribers.
* :class:`PgBus` (PostgreSQL): one asyncpg connection that ``LISTEN``s on one channel
  and sends with ``SELECT pg_notify(...)``. Its own messages coming back from the
  server are dropped (they were delivered locally already). The connection is checked
  every :data:`KEEPALIVE` seconds; when it drops, it is opened again with backoff
  (0.2 s doubling up to 5 s). Notifications sent while an instance was not listening
  are lost, so after every reconnect the instance runs its ``on_resync`` callbacks and
  asks every other instance to do the same (the ``bus.resync`` channel): desks reload
  their inbox, the board asks for the IVR calls of the others, the configuration
  compares its version with the database's. Messages published while the connection
  is down wait in a bounded buffer (:data:`OUTBOX`, oldest dropped) and go out after
  the reconnect.

Leadership: a few jobs must run on one instance only (the scheduler of configuration
changes, one audit line per screen pop). ``bus.leader`` says whether this instance
holds them: always with :class:`LocalBus`; with :class:`PgBus` the instance holding a
session-level advisory lock on its bus connection (it moves to another instance within
:data:`KEEPALIVE` seconds of the holder's connection ending, e.g. when it is killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
PG_CHANNEL = "gw12345_bus"
LEADER_LOCK = 0x67773132  # pg advisory lock key ("gw12")
KEEPALIVE = 2.0  # seconds between checks of the bus connection (and tries for the leader lock)
CONNECT_TIMEOUT = 5.0
BACKOFF = (0.2, 5.0)  # first and longest wait between reconnects
OUTBOX = 1000  # messages kept while the connection is down
RESYNC = "bus.resync"  # published by an instance that reconnected: everyone resyncs
_CHANNEL = re.compile(r"[a-z][a-z0-9_.]{0,62}")
_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Value = int | str | float | bool | None
Callback = Callable[["Message"], Awaitable[None]]
ResyncCallback = Callable[[], Awaitable[None]]


class BusError(ValueError):
    """A message the bus refuses (bad channel, not ids, too large): the publisher's bug."""


@dataclass(frozen=True)
class Message:
    channel: str
    origin: str  # the instance id of the publisher
    data: dict
    mine: bool = False  # published by this instance


def new_instance_id() -> str:
    """A default instance id: host name and a random suffix (unique per process)."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "gateway"
    return f"{host}-{secrets.token_hex(3)}"


def check_instance_id(value: str) -> str:
    if not isinstance(value, str) or not _INSTANCE.fullmatch(value):
        raise BusError(f"instance id {value!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return value


def encode(channel: str, origin: str, data: dict) -> str:
    """The wire form of a message; raises :class:`BusError` for anything but a small dict of ids."""
    if not _CHANNEL.fullmatch(channel or ""):
        raise BusError(f"bus channel {channel!r}: lowercase letters, digits, '_' and '.' only")
    if not isinstance(data, dict):
        raise BusError(f"bus message on {channel}: data must be a dict, not {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, (int, str, float, bool))):
            raise BusError(f"bus message on {channel}: {key!r} is not an id (ints, short strings only)")
    text = json.dumps({"c": channel, "o": origin, "d": data}, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > MAX_PAYLOAD:
        raise BusError(f"bus message on {channel} is {len(text.encode())} bytes (at most {MAX_PAYLOAD}): send ids")
    return text


def decode(text: str) -> Message:
    raw = json.loads(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("c"), str) or not isinstance(raw.get("d"), dict):
        raise BusError(f"not a bus message: {text[:80]!r}")
    return Message(channel=raw["c"], origin=str(raw.get("o", "")), data=raw["d"])


@dataclass
class _Counters:
    published: int = 0
    received: int = 0
    dropped: int = 0
    reconnects: int = 0
    failed_callbacks: int = 0
    extra: dict = field(default_factory=dict)


class LocalBus:
    """One instance: messages go to this instance's subscribers only."""

    backend = "local"

    def __init__(self, instance_id: str | None = None) -> None:
        self.instance_id = check_instance_id(instance_id or new_instance_id())
        self._subscribers: dict[str, list[Callback]] = {}
        self._resync: list[ResyncCallback] = []
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._dispatcher: asyncio.Task | None = None
        self._drain_waiters: list[asyncio.Event] = []
        self.counters = _Counters()

    # -- the interface ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return True

    @property
    def leader(self) -> bool:
        return True

    def subscribe(self, channel: str, callback: Callback) -> None:
        encode(channel, self.instance_id, {})  # the channel name is checked here, not at the first message
        self._subscribers.setdefault(channel, []).append(callback)

    def on_resync(self, callback: ResyncCallback) -> None:
        """``callback()`` runs after notifications may have been lost (the bus reconnected)."""
        self._resync.append(callback)

    def publish(self, channel: str, data: dict) -> None:
        """Send ``data`` (ids) to every instance, this one included; never waits."""
        text = encode(channel, self.instance_id, data)
        self.counters.published += 1
        self._inbox.put_nowait(Message(channel, self.instance_id, dict(data), mine=True))
        self._send(text)

    async def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="bus-dispatch")

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._inbox.put_nowait(None)
            try:
                await asyncio.wait_for(self._dispatcher, 5)  # what was published before the stop
            except (asyncio.CancelledError, TimeoutError):
                log.warning("bus: a subscriber was still busy at stop; cancelled")
            self._dispatcher = None

    async def drain(self) -> None:
        """Wait until every message queued so far went through the subscribers (tests)."""
        done = asyncio.Event()
        self._drain_waiters.append(done)
        self._inbox.put_nowait(Message("_drain", self.instance_id, {}, mine=True))
        await done.wait()

    def state(self) -> dict:
        c = self.counters
        return {"backend": self.backend, "instance": self.instance_id, "connected": self.connected,
                "leader": self.leader, "published": c.published, "received": c.received, "dropped": c.dropped,
                "reconnects": c.reconnects, "failed_callbacks": c.failed_callbacks}

    # -- inside ----------------------------------------------------------------------
    def _send(self, text: str) -> None:
        """Other instances: none here."""

    async def _dispatch(self) -> None:
        while True:
            message = await self._inbox.get()
            if message is None:
                return
            if message.channel == "_drain":
                waiters, self._drain_waiters = self._drain_waiters, []
                for waiter in waiters:
                    waiter.set()
                continue
            if message.channel == RESYNC:
                if not message.mine:
                    await self._run_resync()
                continue
            for callback in list(self._subscribers.get(message.channel, ())):
                try:
                    await callback(message)
                except Exception:  # noqa: BLE001 - one subscriber's bug must not starve the others
                    self.counters.failed_callbacks += 1
                    log.exception("bus subscriber %s failed on %s", getattr(callback, "__qualname__", callback),
                                  message.channel)

    async def _run_resync(self) -> None:
        for callback in list(self._resync):
            try:
                await callback()
            except Exception:  # noqa: BLE001
                self.counters.failed_callbacks += 1
                log.exception("bus resync callback %s failed", getattr(callback, "__qualname__", callback))



def asyncpg_dsn(database_url: str) -> tuple[str, dict]:
    """``postgresql+asyncpg://u:p@h:5432/db?ssl=disable`` (SQLAlchemy's form) as asyncpg's DSN and
    keyword arguments. ``ssl=disable`` becomes ``ssl=False``: given as a string, asyncpg (seen in 0.30)
    still looks for ~/.postgresql/ key files on every connection (file I/O on the event loop)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise BusError(f"the PostgreSQL bus needs a postgresql:// database URL, not {url.get_backend_name()}")
    kwargs = {}
    if url.query.get("ssl") == "disable" or url.query.get("sslmode") == "disable":
        url = url.difference_update_query(["ssl", "sslmode"])
        kwargs["ssl"] = False
    return url.set(drivername="postgresql").render_as_string(hide_password=False), kwargs


class PgBus(LocalBus):
    """PostgreSQL ``LISTEN``/``NOTIFY`` between the instances sharing one database."""

    backend = "postgresql"

    def __init__(self, database_url: str, instance_id: str | None = None, *, keepalive: float = KEEPALIVE,
                 backoff: tuple[float, float] = BACKOFF, connect=None) -> None:
        super().__init__(instance_id)
        self.dsn, self._connect_kwargs = asyncpg_dsn(database_url)
        self.keepalive = keepalive
        self.backoff = backoff
        self._connect = connect  # tests: a replacement for asyncpg.connect
        self._conn = None
        self._lock = asyncio.Lock()  # one operation at a time on the connection
        self._outbox: deque[str] = deque(maxlen=OUTBOX)
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._leader = False
        self._supervisor: asyncio.Task | None = None
        self._sender: asyncio.Task | None = None
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def leader(self) -> bool:
        return self._leader and self.connected

    def state(self) -> dict:
        out = super().state()
        out["backlog"] = len(self._outbox)
        if not self.connected:
            out["error"] = self.last_error
        return out

    # -- life ------------------------------------------------------------------------
    async def start(self, wait: float = CONNECT_TIMEOUT) -> None:
        """Start listening; waits up to ``wait`` seconds for the first connection (then keeps trying)."""
        await super().start()
        first = asyncio.Event()
        self._supervisor = asyncio.create_task(self._supervise(first), name="bus-connection")
        self._sender = asyncio.create_task(self._send_loop(), name="bus-send")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first.wait(), wait)

    async def close(self) -> None:
        for task in (self._supervisor, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._supervisor = self._sender = None
        await self._drop_connection()
        await super().close()

    # -- sending ---------------------------------------------------------------------
    def _send(self, text: str) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self.counters.dropped += 1
        self._outbox.append(text)
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox and self.connected:
                text = self._outbox[0]
                try:
                    async with self._lock:
                        await asyncio.wait_for(self._conn.execute("SELECT pg_notify($1, $2)", PG_CHANNEL, text),
                                               CONNECT_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - kept for after the reconnect
                    self._connection_failed(exc)
                    break
                self._outbox.popleft()

    # -- listening -------------------------------------------------------------------
    def _on_notify(self, _conn, _pid, _channel, payload: str) -> None:
        try:
            message = decode(payload)
        except (BusError, ValueError):
            log.warning("bus: dropped a malformed notification (%d bytes)", len(payload))
            return
        if message.origin == self.instance_id:
            return  # delivered locally when it was published
        self.counters.received += 1
        self._inbox.put_nowait(message)

    def _on_termination(self, _conn) -> None:
        self._lost.set()

    def _connection_failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self._lost.set()

    async def _open(self):
        connect = self._connect
        if connect is None:
            import asyncpg

            connect = asyncpg.connect
        conn = await asyncio.wait_for(connect(self.dsn, timeout=CONNECT_TIMEOUT, **self._connect_kwargs),
                                      CONNECT_TIMEOUT + 1)
        try:
            await conn.add_listener(PG_CHANNEL, self._on_notify)
            conn.add_termination_listener(self._on_termination)
        except BaseException:
            await conn.close(timeout=2)
            raise
        return conn

    async def _drop_connection(self) -> None:
        conn, self._conn, self._leader = self._conn, None, False
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(timeout=2), 3)
            if not conn.is_closed():
                conn.terminate()

    async def _try_leader(self) -> None:
        if not self._leader:
            async with self._lock:
                self._leader = bool(await asyncio.wait_for(
                    self._conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK), CONNECT_TIMEOUT))
            if self._leader:
                log.info("bus: instance %s is the leader", self.instance_id)
        else:
            async with self._lock:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), CONNECT_TIMEOUT)

    async def _supervise(self, first: asyncio.Event) -> None:
        delay, ever = self.backoff[0], False
        while True:
            try:
                self._lost.clear()
                self._conn = await self._open()
            except Exception as exc:  # noqa: BLE001 - retried with backoff
                self._connection_failed(exc)
                log.warning("bus: cannot listen on PostgreSQL (%s); retrying in %.1f s", self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            delay = self.backoff[0]
            self.last_error = ""
            if ever:
                self.counters.reconnects += 1
                log.warning("bus: listening again; notifications of the gap may be lost: resyncing")
                self._outbox.append(encode(RESYNC, self.instance_id, {}))  # the others resync too
                self._inbox.put_nowait(Message(RESYNC, "", {}))  # and so does this instance
            ever = True
            first.set()
            self._wake.set()
            try:
                while not self._lost.is_set():
                    await self._try_leader()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._lost.wait(), self.keepalive)
            except Exception as exc:  # noqa: BLE001 - the connection is gone or stuck
                self._connection_failed(exc)
            log.warning("bus: lost the PostgreSQL connection (%s)", self.last_error or "closed")
            await self._drop_connection()


def make_bus(database_url: str, instance_id: str | None = None) -> LocalBus:
    """The bus for a database: PostgreSQL's ``LISTEN``/``NOTIFY``, else this process only."""
    from sqlalchemy.engine import make_url

    if make_url(database_url).get_backend_name() == "postgresql":
        return PgBus(database_url, instance_id)
    return LocalBus(instance_id)
