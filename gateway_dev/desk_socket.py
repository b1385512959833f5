"""An agent's desk WebSocket, for end-to-end tests and benchmarks: open it, know that the
server has it (its ``hello`` arrived), then wait for the events themselves.

    async with DeskSocket(f"http://127.0.0.1:{port}", token) as desk:   # hello received
        result = await place_call(...)                                   # now it can pop
        pop = await desk.next("screen_pop", timeout=150)
    desk.events  # everything received, hello first

Once open, a task reads the socket all along (so the server's heartbeat pings are
answered while the test is busy placing a call) and keeps every event in ``events``.
"""

from __future__ import annotations

import asyncio

import aiohttp

from gateway_dev.eventually import TIMEOUT, ws_message


class DeskSocket:
    """``/api/desk/ws`` as an agent's desk opens it (``since`` = the last number it saw)."""

    def __init__(self, base_url: str, token: str, *, since: int = 0, hello_timeout: float = TIMEOUT) -> None:
        self.url = f"{base_url}/api/desk/ws?since={since}"
        self.token = token
        self.hello_timeout = hello_timeout
        self.events: list[dict] = []
        self.hello: dict | None = None
        self.closed: str | None = None  # why the reading stopped
        self._taken = 0  # events before this index were returned by next() or passed over
        self._changed = asyncio.Condition()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> DeskSocket:
        self._session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"})
        try:
            self._ws = await self._session.ws_connect(self.url)
            self.hello = await ws_message(self._ws, "hello", timeout=self.hello_timeout, seen=self.events,
                                          what="the desk's hello")
        except BaseException:
            await self.close()
            raise
        self._taken = len(self.events)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        self._ws = self._session = self._reader = None

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    async with self._changed:
                        self.events.append(msg.json())
                        self._changed.notify_all()
            why = f"closed by the server ({self._ws.close_code})"
        except asyncio.CancelledError:
            why = "closed by the test"
            raise
        except Exception as exc:  # noqa: BLE001 - whatever ended the reading is told to the waiters
            why = f"reading failed: {exc!r}"
        finally:
            self.closed = why
            async with self._changed:
                self._changed.notify_all()

    def of(self, kind: str) -> list[dict]:
        """Every event of ``kind`` received so far."""
        return [e for e in self.events if e.get("type") == kind]

    def _find(self, kind: str | None) -> int | None:
        for i in range(self._taken, len(self.events)):
            if kind is None or self.events[i].get("type") == kind:
                return i
        return None

    async def next(self, kind: str | None = None, *, timeout: float = TIMEOUT) -> dict:
        """The next event of ``kind`` (any when None) after those already returned; events of
        other kinds before it stay in ``events``. AssertionError at ``timeout`` or when the
        socket closes first."""
        if self._reader is None:
            raise RuntimeError("the desk socket is not open (use `async with DeskSocket(...)`)")
        what = f"a {kind or 'any'} event on the desk"
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: self._find(kind) is not None or self.closed)
        except TimeoutError:
            raise AssertionError(f"{what}: not within {timeout:g} s (received: "
                                 f"{[e.get('type') for e in self.events]})") from None
        found = self._find(kind)
        if found is None:
            raise AssertionError(f"{what}: the socket {self.closed} first")
        self._taken = found + 1
        return self.events[found]
