"""AudioSocket: the pure frame parser, and the server against hostile peers (real sockets).

A fake Asterisk written here connects like ``AudioSocket()`` does: UUID frame,
then 20 ms audio frames, DTMF, hang-up. Every malformed peer must end only its
own session, with the reason logged, while a good session goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from gateway.pbx.audiosocket import (
    FRAME_BYTES,
    KIND_AUDIO,
    AudioIn,
    AudioSocketProtocolError,
    AudioSocketServer,
    Closed,
    DtmfIn,
    Frame,
    FrameParser,
    build_audio,
    build_hangup,
    pcm_frames,
    uuid_from_payload,
)
from tests.unit.test_fastagi_hostile import LagMeter

AUDIO = bytes(range(256)) + bytes(64)  # 320 bytes


def frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def uuid_frame(key: str) -> bytes:
    return frame(0x01, uuid.UUID(key).bytes)


# -- pure --------------------------------------------------------------------------------------
def test_given_a_byte_stream_in_odd_pieces_when_parsed_then_the_same_frames_come_out():
    key = str(uuid.uuid4())
    data = uuid_frame(key) + frame(0x10, AUDIO) + frame(0x03, b"#") + build_hangup()
    parser = FrameParser()
    frames = []
    for i in range(0, len(data), 7):
        frames += parser.feed(data[i:i + 7])
    parser.end()
    assert [f.kind for f in frames] == [0x01, 0x10, 0x03, 0x00]
    assert uuid_from_payload(frames[0].payload) == key and frames[1].payload == AUDIO


@pytest.mark.parametrize("data,why", [
    (frame(0x07, b"x"), "unknown frame kind"),
    (bytes([0x10, 0xFF, 0xFF]), "announced"),
    (uuid_frame(str(uuid.uuid4())) + frame(0x10, b""), "must be even"),
    (uuid_frame(str(uuid.uuid4())) + frame(0x10, b"abc"), "must be even"),
    (frame(0x01, b"\x00" * 4), "expected 16"),
    (frame(0x10, AUDIO), "before the UUID"),
    (uuid_frame(str(uuid.uuid4())) * 2, "second UUID"),
    (uuid_frame(str(uuid.uuid4())) + frame(0x03, b"x"), "DTMF"),
])
def test_given_malformed_input_when_parsed_then_a_protocol_error_names_it(data, why):
    with pytest.raises(AudioSocketProtocolError, match=why):
        FrameParser().feed(data)


def test_given_a_truncated_frame_when_the_peer_closes_then_it_is_an_error():
    parser = FrameParser()
    parser.feed(uuid_frame(str(uuid.uuid4())) + frame(0x10, AUDIO)[:100])
    with pytest.raises(AudioSocketProtocolError, match="inside a frame"):
        parser.end()


def test_given_outgoing_audio_when_built_then_only_audio_frames_of_even_length_exist():
    assert build_audio(AUDIO)[:3] == bytes([KIND_AUDIO, 0x01, 0x40])
    for bad in (b"", b"abc", bytes(5000)):
        with pytest.raises(Exception):
            build_audio(bad)
    chunks = list(pcm_frames(bytes(700)))
    assert [len(c) for c in chunks] == [FRAME_BYTES] * 3
    with pytest.raises(AudioSocketProtocolError):
        Frame(0x42, b"")


# -- server ------------------------------------------------------------------------------------
@pytest.fixture()
async def server():
    srv = AudioSocketServer("127.0.0.1", 0, uuid_timeout=0.5, idle_timeout=2.0)
    await srv.start()
    yield srv
    await srv.stop()


async def connect(server):
    return await asyncio.open_connection("127.0.0.1", server.port)


async def collect(call, timeout=5.0) -> list:
    out = []

    async def run():
        async for event in call.events():
            out.append(event)

    await asyncio.wait_for(run(), timeout)
    return out


async def test_given_a_good_session_when_asterisk_talks_then_audio_keys_and_the_hangup_arrive_in_order(server):
    key = str(uuid.uuid4())
    call = server.expect(key)
    reader, writer = await connect(server)
    writer.write(uuid_frame(key) + frame(0x10, AUDIO) + frame(0x03, b"5") + build_hangup())
    await writer.drain()
    assert await call.wait_connected(2)
    events = await collect(call)
    assert events == [AudioIn(AUDIO), DtmfIn("5"), Closed("hangup")]
    writer.close()


async def test_given_a_prompt_when_played_then_one_frame_per_write_every_20_ms_and_barge_in_stops_it(server):
    key = str(uuid.uuid4())
    call = server.expect(key)
    reader, writer = await connect(server)
    writer.write(uuid_frame(key))
    await writer.drain()
    assert await call.wait_connected(2)
    stamps = []

    async def listen():
        while True:
            head = await reader.readexactly(3)
            assert head[0] == KIND_AUDIO  # never anything but audio towards Asterisk
            await reader.readexactly(int.from_bytes(head[1:], "big"))
            stamps.append(time.monotonic())

    listener = asyncio.ensure_future(listen())
    assert await call.play(bytes(FRAME_BYTES * 25)) is True  # 0.5 s
    await asyncio.sleep(0.05)
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    assert len(stamps) == 25 and 0.012 < gaps[len(gaps) // 2] < 0.03
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, stop.set)
    started = time.monotonic()
    assert await call.play(bytes(FRAME_BYTES * 500), stop=stop) is False  # 10 s prompt, interrupted
    assert time.monotonic() - started < 0.5
    listener.cancel()
    await call.close()
    writer.close()


async def test_given_the_gateway_closes_when_the_step_ends_then_the_socket_closes_and_the_uuid_is_free(server):
    key = str(uuid.uuid4())
    call = server.expect(key)
    reader, writer = await connect(server)
    writer.write(uuid_frame(key))
    await writer.drain()
    assert await call.wait_connected(2)
    await call.close()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    assert server.counters()["expected"] == 0 and server.expect(key) is not None


HOSTILE = {
    "unknown uuid": lambda: uuid_frame(str(uuid.uuid4())) + frame(0x10, AUDIO),
    "audio first": lambda: frame(0x10, AUDIO),
    "unknown kind": lambda: frame(0x07, b"x"),
    "bad length": lambda: bytes([0x10, 0xFF, 0xFF]) + b"x" * 10,
    "truncated": lambda: frame(0x01, b"\x00" * 4),
    "garbage": lambda: b"\xff\xfe\xfd" * 100,
    "silent": lambda: b"",
}


async def test_given_hostile_peers_when_a_good_call_is_streaming_then_only_they_are_dropped(server, caplog):
    caplog.set_level(logging.WARNING)
    key = str(uuid.uuid4())
    call = server.expect(key)
    good_reader, good = await connect(server)
    good.write(uuid_frame(key))
    await good.drain()
    assert await call.wait_connected(2)
    with LagMeter() as lag:
        hostile = []
        for make in HOSTILE.values():
            reader, writer = await connect(server)
            payload = make()
            if payload:
                writer.write(payload)
                await writer.drain()
            hostile.append((reader, writer))
        for _ in range(20):  # the good call streams meanwhile
            good.write(frame(0x10, AUDIO))
            await good.drain()
            await asyncio.sleep(0.02)
        for reader, writer in hostile:
            try:
                assert await asyncio.wait_for(reader.read(), 3) == b""  # each one was hung up on
            except ConnectionResetError:
                pass
            writer.close()
    good.write(build_hangup())
    await good.drain()
    events = await collect(call)
    assert events.count(AudioIn(AUDIO)) == 20 and events[-1] == Closed("hangup")
    counters = server.counters()
    assert counters["unknown_uuid"] == 1 and counters["no_uuid"] == 1 and counters["protocol_errors"] >= 4
    assert lag.max_lag < 0.25
    assert "protocol error" in caplog.text and "unexpected UUID" in caplog.text


async def test_given_a_protocol_error_mid_call_when_it_happens_then_the_consumer_is_told_why(server):
    key = str(uuid.uuid4())
    call = server.expect(key)
    _reader, writer = await connect(server)
    writer.write(uuid_frame(key) + frame(0x10, AUDIO) + frame(0x10, b"odd"))
    await writer.drain()
    events = await collect(call)
    assert events[0] == AudioIn(AUDIO) and events[-1].reason.startswith("error:")
    writer.close()


async def test_given_a_peer_not_allowed_when_it_connects_then_it_is_refused():
    srv = AudioSocketServer("127.0.0.1", 0, allowed_peers=("10.9.9.0/24",))
    await srv.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(uuid_frame(str(uuid.uuid4())))
        try:
            assert await asyncio.wait_for(reader.read(), 2) == b""
        except ConnectionResetError:
            pass  # closed with our bytes unread: a reset is the same refusal
        assert srv.counters()["rejected_peers"] == 1
        writer.close()
    finally:
        await srv.stop()


async def test_given_a_slow_consumer_when_audio_piles_up_then_memory_is_bounded(server):
    key = str(uuid.uuid4())
    call = server.expect(key)
    _reader, writer = await connect(server)
    writer.write(uuid_frame(key) + frame(0x10, AUDIO) * 2000 + build_hangup())
    await writer.drain()
    await asyncio.sleep(0.5)
    assert call._queue.qsize() <= 1501 and call.dropped_frames >= 499
    writer.close()
