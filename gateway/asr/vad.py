"""Voice activity on 8 kHz, 16-bit mono telephone audio (pure: bytes in, decisions out).

Theory of operation
-------------------
:class:`VoiceFrames` splits audio into 20 ms frames (carrying a partial frame over to the
next call) and calls a frame *voiced* when WebRTC's voice-activity detector
(``webrtcvad-wheels``, a maintained build of the detector in Chromium) says speech **and**
its level is at least ``floor_dbfs``. The level gate matters: the WebRTC detector calls
digital silence and faint line hiss "speech" until it has adapted, and a telephone line is
never quieter than about -60 dBFS when someone talks into it.

:class:`UtteranceCutter` turns voiced frames into utterances: one *starts* after
``start_ms`` of consecutive voiced audio (a click or a breath is not speech) and *ends*
after ``silence_ms`` without a voiced frame, or when it reaches ``max_ms`` (a recogniser
with a fixed window, such as Whisper's 30 s, must decode before that). Offsets are in
bytes from the first byte fed, so a caller can slice its own buffer with them.
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass, field

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * 2 * FRAME_MS // 1000  # 320
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # 16


def rms_dbfs(pcm: bytes) -> float:
    """The level of ``pcm`` (s16le) in dB relative to full scale; -inf for silence."""
    if len(pcm) < 2:
        return float("-inf")
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    power = sum(s * s for s in samples) / len(samples)
    if power <= 0:
        return float("-inf")
    return 10 * math.log10(power / (32768.0 * 32768.0))


def _webrtc(aggressiveness: int):
    import webrtcvad  # webrtcvad-wheels; imported late so that a pure import of this module is cheap

    return webrtcvad.Vad(aggressiveness)


@dataclass
class VoiceFrames:
    """Which 20 ms frames of a stream are voiced."""

    floor_dbfs: float = -45.0
    aggressiveness: int = 2  # 0 (keeps most) .. 3 (drops most non-speech)

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {self.aggressiveness}")
        self._vad = _webrtc(self.aggressiveness)
        self._carry = b""

    def frames(self, pcm: bytes) -> list[bool]:
        """Voiced or not for every complete 20 ms frame in the carried-over audio plus ``pcm``."""
        data = self._carry + bytes(pcm)
        whole = len(data) - len(data) % FRAME_BYTES
        self._carry = data[whole:]
        out = []
        for i in range(0, whole, FRAME_BYTES):
            frame = data[i:i + FRAME_BYTES]
            out.append(rms_dbfs(frame) >= self.floor_dbfs and self._vad.is_speech(frame, SAMPLE_RATE))
        return out


@dataclass(frozen=True)
class Utterance:
    start: int  # byte offset of the first voiced frame
    end: int  # byte offset where it was cut (after the trailing silence, or at max_ms)
    speech_end: int  # byte offset just after the last voiced frame
    forced: bool = False  # cut at max_ms, not at a pause


@dataclass
class UtteranceCutter:
    silence_ms: int = 600
    start_ms: int = 60
    max_ms: int = 25_000
    pre_roll_ms: int = 200  # kept before the first voiced frame (soft onsets)
    frames: VoiceFrames = field(default_factory=VoiceFrames)

    def __post_init__(self) -> None:
        self.fed = 0  # bytes of complete frames seen
        self._run = 0  # consecutive voiced ms
        self._quiet = 0  # unvoiced ms since the last voiced frame
        self.current_start: int | None = None  # byte offset of the utterance in progress
        self.last_voiced_end = 0

    @property
    def in_speech(self) -> bool:
        return self.current_start is not None

    @property
    def quiet_ms(self) -> int:
        """Milliseconds without a voiced frame up to ``fed`` (0 while voiced)."""
        return self._quiet

    def feed(self, pcm: bytes) -> list[Utterance]:
        """Utterances that ended within ``pcm`` (usually none or one)."""
        done: list[Utterance] = []
        for voiced in self.frames.frames(pcm):
            self.fed += FRAME_BYTES
            if voiced:
                self._run += FRAME_MS
                self._quiet = 0
                self.last_voiced_end = self.fed
                if self.current_start is None and self._run >= self.start_ms:
                    onset = self.fed - self._run * BYTES_PER_MS
                    self.current_start = max(0, onset - self.pre_roll_ms * BYTES_PER_MS)
            else:
                self._run = 0
                self._quiet += FRAME_MS
            if self.current_start is None:
                continue
            if self._quiet >= self.silence_ms:
                done.append(Utterance(self.current_start, self.fed, self.last_voiced_end))
                self.current_start = None
            elif self.fed - self.current_start >= self.max_ms * BYTES_PER_MS:
                done.append(Utterance(self.current_start, self.fed, self.last_voiced_end, forced=True))
                self.current_start = self.fed
        return done

    def flush(self) -> Utterance | None:
        """The utterance in progress at the end of the stream, if any."""
        if self.current_start is None:
            return None
        out = Utterance(self.current_start, self.fed, max(self.last_voiced_end, self.current_start))
        self.current_start = None
        return out
