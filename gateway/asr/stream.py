"""One recognition stream as the gateway sees it: audio in, partial and final results out.

Theory of operation
-------------------
``feed`` only appends to a buffer and sends what the worker may take now: at most
``max_inflight`` chunks of at most ``chunk_bytes`` are waiting for the worker at any time,
so under load chunks grow (fewer, larger requests) and nothing queues without bound. A
live stream sends nothing smaller than ``min_chunk`` bytes (``wire.LIVE_CHUNK_BYTES``,
160 ms: eight AudioSocket frames make one request, and Vosk decodes one 160 ms chunk far
more cheaply than eight 20 ms ones), except when it finishes or when no more audio came
for twice that long (a flush timer), so the end of speech is never held back. The
buffer holds the audio since the last final result (a Vosk utterance ends there and its
recogniser starts the next one from scratch), which is all that is needed to rebuild the
stream on another worker: if the worker dies, the engine re-attaches the stream to a
ready worker, which gets ``Open`` again and the buffered audio, and word times are shifted
by where that audio starts. The buffer is bounded (``replay_limit`` bytes): past it the
already-decoded head is dropped and the stream cannot be rebuilt until the next final.

States: attached (``_slot`` set) -> orphaned (worker died; waiting for a new one) ->
attached...; any of them -> done (finished, cancelled or failed). ``failed`` means the
stream cannot go on: its worker died while decoding its audio (the culprit), or its audio
could not be replayed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol

from gateway.asr import wire
from gateway.asr.engine import (
    EngineUnavailable,
    Result,
    SpeechInputError,
    SpeechStream,
    SpeechTimeout,
    StreamFailed,
    Transcript,
    Word,
)

log = logging.getLogger(__name__)

BPS = wire.BYTES_PER_SECOND


class Owner(Protocol):
    def _stream_done(self, stream: "EngineStream") -> None: ...


class EngineStream(SpeechStream):
    def __init__(self, owner: Owner, sid: int, language: str, model: str, grammar: tuple | None,
                 on_result: Callable[[Result], None] | None, *, live: bool = True,
                 chunk_bytes: int = BPS // 2, max_inflight: int = 2, replay_limit: int | None = 120 * BPS,
                 min_chunk: int = 0) -> None:
        self.sid = sid
        self.stream_id = f"{language}-{sid}"
        self.language, self.model, self.grammar, self.live = language, model, grammar, live
        self.dropped: tuple[str, ...] = ()  # grammar words the model does not know
        self.recoveries = 0  # times the stream was rebuilt on another worker
        self._owner = owner
        self._on_result = on_result
        self._chunk, self._max_inflight, self._replay_limit = chunk_bytes, max_inflight, replay_limit
        self._min_chunk = min(min_chunk, chunk_bytes)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush = False  # send what is buffered even if under min_chunk
        self.requests = 0  # Audio requests sent (bench: messages per second of audio)
        self._buf = bytearray()  # audio from byte _base on (absolute offsets below)
        self._base = self._sent = self._acked = self._fed = self._time_base = 0
        self._replayable = True
        self._slot = None
        self._inflight = 0
        self._finals: list[Result] = []
        self._partial = ""
        self._busy = 0.0
        self._finishing = self._finish_sent = False
        self._opened = asyncio.Event()
        self._open_error: str | None = None
        self._done = asyncio.Event()
        self._transcript: Transcript | None = None
        self._error: Exception | None = None
        self._progress = asyncio.Event()

    # -- the SpeechStream protocol -----------------------------------------------------

    @property
    def transcript(self) -> Transcript | None:
        """The final transcript once the stream finished (None before, or when it failed)."""
        return self._transcript

    @property
    def partial(self) -> str:
        return " ".join(t for t in [*(r.text for r in self._finals), self._partial] if t)

    @property
    def failed(self) -> bool:
        return isinstance(self._error, StreamFailed)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def pending_bytes(self) -> int:
        """Audio fed but not yet answered by a worker."""
        return self._fed - self._acked

    async def feed(self, pcm: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self._finishing or self.done:
            raise SpeechInputError(f"stream {self.stream_id} is finished; no more audio")
        if not pcm:
            return
        limit = self._replay_limit or (1 << 62)
        pcm = wire.check_pcm(pcm, limit=limit)
        self._buf += pcm
        self._fed += len(pcm)
        if len(self._buf) > limit:
            self._trim(limit)
        self._pump()

    async def finish(self, timeout: float = 10.0) -> Transcript:
        if self._transcript is not None:
            return self._transcript
        if self._error is None and not self.done:
            self._finishing = True
            self._pump()
            try:
                await asyncio.wait_for(self._done.wait(), timeout)
            except asyncio.TimeoutError:
                self._end(SpeechTimeout(f"stream {self.stream_id}: no final result within {timeout:g} s"))
        if self._error is not None:
            raise self._error
        assert self._transcript is not None
        return self._transcript

    async def cancel(self) -> None:
        if not self.done:
            self._end(SpeechInputError(f"stream {self.stream_id} was cancelled"))

    # -- driven by the engine and the worker slot ---------------------------------------

    def attach(self, slot) -> None:
        """Open the stream on ``slot`` and send it the buffered audio (a replay after a death)."""
        self._slot = slot
        slot.streams.add(self)
        self._inflight = 0
        self._sent = self._acked = self._time_base = self._base
        self._finish_sent = False
        self._send(wire.Open(slot.next_seq(), self.sid, self.language, wire.SAMPLE_RATE, self.grammar, self.live))
        self._pump()

    def orphan(self) -> None:
        """The worker died; the engine will attach us to another one (or fail us)."""
        self._slot = None
        self._inflight = 0

    def fail(self, reason: str) -> None:
        if not self.done:
            log.warning("speech stream %s failed: %s", self.stream_id, reason)
            self._end(StreamFailed(f"stream {self.stream_id}: {reason}"))

    @property
    def replayable(self) -> bool:
        return self._replayable

    def on_reply(self, slot, msg, pending) -> None:
        if slot is not self._slot or self.done:
            return  # a late answer for a stream already ended or moved
        self._inflight -= 1
        if isinstance(msg, wire.Rejected):
            if pending.request is wire.Open and not self._opened.is_set():
                self._open_error = msg.reason
            self.fail(f"the speech worker refused {pending.request.__name__}: {msg.reason}")
            return
        if isinstance(msg, wire.Opened):
            self._busy += msg.busy
            if msg.dropped and not self.dropped:
                log.info("speech stream %s: the %s model does not know the grammar words %s; ignored",
                         self.stream_id, self.model, ", ".join(msg.dropped))
            self.dropped = msg.dropped
            self._opened.set()
        elif isinstance(msg, wire.Heard):
            self._heard(msg, pending.end)
        elif isinstance(msg, wire.Finished):
            self._busy += msg.busy
            if msg.text:
                self._final(Result(msg.text, True, self._shift(msg.words)))
            self._partial = ""
            audio = self._fed / BPS
            self._transcript = Transcript.build(self._finals, model=self.model, language=self.language,
                                                audio_seconds=audio, decode_seconds=self._busy)
            self._end(None)
            return
        self._progress.set()
        self._pump()

    async def wait_opened(self, timeout: float) -> None:
        await asyncio.wait_for(self._opened.wait(), timeout)
        if self._open_error is not None:
            raise SpeechInputError(f"the speech worker refused the stream: {self._open_error}")
        if self._error is not None:
            raise self._error

    async def wait_backlog(self, max_bytes: int) -> None:
        """Wait until at most ``max_bytes`` of fed audio is still unanswered (file jobs)."""
        while self.pending_bytes > max_bytes and not self.done:
            self._progress.clear()
            await self._progress.wait()
        if self._error is not None:
            raise self._error

    # -- internals ---------------------------------------------------------------------

    def _send(self, msg, end: int = 0) -> None:
        self._slot.send(msg, self, end=end)
        self._inflight += 1

    def _pump(self) -> None:
        slot = self._slot
        if slot is None or self.done or not slot.ready:
            return
        try:
            while (self._inflight < self._max_inflight and self._sent < self._fed
                   and (self._fed - self._sent >= self._min_chunk or self._finishing or self._flush)):
                start = self._sent - self._base
                chunk = bytes(self._buf[start:start + self._chunk])
                self._send(wire.Audio(slot.next_seq(), self.sid, chunk), end=self._sent + len(chunk))
                self._sent += len(chunk)
                self.requests += 1
            if self._sent == self._fed:
                self._flush = False
            self._arm_flush()
            if self._finishing and not self._finish_sent and self._sent == self._fed:
                self._send(wire.Finish(slot.next_seq(), self.sid))
                self._finish_sent = True
        except EngineUnavailable:
            pass  # the worker is going down; the engine re-attaches or fails us

    def _arm_flush(self) -> None:
        """Audio under ``min_chunk`` waiting: send it anyway if no more comes for 2 x min_chunk."""
        if not self._min_chunk or self._sent == self._fed or self.done:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            return
        if self._flush_timer is None:
            delay = 2 * self._min_chunk / BPS
            self._flush_timer = asyncio.get_running_loop().call_later(delay, self._on_flush_timer)

    def _on_flush_timer(self) -> None:
        self._flush_timer = None
        if self._sent < self._fed and not self.done:
            self._flush = True
            self._pump()

    def _heard(self, msg: "wire.Heard", end: int) -> None:
        self._busy += msg.busy
        self._acked = max(self._acked, end)
        if msg.final:
            if msg.text:
                self._final(Result(msg.text, True, self._shift(msg.words)))
            self._partial = ""
            # The utterance is over: its audio is no longer needed to rebuild the stream.
            drop = end - self._base
            if drop > 0:
                del self._buf[:drop]
                self._base = end
            self._replayable = True
        elif msg.text != self._partial:
            self._partial = msg.text
            self._emit(Result(msg.text, False))

    def _final(self, result: Result) -> None:
        self._finals.append(result)
        self._emit(result)

    def _shift(self, words) -> tuple[Word, ...]:
        offset = self._time_base / BPS
        if not offset:
            return tuple(words)
        return tuple(Word(w.word, w.start + offset, w.end + offset, w.conf) for w in words)

    def _trim(self, limit: int) -> None:
        """Keep the buffer bounded: drop decoded audio (then a replay is impossible)."""
        droppable = min(self._acked - self._base, len(self._buf) - limit)
        if droppable > 0:
            del self._buf[:droppable]
            self._base += droppable
            self._replayable = False
        if len(self._buf) > limit:
            self.fail(f"more than {limit // BPS} s of audio waiting for a speech worker")

    def _emit(self, result: Result) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(result)
        except Exception:  # noqa: BLE001 - a listener's bug must not stop recognition
            log.exception("speech stream %s: on_result failed", self.stream_id)

    def _end(self, error: Exception | None) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.streams.discard(self)
            if error is not None and slot.ready:
                try:  # free the recogniser in the worker; its answer is ignored
                    slot.send(wire.Cancel(slot.next_seq(), self.sid), self)
                except EngineUnavailable:
                    pass
        self._error = error
        self._buf = bytearray()
        self._done.set()
        self._opened.set()
        self._progress.set()
        self._owner._stream_done(self)
