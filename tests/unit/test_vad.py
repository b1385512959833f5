"""End-of-speech detection on 8 kHz telephone audio (pure)."""

from __future__ import annotations

import math
import struct

from gateway.pbx.vad import SpeechDetector, rms_dbfs

FRAME = 160  # samples in 20 ms


def tone(ms: int, amplitude: int = 8000) -> bytes:
    n = ms * 8
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(n)))


def silence(ms: int) -> bytes:
    return bytes(ms * 16)


def feed(det: SpeechDetector, pcm: bytes) -> None:
    for i in range(0, len(pcm), FRAME * 2):
        det.feed(pcm[i:i + FRAME * 2])


def test_given_levels_when_measured_then_silence_is_minus_infinity_and_a_loud_tone_is_near_full_scale():
    assert rms_dbfs(silence(20)) == float("-inf") and rms_dbfs(b"") == float("-inf")
    assert -4 < rms_dbfs(tone(20, 32000)) < -2
    assert rms_dbfs(tone(20, 30)) < -40 < rms_dbfs(tone(20, 3000))


def test_given_speech_then_silence_when_the_silence_lasts_then_speech_ends():
    det = SpeechDetector(silence_ms=1000)
    feed(det, silence(500))
    assert not det.started
    feed(det, tone(800))
    assert det.started and det.started_at_ms == 500 and not det.ended
    feed(det, silence(900))
    assert not det.ended
    feed(det, silence(120))
    assert det.ended and det.speech_ms == 800


def test_given_a_click_when_shorter_than_the_start_time_then_it_is_not_speech():
    det = SpeechDetector(start_ms=60)
    feed(det, tone(40) + silence(3000))
    assert not det.started and not det.ended


def test_given_a_pause_inside_a_sentence_when_shorter_than_the_silence_then_speech_goes_on():
    det = SpeechDetector(silence_ms=1500)
    feed(det, tone(600) + silence(1000) + tone(600) + silence(1000))
    assert det.started and not det.ended


def test_given_odd_chunks_when_fed_then_nothing_breaks():
    det = SpeechDetector()
    det.feed(b"\x01")
    det.feed(tone(20)[:101])
    assert det.heard_ms >= 0
