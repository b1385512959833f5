"""AudioSocket: the pure frame parser, and the server against hostile peers (real sockets).

A fake Asterisk written here connects like ``AudioSocket()`` does (seen in the
sandbox with Asterisk 22.10): UUID frame, then 320-byte audio frames every
20 ms, one-byte DTMF frames, and at the end either ``0x00`` or just a close.
Every malformed peer must end only its own session, with the reason logged,
while a good session streams on; the event loop must not stall and nothing may
reach the loop's exception handler. Waits poll with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid

import pytest

from gateway.errors import LocalProtocolError
from gateway.pbx.audiosocket import (
    FRAME_BYTES,
    KIND_AUDIO,
    MAX_PAYLOAD,
    AudioIn,
    AudioSocketProtocolError,
    Closed,
    DtmfIn,
    Frame,
    FrameParser,
    build_audio,
    build_hangup,
    canonical_uuid,
    pcm_frames,
    uuid_from_payload,
)
from gateway.pbx.audiosocket_server import AudioSocketServer
from gateway_dev.eventually import aeventually
from tests.unit.test_fastagi_hostile import LagMeter

AUDIO = bytes(range(256)) + bytes(64)  # 320 bytes


def frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def uuid_frame(key: str) -> bytes:
    return frame(0x01, uuid.UUID(key).bytes)


def new_key() -> str:
    return str(uuid.uuid4())


# -- pure --------------------------------------------------------------------------------------
def test_given_a_byte_stream_in_odd_pieces_when_parsed_then_the_same_frames_come_out():
    key = new_key()
    data = uuid_frame(key) + frame(0x10, AUDIO) + frame(0x03, b"#") + frame(0x03, b"5") + build_hangup()
    parser = FrameParser()
    frames = []
    for i in range(0, len(data), 7):
        frames += parser.feed(data[i:i + 7])
    parser.end()
    assert [f.kind for f in frames] == [0x01, 0x10, 0x03, 0x03, 0x00]
    assert uuid_from_payload(frames[0].payload) == key and frames[1].payload == AUDIO
    assert [f.payload for f in frames[2:4]] == [b"#", b"5"]


@pytest.mark.parametrize("data,why", [
    (frame(0x07, b"x"), "unknown frame kind 0x07"),
    (frame(0x02, b""), "unknown frame kind 0x02"),
    (bytes([0x10, 0xFF, 0xFF]), "65535 bytes announced"),
    (uuid_frame(new_key()) + frame(0x10, bytes(MAX_PAYLOAD + 2)), "announced"),
    (uuid_frame(new_key()) + frame(0x10, b""), "must be even, not 0"),
    (uuid_frame(new_key()) + frame(0x10, b"abc"), "must be even"),
    (frame(0x01, b"\x00" * 4), "UUID frame of 4 bytes"),
    (frame(0x01, b"\x00" * 17), "UUID frame of 17 bytes"),
    (frame(0x10, AUDIO), "before the UUID"),
    (frame(0x03, b"1"), "before the UUID"),
    (uuid_frame(new_key()) * 2, "second UUID"),
    (uuid_frame(new_key()) + frame(0x03, b"x"), "DTMF frame with payload"),
    (uuid_frame(new_key()) + frame(0x03, b"12"), "DTMF frame of 2 bytes"),
    (uuid_frame(new_key()) + frame(0x03, b""), "DTMF frame of 0 bytes"),
])
def test_given_malformed_input_when_parsed_then_a_protocol_error_names_it(data, why):
    with pytest.raises(AudioSocketProtocolError, match=why):
        FrameParser().feed(data)


def test_given_a_bad_header_when_only_the_header_arrived_then_it_is_refused_before_its_payload():
    with pytest.raises(AudioSocketProtocolError, match="UUID frame of 200 bytes"):
        FrameParser().feed(bytes([0x01, 0x00, 200]))  # no need to wait for 200 bytes


def test_given_good_frames_then_a_bad_one_when_pulled_then_the_good_ones_come_out_first_and_it_stays_broken():
    parser = FrameParser()
    parser.push(uuid_frame(new_key()) + frame(0x10, AUDIO) + frame(0x42, b"?"))
    assert parser.next_frame().kind == 0x01 and parser.next_frame().payload == AUDIO
    with pytest.raises(AudioSocketProtocolError, match="0x42"):
        parser.next_frame()
    with pytest.raises(AudioSocketProtocolError, match="already failed"):
        parser.feed(frame(0x10, AUDIO))


def test_given_a_truncated_frame_when_the_peer_closes_then_it_is_an_error():
    parser = FrameParser()
    parser.feed(uuid_frame(new_key()) + frame(0x10, AUDIO)[:100])
    assert parser.pending == 100
    with pytest.raises(AudioSocketProtocolError, match="inside a frame"):
        parser.end()


def test_given_outgoing_audio_when_built_then_only_audio_frames_of_even_length_exist():
    assert build_audio(AUDIO) == bytes([KIND_AUDIO, 0x01, 0x40]) + AUDIO
    assert build_hangup() == b"\x00\x00\x00"
    for bad in (b"", b"abc", bytes(MAX_PAYLOAD + 2), "text"):
        with pytest.raises(LocalProtocolError):
            build_audio(bad)
    with pytest.raises(AudioSocketProtocolError):
        Frame(0x42, b"")
    with pytest.raises(AudioSocketProtocolError):
        Frame(KIND_AUDIO, "not bytes")


def test_given_pcm_of_any_length_when_cut_then_frames_are_full_and_the_tail_is_silence():
    chunks = list(pcm_frames(b"\x01" * 701))  # the odd byte is dropped, the last frame padded
    assert [len(c) for c in chunks] == [FRAME_BYTES] * 3
    assert chunks[2] == b"\x01" * 60 + bytes(260)
    assert list(pcm_frames(b"")) == []
    for size in (0, 3, MAX_PAYLOAD + 2):
        with pytest.raises(LocalProtocolError):
            list(pcm_frames(AUDIO, size))


def test_given_uuid_text_when_checked_then_only_the_dashed_form_asterisk_accepts_passes():
    key = new_key()
    assert canonical_uuid(key.upper()) == key
    assert uuid_from_payload(uuid.UUID(key).bytes) == key
    for bad in (uuid.UUID(key).hex, "{" + key + "}", "urn:uuid:" + key, "not-a-uuid", ""):
        with pytest.raises(LocalProtocolError):
            canonical_uuid(bad)
    with pytest.raises(AudioSocketProtocolError):
        uuid_from_payload(bytes(15))


def test_given_events_when_built_wrongly_then_they_refuse():
    assert DtmfIn("#").digit == "#" and Closed("error: x").reason == "error: x"
    for make in (lambda: DtmfIn("x"), lambda: DtmfIn("12"), lambda: AudioIn(b""), lambda: Closed("bye")):
        with pytest.raises(LocalProtocolError):
            make()


# -- server ------------------------------------------------------------------------------------
@pytest.fixture()
async def loop_errors():
    """Everything that reaches the event loop's exception handler; must stay empty."""
    loop = asyncio.get_running_loop()
    seen: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)


@pytest.fixture()
async def server(loop_errors):
    srv = AudioSocketServer("127.0.0.1", 0, uuid_timeout=0.5, idle_timeout=1.0)
    await srv.start()
    yield srv
    await srv.stop()
    assert srv.counters()["active"] == 0 and srv.counters()["expected"] == 0
    assert loop_errors == []


async def connect(server, local: str = "127.0.0.1"):
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(local, 0))


async def collect(call, timeout=5.0) -> list:
    out = []

    async def run():
        async for event in call.events():
            out.append(event)

    await asyncio.wait_for(run(), timeout)
    return out


async def read_to_eof(reader, timeout=3.0) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b""  # closed with the peer's bytes unread: a reset is the same hang-up


async def connected_call(server):
    key = new_key()
    call = server.expect(key)
    reader, writer = await connect(server)
    writer.write(uuid_frame(key))
    await writer.drain()
    assert await call.wait_connected(2)
    return call, reader, writer


async def test_given_a_good_session_when_asterisk_talks_then_audio_keys_and_the_hangup_arrive_in_order(server):
    call, _reader, writer = await connected_call(server)
    writer.write(frame(0x10, AUDIO) + frame(0x03, b"#") + frame(0x10, AUDIO) + frame(0x03, b"5") + build_hangup())
    await writer.drain()
    events = await collect(call)
    assert events == [AudioIn(AUDIO), DtmfIn("#"), AudioIn(AUDIO), DtmfIn("5"), Closed("hangup")]
    assert call.closed and call.frames_in == 4
    counters = server.counters()
    assert counters["sessions"] == 1 and counters["hangups"] == 1 and counters["expected"] == 0
    writer.close()


async def test_given_the_caller_hangs_up_when_asterisk_just_closes_then_the_consumer_gets_hangup(server):
    call, _reader, writer = await connected_call(server)
    writer.write(frame(0x10, AUDIO))
    await writer.drain()
    writer.close()  # what Asterisk 22.10 does when the caller hangs up: no 0x00 frame
    assert await collect(call) == [AudioIn(AUDIO), Closed("hangup")]
    assert server.counters()["expected"] == 0


async def test_given_a_prompt_when_played_then_one_frame_per_write_every_20_ms_without_drift(server):
    key = new_key()
    call = server.expect(key)
    raw = socket.socket()
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(raw, ("127.0.0.1", server.port))
    await loop.sock_sendall(raw, uuid_frame(key))
    assert await call.wait_connected(2)
    writer = call._writer
    assert writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    writes, stamps, chunks = [], [], []
    real_write = writer.write
    writer.write = lambda data: (writes.append((time.monotonic(), bytes(data))), real_write(data))[1]

    async def listen():  # the fake Asterisk timestamps what arrives
        while data := await loop.sock_recv(raw, 65536):
            stamps.append(time.monotonic())
            chunks.append(data)

    listener = asyncio.ensure_future(listen())
    started = time.monotonic()
    assert await call.play(b"\x01\x02" * (FRAME_BYTES * 25 - 10)) is True  # 1 s, the last frame padded
    took = time.monotonic() - started
    await aeventually(lambda: sum(map(len, chunks)) >= 50 * (3 + FRAME_BYTES))
    # one whole audio frame per write (the transport sends it at once: its buffer is empty)
    assert [data for _, data in writes] == [build_audio(f) for f in pcm_frames(b"\x01\x02" * (FRAME_BYTES * 25 - 10))]
    assert len(writes) == 50 and writes[-1][1].endswith(bytes(20)) and call.frames_out == 50
    gaps = sorted(b[0] - a[0] for a, b in zip(writes, writes[1:]))
    assert 0.017 < gaps[len(gaps) // 2] < 0.023, gaps
    assert writes[-1][0] - writes[0][0] == pytest.approx(0.98, abs=0.03)  # a schedule, not sleeps: no drift
    assert 0.98 < took < 1.15
    # on the wire: nothing but those frames, and (TCP_NODELAY, 20 ms apart) mostly one frame per segment
    assert b"".join(chunks) == b"".join(data for _, data in writes)
    assert sum(len(c) == 3 + FRAME_BYTES for c in chunks) >= 40, [len(c) for c in chunks]
    assert stamps[-1] - stamps[0] == pytest.approx(0.98, abs=0.06)
    listener.cancel()
    await call.close()
    raw.close()


async def test_given_a_long_prompt_when_the_caller_barges_in_then_play_stops_within_a_frame(server):
    call, reader, writer = await connected_call(server)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, stop.set)
    started = time.monotonic()
    assert await call.play(bytes(FRAME_BYTES * 500), stop=stop) is False  # 10 s prompt, interrupted
    assert time.monotonic() - started < 0.15
    assert 4 <= call.frames_out <= 7
    assert await call.play(AUDIO, stop=stop) is False  # already set: nothing sent
    assert call.frames_out <= 7
    await call.close()
    writer.close()


async def test_given_a_prompt_playing_when_the_caller_hangs_up_then_play_returns_false_at_once(server):
    call, reader, writer = await connected_call(server)
    asyncio.get_running_loop().call_later(0.1, writer.close)
    started = time.monotonic()
    assert await call.play(bytes(FRAME_BYTES * 500)) is False
    assert time.monotonic() - started < 0.2
    assert (await collect(call))[-1] == Closed("hangup")


async def test_given_the_gateway_closes_when_the_step_ends_then_asterisk_gets_0x00_and_eof_and_the_uuid_is_free(
        server):
    call, reader, writer = await connected_call(server)
    playing = asyncio.ensure_future(call.play(bytes(FRAME_BYTES * 500)))
    await aeventually(lambda: call.frames_out > 0, what="the prompt playing")
    await call.close()
    await call.close()  # idempotent
    assert await asyncio.wait_for(playing, 1) is False
    received = await read_to_eof(reader)
    assert received.endswith(build_hangup()) and len(received) % (3 + FRAME_BYTES) == 3  # whole frames, then 0x00
    assert await collect(call) == [Closed("closed")]
    assert await collect(call) == [Closed("closed")]  # a late reader still learns why
    assert server.counters()["expected"] == 0 and server.expect(call.uuid) is not call
    writer.close()


async def test_given_a_uuid_when_expected_twice_or_not_dashed_then_expect_refuses(server):
    key = new_key()
    call = server.expect(key.upper())
    assert call.uuid == key
    with pytest.raises(LocalProtocolError, match="already expected"):
        server.expect(key)
    with pytest.raises(LocalProtocolError, match="dashed"):
        server.expect(uuid.UUID(key).hex)
    await call.close()


async def test_given_asterisk_never_connects_when_waiting_then_false_and_close_ends_the_events(server):
    call = server.expect(new_key())
    started = time.monotonic()
    assert await call.wait_connected(0.1) is False
    assert time.monotonic() - started < 0.2
    assert await call.play(AUDIO) is False
    closing = asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(call.close()))
    assert await call.wait_connected(5) is False  # woken by the close, not by the timeout
    assert time.monotonic() - started < 0.5
    assert await collect(call) == [Closed("closed")]
    closing.cancel()


# -- hostile peers -------------------------------------------------------------------------------
async def trickle(writer, data: bytes, every: float = 0.15) -> None:
    """Send ``data`` a byte at a time (a slow-loris peer) until done or hung up on."""
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)  # the pacing is the behaviour under test: a slow-loris peer
    except ConnectionError:
        pass


HOSTILE = {
    # name: (what the peer sends, close after sending?, counter, logged words)
    "unknown uuid": (lambda _k: uuid_frame(new_key()) + frame(0x10, AUDIO), False, "unknown_uuid", "unknown UUID"),
    "uuid already connected": (lambda k: uuid_frame(k), False, "unknown_uuid", "UUID already connected"),
    "audio before uuid": (lambda _k: frame(0x10, AUDIO), False, "protocol_errors", "before the UUID"),
    "unknown kind": (lambda _k: frame(0x07, b"x"), False, "protocol_errors", "unknown frame kind 0x07"),
    "bad length": (lambda _k: bytes([0x10, 0xFF, 0xFF]) + b"x" * 10, False, "protocol_errors", "announced"),
    "short uuid": (lambda _k: frame(0x01, b"\x00" * 4), False, "protocol_errors", "UUID frame of 4 bytes"),
    "truncated then eof": (lambda _k: frame(0x01, uuid.uuid4().bytes)[:10], True, "protocol_errors",
                           "closed inside a frame"),
    "garbage": (lambda _k: b"\xfe\xfd\xfc" * 100, False, "protocol_errors", "unknown frame kind 0xfe"),
    "never sends a uuid": (lambda _k: b"", False, "no_uuid", "no UUID frame within"),
    "uuid trickled too slowly": (None, False, "no_uuid", "no UUID frame within"),
    "peer not allowed": (lambda _k: b"", False, "rejected_peers", "not in allowed_peers"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_given_a_hostile_peer_when_a_good_call_is_streaming_then_only_the_hostile_session_ends(
        server, caplog, name):
    caplog.set_level(logging.INFO, logger="gateway.pbx.audiosocket_server")
    make, close_after, counter, words = HOSTILE[name]
    call, good_reader, good = await connected_call(server)
    before = server.counters()[counter]

    async def stream():
        for _ in range(40):  # 0.8 s of audio while the hostile peer does its thing
            good.write(frame(0x10, AUDIO))
            await good.drain()
            await asyncio.sleep(0.02)  # pacing, not waiting: Asterisk sends a frame every 20 ms
        good.write(frame(0x03, b"#") + build_hangup())
        await good.drain()

    with LagMeter() as lag:
        streaming = asyncio.ensure_future(stream())
        events = asyncio.ensure_future(collect(call))
        reader, writer = await connect(server, local="127.0.0.2" if name == "peer not allowed" else "127.0.0.1")
        if make is None:
            asyncio.ensure_future(trickle(writer, uuid_frame(new_key())))
        elif payload := make(call.uuid):
            writer.write(payload)
            await writer.drain()
        if close_after:
            writer.write_eof()
        assert await read_to_eof(reader) == b""  # the hostile peer was hung up on, nothing sent to it
        writer.close()
        await streaming
        received = await events
    assert received == [AudioIn(AUDIO)] * 40 + [DtmfIn("#"), Closed("hangup")]
    assert server.counters()[counter] == before + 1
    assert words in caplog.text
    # a loop blocked by a session (a blocking read, a spin on a half frame) stalls for seconds;
    # the bound leaves room for a busy shared 2-CPU machine
    assert lag.ticks > 20 and lag.max_lag < 0.15, f"event loop stalled for {lag.max_lag * 1000:.1f} ms"


async def test_given_a_protocol_error_mid_call_when_it_happens_then_the_consumer_gets_the_good_frames_and_why(
        server, caplog):
    call, _reader, writer = await connected_call(server)
    writer.write(frame(0x10, AUDIO) + frame(0x03, b"7") + frame(0x10, b"odd"))
    await writer.drain()
    events = await collect(call)
    assert events == [AudioIn(AUDIO), DtmfIn("7"), Closed("error: audio frame of 3 bytes (must be even, not 0)")]
    assert "protocol error: audio frame of 3 bytes" in caplog.text
    assert server.counters()["protocol_errors"] == 1 and server.counters()["expected"] == 0
    writer.close()


async def test_given_a_truncated_frame_mid_call_when_asterisk_closes_then_the_consumer_gets_an_error(server):
    call, _reader, writer = await connected_call(server)
    writer.write(frame(0x10, AUDIO) + frame(0x10, AUDIO)[:50])
    await writer.drain()
    writer.close()
    assert await collect(call) == [AudioIn(AUDIO), Closed("error: connection closed inside a frame (50 bytes pending)")]


async def test_given_a_connected_call_when_no_frame_comes_for_idle_timeout_then_it_ends(server, caplog):
    call, reader, writer = await connected_call(server)
    started = time.monotonic()
    asyncio.ensure_future(trickle(writer, frame(0x10, AUDIO)[:5], every=0.15))  # bytes, but never a frame
    events = await collect(call, timeout=3)
    assert events == [Closed("error: no frame for 1 s")]
    assert 0.9 < time.monotonic() - started < 1.5
    assert await read_to_eof(reader) == b""
    assert server.counters()["idle_timeouts"] == 1 and "no frame for 1.0 s" in caplog.text
    writer.close()


async def test_given_a_slow_consumer_when_audio_piles_up_then_the_oldest_audio_is_dropped_but_keys_kept(loop_errors):
    srv = AudioSocketServer("127.0.0.1", 0, queue_frames=100)
    await srv.start()
    try:
        call, _reader, writer = await connected_call(srv)
        writer.write(frame(0x03, b"1") + frame(0x10, AUDIO) * 300 + frame(0x03, b"2") + frame(0x10, b"\x07\x00") * 50)
        await writer.drain()
        await aeventually(lambda: call.frames_in == 352)
        assert call.queued == 100
        assert call.dropped_frames == 252 and srv.counters()["dropped_audio"] == 252
        events = []
        async for event in call.events():
            events.append(event)
            if len(events) == 100:
                break
        assert events[0] == DtmfIn("1") and DtmfIn("2") in events
        assert events[-1] == AudioIn(b"\x07\x00")  # the newest audio is what is kept
        await call.close()
        writer.close()
    finally:
        await srv.stop()
    assert loop_errors == []


async def test_given_sessions_when_the_server_stops_then_consumers_get_closed_and_sockets_close(loop_errors):
    srv = AudioSocketServer("127.0.0.1", 0)
    await srv.start()
    call, reader, writer = await connected_call(srv)
    waiting = srv.expect(new_key())
    pre_reader, pre_writer = await connect(srv)  # connected, no UUID yet
    await aeventually(lambda: srv.counters()["active"] == 2)
    await asyncio.wait_for(srv.stop(), 3)
    assert await collect(call) == [Closed("closed")] and await collect(waiting) == [Closed("closed")]
    assert (await read_to_eof(reader)).endswith(build_hangup()) and await read_to_eof(pre_reader) == b""
    assert srv.counters()["active"] == 0 and srv.counters()["expected"] == 0
    writer.close()
    pre_writer.close()
    assert loop_errors == []


async def test_given_max_sessions_when_one_more_connects_then_it_is_refused(loop_errors, caplog):
    srv = AudioSocketServer("127.0.0.1", 0, max_sessions=1)
    await srv.start()
    try:
        call, _reader, writer = await connected_call(srv)
        reader2, writer2 = await connect(srv)
        assert await read_to_eof(reader2) == b""
        assert srv.counters()["over_capacity"] == 1 and "sessions already" in caplog.text
        assert not call.closed
        await call.close()
        writer.close()
        writer2.close()
    finally:
        await srv.stop()


def test_given_bad_settings_when_the_server_is_built_then_it_refuses():
    from gateway.errors import SettingsError

    with pytest.raises(SettingsError):
        AudioSocketServer(allowed_peers=("not-an-address",))
    with pytest.raises(SettingsError):
        AudioSocketServer(uuid_timeout=0)


async def test_given_asterisk_stops_reading_when_a_prompt_plays_then_play_gives_up_and_the_step_ends(
        server, monkeypatch, caplog):
    monkeypatch.setattr("gateway.pbx.audiosocket_server.DRAIN_TIMEOUT", 0.3)
    key = new_key()
    call = server.expect(key)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # a fake Asterisk that never reads
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(raw, ("127.0.0.1", server.port))
    await loop.sock_sendall(raw, uuid_frame(key))
    assert await call.wait_connected(2)
    call._writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
    call._writer.transport.set_write_buffer_limits(high=0)
    started = time.monotonic()
    assert await asyncio.wait_for(call.play(bytes(FRAME_BYTES * 1500)), 10) is False  # a 30 s prompt
    assert time.monotonic() - started < 5
    assert await collect(call) == [Closed("error: Asterisk stopped reading audio")]
    assert server.counters()["write_stalls"] == 1 and "stopped reading audio" in caplog.text
    raw.close()
