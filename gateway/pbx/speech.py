"""Listening steps of a call: AudioSocket audio in, prompts out, the recogniser in between.

Theory of operation
-------------------
A flow's speech step (a speech menu, or "describe your request") becomes, on the
FastAGI session of the call::

    SET VARIABLE GW_STEP listen-menu|listen-describe/<prompt keys>  (for observers)
    EXEC AudioSocket <uuid>,<host:port>                    (blocks until we close)

Before the EXEC the step registers the uuid with the :class:`AudioSocketServer`
and opens a recogniser stream, so nothing that Asterisk sends is lost. While the
socket is open:

* the step's prompts are streamed to the caller over the socket, paced at 20 ms,
  and stop the moment the caller starts talking or presses a key (barge-in);
* every 20 ms of caller audio goes to the end-of-speech detector, to the recogniser
  (which decodes in worker processes, never here) and, for a description, into the
  recording kept on the ticket;
* the step ends on the first of: a key in ``end_keys`` (``#`` ends a description), an
  emergency keyword in a partial result, trailing silence after speech, the maximum
  length, no speech at all within ``no_input_seconds``, or the caller hanging up.

Keys are never dropped at the start of a menu: Asterisk discards any frame, DTMF included,
that arrives while the AGI session waits for its next command, and opening the recogniser
stream (a worker round trip) happens before ``EXEC AudioSocket``. So for a menu the
channel (``AgiChannel.listen``) keeps a key watch (``WAIT FOR DIGIT`` slices) running while
the stream opens and passes ``keys_first``: just before the EXEC the listener asks it for
a key caught meanwhile and, if there is one, cancels the stream and returns that key as
the answer. Once AudioSocket runs it forwards the caller's keys as DTMF frames. When no
stream can be opened (``max_streams`` reached, no worker) the watch's keys stay with the
channel and the flow's key fallback takes them (``take_keys``).

Then the gateway closes the socket (Asterisk's EXEC returns and the flow goes on),
finishes the recogniser stream and returns a :class:`Heard`. If recognition fails
midway (a worker died) the audio is still recorded and the transcript is marked
``pending`` for the recovery job; a step that cannot start at all raises
:class:`SpeechUnavailable` before anything was played, and the flow falls back to
keys or a plain recording.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import wave
from pathlib import Path
from typing import Awaitable, Callable

from gateway.asr.engine import EngineUnavailable, SpeechEngine
from gateway.asr.guard import find_emergency
from gateway.asr.menu_match import MenuMatcher, sounds_like
from gateway.errors import ChannelHangup, GatewayError
from gateway.ivr_flows.channel import Heard, Recording, SpeechUnavailable
from gateway.pbx import agi
from gateway.pbx.audiosocket import AudioIn, Closed, DtmfIn
from gateway.pbx.audiosocket_server import AudioSocketServer
from gateway.pbx.vad import SpeechDetector

log = logging.getLogger(__name__)
BYTES_PER_SECOND = 16000  # 8 kHz, 16-bit mono
MAX_PROMPT_BYTES = 10 * 60 * BYTES_PER_SECOND


class Listener:
    """Runs listening steps for every call of the gateway (one instance, shared)."""

    def __init__(
        self,
        *,
        audiosocket: AudioSocketServer,
        engine: SpeechEngine,
        address: str,
        prompts_dir: Path,
        recordings_dir: Path,
        pbx_path: Callable[[Path], str],
        vad_threshold_dbfs: float = -40.0,
        connect_timeout: float = 4.0,
        menu_fillers: dict | None = None,
    ) -> None:
        self.menu_fillers = dict(menu_fillers or {})  # language -> words that absorb non-option speech
        self.audiosocket = audiosocket
        self.engine = engine
        self.address = address
        self.prompts_dir = prompts_dir
        self.recordings_dir = recordings_dir
        self.pbx_path = pbx_path
        self.vad_threshold_dbfs = vad_threshold_dbfs
        self.connect_timeout = connect_timeout
        self._prompts: dict[str, tuple[float, bytes]] = {}
        self.counters = {"listens": 0, "barge_ins": 0, "emergencies": 0, "unavailable": 0, "recognition_failed": 0,
                         "menu_sure": 0, "menu_unsure": 0, "menu_none": 0}

    def can_listen(self, language: str) -> bool:
        return self.engine.available(language)

    # -- prompts -------------------------------------------------------------------

    def _load_prompt(self, key: str) -> bytes:
        path = self.prompts_dir / f"{key}.wav"
        mtime = path.stat().st_mtime
        cached = self._prompts.get(key)
        if cached and cached[0] == mtime:
            return cached[1]
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (8000, 1, 2):
                raise GatewayError(f"prompt {key} is not 8 kHz 16-bit mono")
            pcm = w.readframes(min(w.getnframes(), MAX_PROMPT_BYTES // 2))
        self._prompts[key] = (mtime, pcm)
        return pcm

    async def _prompt_pcm(self, keys: list[str]) -> list[bytes]:
        out = []
        for key in keys:
            try:
                out.append(await asyncio.to_thread(self._load_prompt, key))
            except (OSError, wave.Error, EOFError, GatewayError) as exc:
                log.warning("prompt %s cannot be streamed (%s); skipped", key, exc)
        return out

    # -- one step ------------------------------------------------------------------

    async def listen(
        self,
        session,
        name: str | None,
        *,
        language: str,
        prompt_ids: list[str],
        grammar: list[str] | None,
        guard_words: tuple,
        max_seconds: float,
        silence_seconds: float,
        no_input_seconds: float,
        end_keys: str,
        keys_first: Callable[[], Awaitable[str]] | None = None,
    ) -> Heard:
        uid = getattr(getattr(session, "env", None), "uniqueid", "?")
        kind = "listen-describe" if name else "listen-menu"
        step = _Step(self, uid, guard_words=guard_words, end_keys=end_keys,
                     silence_seconds=silence_seconds, keep_audio=name is not None)
        free_text = getattr(self.engine, "free_text", None)
        if free_text is not None and free_text(language):
            # A free-text recogniser (Whisper): the grammar only biases it, towards the
            # menu's options and the emergency words (so that the guard hears them); a
            # menu's text is matched to its options tolerantly afterwards.
            if grammar is not None:
                step.menu_words = [w for w in grammar if w != "[unk]" and w not in guard_words]
                grammar = (list(guard_words) + step.menu_words) or None  # see menu_grammar: guard first
            else:
                grammar = list(guard_words) or None
        elif grammar is not None and self.menu_fillers.get(language):
            extra = [w for w in self.menu_fillers[language] if w not in grammar]
            grammar = [w for w in grammar if w != "[unk]"] + extra + ["[unk]"]
        try:
            stream = await self.engine.open_stream(language, grammar=grammar, on_result=step.on_result)
        except EngineUnavailable as exc:
            self.counters["unavailable"] += 1
            raise SpeechUnavailable(str(exc)) from exc
        step.stream = stream
        prompts = await self._prompt_pcm(prompt_ids)
        if keys_first is not None:
            # the channel listened for keys while the stream opened (no AGI command reads
            # keys meanwhile): a key pressed then is the caller's answer, no need to listen
            key = await keys_first()
            if key:
                await _quietly(stream.cancel())
                return Heard(ended_by="dtmf", digit=key)
        call_uuid = str(uuid.uuid4())
        socket = self.audiosocket.expect(call_uuid)
        exec_task: asyncio.Task | None = None
        try:
            await session.command(agi.set_variable("GW_STEP", f"{kind}/{'+'.join(prompt_ids)}"[:500]))
            budget = sum(len(p) for p in prompts) / BYTES_PER_SECOND + max_seconds + no_input_seconds + 60
            exec_task = asyncio.ensure_future(
                session.command(agi.exec_("AudioSocket", call_uuid, self.address), timeout=budget))
            connected = asyncio.ensure_future(socket.wait_connected(self.connect_timeout))
            await asyncio.wait({connected, exec_task}, return_when=asyncio.FIRST_COMPLETED)
            if not connected.done() or not connected.result():
                connected.cancel()
                await stream.cancel()
                if exec_task.done() and exec_task.exception() is not None:
                    raise exec_task.exception()
                if session.hung_up or await session.check_hangup():
                    raise ChannelHangup("caller hung up before listening started")
                self.counters["unavailable"] += 1
                raise SpeechUnavailable("Asterisk did not connect the AudioSocket")
            self.counters["listens"] += 1
            await step.run(socket, prompts, max_seconds=max_seconds, no_input_seconds=no_input_seconds)
        finally:
            await socket.close()
            if exec_task is not None:
                await _settle(exec_task, session)
        return await step.result(name, language)


async def _settle(exec_task: asyncio.Task, session) -> None:
    """Wait for EXEC AudioSocket to return (the socket is closed); a hang-up is the caller's."""
    try:
        await asyncio.wait_for(asyncio.shield(exec_task), 10.0)
    except (ChannelHangup, asyncio.TimeoutError):
        pass
    except GatewayError as exc:
        log.warning("AGI %s: EXEC AudioSocket ended with %s", getattr(session, "id", "?"), exc)


class _Step:
    """The state of one listening step (one call, one socket, one recogniser stream)."""

    def __init__(self, listener: Listener, uid: str, *, guard_words: tuple, end_keys: str,
                 silence_seconds: float, keep_audio: bool) -> None:
        self.listener = listener
        self.uid = uid
        self.guard_words = tuple(guard_words)
        self.end_keys = end_keys
        self.keep_audio = keep_audio
        self.vad = SpeechDetector(threshold_dbfs=listener.vad_threshold_dbfs,
                                  silence_ms=int(silence_seconds * 1000))
        self.stream = None
        self.audio = bytearray()
        self.barge = asyncio.Event()
        self.done = asyncio.Event()
        self.how = ""
        self.digit = ""
        self.emergency_words: list[str] = []
        self.recognised = False  # a partial with words arrived
        self.feed_error = ""
        self.max_audio = 0
        self.spoke = False
        self.menu_words: list[str] = []  # free-text menus: the option words to match the text to

    def finish(self, how: str, **kw) -> None:
        if self.done.is_set():
            return
        self.how = how
        self.spoke = self.vad.started or self.recognised  # what was heard up to the end, not after
        self.digit = kw.get("digit", "")
        self.emergency_words = list(kw.get("words", []))
        self.done.set()

    def on_result(self, result) -> None:
        text = " ".join(w for w in result.text.split() if w != "[unk]")
        if not text:
            return
        self.recognised = True
        if not self.barge.is_set():
            self.listener.counters["barge_ins"] += 1
            self.barge.set()
        hits = find_emergency(text, self.guard_words) if self.guard_words else []
        if hits and not self.done.is_set():
            self.listener.counters["emergencies"] += 1
            log.warning("call %s: emergency keyword heard while listening", self.uid)
            self.finish("emergency", words=hits)

    async def _read(self, socket) -> None:
        async for event in socket.events():
            if isinstance(event, AudioIn):
                await self._audio(event.pcm)
            elif isinstance(event, DtmfIn):
                if event.digit in self.end_keys:
                    self.finish("dtmf", digit=event.digit)
                else:
                    self.barge.set()
            elif isinstance(event, Closed):
                if event.reason.startswith("error"):
                    log.warning("call %s: AudioSocket %s", self.uid, event.reason)
                self.finish("hangup")
                return

    async def _audio(self, pcm: bytes) -> None:
        if self.done.is_set():
            return
        if len(self.audio) < self.max_audio:
            self.audio.extend(pcm)
        self.vad.feed(pcm)
        if self.vad.started and not self.barge.is_set():
            self.listener.counters["barge_ins"] += 1
            self.barge.set()
        if self.stream is not None and not self.feed_error:
            try:
                await self.stream.feed(pcm)
            except GatewayError as exc:  # the recogniser failed; keep recording
                self.feed_error = str(exc)[:200]
                log.warning("call %s: recognition failed mid-stream: %s", self.uid, self.feed_error)
        if self.vad.ended:
            self.finish("speech_end")

    async def _play(self, socket, prompts: list[bytes]) -> None:
        for pcm in prompts:
            if self.barge.is_set() or not await socket.play(pcm, stop=self.barge):
                return

    async def run(self, socket, prompts: list[bytes], *, max_seconds: float, no_input_seconds: float) -> None:
        self.max_audio = int((max_seconds + 60 + sum(len(p) for p in prompts) / BYTES_PER_SECOND)
                             * BYTES_PER_SECOND)
        reader = asyncio.ensure_future(self._read(socket))
        player = asyncio.ensure_future(self._play(socket, prompts))
        waiter = asyncio.ensure_future(self.done.wait())
        try:
            await asyncio.wait({player, waiter}, return_when=asyncio.FIRST_COMPLETED)
            listen_from = time.monotonic()
            while not self.done.is_set():
                elapsed = time.monotonic() - listen_from
                speaking = self.vad.started or self.recognised
                if not speaking and elapsed >= no_input_seconds:
                    self.finish("no_input")
                elif elapsed >= max_seconds:
                    self.finish("max_length")
                else:
                    try:
                        await asyncio.wait_for(asyncio.shield(waiter), 0.05)
                    except asyncio.TimeoutError:
                        pass
        finally:
            for task in (player, waiter, reader):
                task.cancel()
            for outcome in await asyncio.gather(player, waiter, reader, return_exceptions=True):
                if isinstance(outcome, Exception) and not isinstance(outcome, asyncio.CancelledError):
                    log.warning("call %s: listening task failed: %r", self.uid, outcome)

    async def result(self, name: str | None, language: str) -> Heard:
        transcript, status, error = None, "none", ""
        stream = self.stream
        spoke = self.spoke
        if stream is not None:
            if self.feed_error or getattr(stream, "failed", False):
                status, error = "pending", self.feed_error or "recogniser worker failed"
                self.listener.counters["recognition_failed"] += 1
                await _quietly(stream.cancel())
            elif not spoke and self.how in ("no_input", "hangup"):
                await _quietly(stream.cancel())
            else:
                try:
                    transcript = (await stream.finish()).to_json()
                    status = "done"
                except GatewayError as exc:
                    status, error = "pending", f"recognition failed: {exc}"[:200]
                    self.listener.counters["recognition_failed"] += 1
        text = ""
        if transcript is not None:
            text = " ".join(w for w in str(transcript.get("text", "")).split() if w != "[unk]")
            if self.how != "emergency" and self.guard_words:
                self.emergency_words = find_emergency(text, self.guard_words)
                if not self.emergency_words and name is None and self.menu_words:
                    self.emergency_words = sounds_like(text, self.guard_words)
                    if self.emergency_words:
                        log.warning("call %s: a menu answer sounds like an emergency word (%s)", self.uid,
                                    ", ".join(self.emergency_words))
                if self.emergency_words and name is None and self.how == "speech_end":
                    # a menu: the step ended on the pause before the final text came (a
                    # recogniser that decodes per utterance); the guard still takes the call
                    self.how = "emergency"
                    self.listener.counters["emergencies"] += 1
            if self.menu_words and text and not self.emergency_words:
                text = self._menu_choice(text)
        recording = None
        if name is not None and (spoke or self.how not in ("no_input", "hangup")):
            recording = await self._save(name)  # nothing said: no recording to keep
        return Heard(ended_by=self.how or "hangup", text=text, digit=self.digit,
                     emergency_words=tuple(self.emergency_words), transcript=transcript,
                     transcript_status=status, recording=recording, error=error)

    def _menu_choice(self, text: str) -> str:
        """The option word the caller said when the match is sure; else the text as heard
        (which is no option: the flow says so and the caller may say it again or press a key)."""
        match = MenuMatcher.of([[w] for w in self.menu_words]).match(text)
        log.info("call %s: speech menu heard %d characters; best option %s (%.2f, %s)", self.uid, len(text),
                 match.word, match.score, "sure" if match.sure else "unsure" if match.unsure else "none")
        self.listener.counters["menu_sure" if match.sure else "menu_unsure" if match.unsure else "menu_none"] += 1
        return match.word if match.sure and match.word else text

    async def _save(self, name: str) -> Recording:
        local = self.listener.recordings_dir / f"{name}.wav"
        audio = bytes(self.audio)
        await asyncio.to_thread(_write_wav, local, audio)
        return Recording(path=self.listener.pbx_path(local.with_suffix("")), fmt="wav",
                         duration_ms=len(audio) * 1000 // BYTES_PER_SECOND, ended_by=self.how or "hangup")


def _write_wav(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".wav.part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    tmp.replace(path)


async def _quietly(coro) -> None:
    try:
        await coro
    except Exception:  # noqa: BLE001 - cleanup of a stream that is already broken
        pass
