"""AudioSocket: caller audio from Asterisk, prompts back, one TCP connection per listening step.

Theory of operation
-------------------
The flow runs ``EXEC AudioSocket <uuid>,<host>:<port>`` over FastAGI; Asterisk
(``app_audiosocket``) connects to us and the stream is frames of
``kind(1) length(2, big-endian) payload``. What Asterisk 22.10 sends, as seen in
the sandbox (AMI Originate of a Local channel running a FastAGI script):

* first ``0x01`` with the 16 raw bytes of the UUID it was given, 0.3-11 ms after
  the EXEC line; it only accepts the dashed 8-4-4-4-12 form (the 32-hex form
  and anything else fail in Asterisk before it connects);
* ``0x10`` audio, 320 bytes (20 ms of 8 kHz s16le) every 20 ms, but only while
  the other side sends media: a leg that sends nothing gives no frames at all;
* ``0x03`` DTMF, payload one ASCII key, once per key (at its end); the audio
  has a ~140 ms hole around each key;
* when the caller hangs up, the socket just closes (no ``0x00``).

What the gateway may send: ``0x10`` audio (Asterisk plays it at once, it does not
pace, so every frame is written in one ``send()`` at 20 ms intervals; a burst was
partly lost) and ``0x00`` hang-up. Any other kind, or a zero length, makes
Asterisk reset the socket and the EXEC return ``result=-1`` although the
channel is still up. Hence: no builder for any other kind here.

Ending a step: after ``0x00`` (Asterisk closes at once) or after we just close
the socket, EXEC returns ``result=0`` and the call goes on (prompts, variables,
Queue, even another AudioSocket step). :meth:`AudioSocketCall.close` sends
``0x00`` and closes.

The protocol part is pure (:class:`FrameParser`, :func:`build_audio`,
:func:`build_hangup`): bytes in, typed frames out, and a malformed frame raises
:class:`AudioSocketProtocolError`. The asyncio server that moves the bytes is
:mod:`gateway.pbx.audiosocket_server`.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from gateway.errors import LocalProtocolError, RemoteProtocolError

KIND_HANGUP: Final = 0x00
KIND_UUID: Final = 0x01
KIND_DTMF: Final = 0x03
KIND_AUDIO: Final = 0x10
KIND_ERROR: Final = 0xFF
KINDS: Final = frozenset({KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR})
FRAME_BYTES: Final = 320  # 20 ms of 8 kHz s16le mono
FRAME_SECONDS: Final = 0.02
MAX_PAYLOAD: Final = 4096
DTMF_DIGITS: Final = "0123456789*#ABCD"

_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class AudioSocketProtocolError(RemoteProtocolError):
    """The peer broke the AudioSocket protocol; that session ends."""


# -- the protocol, without I/O ---------------------------------------------------------------
def _check_frame(kind: int, length: int) -> None:
    """Refuse a frame header as soon as it is seen (before its payload arrives)."""
    if kind not in KINDS:
        raise AudioSocketProtocolError(f"unknown frame kind 0x{kind:02x}")
    if length > MAX_PAYLOAD:
        raise AudioSocketProtocolError(f"frame of {length} bytes announced (max {MAX_PAYLOAD})")
    if kind == KIND_UUID and length != 16:
        raise AudioSocketProtocolError(f"UUID frame of {length} bytes (expected 16)")
    if kind == KIND_AUDIO and (length == 0 or length % 2):
        raise AudioSocketProtocolError(f"audio frame of {length} bytes (must be even, not 0)")
    if kind == KIND_DTMF and length != 1:
        raise AudioSocketProtocolError(f"DTMF frame of {length} bytes (expected 1)")


@dataclass(frozen=True)
class Frame:
    """One frame as received; validates itself."""

    kind: int
    payload: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kind, int) or not isinstance(self.payload, bytes):
            raise AudioSocketProtocolError("a frame is an int kind and a bytes payload")
        _check_frame(self.kind, len(self.payload))
        if self.kind == KIND_DTMF and chr(self.payload[0]) not in DTMF_DIGITS:
            raise AudioSocketProtocolError(f"DTMF frame with payload {self.payload!r}")


class FrameParser:
    """Incremental parser: ``feed(bytes) -> [Frame]``; enforces UUID-first ordering.

    After an error the parser stays broken: every later call raises again.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._error: AudioSocketProtocolError | None = None
        self.uuid_seen = False

    def feed(self, data: bytes) -> list[Frame]:
        """Buffer ``data`` and return every complete frame (raises on the first bad one)."""
        self.push(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def push(self, data: bytes) -> None:
        self._raise_if_broken()
        self._buf.extend(data)

    def next_frame(self) -> Frame | None:
        """The next complete frame, None if more bytes are needed; frames before an error come out first."""
        self._raise_if_broken()
        if len(self._buf) < 3:
            return None
        kind, length = self._buf[0], int.from_bytes(self._buf[1:3], "big")
        try:
            _check_frame(kind, length)
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
        except AudioSocketProtocolError as exc:
            self._error = exc
            raise
        return frame

    @property
    def pending(self) -> int:
        """Bytes of a frame not complete yet."""
        return len(self._buf)

    def end(self) -> None:
        """The peer closed: a partly received frame is an error."""
        self._raise_if_broken()
        if self._buf:
            self._error = AudioSocketProtocolError(
                f"connection closed inside a frame ({len(self._buf)} bytes pending)")
            raise self._error

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            raise AudioSocketProtocolError(f"parser already failed: {self._error}")


def build_audio(pcm: bytes) -> bytes:
    """One 0x10 frame (even length, 2..MAX_PAYLOAD bytes)."""
    if not isinstance(pcm, (bytes, bytearray, memoryview)):
        raise LocalProtocolError(f"audio must be bytes, not {type(pcm).__name__}")
    pcm = bytes(pcm)
    if not pcm or len(pcm) % 2 or len(pcm) > MAX_PAYLOAD:
        raise LocalProtocolError(f"cannot send an audio frame of {len(pcm)} bytes")
    return bytes([KIND_AUDIO]) + len(pcm).to_bytes(2, "big") + pcm


def build_hangup() -> bytes:
    """The 0x00 frame: Asterisk closes the socket and AudioSocket() returns 0; the call goes on."""
    return bytes([KIND_HANGUP, 0, 0])


def uuid_from_payload(payload: bytes) -> str:
    """The 16 bytes of a UUID frame as canonical lowercase 8-4-4-4-12 text."""
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != 16:
        raise AudioSocketProtocolError(f"a UUID is 16 bytes, not {len(payload) if payload is not None else 0}")
    return str(uuidlib.UUID(bytes=bytes(payload)))


def canonical_uuid(text: str) -> str:
    """``text`` as lowercase 8-4-4-4-12, refusing the forms Asterisk's AudioSocket() refuses."""
    if not isinstance(text, str) or not _UUID_TEXT.fullmatch(text):
        raise LocalProtocolError(f"AudioSocket needs a dashed UUID (8-4-4-4-12), not {text!r}")
    return text.lower()


def pcm_frames(pcm: bytes, size: int = FRAME_BYTES) -> Iterator[bytes]:
    """``pcm`` cut into frames of ``size`` bytes; the last one padded with silence (an odd byte dropped)."""
    if not isinstance(size, int) or size <= 0 or size % 2 or size > MAX_PAYLOAD:
        raise LocalProtocolError(f"bad audio frame size {size!r}")
    pcm = bytes(pcm)
    pcm = pcm[: len(pcm) - len(pcm) % 2]
    for start in range(0, len(pcm), size):
        chunk = pcm[start:start + size]
        yield chunk + bytes(size - len(chunk))


# -- events a listening step receives ---------------------------------------------------------
@dataclass(frozen=True)
class AudioIn:
    pcm: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.pcm, bytes) or not self.pcm or len(self.pcm) % 2:
            raise LocalProtocolError("AudioIn holds a non-empty, even number of bytes")


@dataclass(frozen=True)
class DtmfIn:
    digit: str

    def __post_init__(self) -> None:
        if not isinstance(self.digit, str) or len(self.digit) != 1 or self.digit not in DTMF_DIGITS:
            raise LocalProtocolError(f"DtmfIn digit must be one of {DTMF_DIGITS}, not {self.digit!r}")


@dataclass(frozen=True)
class Closed:
    reason: str  # "hangup" (Asterisk sent 0x00 or closed), "closed" (by us), or "error: ..."

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not (
                self.reason in ("hangup", "closed") or self.reason.startswith("error: ")):
            raise LocalProtocolError(f"bad Closed reason {self.reason!r}")


CallEvent = AudioIn | DtmfIn | Closed
