"""End-of-speech detection on 8 kHz, 16-bit mono audio (pure: bytes in, decisions out).

Theory of operation
-------------------
Each 20 ms frame is voiced when WebRTC's voice-activity detector calls it speech and its
level is at least ``threshold_dbfs`` (see :mod:`gateway.asr.vad`: the detector rejects
hum, clicks and steady line noise that a plain level threshold would take for speech; the
level gate rejects digital silence and faint hiss that the detector takes for speech
before it adapts). Speech *starts* after ``start_ms`` of consecutive voiced audio, which
is also the moment a prompt is interrupted (barge-in). Once speech has started it *ends*
after ``silence_ms`` without a voiced frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.asr.vad import FRAME_MS, SAMPLE_RATE, VoiceFrames, rms_dbfs

__all__ = ["FRAME_MS", "SAMPLE_RATE", "SpeechDetector", "rms_dbfs"]


@dataclass
class SpeechDetector:
    threshold_dbfs: float = -40.0
    start_ms: int = 60
    silence_ms: int = 1500
    aggressiveness: int = 2

    def __post_init__(self) -> None:
        self._frames = VoiceFrames(floor_dbfs=self.threshold_dbfs, aggressiveness=self.aggressiveness)
        self.heard_ms = 0  # audio seen so far (complete 20 ms frames)
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
        for voiced in self._frames.frames(pcm):
            self.heard_ms += FRAME_MS
            if voiced:
                self._run_ms += FRAME_MS
                self._quiet_ms = 0
                if self.started_at_ms is None:
                    if self._run_ms >= self.start_ms:
                        self.started_at_ms = self.heard_ms - self._run_ms
                        self.speech_ms = self._run_ms
                else:
                    self.speech_ms += FRAME_MS
            else:
                self._run_ms = 0
                self._quiet_ms += FRAME_MS
                if self.started and self._quiet_ms >= self.silence_ms:
                    self.ended = True
