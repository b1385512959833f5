"""Issue 12: keys pressed between AGI commands at the start of a speech menu.

The fake session below behaves like Asterisk's AGI: a key reaches the gateway only if a
command that reads keys (here WAIT FOR DIGIT, GET DATA) runs when it is pressed; pressed
while the session waits for the next command, it is read and freed (res_agi's idle loop).
The speech engine's ``open_stream`` is the gap: it is where the real gateway asks a worker
for a recogniser stream (or is refused by ``max_streams``) and no command runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.asr.engine import Overloaded
from gateway.ivr_flows.channel import SpeechUnavailable
from gateway.pbx.agi import AgiReply
from gateway.pbx.fastagi import AgiChannel
from gateway.pbx.speech import Listener
from gateway.pbx.vad import SpeechDetector

KEYS = "0123456789*#"
SpeechDetector()  # imports webrtcvad now, not on the event loop (it reads files)


class PbxSession:
    """An AGI session whose caller presses keys at moments the test chooses."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.dropped: list[str] = []
        self.reading = asyncio.Event()  # set while a command that reads keys runs
        self._key: asyncio.Future | None = None
        self.hung_up = False
        self.id = "agi-test"

    def press(self, key: str) -> None:
        if self._key is not None and not self._key.done():
            self._key.set_result(key)
        else:
            self.dropped.append(key)  # nobody reads the channel's keys: Asterisk frees the frame

    async def command(self, cmd: bytes, *, timeout: float | None = None) -> AgiReply:
        line = cmd.decode().strip()
        self.commands.append(line)
        if line.startswith(("WAIT FOR DIGIT", "GET DATA")):
            self._key = asyncio.get_running_loop().create_future()
            self.reading.set()
            try:
                key = await asyncio.wait_for(asyncio.shield(self._key), 0.1)
            except asyncio.TimeoutError:
                key = ""
            finally:
                self.reading.clear()
                self._key = None
            if line.startswith("GET DATA"):
                return AgiReply(code=200, result=key, data=None if key else "timeout")
            return AgiReply(code=200, result=str(ord(key)) if key else "0")
        return AgiReply(code=200, result="1")

    async def check_hangup(self) -> bool:
        return False


class Stream:
    cancelled = False

    async def cancel(self) -> None:
        self.cancelled = True


class Engine:
    """open_stream: the caller presses 1 while it runs (once the PBX reads keys, if ever)."""

    def __init__(self, session: PbxSession, *, free: bool) -> None:
        self.session, self.free, self.stream = session, free, Stream()

    def available(self, language: str) -> bool:
        return True

    async def open_stream(self, language, *, grammar=None, on_result=None):
        try:
            await asyncio.wait_for(self.session.reading.wait(), 2.0)  # the old code never reads here
        except asyncio.TimeoutError:
            pass
        self.session.press("1")
        await asyncio.sleep(0)
        if not self.free:
            raise Overloaded("speech: 3 live streams already (max_streams 3)")
        return self.stream


def channel_for(session: PbxSession, engine: Engine, tmp_path: Path) -> AgiChannel:
    listener = Listener(audiosocket=None, engine=engine, address="127.0.0.1:1", prompts_dir=tmp_path,
                        recordings_dir=tmp_path, pbx_path=str)
    return AgiChannel(session, lambda p: f"/p/{p}", "/rec", listener=listener)


def menu_listen(channel: AgiChannel):
    return channel.listen(None, language="zh", prompt_ids=["main-type_menu"], grammar=["咨询", "[unk]"],
                          guard_words=(), max_seconds=10, silence_seconds=0.8, no_input_seconds=5, end_keys=KEYS)


async def test_given_all_streams_taken_when_the_key_comes_during_the_attempt_then_the_fallback_gets_it(tmp_path):
    session = PbxSession()
    channel = channel_for(session, Engine(session, free=False), tmp_path)
    with pytest.raises(SpeechUnavailable):
        await menu_listen(channel)
    assert session.dropped == []
    assert await channel.take_keys() == "1"
    assert not any(c.startswith("EXEC") for c in session.commands)


async def test_given_a_free_stream_when_the_key_comes_while_it_opens_then_it_answers_the_menu(tmp_path):
    session = PbxSession()
    engine = Engine(session, free=True)
    heard = await menu_listen(channel_for(session, engine, tmp_path))
    assert (heard.ended_by, heard.digit) == ("dtmf", "1") and session.dropped == []
    assert engine.stream.cancelled and not any(c.startswith("EXEC") for c in session.commands)


async def test_given_a_watch_when_a_command_that_reads_no_keys_runs_then_the_watch_resumes_after_it(tmp_path):
    session = PbxSession()
    channel = channel_for(session, Engine(session, free=False), tmp_path)
    channel.watch_keys(KEYS)
    await asyncio.wait_for(session.reading.wait(), 2.0)
    await channel.remember({"GW_IVR": "started"})  # steps in between two slices
    await asyncio.wait_for(session.reading.wait(), 2.0)  # listening again
    session.press("3")
    assert await channel.take_keys() == "3"
    assert "SET VARIABLE GW_IVR started" in session.commands and session.dropped == []
    assert await channel.collect_digits("main-type_menu", max_digits=1, timeout=0.01) == ""
    assert session.commands[-1].startswith("GET DATA")  # the menu reads keys itself, no watch after
