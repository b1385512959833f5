"""End-of-speech detection on 8 kHz, 16-bit mono audio (pure: bytes in, decisions out).

Theory of operation
-------------------
Each 20 ms frame is voiced when its RMS level is above ``threshold_dbfs``. Speech
*starts* after ``start_ms`` of consecutive voiced audio (a click or a breath is not
speech), which is also the moment a prompt is interrupted (barge-in). Once speech
has started it *ends* after ``silence_ms`` without a voiced frame. The caller's
telephone line is the only input, so a fixed threshold well above line noise
(-40 dBFS by default) is enough; it is configurable for noisy trunks.
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass

FRAME_MS = 20
SAMPLE_RATE = 8000


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


@dataclass
class SpeechDetector:
    threshold_dbfs: float = -40.0
    start_ms: int = 60
    silence_ms: int = 1500

    def __post_init__(self) -> None:
        self.heard_ms = 0  # audio seen so far
        self.speech_ms = 0  # voiced audio so far (after speech started)
        self._run_ms = 0  # consecutive voiced audio
        self._quiet_ms = 0  # unvoiced audio since the last voiced frame
        self.started_at_ms: int | None = None
        self.ended = False

    @property
    def started(self) -> bool:
        return self.started_at_ms is not None

    def feed(self, pcm: bytes) -> None:
        """Account for one chunk of caller audio (any length; normally one 20 ms frame)."""
        ms = len(pcm) * 1000 // (2 * SAMPLE_RATE)
        if ms <= 0:
            return
        self.heard_ms += ms
        if rms_dbfs(pcm) >= self.threshold_dbfs:
            self._run_ms += ms
            self._quiet_ms = 0
            if self.started_at_ms is None:
                if self._run_ms >= self.start_ms:
                    self.started_at_ms = self.heard_ms - self._run_ms
                    self.speech_ms = self._run_ms
            else:
                self.speech_ms += ms
        else:
            self._run_ms = 0
            self._quiet_ms += ms
            if self.started and self._quiet_ms >= self.silence_ms:
                self.ended = True
