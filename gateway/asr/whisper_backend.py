"""Whisper inside a speech worker process: utterances cut by the VAD, each decoded once.

Theory of operation
-------------------
Whisper is not a streaming recogniser. Each stream keeps the caller's audio since its last
finished utterance and runs it through an :class:`~gateway.asr.vad.UtteranceCutter`. When
an utterance ends (``silence_ms`` of silence, or ``max_ms`` reached) it is decoded once
and answered as a *final* ``Heard``; the stream then starts afresh, exactly like a Vosk
recogniser after a final result, so the gateway's replay-on-worker-death and word-time
shifting work unchanged. While a live caller is still talking, the growing utterance is
re-decoded about every ``partial_every`` seconds of new speech (never more often than twice
the last decode took, and not when nothing was voiced since the last one) and answered as a
*partial*: that is what the emergency guard reads.

A live utterance's final is decoded *early*: once the caller has been quiet for ``early_ms``
(300 ms), its audio up to 200 ms after the last voiced frame is already all a final decodes,
so the decode starts then instead of at the cut (``silence_ms``, 600 ms): the text is the
same, it only comes sooner. When the caller speaks again before the cut, that decode is
dropped (its CPU is still counted) and the utterance goes on. While it waits for the cut,
its text is the stream's partial.

In a worker process the decodes run on a thread of their own (``background=True``): the
worker keeps answering other streams' audio while one stream's final decodes, and answers
each decode with its stream's first request after it is done (see :class:`WhisperStreams`).

Decoding pads the utterance to a short encoder window (10 s, or the next 5 s up to 30 s;
5 s for a partial of less than 4 s) instead of Whisper's fixed 30 s: the encoder costs about a tenth as much for a short
utterance, with the same text on this project's test sentences. Text is normalised by
:func:`gateway.asr.zh_text.normalise` for Chinese (Simplified, digits where people write
digits). Each utterance becomes one ``Word`` (its text, start, end and confidence =
exp(mean token log-probability)), since Whisper has no word alignment worth its cost here.
"""

from __future__ import annotations

import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gateway.asr.engine import join_texts
from gateway.asr.vad import BYTES_PER_MS, UtteranceCutter, VoiceFrames

BPS = 16000  # bytes per second of 8 kHz s16le
MIN_WINDOW_S = 10
MAX_WINDOW_S = 30
# Partials (greedy, read by the emergency guard and shown live) of an utterance under 4 s use
# a 5 s window: half the encoder's cost of the 10 s one (0.15 s against 0.25-0.29 s for
# 1.2-1.4 s of speech, bench/README.md issue 15) with the same text on the test sentences;
# finals keep MIN_WINDOW_S.
PARTIAL_MIN_WINDOW_S = 5
TAIL_MS = 200  # of the trailing silence decoded with an utterance
EARLY_MS = 300  # quiet before a live utterance's final is decoded ahead of its cut
LINGER_S = 0.5  # longest a request waits for its own background decode while nothing else waits
# Whisper's well-known inventions on noise or silence (subtitle credits), dropped outright.
HALLUCINATIONS = ("字幕", "订阅", "點贊", "点赞", "打赏", "Amara", "谢谢观看", "謝謝觀看", "请不吝")


@dataclass
class Decoded:
    text: str
    confidence: float
    seconds: float


class WhisperDecoder:
    """One loaded CTranslate2 Whisper model; ``decode(pcm8k) -> Decoded`` (blocking)."""

    def __init__(self, directory: Path, language: str, *, threads: int = 1, beam_size: int = 5) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.language = language
        self.beam_size = beam_size
        self.model = WhisperModel(str(directory), device="cpu", compute_type="int8", cpu_threads=threads,
                                  local_files_only=True)
        tokenizer = Tokenizer(self.model.hf_tokenizer, True, task="transcribe", language=language)
        self.prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        self.tokenizer = tokenizer
        self.normalise = _normaliser(language)

    def prompt_for(self, words) -> list | None:
        """Decoder prompt tokens biasing towards ``words`` (menu options, emergency words), or None.

        Whisper reads a previous-text prompt as context: listing the words a caller is likely
        to say there makes short words come out right (投诉 instead of 桃树, 着火 instead of
        搅火). It biases, it does not restrict: other speech is still written as heard.
        """
        words = [w for w in dict.fromkeys(words or ()) if w and w != "[unk]"][:40]
        if not words:
            return None
        sep = "，" if self.language in ("zh", "yue", "cmn") else ", "
        ids = self.tokenizer.encode(" " + sep.join(words) + ("。" if sep == "，" else "."))[:200]
        return [self.tokenizer.sot_prev] + ids + self.prompt

    def decode(self, pcm: bytes, *, beam_size: int | None = None, prompt: list | None = None,
               min_window: int = MIN_WINDOW_S) -> Decoded:
        import ctranslate2
        import numpy as np
        from scipy.signal import resample_poly

        started = time.monotonic()
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32) / 32768.0
        seconds = len(samples) / 8000
        if seconds < 0.1:
            return Decoded("", 0.0, 0.0)
        audio = resample_poly(samples, 2, 1).astype(np.float32)  # 16 kHz, what Whisper hears
        step = 5 if min_window >= 5 else 1  # finals: 5 s steps (their texts were measured so)
        window = min(MAX_WINDOW_S, max(min_window, step * math.ceil((seconds + 1.0) / step)))
        padded = np.zeros(window * 16000, dtype=np.float32)
        padded[: min(len(audio), len(padded))] = audio[: len(padded)]
        features = self.model.feature_extractor(padded)[:, : window * 100]
        features = np.ascontiguousarray(features[None, :, :], dtype=np.float32)
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=False)
        result = self.model.model.generate(
            encoded, [prompt or self.prompt], beam_size=beam_size or self.beam_size, return_scores=True,
            return_no_speech_prob=True, max_length=min(448, len(prompt or self.prompt) + int(seconds * 12) + 16), suppress_blank=True,
            suppress_tokens=[-1], repetition_penalty=1.1, no_repeat_ngram_size=4)[0]
        tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
        # Whisper's byte-level tokens can end in half a character (seen: 三里图�接到): never
        # hand a replacement character to a transcript, a desk or a matcher
        text = self.tokenizer.decode(tokens).replace("\ufffd", "").strip()
        score = float(result.scores[0]) if result.scores else -10.0
        confidence = max(0.0, min(1.0, math.exp(score)))
        if (result.no_speech_prob > 0.6 and score < -1.0) or any(h in text for h in HALLUCINATIONS):
            text = ""
        return Decoded(self.normalise(text), confidence, time.monotonic() - started)


def _normaliser(language: str):
    if language in ("zh", "yue", "cmn"):
        from gateway.asr.zh_text import normalise

        return normalise
    return lambda text: " ".join(text.split())


@dataclass
class _Job:
    """One decode of one stream's audio, run now (``background=False``) or on the decoder thread."""

    final: bool
    future: Future
    start: int = 0  # stream offsets of the utterance (a final's word)
    speech_end: int = 0
    end: int = 0  # of the audio decoded
    cpu: float = 0.0  # CPU seconds it cost beyond the calling thread's (see _submit)


@dataclass
class _Stream:
    live: bool
    cutter: UtteranceCutter
    buf: bytearray = field(default_factory=bytearray)
    base: int = 0  # stream byte offset of buf[0]
    partial: str = ""
    partial_at: int = 0  # stream offset up to which the partial was decoded (or is being)
    last_cost: float = 0.0
    prompt: list | None = None
    jobs: deque = field(default_factory=deque)  # submitted, not yet answered, in order
    early: _Job | None = None  # the utterance in progress's final, decoded ahead of its cut


class WhisperStreams:
    """The streams of one language in one worker: ``open``/``audio``/``finish``/``cancel``.

    ``background=True`` (the worker process): decodes run one at a time on a thread of their
    own, so a request of one stream is never held up by another stream's decode, which is
    what kept Mandarin below six live streams on two cores (a beam-5 final takes 0.2-0.4 s of
    a core; bench/README.md, issue 15). Replies keep their order and meaning: a decode's text
    comes with the stream's first reply after it is done (a final one 160 ms of audio later
    at most, for a live caller), finals in the order spoken, and ``finish`` waits for all of
    the stream's decodes. Partials are decoded only while the decoder thread is idle. At most
    ``max_backlog`` finals wait for the thread: beyond that a request waits for them (the
    gateway then sees the worker behind, as without the thread), and a stream that is not
    live (a recording) waits for its own final, so nothing queues without bound.
    CTranslate2 releases the GIL while it decodes. ``background=False`` decodes inline.
    """

    def __init__(self, decoder, *, silence_ms: int = 600, partial_every: float = 1.0,
                 max_ms: int = 25_000, floor_dbfs: float = -50.0, background: bool = False,
                 max_backlog: int = 2, early_ms: int | None = EARLY_MS) -> None:
        self.decoder = decoder
        self.silence_ms, self.partial_every, self.max_ms, self.floor_dbfs = silence_ms, partial_every, max_ms, floor_dbfs
        # None: finals decode at the cut only; else at least TAIL_MS (the audio must be there)
        self.early_ms = None if early_ms is None or early_ms >= silence_ms else max(TAIL_MS, early_ms)
        self.early_counts = {"used": 0, "dropped": 0}  # early finals, for the bench
        self._dropped: list[_Job] = []  # early decodes dropped; their CPU is counted when done
        self.streams: dict[int, _Stream] = {}
        self.max_backlog = max_backlog
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="whisper-decode") if background else None
        self._cpu = 0.0  # CPU of the decodes answered since take_cpu()
        # decode inline for now even with a thread: the worker's calibration measures a stream
        # fed faster than real time that must get the partials a live caller gets
        self.inline = False
        # () -> True when the gateway's next request is already waiting (set by the worker):
        # until then a request waits for its own decode, as inline (see _linger)
        self.input_waiting: Callable[[], bool] | None = None

    def open(self, sid: int, *, live: bool = True, words=None) -> None:
        """``words``: the stream's grammar, used as a decoding prompt (see prompt_for)."""
        cutter = UtteranceCutter(silence_ms=self.silence_ms, max_ms=self.max_ms,
                                 frames=VoiceFrames(floor_dbfs=self.floor_dbfs))
        prompt = self.decoder.prompt_for(words) if words and hasattr(self.decoder, "prompt_for") else None
        self.streams[sid] = _Stream(live=live, cutter=cutter, prompt=prompt)

    def cancel(self, sid: int) -> None:
        s = self.streams.pop(sid, None)
        if s is not None:
            self._drop_early(s)
        for job in s.jobs if s is not None else ():
            job.future.cancel()  # one not started yet is never run; a running one is ignored

    def __contains__(self, sid: int) -> bool:
        return sid in self.streams

    def take_cpu(self) -> float:
        """CPU seconds of the decodes answered since the last call, beyond what the calling
        thread spent itself (CTranslate2's own thread; the decoder thread)."""
        cpu, self._cpu = self._cpu, 0.0
        if self._dropped:
            done = [j for j in self._dropped if j.future.done()]
            self._dropped = [j for j in self._dropped if not j.future.done()]
            cpu += sum(j.cpu for j in done)
        return cpu

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)

    # -- decoding --------------------------------------------------------------------------

    def _submit(self, s: _Stream, start: int, end: int, *, final: bool, speech_end: int = 0,
                queue: bool = True) -> _Job:
        """Decode ``[start, end)`` of the stream; ``queue``: answered in order with its
        stream's other decodes (an early final is queued only when its cut comes)."""
        pcm = bytes(s.buf[max(0, start - s.base): max(0, end - s.base)])
        if final:
            args = {"prompt": s.prompt}
        else:  # greedy, and a shorter window for a short utterance
            args = {"prompt": s.prompt, "beam_size": 1, "min_window": PARTIAL_MIN_WINDOW_S}
        job = _Job(final, Future(), start=start, speech_end=speech_end, end=end)

        inline = self._thread is None or self.inline

        def run():
            # CTranslate2 computes on a thread of its own, so the process's CPU during the
            # decode is what it cost (on the decoder thread it also holds the little the
            # serving thread did meanwhile). Inline, the calling thread's own part is already
            # counted by the worker as the request's.
            cpu, mine = time.process_time(), time.thread_time()
            try:
                return self.decoder.decode(pcm, **args)
            finally:
                job.cpu = time.process_time() - cpu - (time.thread_time() - mine if inline else 0.0)

        if inline:
            try:
                job.future.set_result(run())
            except Exception as exc:  # noqa: BLE001 - raised again where it is answered
                job.future.set_exception(exc)
        else:
            job.future = self._thread.submit(run)
        if queue:
            s.jobs.append(job)
        return job

    def _final(self, s: _Stream, start: int, end: int, speech_end: int) -> None:
        """Queue the final of the utterance ``[start, end)``: its early decode when that was
        of the same audio, else a decode now."""
        early = s.early
        if early is not None and (early.start, early.end) == (start, end):
            s.early = None
            self.early_counts["used"] += 1
            s.jobs.append(early)
            return
        self._drop_early(s)  # (of other audio, if any)
        self._submit(s, start, end, final=True, speech_end=speech_end)

    def _drop_early(self, s: _Stream) -> None:
        early, s.early = s.early, None
        if early is None:
            return
        self.early_counts["dropped"] += 1
        if not early.future.cancel():  # running or done: it cost its CPU all the same
            self._dropped.append(early)

    def _maybe_early(self, s: _Stream) -> None:
        """Drop the early final when the caller spoke again; decode one when the caller has
        been quiet for ``early_ms`` in a live utterance."""
        cutter, start = s.cutter, s.cutter.current_start
        if s.early is not None and (start != s.early.start or cutter.last_voiced_end != s.early.speech_end):
            self._drop_early(s)
        if (self.early_ms is None or not s.live or start is None or s.early is not None
                or cutter.quiet_ms < self.early_ms or cutter.last_voiced_end <= start):
            return
        end = cutter.last_voiced_end + TAIL_MS * BYTES_PER_MS
        s.early = self._submit(s, start, end, final=True, speech_end=cutter.last_voiced_end, queue=False)
        s.partial_at = cutter.fed  # no partial of the same speech meanwhile

    def _linger(self, s: _Stream) -> None:
        """Wait for the stream's decodes while no other request is waiting (at most LINGER_S):
        an idle worker answers a decode with the request that asked for it, or with the first
        one after it is done (not 160 ms later with the next); a worker with work waiting
        answers at once."""
        if self._thread is None or self.inline or self.input_waiting is None or not s.jobs:
            return
        futures = [j.future for j in s.jobs]
        deadline = time.monotonic() + LINGER_S
        while time.monotonic() < deadline and not self.input_waiting():
            if not wait(futures, timeout=0.005).not_done:
                return

    def _busy(self) -> bool:
        return any(not j.future.done() for st in self.streams.values()
                   for j in (*st.jobs, *((st.early,) if st.early is not None else ())))

    def _wait_backlog(self, s: _Stream) -> None:
        if self._thread is None:
            return
        if not s.live:  # a recording is fed as fast as it is answered: one utterance ahead at most
            for job in list(s.jobs)[:-1]:
                wait([job.future])
        finals = [j.future for st in self.streams.values() for j in st.jobs if j.final and not j.future.done()]
        if len(finals) > self.max_backlog:
            wait(finals[: len(finals) - self.max_backlog])

    def _answer(self, s: _Stream) -> tuple[str, bool, tuple]:
        """The stream's decodes done so far, in order: (finals' text, True, words) when one
        or more finals are among them, else (the latest partial, False, ())."""
        texts, words, final = [], [], False
        while s.jobs and s.jobs[0].future.done():
            job = s.jobs.popleft()
            out = job.future.result()  # a decoder error fails this request, as inline
            s.last_cost = out.seconds
            self._cpu += job.cpu
            if job.final:
                final = True
                if out.text:
                    texts.append(out.text)
                    words.append(self._word(out.text, job.start, job.speech_end, out.confidence))
                s.partial = ""  # what was said so far is in the final now
            elif not (s.jobs and s.jobs[0].final and s.jobs[0].future.done()):  # else the final says it all
                s.partial = out.text
                if final:  # a partial of the next utterance: held for the next reply, this one has the finals
                    break
        if final:
            return self._join(texts), True, tuple(words)
        early = s.early
        if early is not None and early.future.done() and not early.future.cancelled() \
                and early.future.exception() is None:
            s.partial = early.future.result().text or s.partial  # all the utterance says so far
        return s.partial, False, ()

    def _word(self, text: str, start: int, end: int, conf: float) -> tuple:
        return (text, start / BPS, end / BPS, conf)

    def audio(self, sid: int, pcm: bytes, *, partial: bool = True) -> tuple[str, bool, tuple]:
        """(text, final, words) after ``pcm``: a final when an utterance ended (in it, or
        earlier while its decode ran in the background).
        ``partial=False``: no new partial now (the worker is behind), the last one is returned."""
        s = self.streams[sid]
        s.buf += pcm
        ended = s.cutter.feed(pcm)
        if ended:
            for utt in ended:
                self._final(s, utt.start, min(utt.end, utt.speech_end + TAIL_MS * BYTES_PER_MS), utt.speech_end)
            self._maybe_early(s)  # (an utterance begun after the cut, in the same request)
            cut = ended[-1].end
            keep_from = s.cutter.current_start if s.cutter.current_start is not None else cut
            self._drop(s, min(cut, keep_from))
            s.partial_at = 0
            self._wait_backlog(s)
            self._linger(s)
            return self._answer(s)
        self._maybe_early(s)
        start = s.cutter.current_start
        if s.live and start is not None and partial and s.early is None and (self.inline or not self._busy()):
            fed = s.cutter.fed
            grown = (fed - max(s.partial_at, start)) / BPS
            # (none when nothing was voiced since the last one: it would decode the same speech)
            if (fed - start >= BPS // 2 and grown >= max(self.partial_every, 2 * s.last_cost)
                    and s.cutter.last_voiced_end > s.partial_at):
                self._submit(s, start, fed, final=False)
                s.partial_at = fed
        elif start is None:
            # silence between utterances is not needed to rebuild anything: keep 0.5 s (pre-roll)
            self._drop(s, max(s.base, s.cutter.fed - BPS // 2))
        self._linger(s)
        return self._answer(s)

    def finish(self, sid: int) -> tuple[str, tuple]:
        """The stream's last text: finals still on their way and the utterance in progress."""
        s = self.streams[sid]
        self._drop_early(s)
        utt = s.cutter.flush()
        if utt is not None:
            self._submit(s, utt.start, s.base + len(s.buf), final=True, speech_end=utt.speech_end)
        try:
            wait([j.future for j in s.jobs])
            texts, words = [], []
            while s.jobs:
                text, final, more = self._answer(s)
                if final and text:
                    texts.append(text)
                    words.extend(more)
            return self._join(texts), tuple(words)
        finally:
            self.streams.pop(sid, None)

    @staticmethod
    def _drop(s: _Stream, upto: int) -> None:
        n = upto - s.base
        if n > 0:
            del s.buf[:n]
            s.base = upto

    def _join(self, texts: list[str]) -> str:
        """Utterances answered together, joined as the gateway joins a stream's finals."""
        return join_texts(texts, getattr(self.decoder, "language", "zh"))
