"""FastAGI server against a well-behaved fake Asterisk and hostile peers, on real sockets.

Every hostile peer must end only its own session, the good calls must complete,
and the event loop must never stall (panoramisk's FastAGI freezes it for good
on a half header). Assertions are in the test bodies; waits poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import pytest

from gateway.errors import ChannelHangup, RemoteProtocolError
from gateway.ivr_flows.channel import Recording
from gateway.pbx import agi
from gateway.pbx.fastagi import AgiChannel, AgiSession, AgiTimeout, FastAgiServer
from gateway_dev.eventually import aeventually

LOCAL = ("127.0.0.1/32",)


def header(uid: str, callerid: str = "13800138000") -> bytes:
    return (
        b"agi_network: yes\nagi_network_script: ivr\nagi_request: agi://127.0.0.1:4599/ivr\n"
        b"agi_channel: Local/s@caller-wait-00000003;1\n"
        + f"agi_uniqueid: {uid}\nagi_callerid: {callerid}\n".encode()
        + b"agi_extension: 12345\nagi_accountcode: \n\n"
    )


class LagMeter:
    """Ticks every 10 ms and records how late each tick woke up."""

    def __init__(self) -> None:
        self.max_lag = 0.0
        self.ticks = 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)  # the meter's tick: how late it wakes is what it measures
            self.max_lag = max(self.max_lag, loop.time() - before - 0.01)
            self.ticks += 1

    def __enter__(self) -> LagMeter:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def fake_asterisk(port: int, uid: str, replies: list[bytes] | None = None) -> list[bytes]:
    """Send the environment, answer each command (scripted replies, then 200 result=0)
    until the server closes; return the commands received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header(uid))
    script = list(replies or [])
    commands: list[bytes] = []
    try:
        while line := await asyncio.wait_for(reader.readline(), 10):
            commands.append(line)
            writer.write(script.pop(0) if script else b"200 result=0\n")
            await writer.drain()
    finally:
        writer.close()
    return commands


async def hostile(port: int, payload: bytes, *, close: bool = True) -> bytes:
    """Send ``payload``; close at once or idle until the server closes; return what it sent back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        if close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()


Handler = Callable[[AgiSession], Awaitable[None]]


@contextlib.asynccontextmanager
async def running(handler: Handler, **kwargs):
    options = {"host": "127.0.0.1", "port": 0, "allowed_peers": LOCAL, "header_timeout": 0.3} | kwargs
    server = FastAgiServer(handler, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)


def prompts(prompt_id: str) -> str:
    return f"/srv/gw/prompts/{prompt_id}"


async def test_given_hostile_peers_when_good_calls_run_concurrently_then_only_hostile_sessions_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.pbx.fastagi")
    outcomes: dict[str, object] = {}

    async def handler(session: AgiSession) -> None:
        channel = AgiChannel(session, prompts, "/srv/gw/recordings")
        await session.command(agi.answer())
        await channel.play("welcome")
        outcomes[session.env.uniqueid] = await channel.collect_digits("menu", max_digits=1, timeout=3)
        await channel.hangup()

    with LagMeter() as lag:
        async with running(handler) as server, running(handler, allowed_peers=("10.9.9.9/32",)) as closed:
            idle_silent = asyncio.create_task(hostile(server.port, b"", close=False))  # (e)
            idle_garbage = asyncio.create_task(hostile(server.port, b"\x00garbage" * 50, close=False))  # (b)
            await aeventually(lambda: server.sessions == 2)
            results = await asyncio.gather(
                fake_asterisk(server.port, "good-1"),
                hostile(server.port, header("half")[:60]),  # (a) half an environment, then close
                hostile(server.port, b"garbage without newline"),  # (b) garbage, then close
                hostile(server.port, b"agi_request: " + b"x" * 1_000_000),  # (c) 1 MB line
                fake_asterisk(server.port, "not-agi", replies=[b"hello world\n"]),  # (d)
                hostile(closed.port, header("stranger")),  # (f) peer not allowed
            )
            assert await idle_silent == b"" and await idle_garbage == b""
            good_late = await fake_asterisk(server.port, "good-2")  # still accepting afterwards
            await aeventually(lambda: server.sessions == 0 and server.completed == 2)

    assert lag.ticks > 10
    assert lag.max_lag < 0.05, f"event loop stalled for {lag.max_lag * 1000:.1f} ms"
    good_commands = results[0]
    expected = [
        b"ANSWER\n",
        b'STREAM FILE /srv/gw/prompts/welcome ""\n',
        b"GET DATA /srv/gw/prompts/menu 3000 1\n",
        b"SET VARIABLE GW_ACTION hangup\n",
        b"HANGUP\n",
    ]
    assert good_commands == expected and good_late == expected
    assert outcomes == {"good-1": "0", "good-2": "0"}
    assert results[4] == [b"ANSWER\n"]  # the not-AGI peer's session ended after its bad reply
    assert results[5] == b"" and closed.refused == 1 and closed.accepted == 0
    assert server.accepted == 8 and server.completed == 2
    assert server.timeouts == 2  # (e) and idle (b): no environment within header_timeout
    assert server.protocol_errors == 4  # (a), (b) closed, (c), (d)
    assert "13800138000" not in caplog.text and "138****8000" in caplog.text
    assert "not in allowed_peers" in caplog.text


async def test_given_handler_raises_when_session_runs_then_error_logged_masked_and_socket_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(session: AgiSession) -> None:
        raise ValueError(f"flow broke for caller {session.env.callerid}")

    async with running(handler) as server:
        commands = await fake_asterisk(server.port, "boom")
        await aeventually(lambda: server.handler_errors == 1 and server.sessions == 0)
        assert commands == []
        assert await fake_asterisk(server.port, "after") == []
        await aeventually(lambda: server.handler_errors == 2)
    assert "ValueError: flow broke for caller 138****8000" in caplog.text
    assert "13800138000" not in caplog.text


async def test_given_channel_edge_replies_when_flow_runs_then_channel_reports_them() -> None:
    outcomes: dict[str, object] = {}

    async def handler(session: AgiSession) -> None:
        channel = AgiChannel(session, prompts, "/srv/gw/recordings/")
        await channel.play("missing")  # result=-1 without HANGUP: logged, flow goes on
        digits = await channel.collect_digits("menu", max_digits=4, timeout=2)
        rec = await channel.record("uid-1.part", max_seconds=60, silence_seconds=3, beep_prompt_id="beep")
        dtmf = await channel.record("uid-2", max_seconds=2, silence_seconds=0, beep_prompt_id=None)
        full = await channel.record("uid-3", max_seconds=2, silence_seconds=0, beep_prompt_id=None)
        await channel.transfer_to_queue("complaints")
        outcomes[session.env.uniqueid] = (digits, rec, dtmf, full, session.round_trip_times)
        with pytest.raises(ChannelHangup):
            await channel.play("after-transfer")

    replies = [
        b"200 result=-1 endpos=0\n",
        b"200 result=12 (timeout)\n",
        b"200 result=0 endpos=800\n",  # beep
        b"200 result=0 (timeout) endpos=16000\n",
        b"200 result=35 (dtmf) endpos=4000\n",
        b"200 result=0 (timeout) endpos=16000\n",
        b"200 result=1\n",
        b"200 result=1\n",
    ]
    async with running(handler) as server:
        commands = await fake_asterisk(server.port, "edge", replies)
        await aeventually(lambda: server.completed == 1)
    assert commands[3] == b'RECORD FILE /srv/gw/recordings/uid-1.part wav # 60000 s=3\n'
    assert commands[-2:] == [b"SET VARIABLE GW_ACTION queue\n", b"SET VARIABLE GW_QUEUE complaints\n"]
    digits, rec, dtmf, full, rtts = outcomes["edge"]
    assert digits == "12"
    assert rec == Recording("/srv/gw/recordings/uid-1.part", "wav", 2000, "silence")
    assert dtmf == Recording("/srv/gw/recordings/uid-2", "wav", 500, "dtmf")
    assert full == Recording("/srv/gw/recordings/uid-3", "wav", 2000, "max_length")
    assert len(rtts) == 8 and all(t >= 0 for t in rtts)


async def test_given_caller_hangs_up_when_recording_then_recording_kept_and_next_command_raises() -> None:
    outcomes: dict[str, object] = {}

    async def handler(session: AgiSession) -> None:
        channel = AgiChannel(session, prompts, "/rec")
        rec = await channel.record("u1", max_seconds=30, silence_seconds=2, beep_prompt_id=None)
        try:
            await channel.play("bye")
        except ChannelHangup as exc:
            outcomes["after"] = exc
        outcomes["rec"], outcomes["hung_up"] = rec, session.hung_up
        await channel.hangup()  # already gone: no error

    replies = [
        b"200 result=-1 (hangup) endpos=24000\nHANGUP\n",
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
    ]
    async with running(handler) as server:
        commands = await fake_asterisk(server.port, "hup", replies)
        await aeventually(lambda: server.completed == 1)
    assert outcomes["rec"] == Recording("/rec/u1", "wav", 3000, "hangup")
    assert outcomes["hung_up"] is True and isinstance(outcomes["after"], ChannelHangup)
    assert commands[1:] == [b'STREAM FILE /srv/gw/prompts/bye ""\n', b"SET VARIABLE GW_ACTION hangup\n"]


async def test_given_hangup_line_before_failed_play_when_playing_then_channel_hangup() -> None:
    async def handler(session: AgiSession) -> None:
        await AgiChannel(session, prompts, "/rec").play("welcome")

    async with running(handler) as server:
        await fake_asterisk(server.port, "hup2", [b"HANGUP\n200 result=-1 endpos=0\n"])
        await aeventually(lambda: server.hangups == 1 and server.sessions == 0)
    assert server.completed == 0


async def test_given_asterisk_never_replies_when_command_sent_then_agi_timeout() -> None:
    outcomes: dict[str, object] = {}

    async def handler(session: AgiSession) -> None:
        with pytest.raises(AgiTimeout):
            await session.command(agi.answer(), timeout=0.2)
        with pytest.raises(ChannelHangup):
            await session.command(agi.answer())
        outcomes["done"] = True

    async with running(handler) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(header("mute"))
        assert await asyncio.wait_for(reader.readline(), 5) == b"ANSWER\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # session ended, socket closed
        writer.close()
        await aeventually(lambda: server.completed == 1)
    assert outcomes == {"done": True}


async def test_given_long_running_session_when_server_stops_then_session_cancelled_after_grace() -> None:
    started = asyncio.Event()

    async def handler(session: AgiSession) -> None:
        started.set()
        await asyncio.Event().wait()

    server = FastAgiServer(handler, host="127.0.0.1", port=0, allowed_peers=LOCAL)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(header("stuck"))
    await asyncio.wait_for(started.wait(), 5)
    await server.stop(grace=0.1)
    assert server.sessions == 0
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_given_keys_during_prompts_when_played_for_type_ahead_then_the_key_is_kept() -> None:
    """Type-ahead: STREAM FILE with escape digits; a prompt that may not be cut resumes at endpos."""
    outcomes: dict[str, object] = {}

    async def handler(session: AgiSession) -> None:
        channel = AgiChannel(session, prompts, "/rec")
        outcomes["cut"] = await channel.play("greeting", keys="0123456789*#")
        outcomes["whole"] = await channel.play("notice", keys="0123456789*#", interruptible=False)
        outcomes["none"] = await channel.play("hint", keys="0123456789*#")
        outcomes["plain"] = await channel.play("beep")
        try:
            await channel.play("menu", keys="12")
        except RemoteProtocolError as exc:
            outcomes["hostile"] = exc

    replies = [
        b"200 result=52 endpos=4000\n",  # '4' cuts the greeting
        b"200 result=35 endpos=8000\n",  # '#' during the notice: kept, the notice plays on
        b"200 result=0 endpos=24000\n",  # ... from sample 8000 to its end
        b"200 result=0 endpos=20000\n",
        b"200 result=0 endpos=1600\n",
        b"200 result=65 endpos=10\n",  # 'A': not a key that was asked for
    ]
    async with running(handler) as server:
        commands = await fake_asterisk(server.port, "ahead", replies)
        await aeventually(lambda: server.completed == 1)
    assert (outcomes["cut"], outcomes["whole"], outcomes["none"], outcomes["plain"]) == ("4", "#", "", "")
    assert isinstance(outcomes["hostile"], RemoteProtocolError)
    assert commands[:4] == [b"STREAM FILE /srv/gw/prompts/greeting 0123456789*#\n",
                             b"STREAM FILE /srv/gw/prompts/notice 0123456789*#\n",
                             b'STREAM FILE /srv/gw/prompts/notice "" 8000\n',
                             b"STREAM FILE /srv/gw/prompts/hint 0123456789*#\n"]
