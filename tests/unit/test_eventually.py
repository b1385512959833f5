"""gateway_dev.eventually: the one wait-for-an-event helper of the tests, sync and async."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway_dev.eventually import aeventually, eventually, ws_message


def counting(truthy_from: int, value="done"):
    """A check that returns falsy values until its ``truthy_from``-th call."""
    calls = itertools.count(1)
    return lambda: value if next(calls) >= truthy_from else None


def test_given_a_check_that_holds_on_the_third_call_when_waiting_then_its_value_comes_back():
    assert eventually(counting(3), interval=0.001) == "done"


def test_given_a_check_that_raises_at_first_when_waiting_then_the_errors_count_as_not_yet():
    calls = itertools.count(1)

    def check():
        if next(calls) < 3:
            raise ConnectionRefusedError("still starting")
        return {"status": "ok"}

    assert eventually(check, interval=0.001) == {"status": "ok"}


def test_given_a_check_that_never_holds_when_the_time_is_up_then_the_error_names_what_and_the_last_value():
    with pytest.raises(AssertionError) as failed:
        eventually(lambda: [], timeout=0.1, interval=0.01, what="the call's row")
    message = str(failed.value)
    assert message.startswith("the call's row: not within 0.1 s") and "last value: []" in message


def test_given_a_check_that_keeps_raising_when_the_time_is_up_then_the_error_names_the_last_exception():
    def check():
        raise KeyError("ticket_id")

    with pytest.raises(AssertionError, match=r"the ticket: .*last exception: KeyError: 'ticket_id'") as failed:
        eventually(check, timeout=0.05, interval=0.01, what="the ticket")
    assert isinstance(failed.value.__cause__, KeyError)


def test_given_no_what_when_the_time_is_up_then_the_check_is_named():
    def the_desk_hello():
        return None

    with pytest.raises(AssertionError, match="the_desk_hello: not within"):
        eventually(the_desk_hello, timeout=0.05, interval=0.01)


def test_given_an_error_not_to_retry_when_the_check_raises_it_then_it_propagates_at_once():
    calls = []

    def check():
        calls.append(1)
        raise ValueError("a bug in the test")

    with pytest.raises(ValueError, match="a bug in the test"):
        eventually(check, retry_on=(ConnectionError,))
    assert calls == [1]


def test_given_bad_arguments_then_eventually_refuses():
    with pytest.raises(ValueError, match="positive"):
        eventually(lambda: True, timeout=0)
    with pytest.raises(ValueError, match="positive"):
        eventually(lambda: True, interval=-1)


def test_given_an_async_check_when_waited_for_synchronously_then_it_is_refused():
    async def check():
        return True

    with pytest.raises(TypeError, match="aeventually"):
        eventually(check)


async def test_given_a_running_event_loop_when_the_sync_wait_is_used_then_it_refuses_instead_of_blocking():
    with pytest.raises(RuntimeError, match="aeventually"):
        eventually(lambda: True)


async def test_given_a_plain_check_when_awaited_then_other_tasks_run_meanwhile_and_its_value_comes_back():
    happened = asyncio.Event()
    asyncio.get_running_loop().call_soon(happened.set)  # runs only if the wait yields to the loop
    assert await aeventually(happened.is_set, interval=0.001) is True


async def test_given_an_async_check_when_awaited_then_it_is_awaited_each_time():
    calls = itertools.count(1)

    async def check():
        await asyncio.sleep(0)  # an await inside the check, as an HTTP request would have
        return "row" if next(calls) >= 3 else None

    assert await aeventually(check, interval=0.001) == "row"


async def test_given_an_async_check_that_never_holds_when_the_time_is_up_then_the_error_names_what():
    async def check():
        raise OSError("connection refused")

    with pytest.raises(AssertionError, match=r"the gateway: not within 0.05 s .*OSError: connection refused"):
        await aeventually(check, timeout=0.05, interval=0.01, what="the gateway")


async def test_given_a_cancelled_wait_then_the_cancellation_is_not_swallowed():
    task = asyncio.ensure_future(aeventually(lambda: None))
    await asyncio.sleep(0)  # let the wait start
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- ws_message --------------------------------------------------------------------------------
@pytest.fixture
async def ws_client():
    """A WebSocket server that sends what the test puts in its queue (None closes)."""
    outbox: asyncio.Queue = asyncio.Queue()

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        while (event := await outbox.get()) is not None:
            await ws.send_json(event)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    async with TestClient(TestServer(app)) as client:
        ws = await client.ws_connect("/ws")
        yield outbox, ws
        outbox.put_nowait(None)  # the server closes; the client answers its close
        await ws.close()


async def test_given_messages_of_other_kinds_first_when_waiting_for_a_kind_then_it_comes_and_all_are_kept(ws_client):
    outbox, ws = ws_client
    for event in ({"type": "hello"}, {"type": "presence"}, {"type": "screen_pop", "n": 1}, {"type": "later"}):
        outbox.put_nowait(event)
    seen: list = []
    assert await ws_message(ws, "hello", seen=seen) == {"type": "hello"}
    assert await ws_message(ws, "screen_pop", seen=seen) == {"type": "screen_pop", "n": 1}
    assert [e["type"] for e in seen] == ["hello", "presence", "screen_pop"]
    assert await ws_message(ws) == {"type": "later"}  # any kind


async def test_given_a_socket_that_closes_when_waiting_for_a_kind_then_the_error_says_so(ws_client):
    outbox, ws = ws_client
    outbox.put_nowait({"type": "hello"})
    outbox.put_nowait(None)
    with pytest.raises(AssertionError, match=r"a screen_pop message on the WebSocket: the socket closed first"
                                             r".*before it: \['hello'\]"):
        await ws_message(ws, "screen_pop")


async def test_given_a_quiet_socket_when_the_time_is_up_then_the_error_names_what_and_what_came(ws_client):
    outbox, ws = ws_client
    outbox.put_nowait({"type": "hello"})
    with pytest.raises(AssertionError, match=r"the pop: not within 0.2 s \(other messages: \['hello'\]\)"):
        await ws_message(ws, "screen_pop", timeout=0.2, what="the pop")
