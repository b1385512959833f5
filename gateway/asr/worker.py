"""A speech worker process: ``python -m gateway.asr.worker --model ko=NAME=DIR ...``.

Loads every model it is given once, says :class:`~gateway.asr.wire.Ready`, then serves
requests from stdin one at a time, in order: ``Started`` before it handles one, the reply
after, so the gateway always knows which request the worker is busy with. One Vosk
recogniser per open stream, kept warm for a later stream when it ends
(gateway.asr.vosk_pool). Every request is validated again here (the framing does it when
it parses) before anything reaches Vosk; a bad request gets ``Rejected`` and the worker
goes on. A broken frame (out of step) ends the worker with status 3; the gateway
restarts it. Kaldi's own log goes to stderr (the gateway logs it); stdout carries only
frames: the real stdout is kept aside and fd 1 points at stderr, so a stray print from C
code cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import select
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.asr import wire
from gateway.asr.engine import join_texts
from gateway.asr.vad import UtteranceCutter, VoiceFrames
from gateway.asr.vosk_pool import RecognizerPool
from gateway.errors import RemoteProtocolError

MAX_STREAMS_PER_WORKER = 64
RETIRE_SILENCE = b"\x00\x00" * (wire.SAMPLE_RATE * 3 // 10)  # 0.3 s, fed to a recogniser before it is pooled
# A live free-text Vosk stream's utterance ends at a pause this long (the same voice-activity
# cut as Whisper's) when Vosk's endpointer has not ended it yet: its rules wait 0.5 s of
# trailing silence only when the decoder is sure of an end, else 1 or 2 s, so some finals came
# 1.5-1.75 s after the last word. 0 = Vosk's endpointer alone (GATEWAY_SPEECH_VOSK_CUT_MS).
VOSK_CUT_MS = 600
VOSK_CUT_FLOOR_DBFS = -50.0  # as Whisper's cutter (gateway.asr.whisper_backend)


@dataclass
class PauseCut:
    """When a live free-text Vosk utterance is due its final before Vosk's endpointer says so
    (pure bookkeeping over the stream's audio; bench/speech.py's raw engine uses it too)."""

    cutter: UtteranceCutter
    final_at: int = 0  # the stream's bytes (the cutter's count) when its last final came
    fed: int = 0  # the stream's bytes given to due()

    @classmethod
    def of(cls, silence_ms: int = VOSK_CUT_MS) -> "PauseCut":
        return cls(UtteranceCutter(silence_ms=silence_ms, frames=VoiceFrames(floor_dbfs=VOSK_CUT_FLOOR_DBFS)))

    def due(self, pcm: bytes, endpoint: bool) -> bool:
        """``pcm`` was just decoded (``endpoint``: Vosk ended an utterance in it). True when a
        pause (not the cutter's max length) ended speech that no final covers yet: the caller
        then takes ``FinalResult()``; never right after an endpoint, the decoder has had audio since."""
        self.fed += len(pcm)
        ended = self.cutter.feed(pcm)
        if not endpoint and not any(u.speech_end > self.final_at and not u.forced for u in ended):
            return False
        self.final_at = self.cutter.fed
        return not endpoint


def _words(result: dict, base: float = 0.0) -> tuple:
    """Vosk's words as (word, start, end, confidence); ``base``: seconds of audio the
    recogniser decoded before this stream (a reused one counts on from its earlier streams)."""
    return tuple((w["word"], max(0.0, float(w["start"]) - base), max(0.0, float(w["end"]) - base),
                  float(w["conf"])) for w in result.get("result", ()) if w.get("word"))


@dataclass
class _VoskStream:
    """An open Vosk stream: its recogniser, the recogniser's pool key, and ``base``, the seconds
    the (reused) recogniser decoded before this stream. ``live`` streams get partial results:
    one per ``partial_every`` bytes (``since`` counts up to it), ``partial`` the last one."""

    rec: object
    key: tuple  # (language, sample rate, grammar JSON or None)
    base: float
    live: bool
    since: int = 0
    partial: str = ""
    cut: PauseCut | None = None  # live free text: a pause ends an utterance (VOSK_CUT_MS)


class Worker:
    def __init__(self, models: dict, names: dict, vosk_module, whisper: dict | None = None) -> None:
        self.models = models  # language -> vosk.Model
        self.names = names
        self.vosk = vosk_module
        self.recognizers: dict[int, _VoskStream] = {}  # sid -> its open Vosk stream
        self.pool = RecognizerPool(self._make_recognizer)  # warm recognisers of ended streams
        self.whisper: dict = dict(whisper or {})  # language -> WhisperStreams
        self.fed = {}
        self.calibrating = False
        # Other streams' requests already wait behind the one being handled (set by the
        # serving loop): then no partial is computed for it. Partials are what a worker can
        # shed without losing a word (the finals carry every word); a worker that falls behind
        # sheds them first and catches up instead of putting every stream of it further behind.
        self.behind = False
        # bench/speech.py compares with the former path (a partial on every chunk): 0
        self.partial_every = int(os.environ.get("GATEWAY_SPEECH_PARTIAL_EVERY_BYTES", wire.PARTIAL_EVERY_BYTES))
        # Free-text Vosk recognisers to warm while idle after calibration (see warm_step):
        # pool key -> how many more; ``warming`` = (key, recogniser, bytes of the clip fed)
        self.warm_todo: dict[tuple, int] = {}
        self.warming: tuple | None = None
        self.warm_limit = warm_limit_from_env()
        self.cut_ms = cut_ms_from_env()

    crash_at: float | None = None  # fault injection for tests: GATEWAY_SPEECH_CRASH_AT
    fed: dict  # sid -> bytes of audio a Vosk stream got (counted only for the fault injection)

    def _maybe_crash(self, fed_bytes: int) -> None:
        """Die (SIGKILL) while handling a stream's Audio once it holds ``crash_at`` seconds.

        Only when the environment variable GATEWAY_SPEECH_CRASH_AT is set (tests): the
        worker has said Started for this request, so the gateway blames exactly this stream,
        the moment a worker dies mid-utterance in production, made deterministic.
        """
        if self.crash_at is not None and not self.calibrating and fed_bytes / 16000 >= self.crash_at:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    def _whisper_of(self, sid: int):
        return next((streams for streams in self.whisper.values() if sid in streams), None)

    def handle(self, msg) -> object:
        started = time.thread_time()
        whisper = self._whisper_of(msg.sid)
        try:
            reply = self._handle(msg)
        except Exception as exc:  # noqa: BLE001 - e.g. Vosk failing to build a recogniser
            return wire.Rejected(msg.seq, msg.sid, f"{type(msg).__name__} failed: {exc}")
        # this request's CPU, and that of the stream's decodes answered with it (Whisper
        # decodes on a thread of its own: gateway.asr.whisper_backend.WhisperStreams)
        busy = time.thread_time() - started + (whisper.take_cpu() if whisper is not None else 0.0)
        if isinstance(reply, (wire.Opened, wire.Heard, wire.Finished)):
            reply = type(reply)(**{**reply.__dict__, "busy": busy})
        return reply

    def _handle(self, msg):
        if isinstance(msg, wire.Open):
            return self._open(msg)
        if isinstance(msg, wire.Calibrate):
            return self.calibrate(msg)
        whisper = self._whisper_of(msg.sid)
        if isinstance(msg, wire.Cancel):
            self._release(msg.sid)
            if whisper is not None:
                whisper.cancel(msg.sid)
            return wire.Closed(msg.seq, msg.sid)
        if whisper is not None:
            if isinstance(msg, wire.Audio):
                stream = whisper.streams.get(msg.sid)
                if stream is not None and stream.live:
                    self._maybe_crash(stream.cutter.fed + len(msg.pcm))
                text, final, words = whisper.audio(msg.sid, msg.pcm, partial=not self.behind)
                return wire.Heard(msg.seq, msg.sid, text, final, words)
            text, words = whisper.finish(msg.sid)
            return wire.Finished(msg.seq, msg.sid, text, words)
        stream = self.recognizers.get(msg.sid)
        if stream is None:
            return wire.Rejected(msg.seq, msg.sid, f"stream {msg.sid} is not open")
        rec = stream.rec
        if isinstance(msg, wire.Audio):
            if self.crash_at is not None:
                self.fed[msg.sid] = self.fed.get(msg.sid, 0) + len(msg.pcm)
                self._maybe_crash(self.fed[msg.sid])
            rec.gw_fed_bytes += len(msg.pcm)
            finals = self._decode(stream, msg.pcm)
            if finals:
                stream.since, stream.partial = 0, ""
                return wire.Heard(msg.seq, msg.sid, join_texts([r.get("text", "") for r in finals], stream.key[0]),
                                  True, tuple(w for r in finals for w in _words(r, stream.base)))
            # A partial costs a pass over the utterance's lattice: live streams get one per
            # PARTIAL_EVERY_BYTES of audio (the previous text in between), file jobs none.
            if not stream.live:
                return wire.Heard(msg.seq, msg.sid, "", False)
            stream.since += len(msg.pcm)
            if stream.since >= self.partial_every and not self.behind:
                stream.since = 0
                stream.partial = json.loads(rec.PartialResult()).get("partial", "")
            return wire.Heard(msg.seq, msg.sid, stream.partial, False)
        # Finish
        result = json.loads(rec.FinalResult())
        words = _words(result, stream.base)
        self._release(msg.sid)
        return wire.Finished(msg.seq, msg.sid, result.get("text", ""), words)

    @staticmethod
    def _decode(stream: "_VoskStream", pcm: bytes) -> list[dict]:
        """Vosk decodes ``pcm``; the final results that ended in it. With a pause cut the audio
        goes in pieces ending on the stream's LIVE_CHUNK_BYTES boundaries, so that where an
        utterance ends does not depend on how the gateway batched the requests (a worker
        behind gets several chunks in one): Vosk's endpointer and the cut look once a piece."""
        rec = stream.rec
        if stream.cut is None:
            return [json.loads(rec.Result())] if rec.AcceptWaveform(pcm) else []
        finals, i = [], 0
        while i < len(pcm):
            step = wire.LIVE_CHUNK_BYTES - stream.cut.fed % wire.LIVE_CHUNK_BYTES
            piece, i = pcm[i:i + step], i + step
            endpoint = rec.AcceptWaveform(piece)
            if stream.cut.due(piece, endpoint) or endpoint:  # the cut is always fed the audio
                finals.append(json.loads(rec.Result() if endpoint else rec.FinalResult()))
        return finals

    def _open(self, msg: "wire.Open"):
        if msg.sid in self.recognizers or self._whisper_of(msg.sid) is not None:
            return wire.Rejected(msg.seq, msg.sid, f"stream {msg.sid} is already open")
        open_streams = len(self.recognizers) + sum(len(w.streams) for w in self.whisper.values())
        if open_streams >= MAX_STREAMS_PER_WORKER:
            return wire.Rejected(msg.seq, msg.sid, f"more than {MAX_STREAMS_PER_WORKER} streams on one worker")
        wire.check_rate(msg.sample_rate)  # already checked when parsed; never let 0 or < 0 through
        if msg.language in self.whisper:
            # Whisper has no grammar: menus are matched on its free text (gateway.asr.menu_match)
            self.whisper[msg.language].open(msg.sid, live=msg.live, words=msg.grammar)
            return wire.Opened(msg.seq, msg.sid, ())
        model = self.models.get(msg.language)
        if model is None:
            return wire.Rejected(msg.seq, msg.sid, f"no model for language {msg.language!r}")
        dropped: tuple = ()
        grammar = None
        if msg.grammar is not None:
            kept = [w for w in dict.fromkeys(msg.grammar) if model.vosk_model_find_word(w) >= 0]
            dropped = tuple(w for w in dict.fromkeys(msg.grammar) if w not in kept)
            if not kept:
                return wire.Rejected(msg.seq, msg.sid, "none of the grammar words is in the model's vocabulary: "
                                     + ", ".join(dropped))
            grammar = json.dumps(kept, ensure_ascii=False)
        key = (msg.language, msg.sample_rate, grammar)
        rec = self.pool.take(key)
        cut = PauseCut.of(self.cut_ms) if msg.live and grammar is None and self.cut_ms > 0 else None
        self.recognizers[msg.sid] = _VoskStream(rec, key, rec.gw_fed_bytes / wire.BYTES_PER_SECOND, msg.live, cut=cut)
        return wire.Opened(msg.seq, msg.sid, dropped)

    def _make_recognizer(self, key):
        language, rate, grammar = key
        model = self.models[language]
        args = (model, float(rate)) if grammar is None else (model, float(rate), grammar)
        rec = self.vosk.KaldiRecognizer(*args)
        rec.SetWords(True)
        rec.gw_fed_bytes = 0  # audio it has decoded in its life: Vosk's word times count on across streams
        return rec

    def _release(self, sid: int) -> None:
        """A Vosk stream ended or was cancelled: its recogniser is made clean and goes back
        to the pool (dropped if that fails).

        Clean means: a little silence, then ``FinalResult()``. Vosk rebuilds its feature
        pipeline and decoder at the first audio after a final result and keeps only the
        composed graph, so nothing of this caller's audio reaches the next one; the silence
        makes sure a final result ends the recogniser's life so far whatever state the stream
        left it in. Measured with the Korean model, without it: ``Reset()`` keeps the pipeline
        (one second of silence after it came out as 다), a second ``FinalResult()`` or a final
        right after an endpoint spoils the next stream (민원 came out as 이). Vosk's word
        times count on over a recogniser's life: ``gw_fed_bytes`` keeps what it decoded, for
        the next stream's ``base``.
        """
        stream = self.recognizers.pop(sid, None)
        if stream is None:
            return
        if self._retire(stream.rec):
            self.pool.give(stream.key, stream.rec)

    @staticmethod
    def _retire(rec) -> bool:
        """Make a recogniser clean for the next stream (see _release); False if it cannot be."""
        try:
            rec.AcceptWaveform(RETIRE_SILENCE)
            rec.FinalResult()
        except Exception:  # noqa: BLE001 - a recogniser that cannot finish is not kept
            return False
        rec.gw_fed_bytes += len(RETIRE_SILENCE)
        return True

    def calibrate(self, msg: "wire.Calibrate"):
        """Decode the built-in clip of ``msg.language`` exactly as a live stream (free text,
        LIVE_CHUNK_BYTES chunks, partial results as for a caller): its CPU and wall time."""
        pcm = calibration_clip(msg.language)
        sid = wire.MAX_ID  # never a gateway stream id (those count up from 1)
        self.calibrating = True
        for streams in self.whisper.values():  # a live caller's partials, though fed at full speed
            streams.inline = True
        try:
            # A warm-up pass over the whole clip first: a freshly loaded model's first decode
            # pays for page faults and lazy set-up, and a new Vosk recogniser for composing its
            # graph (gateway.asr.vosk_pool), which no later stream on a warm recogniser pays.
            self._decode_clip(msg, sid, pcm)
            cpu, wall = time.process_time(), time.monotonic()
            texts = self._decode_clip(msg, sid, pcm)
            if isinstance(texts, wire.Rejected):
                return texts
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            self.plan_warming(msg.language, cpu / max(len(pcm) / wire.BYTES_PER_SECOND, 1e-6))
        finally:
            self.calibrating = False
            for streams in self.whisper.values():
                streams.inline = False
            self._release(sid)
            whisper = self._whisper_of(sid)
            if whisper is not None:
                whisper.cancel(sid)
        return wire.Calibrated(msg.seq, msg.sid, len(pcm) / wire.BYTES_PER_SECOND, cpu, wall, " ".join(texts))

    # -- warming recognisers while idle -----------------------------------------------------

    def plan_warming(self, language: str, rtf: float) -> None:
        """After calibrating a Vosk language: warm as many free-text recognisers as one core
        carries live streams (1 / RTF, at most the pool's per-key bound), so that the first
        callers after a start do not meet a new recogniser's stall (gateway.asr.vosk_pool:
        0.7-0.9 s once, and 2-3x the CPU over its first seconds)."""
        if language not in self.models or rtf <= 0:
            return
        want = min(self.pool.per_key, math.ceil(1.0 / rtf))
        if self.warm_limit is not None:
            want = min(want, self.warm_limit)
        key = (language, wire.SAMPLE_RATE, None)
        have = len(self.pool.idle.get(key, ())) + sum(1 for st in self.recognizers.values() if st.key == key)
        if want > have:
            self.warm_todo[key] = want - have

    def warm_todo_left(self) -> bool:
        return self.warming is not None or bool(self.warm_todo)

    def warm_step(self) -> bool:
        """One step of warming (the serving loop calls it while no request waits): a new
        recogniser decodes the next 160 ms of the calibration clip; after the whole clip it
        is made clean and goes to the pool. False when there is nothing left to warm."""
        if self.warming is None:
            if not self.warm_todo:
                return False
            key = next(iter(self.warm_todo))
            self.warm_todo[key] -= 1
            if self.warm_todo[key] <= 0:
                del self.warm_todo[key]
            self.warming = (key, self._make_recognizer(key), 0)
        key, rec, done = self.warming
        clip = calibration_clip(key[0])
        try:
            rec.AcceptWaveform(clip[done:done + wire.LIVE_CHUNK_BYTES])
        except Exception:  # noqa: BLE001 - a recogniser that fails while warming is dropped
            self.warming = None
            return True
        rec.gw_fed_bytes += len(clip[done:done + wire.LIVE_CHUNK_BYTES])
        done += wire.LIVE_CHUNK_BYTES
        if done < len(clip):
            self.warming = (key, rec, done)
            return True
        self.warming = None
        if self._retire(rec):
            self.pool.give(key, rec)
        return True

    def _decode_clip(self, msg, sid: int, pcm: bytes):
        opened = self._open(wire.Open(msg.seq, sid, msg.language, wire.SAMPLE_RATE, msg.grammar, True))
        if isinstance(opened, wire.Rejected):
            return opened
        texts = []
        for i in range(0, len(pcm), wire.LIVE_CHUNK_BYTES):
            heard = self._handle(wire.Audio(msg.seq, sid, pcm[i:i + wire.LIVE_CHUNK_BYTES]))
            if heard.final and heard.text:
                texts.append(heard.text)
        finished = self._handle(wire.Finish(msg.seq, sid))
        if finished.text:
            texts.append(finished.text)
        return texts


CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"


def warm_limit_from_env() -> int | None:
    """GATEWAY_SPEECH_WARM: at most that many recognisers warmed per language and worker
    (0: none, as the test harness sets, since warming costs each worker ~4 CPU s per
    recogniser at start); unset: as calibration says (Worker.plan_warming)."""
    raw = os.environ.get("GATEWAY_SPEECH_WARM", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        print(f"speech worker: GATEWAY_SPEECH_WARM={raw[:20]!r} is not a number; warming as calibrated",
              file=sys.stderr)
        return None
    return max(0, value)


def ms_from_env(name: str, default: int) -> int:
    """A whole number of milliseconds 0..10000 from the environment variable ``name``; unset:
    ``default``; anything else is said on stderr (the gateway logs it) and ``default`` used."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 10_000:
        print(f"speech worker: {name}={raw[:20]!r} is not 0..10000 ms; using {default}", file=sys.stderr)
        return default
    return int(raw)


def cut_ms_from_env() -> int:
    """GATEWAY_SPEECH_VOSK_CUT_MS: the pause that ends a live free-text Vosk utterance (PauseCut);
    0 = Vosk's endpointer alone; unset or not a whole number of ms in 0..10000: VOSK_CUT_MS."""
    return ms_from_env("GATEWAY_SPEECH_VOSK_CUT_MS", VOSK_CUT_MS)


@functools.lru_cache(maxsize=8)
def calibration_clip(language: str) -> bytes:
    """The built-in calibration clip of ``language`` (8 kHz mono s16le; Korean speech for a
    language without its own clip: what is measured is the decoder's cost per second)."""
    import wave

    path = CALIBRATION_DIR / f"{language}.wav"
    if not path.exists():
        path = CALIBRATION_DIR / "ko.wav"
    with wave.open(str(path), "rb") as handle:
        if (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) != (wire.SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path} is not 8 kHz mono 16-bit")
        return handle.readframes(handle.getnframes())


def _parse_args(argv: list[str]) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str, dict | None]]]:
    """``--model LANG=NAME=DIR`` (Vosk) and ``--whisper LANG=NAME=DIR`` with an optional
    ``--whisper-sha LANG=JSON`` ({file: sha256}) checked before the model is loaded."""
    parser = argparse.ArgumentParser(prog="gateway.asr.worker")
    parser.add_argument("--model", action="append", default=[], metavar="LANG=NAME=DIR")
    parser.add_argument("--whisper", action="append", default=[], metavar="LANG=NAME=DIR")
    parser.add_argument("--whisper-sha", action="append", default=[], metavar="LANG=JSON")
    args = parser.parse_args(argv)

    def triples(items: list[str], flag: str) -> list[tuple[str, str, str]]:
        out = []
        for item in items:
            lang, sep, rest = item.partition("=")
            name, sep2, path = rest.partition("=")
            if not sep or not sep2:
                parser.error(f"--{flag} must be LANG=NAME=DIR, got {item!r}")
            out.append((wire.check_language(lang), name, path))
        return out

    shas: dict[str, dict] = {}
    for item in args.whisper_sha:
        lang, _, raw = item.partition("=")
        try:
            table = json.loads(raw)
        except ValueError:
            parser.error(f"--whisper-sha must be LANG=JSON, got {item!r}")
        if not isinstance(table, dict):
            parser.error("--whisper-sha must map file names to sha256")
        shas[wire.check_language(lang)] = table
    whisper = [(lang, name, path, shas.get(lang)) for lang, name, path in triples(args.whisper, "whisper")]
    return triples(args.model, "model"), whisper


def load_whisper(specs: list, problems: dict, names: dict) -> dict:
    """Check (sha256) and load every Whisper model; a refused or broken one goes to ``problems``."""
    out = {}
    for lang, name, path, expected in specs:
        try:
            from gateway.asr.whisper_backend import EARLY_MS, WhisperDecoder, WhisperStreams
            from gateway.asr.whisper_model import verify

            if expected:
                verify(Path(path), expected)  # before anything reads the weights
            # decodes on a thread of their own: no stream waits for another's (WhisperStreams);
            # a live utterance's final decoded after EARLY_MS of quiet (0: at the cut only)
            early_ms = ms_from_env("GATEWAY_SPEECH_WHISPER_EARLY_MS", EARLY_MS)
            out[lang] = WhisperStreams(WhisperDecoder(Path(path), lang), background=True, early_ms=early_ms or None)
            names[lang] = name
        except Exception as exc:  # noqa: BLE001 - ModelRefused, ImportError, CTranslate2's RuntimeError
            problems[lang] = f"{name} at {path} failed to load: {exc}"
    return out


def main(argv: list[str] | None = None) -> int:
    import signal

    # Ctrl-C in a terminal reaches the whole process group: the gateway stops its workers
    # itself (stdin closes), so a worker ignores SIGINT instead of dying with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    specs, whisper_specs = _parse_args(sys.argv[1:] if argv is None else argv)
    out_fd = os.dup(1)  # the protocol channel; fd 1 now goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    in_fd = sys.stdin.fileno()

    def send(msg) -> None:
        data = wire.encode(msg)
        while data:
            written = os.write(out_fd, data)
            data = data[written:]

    models, names, problems = {}, {}, {}
    vosk = None
    if specs:
        import vosk  # imported here so a worker without vosk still reports Ready with problems

        vosk.SetLogLevel(-1)  # warnings and errors only
    whisper = load_whisper(whisper_specs, problems, names)
    for lang, name, path in specs:
        try:
            models[lang] = vosk.Model(path)
            names[lang] = name
        except Exception as exc:  # noqa: BLE001 - Vosk raises plain Exception for a bad model
            problems[lang] = f"{name} at {path} failed to load: {exc}"
    send(wire.Ready(0, 0, names, problems, os.getpid()))
    worker = Worker(models, names, vosk, whisper)
    crash_at = os.environ.get("GATEWAY_SPEECH_CRASH_AT")
    if crash_at:
        worker.crash_at = float(crash_at)
    reader = wire.FrameReader(accept=wire.REQUESTS)
    ended = False

    def waiting() -> set[int]:
        """Read what the gateway has already sent (without blocking): the streams with a
        request waiting."""
        nonlocal ended
        while not ended and select.select([in_fd], [], [], 0)[0]:
            more = os.read(in_fd, 1 << 16)
            if not more:
                ended = True
                break
            reader.receive_data(more)
            if len(more) < 1 << 16:
                break
        return reader.waiting_streams()

    for streams in worker.whisper.values():  # a request waits for its decode only while nothing else waits
        streams.input_waiting = lambda: bool(waiting())

    while True:
        # idle: warm a recogniser a step at a time, as long as no request comes
        while not ended and worker.warm_todo_left() and not select.select([in_fd], [], [], 0)[0]:
            worker.warm_step()
        data = b"" if ended else os.read(in_fd, 1 << 16)
        if not data:
            try:
                reader.end_of_data()
            except RemoteProtocolError as exc:
                print(f"speech worker: {exc}", file=sys.stderr)
                return 3
            return 0
        reader.receive_data(data)
        while True:
            try:
                msg = reader.next_message()
            except wire.BadMessage as exc:
                send(wire.Started(exc.seq, exc.sid))
                send(wire.Rejected(exc.seq, exc.sid, exc.message))
                continue
            except RemoteProtocolError as exc:
                print(f"speech worker: broken frame from the gateway: {exc}", file=sys.stderr)
                return 3
            if msg is None:
                break
            send(wire.Started(msg.seq, msg.sid))
            # behind: other streams wait (a stream's own queued audio does not shed its partials)
            worker.behind = bool(waiting() - {msg.sid})
            send(worker.handle(msg))


if __name__ == "__main__":
    sys.exit(main())
