"""AudioSocket: caller audio from Asterisk, prompts back, one TCP connection per listening step.

Theory of operation
-------------------
The protocol (Asterisk's ``res_audiosocket``) is a stream of frames
``kind(1) length(2, big-endian) payload``. Asterisk connects, sends the call's
UUID (0x01, 16 bytes), then 20 ms of 8 kHz signed-linear audio (0x10, 320
bytes) while the caller talks, keys (0x03, one ASCII digit), and a hang-up
(0x00) or simply closes. The gateway answers with audio frames only: Asterisk
ends the call on any other kind it receives, and does not pace what it gets, so
every frame is written in one ``send()`` at 20 ms intervals.

The protocol part is pure (:class:`FrameParser`, :func:`build_audio`): bytes in,
typed frames out, a malformed frame raises :class:`AudioSocketProtocolError`.
:class:`AudioSocketServer` is a thin asyncio adapter: the gateway registers a
UUID with :meth:`AudioSocketServer.expect` *before* it tells Asterisk to connect;
the connection that presents that UUID is attached to the returned
:class:`AudioSocketCall`. A connection from a peer that is not allowed, one
that sends no UUID in time, an unknown UUID or a protocol error ends that one
connection with a logged reason; nothing else is affected.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from gateway.errors import GatewayError, RemoteProtocolError

log = logging.getLogger(__name__)

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
KINDS = {KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR}
FRAME_BYTES = 320  # 20 ms of 8 kHz s16le mono
FRAME_SECONDS = 0.02
MAX_PAYLOAD = 4096
DTMF_DIGITS = "0123456789*#ABCD"
QUEUE_FRAMES = 1500  # 30 s of audio waiting for a slow consumer, then the oldest is dropped


class AudioSocketProtocolError(RemoteProtocolError):
    """The peer broke the AudioSocket protocol; that session ends."""


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AudioSocketProtocolError(f"unknown frame kind 0x{self.kind:02x}")
        if len(self.payload) > MAX_PAYLOAD:
            raise AudioSocketProtocolError(f"frame of {len(self.payload)} bytes (max {MAX_PAYLOAD})")
        if self.kind == KIND_UUID and len(self.payload) != 16:
            raise AudioSocketProtocolError(f"UUID frame of {len(self.payload)} bytes (expected 16)")
        if self.kind == KIND_AUDIO and (not self.payload or len(self.payload) % 2):
            raise AudioSocketProtocolError(f"audio frame of {len(self.payload)} bytes (must be even, not 0)")
        if self.kind == KIND_DTMF and (len(self.payload) != 1 or chr(self.payload[0]) not in DTMF_DIGITS):
            raise AudioSocketProtocolError(f"DTMF frame with payload {self.payload[:8]!r}")


class FrameParser:
    """Incremental parser: ``feed(bytes) -> [Frame]``; enforces UUID-first ordering."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.uuid_seen = False

    def feed(self, data: bytes) -> list[Frame]:
        """Buffer ``data`` and return every complete frame (raises on the first bad one)."""
        self.push(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def push(self, data: bytes) -> None:
        self._buf.extend(data)

    def next_frame(self) -> Frame | None:
        """The next complete frame, None if more bytes are needed; frames before an error come out first."""
        if len(self._buf) < 3:
            return None
        kind, length = self._buf[0], int.from_bytes(self._buf[1:3], "big")
        if kind not in KINDS:
            raise AudioSocketProtocolError(f"unknown frame kind 0x{kind:02x}")
        if length > MAX_PAYLOAD:
            raise AudioSocketProtocolError(f"frame of {length} bytes announced (max {MAX_PAYLOAD})")
        if len(self._buf) < 3 + length:
            return None
        frame = Frame(kind, bytes(self._buf[3:3 + length]))
        del self._buf[:3 + length]
        if frame.kind == KIND_UUID:
            if self.uuid_seen:
                raise AudioSocketProtocolError("a second UUID frame")
            self.uuid_seen = True
        elif frame.kind in (KIND_AUDIO, KIND_DTMF) and not self.uuid_seen:
            raise AudioSocketProtocolError("audio or DTMF before the UUID frame")
        return frame

    def end(self) -> None:
        """The peer closed: a partly received frame is an error."""
        if self._buf:
            raise AudioSocketProtocolError(f"connection closed inside a frame ({len(self._buf)} bytes pending)")


def build_audio(pcm: bytes) -> bytes:
    if not pcm or len(pcm) % 2 or len(pcm) > MAX_PAYLOAD:
        raise GatewayError(f"cannot send an audio frame of {len(pcm)} bytes")
    return bytes([KIND_AUDIO]) + len(pcm).to_bytes(2, "big") + pcm


def build_hangup() -> bytes:
    return bytes([KIND_HANGUP, 0, 0])


def uuid_from_payload(payload: bytes) -> str:
    return str(uuidlib.UUID(bytes=bytes(payload)))


def pcm_frames(pcm: bytes, size: int = FRAME_BYTES) -> Iterator[bytes]:
    """``pcm`` cut into frames of ``size`` bytes; the last one padded with silence."""
    pcm = pcm[: len(pcm) - len(pcm) % 2]
    for start in range(0, len(pcm), size):
        chunk = pcm[start:start + size]
        yield chunk + bytes(size - len(chunk))


# -- events a listening step receives ---------------------------------------------------------
@dataclass(frozen=True)
class AudioIn:
    pcm: bytes


@dataclass(frozen=True)
class DtmfIn:
    digit: str


@dataclass(frozen=True)
class Closed:
    reason: str  # "hangup", "closed" (by us), or "error: ..."


class AudioSocketCall:
    """One expected connection: created by :meth:`AudioSocketServer.expect`."""

    def __init__(self, server: "AudioSocketServer", call_uuid: str) -> None:
        self.server = server
        self.uuid = call_uuid
        self._connected = asyncio.Event()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._closed = False
        self.dropped_frames = 0
        self._write_lock = asyncio.Lock()

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
            return self._writer is not None  # Asterisk connected (it may have hung up since)
        except asyncio.TimeoutError:
            return False

    def _attach(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._connected.set()

    def _push(self, event) -> None:
        if isinstance(event, AudioIn) and self._queue.qsize() >= QUEUE_FRAMES:
            try:
                self._queue.get_nowait()
                self.dropped_frames += 1
            except asyncio.QueueEmpty:
                pass
        self._queue.put_nowait(event)

    async def events(self) -> AsyncIterator[AudioIn | DtmfIn | Closed]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, Closed):
                return

    async def play(self, pcm: bytes, *, stop: asyncio.Event | None = None) -> bool:
        """Stream ``pcm`` to the caller, one 20 ms frame per write, paced on a monotonic schedule."""
        start = time.monotonic()
        for n, frame in enumerate(pcm_frames(pcm)):
            if stop is not None and stop.is_set():
                return False
            if self._closed or self._writer is None or self._writer.is_closing():
                return False
            async with self._write_lock:
                try:
                    self._writer.write(build_audio(frame))
                    await self._writer.drain()
                except (ConnectionError, OSError):
                    return False
            delay = start + (n + 1) * FRAME_SECONDS - time.monotonic()
            if delay > 0:
                if stop is not None:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        return False
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(delay)
        return True

    async def close(self) -> None:
        """End the step: close the socket (Asterisk's AudioSocket() returns; the call goes on)."""
        if self._closed:
            return
        self._closed = True
        self.server._forget(self.uuid)
        self._connected.set()
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            except (asyncio.TimeoutError, ConnectionError, OSError):
                pass
        self._push(Closed("closed"))


class AudioSocketServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 9092, *, allowed_peers=("127.0.0.1/32",),
                 uuid_timeout: float = 2.0, idle_timeout: float = 10.0, max_sessions: int = 500) -> None:
        self.host = host
        self._port = port
        self.allowed = [ipaddress.ip_network(p, strict=False) for p in allowed_peers]
        self.uuid_timeout = uuid_timeout
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._expected: dict[str, AudioSocketCall] = {}
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._counters = {"sessions": 0, "connections": 0, "protocol_errors": 0, "unknown_uuid": 0,
                          "no_uuid": 0, "rejected_peers": 0, "idle_timeouts": 0, "over_capacity": 0}

    @property
    def port(self) -> int:
        if self._server and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    def counters(self) -> dict:
        return dict(self._counters, active=len(self._tasks), expected=len(self._expected))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for call in list(self._expected.values()):
            await call.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def expect(self, call_uuid: str) -> AudioSocketCall:
        key = str(uuidlib.UUID(call_uuid))
        if key in self._expected:
            raise GatewayError(f"AudioSocket {key} is already expected")
        call = AudioSocketCall(self, key)
        self._expected[key] = call
        return call

    def _forget(self, key: str) -> None:
        self._expected.pop(key, None)

    def _peer_allowed(self, peer) -> bool:
        try:
            address = ipaddress.ip_address(peer[0])
        except (TypeError, ValueError, IndexError):
            return False
        return any(address in net for net in self.allowed)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self._counters["connections"] += 1
        try:
            await self._session(reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one session's bug must not reach the loop's handler
            log.exception("AudioSocket session failed")
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self._peer_allowed(peer):
            self._counters["rejected_peers"] += 1
            log.warning("AudioSocket: connection from %s refused (not in GATEWAY_PBX_PEERS)", peer)
            return
        if len(self._tasks) > self.max_sessions:
            self._counters["over_capacity"] += 1
            log.warning("AudioSocket: over %d sessions; connection refused", self.max_sessions)
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        parser = FrameParser()
        call: AudioSocketCall | None = None
        deadline = self.uuid_timeout
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(8192), deadline)
                except asyncio.TimeoutError:
                    if call is None:
                        self._counters["no_uuid"] += 1
                        log.warning("AudioSocket: no UUID within %.1f s; dropped", self.uuid_timeout)
                    else:
                        self._counters["idle_timeouts"] += 1
                        log.warning("AudioSocket %s: nothing for %.0f s; ended", call.uuid, self.idle_timeout)
                        call._push(Closed("error: idle"))
                    return
                if not data:
                    parser.end()
                    if call is not None:
                        call._push(Closed("hangup"))
                    elif not parser.uuid_seen:
                        self._counters["no_uuid"] += 1
                    return
                parser.push(data)
                while (frame := parser.next_frame()) is not None:
                    if frame.kind == KIND_UUID:
                        key = uuid_from_payload(frame.payload)
                        call = self._expected.get(key)
                        if call is None or call._writer is not None or call.closed:
                            self._counters["unknown_uuid"] += 1
                            log.warning("AudioSocket: unexpected UUID %s; dropped", key)
                            return
                        self._counters["sessions"] += 1
                        call._attach(writer)
                        deadline = self.idle_timeout
                    elif frame.kind == KIND_AUDIO:
                        call._push(AudioIn(frame.payload))
                    elif frame.kind == KIND_DTMF:
                        call._push(DtmfIn(chr(frame.payload[0])))
                    elif frame.kind in (KIND_HANGUP, KIND_ERROR):
                        if call is not None:
                            call._push(Closed("hangup" if frame.kind == KIND_HANGUP else "error: peer error frame"))
                        return
        except AudioSocketProtocolError as exc:
            self._counters["protocol_errors"] += 1
            log.warning("AudioSocket%s: protocol error: %s; session ended", f" {call.uuid}" if call else "", exc)
            if call is not None:
                call._push(Closed(f"error: {exc}"))
        except (ConnectionError, OSError) as exc:
            if call is not None:
                call._push(Closed("hangup"))
            log.info("AudioSocket: connection lost: %s", exc)
        finally:
            if call is not None and not call.closed:
                call._closed = True
                self._forget(call.uuid)
