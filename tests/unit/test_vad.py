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


# -- the maintained detector (webrtcvad) and the utterance cutter (gateway.asr.vad) --------

from gateway.asr.vad import BYTES_PER_MS, UtteranceCutter, VoiceFrames  # noqa: E402


def test_given_digital_silence_or_faint_hiss_then_no_frame_is_voiced_though_webrtc_alone_would_say_speech():
    frames = VoiceFrames()
    assert frames.frames(silence(200)) == [False] * 10
    assert not any(frames.frames(tone(200, amplitude=20)))


def test_given_a_partial_frame_then_it_is_carried_to_the_next_chunk():
    frames = VoiceFrames()
    assert frames.frames(tone(30)) == [True]
    assert frames.frames(tone(10)) == [True]


def test_given_speech_then_a_pause_then_the_cutter_ends_the_utterance_after_silence_ms():
    cut = UtteranceCutter(silence_ms=600, pre_roll_ms=100)
    assert cut.feed(silence(500)) == [] and not cut.in_speech
    assert cut.feed(tone(1000)) == [] and cut.in_speech
    assert cut.feed(silence(580)) == []
    (utt,) = cut.feed(silence(40))
    assert utt.start == 400 * BYTES_PER_MS and utt.speech_end == 1500 * BYTES_PER_MS
    assert utt.end == 2100 * BYTES_PER_MS and not utt.forced and not cut.in_speech


def test_given_a_pause_shorter_than_silence_ms_then_one_utterance():
    cut = UtteranceCutter(silence_ms=600)
    assert cut.feed(tone(500) + silence(400) + tone(500)) == []
    assert len(cut.feed(silence(700))) == 1


def test_given_speech_longer_than_max_ms_then_it_is_cut_there_and_goes_on():
    cut = UtteranceCutter(max_ms=2000, pre_roll_ms=0)
    utts = cut.feed(tone(5000))
    assert [u.forced for u in utts] == [True, True] and utts[0].end - utts[0].start == 2000 * BYTES_PER_MS
    last = cut.flush()
    assert last is not None and last.end == 5000 * BYTES_PER_MS and cut.flush() is None


def test_given_a_click_then_no_utterance():
    cut = UtteranceCutter(start_ms=60)
    assert cut.feed(tone(40) + silence(2000)) == [] and cut.flush() is None
