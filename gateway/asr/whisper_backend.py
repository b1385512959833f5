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
the last decode took) and answered as a *partial*: that is what the emergency guard reads.

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
from dataclasses import dataclass, field
from pathlib import Path

from gateway.asr.vad import BYTES_PER_MS, UtteranceCutter, VoiceFrames

BPS = 16000  # bytes per second of 8 kHz s16le
MIN_WINDOW_S = 10
MAX_WINDOW_S = 30
# Partials (greedy, read by the emergency guard and shown live) of an utterance under 4 s use
# a 5 s window: half the encoder's cost of the 10 s one (0.15 s against 0.25-0.29 s for
# 1.2-1.4 s of speech, bench/README.md issue 15) with the same text on the test sentences;
# finals keep MIN_WINDOW_S.
PARTIAL_MIN_WINDOW_S = 5
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
        window = min(MAX_WINDOW_S, max(min_window, 5 * math.ceil((seconds + 1.0) / 5)))
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
class _Stream:
    live: bool
    cutter: UtteranceCutter
    buf: bytearray = field(default_factory=bytearray)
    base: int = 0  # stream byte offset of buf[0]
    partial: str = ""
    partial_at: int = 0  # stream offset up to which the partial was decoded
    last_cost: float = 0.0
    prompt: list | None = None


class WhisperStreams:
    """The streams of one language in one worker: ``open``/``audio``/``finish``/``cancel``."""

    def __init__(self, decoder, *, silence_ms: int = 600, partial_every: float = 1.0,
                 max_ms: int = 25_000, floor_dbfs: float = -50.0) -> None:
        self.decoder = decoder
        self.silence_ms, self.partial_every, self.max_ms, self.floor_dbfs = silence_ms, partial_every, max_ms, floor_dbfs
        self.streams: dict[int, _Stream] = {}

    def open(self, sid: int, *, live: bool = True, words=None) -> None:
        """``words``: the stream's grammar, used as a decoding prompt (see prompt_for)."""
        cutter = UtteranceCutter(silence_ms=self.silence_ms, max_ms=self.max_ms,
                                 frames=VoiceFrames(floor_dbfs=self.floor_dbfs))
        prompt = self.decoder.prompt_for(words) if words and hasattr(self.decoder, "prompt_for") else None
        self.streams[sid] = _Stream(live=live, cutter=cutter, prompt=prompt)

    def cancel(self, sid: int) -> None:
        self.streams.pop(sid, None)

    def __contains__(self, sid: int) -> bool:
        return sid in self.streams

    def _decode(self, s: _Stream, start: int, end: int, *, beam_size: int | None = None, partial: bool = False):
        pcm = bytes(s.buf[max(0, start - s.base): max(0, end - s.base)])
        if partial:
            out = self.decoder.decode(pcm, beam_size=beam_size, prompt=s.prompt, min_window=PARTIAL_MIN_WINDOW_S)
        else:
            out = self.decoder.decode(pcm, beam_size=beam_size, prompt=s.prompt)
        s.last_cost = out.seconds
        return out

    def _word(self, text: str, start: int, end: int, conf: float) -> tuple:
        return (text, start / BPS, end / BPS, conf)

    def audio(self, sid: int, pcm: bytes, *, partial: bool = True) -> tuple[str, bool, tuple]:
        """(text, final, words) after ``pcm``: a final when an utterance ended in it.
        ``partial=False``: no new partial now (the worker is behind), the last one is returned."""
        s = self.streams[sid]
        s.buf += pcm
        ended = s.cutter.feed(pcm)
        if ended:
            texts, words = [], []
            for utt in ended:
                tail = min(utt.end, utt.speech_end + 200 * BYTES_PER_MS)
                out = self._decode(s, utt.start, tail)
                if out.text:
                    texts.append(out.text)
                    words.append(self._word(out.text, utt.start, utt.speech_end, out.confidence))
            cut = ended[-1].end
            keep_from = s.cutter.current_start if s.cutter.current_start is not None else cut
            self._drop(s, min(cut, keep_from))
            s.partial, s.partial_at = "", 0
            return self._join(texts), True, tuple(words)
        start = s.cutter.current_start
        if s.live and start is not None and partial:
            fed = s.cutter.fed
            grown = (fed - max(s.partial_at, start)) / BPS
            if fed - start >= BPS // 2 and grown >= max(self.partial_every, 2 * s.last_cost):
                out = self._decode(s, start, fed, beam_size=1, partial=True)
                s.partial, s.partial_at = out.text, fed
        elif start is None:
            # silence between utterances is not needed to rebuild anything: keep 0.5 s (pre-roll)
            self._drop(s, max(s.base, s.cutter.fed - BPS // 2))
        return s.partial, False, ()

    def finish(self, sid: int) -> tuple[str, tuple]:
        s = self.streams.pop(sid)
        utt = s.cutter.flush()
        if utt is None:
            return "", ()
        out = self._decode(s, utt.start, s.base + len(s.buf))
        if not out.text:
            return "", ()
        return out.text, (self._word(out.text, utt.start, utt.speech_end, out.confidence),)

    @staticmethod
    def _drop(s: _Stream, upto: int) -> None:
        n = upto - s.base
        if n > 0:
            del s.buf[:n]
            s.base = upto

    def _join(self, texts: list[str]) -> str:
        sep = "" if getattr(self.decoder, "language", "zh") in ("zh", "yue", "cmn", "ja") else " "
        return sep.join(texts)
