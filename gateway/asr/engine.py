"""What a speech recogniser gives the rest of the gateway, whatever the engine behind it.

Results are frozen dataclasses; engines and streams are protocols. Errors say what the
caller can do: :class:`EngineUnavailable` (no live recognition now: record the caller and
transcribe later), :class:`Overloaded` (the same, because too many callers are already
being recognised), :class:`SpeechInputError` (the caller of this API passed bad audio or a
bad grammar: a bug on our side), :class:`AudioFileError` (a file to transcribe is missing
or not a readable 16-bit WAV).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from gateway.errors import GatewayError


class EngineUnavailable(GatewayError):
    """No model for the language, the engine is suspended, or its workers are down."""

    status_code = 503
    error_id = "speech-unavailable"


class Overloaded(EngineUnavailable):
    """Admission control refused a live stream (the measured capacity, or the ``max_streams`` cap, is in use)."""

    error_id = "speech-overloaded"


class StreamFailed(EngineUnavailable):
    """The worker died while decoding this stream's audio; the stream cannot go on."""

    error_id = "speech-stream-failed"


class SpeechTimeout(EngineUnavailable):
    """The final result did not come in time."""

    error_id = "speech-timeout"


class SpeechInputError(GatewayError):
    """Audio, sample rate, language code or grammar that must never reach the recogniser."""

    status_code = 400
    error_id = "speech-bad-input"


class AudioFileError(GatewayError):
    """A file to transcribe is missing, unreadable or not a 16-bit PCM WAV."""

    status_code = 400
    error_id = "speech-bad-audio-file"


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the stream
    end: float
    conf: float

    def __post_init__(self) -> None:
        if not isinstance(self.word, str) or not self.word:
            raise SpeechInputError("a word must be non-empty text")
        for name in ("start", "end", "conf"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SpeechInputError(f"word {name} must be a finite number, got {value!r}")

    def to_json(self) -> dict:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3),
                "conf": round(self.conf, 3)}


@dataclass(frozen=True)
class Result:
    """One partial (``final=False``) or final hypothesis of one utterance."""

    text: str
    final: bool
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...]
    confidence: float | None  # mean word confidence, None if no words
    model: str
    language: str
    audio_seconds: float
    decode_seconds: float

    @property
    def rtf(self) -> float:
        """Real-time factor: decoding time over audio time (0 if there was no audio)."""
        return self.decode_seconds / self.audio_seconds if self.audio_seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "words": [w.to_json() for w in self.words],
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "model": self.model,
            "language": self.language,
            "audio_seconds": round(self.audio_seconds, 3),
            "decode_seconds": round(self.decode_seconds, 3),
            "rtf": round(self.rtf, 3),
        }

    @classmethod
    def build(cls, finals: list[Result], *, model: str, language: str, audio_seconds: float,
              decode_seconds: float) -> "Transcript":
        """Join the final results of a stream into one transcript."""
        words = tuple(w for r in finals for w in r.words)
        text = join_texts([r.text for r in finals], language)
        confidence = sum(w.conf for w in words) / len(words) if words else None
        return cls(text=text, words=words, confidence=confidence, model=model, language=language,
                   audio_seconds=audio_seconds, decode_seconds=decode_seconds)


_CLOSING = "。！？，、；：.!?,;:"


def join_texts(texts: list[str], language: str) -> str:
    """Utterances as one text: Chinese with a comma where the recogniser put no punctuation."""
    texts = [t for t in texts if t]
    if language not in ("zh", "yue", "cmn"):
        return " ".join(texts)
    out = ""
    for text in texts:
        if out and out[-1] not in _CLOSING and _CJK_START.match(text):
            out += "，"
        elif out and out[-1] not in _CLOSING:
            out += " "
        out += text
    return out


_CJK_START = re.compile("[\u3400-\u9fff]")


@runtime_checkable
class SpeechStream(Protocol):
    stream_id: str

    async def feed(self, pcm: bytes) -> None:
        """8 kHz s16le mono, any even length; returns quickly (never decodes on the loop)."""

    @property
    def partial(self) -> str:
        """Finals so far plus the latest partial ('' if nothing heard yet)."""

    @property
    def failed(self) -> bool:
        """The worker died under this stream and it could not be recovered."""

    async def finish(self, timeout: float = 10.0) -> Transcript:
        """Flush and return the final transcript (raises StreamFailed or SpeechTimeout)."""

    async def cancel(self) -> None:
        """Drop the stream; no result."""


@runtime_checkable
class SpeechEngine(Protocol):
    suspended: bool  # when True: available() is False and every request raises EngineUnavailable

    def available(self, language: str) -> bool: ...

    def model_name(self, language: str) -> str | None: ...

    def languages(self) -> list[str]: ...

    async def open_stream(self, language: str, *, grammar: list[str] | None = None,
                          on_result: Callable[[Result], None] | None = None) -> SpeechStream: ...

    async def transcribe_file(self, path: Path, language: str, *,
                              grammar: list[str] | None = None) -> Transcript: ...

    async def start(self, progress: Callable[[str], None] | None = None) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> dict: ...

