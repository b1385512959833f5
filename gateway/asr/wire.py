"""The framing between the gateway and its speech workers: bytes in, typed messages out.

Theory of operation
-------------------
The gateway writes requests to a worker's stdin and reads replies from its stdout. Every
frame is::

    kind (1 byte) | length (4 bytes, big-endian) | seq (4) | sid (4) | body (length - 8)

``seq`` numbers the requests on one worker connection (1, 2, 3...); ``sid`` names the
stream. Audio bodies are raw 8 kHz s16le mono PCM; every other body is one UTF-8 JSON
object. The worker handles requests one at a time, in order: it says ``Started`` when it
begins one and answers it with exactly one reply carrying the same ``seq``. So the oldest
request that was started and not answered is the one the worker was busy with; if the
worker dies, that request (and its stream) is the culprit. A request that was not started
yet (written just before or after the death) blames nobody.

    gateway                         worker
    (any request)                 ->  <- Started(seq, sid), then one of:
    Open(seq, sid, lang, grammar) ->  <- Opened(seq, sid, dropped words) | Rejected
    Audio(seq, sid, pcm)          ->  <- Heard(seq, sid, partial or final text, words)
    Finish(seq, sid)              ->  <- Finished(seq, sid, text, words)
    Cancel(seq, sid)              ->  <- Closed(seq, sid)
    Calibrate(seq, sid, lang[, grammar]) <- Calibrated(seq, sid, audio s, CPU s, wall s, text)
                                      <- Ready(models, problems) once, after loading

Messages are frozen dataclasses that validate themselves, so a bad sample rate, an
odd-length chunk or a malformed grammar cannot be built, hence cannot be sent: building
one raises :class:`SpeechInputError`. The same checks run again when a frame is parsed,
in the worker, before anything reaches Vosk: a frame that is well formed but carries a
bad value raises :class:`BadMessage` (the worker answers ``Rejected`` and goes on); a
frame that breaks the framing itself raises :class:`RemoteProtocolError` (the connection
is out of step and must end).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any, Union

from gateway.asr.engine import SpeechInputError, Word
from gateway.errors import RemoteProtocolError

SAMPLE_RATE = 8000  # what Asterisk's AudioSocket sends; the only rate a stream accepts
BYTES_PER_SECOND = SAMPLE_RATE * 2
MAX_CHUNK_BYTES = 2 * BYTES_PER_SECOND  # one Audio frame: at most 2 s
# A live stream's audio goes to its worker in chunks of at least this much (160 ms, eight
# AudioSocket frames) unless it ends or pauses: Vosk decodes a 160 ms chunk for a fraction
# of the cost of eight 20 ms ones, and one request replaces eight (gateway.asr.stream).
LIVE_CHUNK_BYTES = BYTES_PER_SECOND * 16 // 100
# A live Vosk stream's partial result is computed at most once per this much audio (the
# emergency guard reads partials: 320 ms keeps it well within 1 s of the word).
PARTIAL_EVERY_BYTES = BYTES_PER_SECOND * 32 // 100
MAX_BODY = 256 * 1024  # any frame body
MAX_GRAMMAR_WORDS = 500
MAX_GRAMMAR_WORD_CHARS = 64
MAX_ID = 2**32 - 1

_HEADER = struct.Struct(">BIII")  # kind, length (seq+sid+body), seq, sid
HEADER_SIZE = _HEADER.size
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadMessage(RemoteProtocolError):
    """A well-formed frame with a bad value; ``seq``/``sid`` say which request to reject."""

    def __init__(self, message: str, *, kind: int, seq: int, sid: int) -> None:
        super().__init__(message, details={"kind": kind, "seq": seq, "sid": sid})
        self.kind, self.seq, self.sid = kind, seq, sid


# -- value checks, shared by the gateway (before sending) and the worker (after parsing) --


def check_rate(rate: Any) -> int:
    # 0 makes a Kaldi recogniser spin at 100 % CPU for ever; a negative rate aborts the process.
    if isinstance(rate, bool) or not isinstance(rate, int) or rate != SAMPLE_RATE:
        raise SpeechInputError(f"sample rate must be {SAMPLE_RATE}, got {rate!r}")
    return rate


def check_pcm(pcm: Any, *, limit: int = MAX_CHUNK_BYTES) -> bytes:
    if not isinstance(pcm, (bytes, bytearray, memoryview)):
        raise SpeechInputError(f"audio must be bytes, got {type(pcm).__name__}")
    pcm = bytes(pcm)
    if not pcm:
        raise SpeechInputError("an audio chunk must not be empty")
    if len(pcm) % 2:
        raise SpeechInputError(f"16-bit audio must have an even length, got {len(pcm)} bytes")
    if len(pcm) > limit:
        raise SpeechInputError(f"audio chunk of {len(pcm)} bytes is over the limit of {limit}")
    return pcm


def check_language(language: Any) -> str:
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise SpeechInputError(f"language must be a short code such as 'zh' or 'ko', got {language!r}")
    return language


def check_grammar(grammar: Any) -> tuple[str, ...] | None:
    if grammar is None:
        return None
    if isinstance(grammar, (str, bytes)) or not isinstance(grammar, (list, tuple)):
        raise SpeechInputError(f"a grammar must be a list of words, got {type(grammar).__name__}")
    if not 1 <= len(grammar) <= MAX_GRAMMAR_WORDS:
        raise SpeechInputError(f"a grammar must have 1 to {MAX_GRAMMAR_WORDS} words, got {len(grammar)}")
    out = []
    for i, word in enumerate(grammar):
        if not isinstance(word, str):
            raise SpeechInputError(f"grammar word {i} must be text, got {type(word).__name__}")
        text = word.strip()
        if not text:
            raise SpeechInputError(f"grammar word {i} is empty")
        if len(text) > MAX_GRAMMAR_WORD_CHARS:
            raise SpeechInputError(f"grammar word {i} is over {MAX_GRAMMAR_WORD_CHARS} characters")
        if _CONTROL.search(text):
            raise SpeechInputError(f"grammar word {i} contains a control character")
        out.append(text)
    return tuple(out)


def _check_id(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise SpeechInputError(f"{name} must be an integer 0..{MAX_ID}, got {value!r}")


def _check_text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise SpeechInputError(f"{name} must be text, got {type(value).__name__}")


def _words(raw: Any) -> tuple[Word, ...]:
    if isinstance(raw, tuple) and all(isinstance(w, Word) for w in raw):
        return raw
    if not isinstance(raw, (list, tuple)):
        raise SpeechInputError("words must be a list")
    out = []
    for item in raw:
        if isinstance(item, Word):
            out.append(item)
            continue
        if not isinstance(item, (list, tuple)) or len(item) != 4:
            raise SpeechInputError("a word must be [word, start, end, conf]")
        out.append(Word(*item))
    return tuple(out)


# -- messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Message:
    seq: int
    sid: int

    def __post_init__(self) -> None:
        _check_id("seq", self.seq)
        _check_id("sid", self.sid)


@dataclass(frozen=True)
class Open(_Message):
    language: str
    sample_rate: int
    grammar: tuple[str, ...] | None = None
    live: bool = True  # a caller on the line (partials wanted), not a file being transcribed

    def __post_init__(self) -> None:
        super().__post_init__()
        check_language(self.language)
        check_rate(self.sample_rate)
        object.__setattr__(self, "grammar", check_grammar(self.grammar))
        if not isinstance(self.live, bool):
            raise SpeechInputError("live must be true or false")


@dataclass(frozen=True)
class Audio(_Message):
    pcm: bytes

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "pcm", check_pcm(self.pcm))


@dataclass(frozen=True)
class Finish(_Message):
    pass


@dataclass(frozen=True)
class Cancel(_Message):
    pass


@dataclass(frozen=True)
class Calibrate(_Message):
    """Decode the built-in clip of ``language`` as a live stream would (gateway.asr.capacity),
    with the ``grammar`` the gateway gives such a stream (Whisper: the emergency words, a
    decoding prompt that costs a beam-5 final about twice the decoder time)."""

    language: str
    grammar: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_language(self.language)
        object.__setattr__(self, "grammar", check_grammar(self.grammar))


@dataclass(frozen=True)
class Ready(_Message):
    models: dict  # language -> model name, for every model the worker loaded
    problems: dict  # language -> why its model could not be loaded
    pid: int

    def __post_init__(self) -> None:
        super().__post_init__()
        for table in (self.models, self.problems):
            if not isinstance(table, dict):
                raise SpeechInputError("models and problems must be mappings")
            for key, value in table.items():
                check_language(key)
                _check_text("model name or problem", value)
        _check_id("pid", self.pid)


def _check_busy(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
        raise SpeechInputError(f"busy must be a number of seconds, got {value!r}")


@dataclass(frozen=True)
class Opened(_Message):
    dropped: tuple[str, ...] = ()  # grammar words the model does not know (Vosk would ignore them)
    busy: float = 0.0  # seconds the worker spent on the request

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_busy(self.busy)
        if not isinstance(self.dropped, (list, tuple)) or not all(isinstance(w, str) for w in self.dropped):
            raise SpeechInputError("dropped must be a list of words")
        object.__setattr__(self, "dropped", tuple(self.dropped))


@dataclass(frozen=True)
class Heard(_Message):
    text: str  # the partial text, or the final text of an utterance that just ended
    final: bool
    words: tuple[Word, ...] = ()
    busy: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_busy(self.busy)
        _check_text("text", self.text)
        if not isinstance(self.final, bool):
            raise SpeechInputError("final must be true or false")
        object.__setattr__(self, "words", _words(self.words))


@dataclass(frozen=True)
class Finished(_Message):
    text: str
    words: tuple[Word, ...] = ()
    busy: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_busy(self.busy)
        _check_text("text", self.text)
        object.__setattr__(self, "words", _words(self.words))


@dataclass(frozen=True)
class Closed(_Message):
    pass


@dataclass(frozen=True)
class Calibrated(_Message):
    audio: float  # seconds of the clip
    cpu: float  # CPU seconds the worker spent decoding it as a live stream
    wall: float
    text: str

    def __post_init__(self) -> None:
        super().__post_init__()
        for value in (self.audio, self.cpu, self.wall):
            _check_busy(value)
        _check_text("text", self.text)


@dataclass(frozen=True)
class Started(_Message):
    """Not a reply: the worker is about to handle request ``seq``."""


@dataclass(frozen=True)
class Rejected(_Message):
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text("reason", self.reason)


Request = Union[Open, Audio, Finish, Cancel, Calibrate]
Reply = Union[Ready, Started, Opened, Heard, Finished, Closed, Rejected, Calibrated]
Message = Union[Request, Reply]

KINDS: dict[int, type] = {
    0x01: Open, 0x02: Audio, 0x03: Finish, 0x04: Cancel, 0x05: Calibrate,
    0x81: Ready, 0x82: Opened, 0x83: Heard, 0x84: Finished, 0x85: Closed, 0x86: Rejected, 0x87: Started,
    0x88: Calibrated,
}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}
REQUESTS = (Open, Audio, Finish, Cancel, Calibrate)
REPLIES = (Ready, Started, Opened, Heard, Finished, Closed, Rejected, Calibrated)


def _body(msg: _Message) -> bytes:
    if isinstance(msg, Audio):
        return msg.pcm
    if isinstance(msg, Open):
        obj: dict = {"language": msg.language, "sample_rate": msg.sample_rate,
                     "grammar": list(msg.grammar) if msg.grammar is not None else None}
        if not msg.live:
            obj["live"] = False
    elif isinstance(msg, Ready):
        obj = {"models": msg.models, "problems": msg.problems, "pid": msg.pid}
    elif isinstance(msg, Opened):
        obj = {"dropped": list(msg.dropped), "busy": msg.busy}
    elif isinstance(msg, (Heard, Finished)):
        obj = {"text": msg.text, "words": [[w.word, w.start, w.end, w.conf] for w in msg.words], "busy": msg.busy}
        if isinstance(msg, Heard):
            obj["final"] = msg.final
    elif isinstance(msg, Rejected):
        obj = {"reason": msg.reason}
    elif isinstance(msg, Calibrate):
        obj = {"language": msg.language}
        if msg.grammar is not None:
            obj["grammar"] = list(msg.grammar)
    elif isinstance(msg, Calibrated):
        obj = {"audio": msg.audio, "cpu": msg.cpu, "wall": msg.wall, "text": msg.text}
    else:
        obj = {}
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")


def encode(msg: _Message) -> bytes:
    """One frame for ``msg`` (already validated when it was built)."""
    kind = _KIND_OF.get(type(msg))
    if kind is None:
        raise SpeechInputError(f"not a wire message: {type(msg).__name__}")
    body = _body(msg)
    if len(body) > MAX_BODY:
        raise SpeechInputError(f"{type(msg).__name__} body of {len(body)} bytes is over {MAX_BODY}")
    return _HEADER.pack(kind, len(body) + 8, msg.seq, msg.sid) + body


_FIELDS = {
    Open: ("language", "sample_rate", "grammar"), Ready: ("models", "problems", "pid"),
    Opened: ("dropped", "busy"), Heard: ("text", "final", "words", "busy"), Finished: ("text", "words", "busy"),
    Rejected: ("reason",), Finish: (), Cancel: (), Closed: (), Started: (),
    Calibrate: ("language",), Calibrated: ("audio", "cpu", "wall", "text"),
}
_OPTIONAL = {Open: ("live",), Calibrate: ("grammar",)}


def parse(kind: int, seq: int, sid: int, body: bytes) -> Message:
    """Build and validate the message of one frame; raises :class:`BadMessage`."""
    cls = KINDS[kind]
    try:
        if cls is Audio:
            return Audio(seq, sid, body)
        try:
            obj = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise SpeechInputError(f"body is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise SpeechInputError("body must be a JSON object")
        expected = _FIELDS[cls]
        optional = _OPTIONAL.get(cls, ())
        if not set(expected) <= set(obj) <= set(expected) | set(optional):
            raise SpeechInputError(f"{cls.__name__} fields must be {', '.join(expected) or 'none'}, "
                                   f"got {', '.join(sorted(obj)) or 'none'}")
        return cls(seq, sid, **obj)
    except (SpeechInputError, TypeError) as exc:
        message = exc.message if isinstance(exc, SpeechInputError) else str(exc)
        raise BadMessage(f"bad {cls.__name__}: {message}", kind=kind, seq=seq, sid=sid) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


class FrameReader:
    """Incremental parser: ``receive_data(bytes)``, then ``next_message()`` until None.

    Raises :class:`RemoteProtocolError` for an unknown kind, a length out of range or a
    stream that ends in the middle of a frame (``end_of_data``); :class:`BadMessage` for a
    complete frame with bad contents (the reader stays in step after it).
    """

    def __init__(self, *, accept: tuple = REQUESTS + REPLIES) -> None:
        self._buffer = bytearray()
        self._kinds = {kind for kind, cls in KINDS.items() if cls in accept}
        self._broken: RemoteProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def waiting_streams(self) -> set[int]:
        """The stream ids of the whole frames buffered (read without consuming them)."""
        sids: set[int] = set()
        at = 0
        while len(self._buffer) - at >= HEADER_SIZE:
            _kind, length, _seq, sid = _HEADER.unpack_from(self._buffer, at)
            end = at + HEADER_SIZE + max(0, length - 8)
            if length < 8 or end > len(self._buffer):
                break
            sids.add(sid)
            at = end
        return sids

    def next_message(self) -> Message | None:
        if self._broken is not None:
            raise self._broken
        if len(self._buffer) < HEADER_SIZE:
            return None
        kind, length, seq, sid = _HEADER.unpack_from(self._buffer)
        if kind not in self._kinds:
            self._broken = RemoteProtocolError(f"unknown or unexpected frame kind 0x{kind:02x}")
            raise self._broken
        if length < 8 or length - 8 > MAX_BODY:
            self._broken = RemoteProtocolError(f"frame length {length} is out of range 8..{MAX_BODY + 8}")
            raise self._broken
        end = HEADER_SIZE + length - 8
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]
        return parse(kind, seq, sid, body)

    def end_of_data(self) -> None:
        """The peer closed: anything left over is a truncated frame."""
        if self._buffer:
            raise RemoteProtocolError(f"stream ended inside a frame ({len(self._buffer)} bytes left over)")

