"""AudioSocket server: a thin asyncio adapter over the pure protocol of :mod:`gateway.pbx.audiosocket`.

The gateway registers a UUID with :meth:`AudioSocketServer.expect` *before* it
tells Asterisk to connect (``EXEC AudioSocket``; see the theory of operation in
:mod:`gateway.pbx.audiosocket`); the connection that presents that UUID is
attached to the returned :class:`AudioSocketCall`, whose consumer reads
:class:`AudioIn` / :class:`DtmfIn` / :class:`Closed` events and plays audio back.

A connection from a peer that is not allowed, one that sends no UUID in time,
an unknown UUID, a protocol error or ``idle_timeout`` without a frame either
way (Asterisk sends nothing while the caller's leg sends no media, so frames we
play count too) ends that one connection with a logged reason (the consumer gets ``Closed("error: ...")``);
nothing else is affected. Every wait has a deadline and every buffer a bound:
a consumer that falls behind loses the oldest audio (counted), never keys.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import socket
from collections.abc import AsyncIterator
from typing import Final

from gateway.errors import LocalProtocolError, SettingsError
from gateway.pbx.audiosocket import (
    FRAME_SECONDS,
    KIND_AUDIO,
    KIND_DTMF,
    KIND_HANGUP,
    KIND_UUID,
    AudioIn,
    AudioSocketProtocolError,
    CallEvent,
    Closed,
    DtmfIn,
    FrameParser,
    build_audio,
    build_hangup,
    canonical_uuid,
    pcm_frames,
    uuid_from_payload,
)
from gateway.pbx.peers import parse_networks, peer_allowed

QUEUE_FRAMES: Final = 1500  # 30 s of audio waiting for a slow consumer, then the oldest is dropped
READ_CHUNK: Final = 8192
DRAIN_TIMEOUT: Final = 2.0  # Asterisk reads all the time; a write buffer stuck this long means it stopped
RESYNC_AFTER: Final = 0.1  # play() more than 100 ms behind schedule (a stalled loop) re-anchors, no burst
CLOSE_TIMEOUT: Final = 1.0


class AudioSocketCall:
    """One expected connection: created by :meth:`AudioSocketServer.expect`.

    Events are buffered (at most ``queue_frames``; beyond that the oldest audio
    is dropped and counted in ``dropped_frames``); the final :class:`Closed`
    comes after everything buffered and is repeated to any later ``events()``.
    """

    def __init__(self, server: AudioSocketServer, call_uuid: str, *, queue_frames: int = QUEUE_FRAMES) -> None:
        self.server = server
        self.uuid = call_uuid
        self.dropped_frames = 0
        self.dropped_keys = 0
        self.frames_in = 0
        self.frames_out = 0
        self.last_frame_at = 0.0  # loop time of the last frame either way (idle_timeout counts from it)
        self._queue_frames = queue_frames
        self._events: collections.deque[AudioIn | DtmfIn] = collections.deque()
        self._more = asyncio.Event()
        self._final: Closed | None = None
        self._ended = asyncio.Event()  # set with _final: wakes play() and wait_connected()
        self._connected = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._play_lock = asyncio.Lock()

    def __repr__(self) -> str:
        state = self._final.reason if self._final else ("connected" if self._connected.is_set() else "expected")
        return f"<AudioSocketCall {self.uuid} {state}>"

    @property
    def closed(self) -> bool:
        return self._final is not None

    @property
    def queued(self) -> int:
        """Events waiting for the consumer."""
        return len(self._events)

    async def wait_connected(self, timeout: float) -> bool:
        """True once Asterisk connected with this UUID (it may have hung up since);
        False if it did not within ``timeout`` s or the call was closed first."""
        if not self._connected.is_set() and not self.closed:
            waiters = [asyncio.ensure_future(self._connected.wait()), asyncio.ensure_future(self._ended.wait())]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        return self._connected.is_set()

    async def events(self) -> AsyncIterator[CallEvent]:
        """Audio and keys as they arrive, then one :class:`Closed`; the iterator ends after it."""
        while True:
            if self._events:
                yield self._events.popleft()
            elif self._final is not None:
                yield self._final
                return
            else:
                self._more.clear()
                await self._more.wait()

    async def play(self, pcm: bytes, *, stop: asyncio.Event | None = None) -> bool:
        """Stream 8 kHz s16le ``pcm`` to the caller: 320-byte frames, one per write, paced at
        20 ms on the loop's monotonic clock. False as soon as ``stop`` is set or the call
        closes, True once everything was sent (and its last 20 ms have passed).
        Two plays at once take turns."""
        if not isinstance(pcm, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(f"play() needs bytes, not {type(pcm).__name__}")
        async with self._play_lock:
            if self._writer is None or self.closed or (stop is not None and stop.is_set()):
                return False
            loop = asyncio.get_running_loop()
            waiters = [asyncio.ensure_future(self._ended.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            try:
                start, sent = loop.time(), 0
                for chunk in pcm_frames(pcm):
                    if self.closed or (stop is not None and stop.is_set()) or not await self._send(chunk):
                        return False
                    sent += 1
                    delay = start + sent * FRAME_SECONDS - loop.time()
                    if delay < -RESYNC_AFTER:  # the loop stalled: start a new schedule rather than burst
                        self.server._count("play_resyncs")
                        start, delay = loop.time() - sent * FRAME_SECONDS, 0.0
                    if delay > 0:
                        done, _ = await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                        if done:
                            return False
                return not self.closed
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _send(self, chunk: bytes) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        try:
            writer.write(build_audio(chunk))
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await writer.drain()
        except TimeoutError:
            self.server._log.warning("AudioSocket %s: Asterisk stopped reading audio for %.0f s; ended",
                                     self.uuid, DRAIN_TIMEOUT)
            self.server._count("write_stalls")
            self._finish("error: Asterisk stopped reading audio")
            writer.transport.abort()
            return False
        except (ConnectionError, OSError):
            return False
        self.frames_out += 1
        self.last_frame_at = asyncio.get_running_loop().time()
        return True

    async def close(self) -> None:
        """End the step: send 0x00 and close (Asterisk's AudioSocket() returns 0, the call goes
        on); idempotent; the UUID is free again at once."""
        self._finish("closed")
        writer, self._writer = self._writer, None
        if writer is None or writer.is_closing():
            return
        try:
            writer.write(build_hangup())
            writer.close()
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            writer.transport.abort()

    # -- called by the server ------------------------------------------------------------------
    def _attach(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.last_frame_at = asyncio.get_running_loop().time()
        self._connected.set()

    def _deliver(self, event: AudioIn | DtmfIn) -> None:
        if self.closed:
            return
        self.frames_in += 1
        self.last_frame_at = asyncio.get_running_loop().time()
        if len(self._events) >= self._queue_frames:
            if not self._drop_oldest_audio():
                if isinstance(event, AudioIn):
                    self.dropped_frames += 1
                    self.server._count("dropped_audio")
                    return
                self.dropped_keys += 1  # only keys are queued: the consumer is gone or the peer hostile
                self.server._count("dropped_keys")
                return
        self._events.append(event)
        self._more.set()

    def _drop_oldest_audio(self) -> bool:
        for i, queued in enumerate(self._events):
            if isinstance(queued, AudioIn):
                del self._events[i]
                self.dropped_frames += 1
                self.server._count("dropped_audio")
                return True
        return False

    def _finish(self, reason: str) -> None:
        """The one way a call ends: Closed(reason) queued once, UUID unregistered."""
        if self._final is not None:
            return
        self._final = Closed(reason)
        self._ended.set()
        self._more.set()
        self.server._forget(self)


class AudioSocketServer:
    """Accept AudioSocket connections from ``allowed_peers`` and hand each to its expected call."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, *, allowed_peers=("127.0.0.1/32",),
                 uuid_timeout: float = 2.0, idle_timeout: float = 10.0, max_sessions: int = 500,
                 queue_frames: int = QUEUE_FRAMES, logger: logging.Logger | None = None) -> None:
        try:
            self._allowed = parse_networks(allowed_peers)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"bad AudioSocket allowed_peers {allowed_peers!r}: {exc}") from None
        for name, value in (("uuid_timeout", uuid_timeout), ("idle_timeout", idle_timeout),
                            ("max_sessions", max_sessions), ("queue_frames", queue_frames)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise SettingsError(f"AudioSocket {name} must be positive, not {value!r}")
        self.host = host
        self._requested_port = port
        self.uuid_timeout = uuid_timeout
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.queue_frames = int(queue_frames)
        self._log = logger or logging.getLogger(__name__)
        self._expected: dict[str, AudioSocketCall] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ids = itertools.count(1)
        self._counters = dict.fromkeys(
            ("connections", "sessions", "hangups", "protocol_errors", "unknown_uuid", "no_uuid",
             "rejected_peers", "idle_timeouts", "over_capacity", "dropped_audio", "dropped_keys",
             "write_stalls", "play_resyncs"), 0)

    @property
    def port(self) -> int:
        """The port listened on (the actual one when started with port 0)."""
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._requested_port

    def counters(self) -> dict:
        return dict(self._counters, active=len(self._tasks), expected=len(self._expected))

    async def start(self) -> None:
        if self._server is not None:
            raise LocalProtocolError("AudioSocket server already started")
        self._server = await asyncio.start_server(self._on_connect, self.host, self._requested_port)
        self._log.info("AudioSocket listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening, end every call (consumers get Closed("closed")) and every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for call in list(self._expected.values()):
            await call.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if server is not None:
            await server.wait_closed()

    def expect(self, call_uuid: str) -> AudioSocketCall:
        """Register a UUID before telling Asterisk to connect with it; raises if already registered."""
        key = canonical_uuid(call_uuid)
        if key in self._expected:
            raise LocalProtocolError(f"AudioSocket {key} is already expected")
        call = AudioSocketCall(self, key, queue_frames=self.queue_frames)
        self._expected[key] = call
        return call

    # -- internals -----------------------------------------------------------------------------
    def _forget(self, call: AudioSocketCall) -> None:
        if self._expected.get(call.uuid) is call:
            del self._expected[call.uuid]

    def _count(self, name: str) -> None:
        self._counters[name] += 1

    def _peer_allowed(self, peer: object) -> bool:
        return peer_allowed(peer, self._allowed)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sid = f"as-{next(self._ids)}"
        peer = writer.get_extra_info("peername")
        self._count("connections")
        task = asyncio.current_task()
        try:
            if not self._peer_allowed(peer):
                self._count("rejected_peers")
                self._log.warning("AudioSocket %s: refused connection from %s: peer not in allowed_peers", sid, peer)
                return
            if len(self._tasks) >= self.max_sessions:
                self._count("over_capacity")
                self._log.warning("AudioSocket %s: %d sessions already; connection from %s refused",
                                  sid, self.max_sessions, peer)
                return
            assert task is not None
            self._tasks.add(task)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self._session(sid, reader, writer)
        except asyncio.CancelledError:
            pass  # server stopping; re-raising would reach the loop's exception handler (client_connected_cb)
        except Exception:  # noqa: BLE001 - one session's bug must not reach the loop's handler
            self._log.exception("AudioSocket %s: session failed", sid)
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _session(self, sid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        parser = FrameParser()
        call: AudioSocketCall | None = None
        deadline = loop.time() + self.uuid_timeout  # for the UUID frame, then for each next frame
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(READ_CHUNK)
                except TimeoutError:
                    if call is not None and call.last_frame_at + self.idle_timeout > loop.time():
                        deadline = call.last_frame_at + self.idle_timeout  # we are playing to it
                        continue
                    if call is None:
                        self._count("no_uuid")
                        self._log.warning("AudioSocket %s: no UUID frame within %.1f s; dropped",
                                          sid, self.uuid_timeout)
                    else:
                        self._count("idle_timeouts")
                        self._log.warning("AudioSocket %s: no frame for %.1f s; ended", call.uuid, self.idle_timeout)
                        call._finish(f"error: no frame for {self.idle_timeout:g} s")
                    return
                if not data:
                    parser.end()
                    if call is None:  # Asterisk does this when the channel hung up before the step
                        self._count("no_uuid")
                        self._log.info("AudioSocket %s: closed without a UUID frame", sid)
                    elif not call.closed:
                        self._count("hangups")
                        call._finish("hangup")
                    return
                parser.push(data)
                got_frame = False
                while (frame := parser.next_frame()) is not None:
                    got_frame = True
                    if frame.kind == KIND_UUID:
                        call = self._attach(sid, frame.payload, writer)
                        if call is None:
                            return
                    elif frame.kind == KIND_AUDIO:
                        call._deliver(AudioIn(frame.payload))  # type: ignore[union-attr] - parser: UUID first
                    elif frame.kind == KIND_DTMF:
                        call._deliver(DtmfIn(chr(frame.payload[0])))  # type: ignore[union-attr]
                    elif frame.kind == KIND_HANGUP:
                        if call is None:
                            self._count("no_uuid")
                            self._log.info("AudioSocket %s: hang-up frame before any UUID frame", sid)
                        elif not call.closed:
                            self._count("hangups")
                            call._finish("hangup")
                        return
                    else:  # KIND_ERROR: Asterisk reports an error and stops
                        self._count("protocol_errors")
                        self._log.warning("AudioSocket %s: error frame %s from Asterisk; ended",
                                          call.uuid if call else sid, frame.payload.hex())
                        if call is not None:
                            call._finish(f"error: Asterisk sent error frame {frame.payload.hex() or '-'}")
                        return
                if got_frame and call is not None:
                    deadline = call.last_frame_at + self.idle_timeout
                if call is not None and call.closed:
                    return  # the consumer closed the step
        except AudioSocketProtocolError as exc:
            self._count("protocol_errors")
            self._log.warning("AudioSocket %s: protocol error: %s; session ended", call.uuid if call else sid, exc)
            if call is not None:
                call._finish(f"error: {exc}")
        except (ConnectionError, OSError) as exc:
            self._log.info("AudioSocket %s: connection lost: %s", call.uuid if call else sid, exc)
            if call is not None and not call.closed:
                self._count("hangups")
                call._finish("hangup")
        finally:
            if call is not None:
                call._finish("closed")  # no-op unless the session was cancelled (server stopping)

    def _attach(self, sid: str, payload: bytes, writer: asyncio.StreamWriter) -> AudioSocketCall | None:
        key = uuid_from_payload(payload)
        call = self._expected.get(key)
        if call is None or call._connected.is_set():
            self._count("unknown_uuid")
            why = "unknown UUID" if call is None else "UUID already connected"
            self._log.warning("AudioSocket %s: %s %s; dropped", sid, why, key)
            return None
        self._count("sessions")
        call._attach(writer)
        self._log.info("AudioSocket %s: connected for %s", sid, key)
        return call
