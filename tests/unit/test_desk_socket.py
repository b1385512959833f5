"""gateway_dev.desk_socket.DeskSocket against a real aiohttp WebSocket server that speaks
like the desk's (``hello`` first, then events as the test releases them)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway_dev.desk_socket import DeskSocket


@pytest.fixture
async def desk_server():
    """``/api/desk/ws``: checks the token, says hello, then sends what the test queues (None closes)."""
    outbox: asyncio.Queue = asyncio.Queue()
    seen: dict = {}

    async def handler(request):
        seen["auth"], seen["since"] = request.headers.get("Authorization"), request.query.get("since")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "agent_id": "8002"})
        while (event := await outbox.get()) is not None:
            await ws.send_json(event)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/api/desk/ws", handler)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), outbox, seen
    outbox.put_nowait(None)
    await server.close()


async def test_given_a_desk_socket_when_opened_then_its_hello_has_come_and_events_are_awaited_by_kind(desk_server):
    base, outbox, seen = desk_server
    async with DeskSocket(base, "tok", since=7) as desk:
        assert desk.hello == {"type": "hello", "agent_id": "8002"}
        assert seen == {"auth": "Bearer tok", "since": "7"}
        outbox.put_nowait({"type": "presence"})
        outbox.put_nowait({"type": "screen_pop", "n": 1})
        outbox.put_nowait({"type": "screen_pop", "n": 2})
        assert await desk.next("screen_pop") == {"type": "screen_pop", "n": 1}
        assert await desk.next("screen_pop") == {"type": "screen_pop", "n": 2}  # not the same one again
        assert [e["type"] for e in desk.events] == ["hello", "presence", "screen_pop", "screen_pop"]
        assert [e["n"] for e in desk.of("screen_pop")] == [1, 2]
        outbox.put_nowait({"type": "later"})
        assert await desk.next() == {"type": "later"}


async def test_given_no_event_of_the_kind_when_the_time_is_up_then_the_error_lists_what_came(desk_server):
    base, outbox, _ = desk_server
    async with DeskSocket(base, "tok") as desk:
        outbox.put_nowait({"type": "presence"})
        with pytest.raises(AssertionError, match=r"a screen_pop event on the desk: not within 0.3 s "
                                                 r"\(received: \['hello', 'presence'\]\)"):
            await desk.next("screen_pop", timeout=0.3)


async def test_given_the_server_closes_when_waiting_then_the_error_says_so_at_once(desk_server):
    base, outbox, _ = desk_server
    async with DeskSocket(base, "tok") as desk:
        outbox.put_nowait(None)
        with pytest.raises(AssertionError, match="the socket closed by the server"):
            await desk.next("screen_pop")  # the default minute is not waited out


async def test_given_a_closed_desk_socket_when_asked_for_events_then_it_refuses(desk_server):
    base, _, _ = desk_server
    desk = DeskSocket(base, "tok")
    with pytest.raises(RuntimeError, match="not open"):
        await desk.next()
