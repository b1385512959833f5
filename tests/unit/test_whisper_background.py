"""Whisper decoding on the worker's decoder thread (gateway.asr.whisper_backend.WhisperStreams,
``background=True``): no stream waits for another's decode, and replies keep their order and
meaning. The decoder here is a stand-in whose decodes wait for the test to let them finish,
so every moment is set by the test, not by timing."""

from __future__ import annotations

import math
import struct
import threading
import time

import pytest

from gateway.asr import wire
from gateway.asr.whisper_backend import Decoded, WhisperStreams

CHUNK = wire.LIVE_CHUNK_BYTES


class GatedDecoder:
    """Says which utterance it decoded (its length in bytes); a final waits for ``gate``."""

    language = "zh"

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.fail = fail
        self.finals: list[int] = []

    def decode(self, pcm: bytes, *, beam_size=None, prompt=None, min_window=None):
        if beam_size == 1:  # a partial: at once
            return Decoded(f"partial{len(pcm)}", 0.9, 0.001)
        self.started.set()
        assert self.gate.wait(30), "the test never let the decode finish"
        if self.fail:
            raise RuntimeError("decoder broke")
        self.finals.append(len(pcm))
        return Decoded(f"说了{len(self.finals)}", 0.9, 0.001)


def tone(seconds: float) -> bytes:
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                    for i in range(int(seconds * 8000)))


SILENCE = b"\x00\x00" * 8000  # one second


def feed(streams: WhisperStreams, sid: int, pcm: bytes) -> list[tuple]:
    return [streams.audio(sid, pcm[i:i + CHUNK], partial=False) for i in range(0, len(pcm), CHUNK)]


@pytest.fixture
def gated():
    decoder = GatedDecoder()
    streams = WhisperStreams(decoder, background=True)
    yield decoder, streams
    decoder.gate.set()
    streams.close()


def test_given_one_streams_final_decoding_when_another_stream_talks_then_it_is_answered_at_once(gated):
    decoder, streams = gated
    streams.open(1, live=True)
    streams.open(2, live=True)
    replies = feed(streams, 1, tone(1.0) + SILENCE)  # the utterance ends: its final goes to the thread
    assert decoder.started.wait(10) and not any(final for _, final, _ in replies)
    # the decode has not finished (the gate is shut), yet stream 2's audio is answered
    assert all(not final for _, final, _ in feed(streams, 2, tone(0.5)))
    decoder.gate.set()
    streams.input_waiting = lambda: False  # from now on a request waits for its stream's decode
    text, final, words = streams.audio(1, b"\x00\x00" * (CHUNK // 2), partial=False)
    assert final and text == "说了1" and len(words) == 1 and words[0][1] <= words[0][2] <= 2.0


def test_given_finals_on_their_way_when_the_stream_finishes_then_all_come_in_the_order_spoken(gated):
    decoder, streams = gated
    streams.open(1, live=True)
    feed(streams, 1, tone(0.8) + SILENCE + tone(1.2) + SILENCE)  # two utterances, both waiting
    feed(streams, 1, tone(0.6))  # a third, still being spoken
    decoder.gate.set()
    text, words = streams.finish(1)
    assert text == "说了1，说了2，说了3"  # joined as the gateway joins Chinese utterances
    assert [w[0] for w in words] == ["说了1", "说了2", "说了3"]
    assert [w[1] for w in words] == sorted(w[1] for w in words)
    assert 1 not in streams


def test_given_more_finals_waiting_than_the_backlog_then_the_next_request_waits_for_them():
    decoder = GatedDecoder()
    streams = WhisperStreams(decoder, background=True, max_backlog=1)
    try:
        for sid in (1, 2):
            streams.open(sid, live=True)
        feed(streams, 1, tone(0.8) + SILENCE)  # one final waiting: within the backlog
        finished = threading.Event()

        def second() -> None:
            feed(streams, 2, tone(0.8) + SILENCE)  # a second final: over the backlog
            finished.set()

        worker = threading.Thread(target=second, daemon=True)
        worker.start()
        assert not finished.wait(0.5)  # held: the gate is shut, so this cannot have finished
        decoder.gate.set()
        assert finished.wait(30)
    finally:
        decoder.gate.set()
        streams.close()


def test_given_nothing_else_waiting_then_the_request_that_ends_the_utterance_carries_its_final(gated):
    decoder, streams = gated
    streams.input_waiting = lambda: False  # the worker has no other request
    decoder.gate.set()
    streams.open(1, live=True)
    replies = feed(streams, 1, tone(0.8) + SILENCE)
    finals = [text for text, final, _ in replies if final]
    assert finals == ["说了1"]


def test_given_a_stream_cancelled_while_its_final_decodes_then_the_others_go_on(gated):
    decoder, streams = gated
    streams.open(1, live=True)
    streams.open(2, live=True)
    feed(streams, 1, tone(0.8) + SILENCE)
    assert decoder.started.wait(10)
    streams.cancel(1)
    decoder.gate.set()
    # the final comes with a reply or at finish, as its (early) decode happens to be done
    replies = feed(streams, 2, tone(0.8) + SILENCE)
    texts = [text for text, final, _ in replies if final and text] + [streams.finish(2)[0]]
    assert "".join(texts) == "说了2"  # the cancelled stream's decode ran, its text went nowhere


def test_given_the_decoder_failing_in_the_background_then_the_streams_next_request_fails_and_it_goes_on():
    decoder = GatedDecoder(fail=True)
    decoder.gate.set()
    streams = WhisperStreams(decoder, background=True)
    streams.input_waiting = lambda: False
    try:
        streams.open(1, live=True)
        with pytest.raises(RuntimeError, match="decoder broke"):  # as inline: the worker rejects it
            feed(streams, 1, tone(0.8) + SILENCE)
        decoder.fail = False
        assert feed(streams, 1, SILENCE)[-1] == ("", False, ())  # the stream is usable again
        assert streams.finish(1) == ("", ())
    finally:
        streams.close()


def test_given_a_recording_then_it_is_never_more_than_one_utterance_ahead_of_its_decodes(gated):
    decoder, streams = gated
    streams.open(1, live=False)
    replies = feed(streams, 1, tone(0.8) + SILENCE)  # one final waiting: the recording may go on
    finished = threading.Event()

    def more() -> None:
        replies.extend(feed(streams, 1, tone(0.8) + SILENCE))
        finished.set()

    threading.Thread(target=more, daemon=True).start()
    assert not finished.wait(0.5)  # the second utterance waits for the first's decode
    decoder.gate.set()
    assert finished.wait(30)
    texts = [text for text, final, _ in replies if final] + [streams.finish(1)[0]]
    assert "".join(texts).replace("，", "") == "说了1说了2"  # each once, in order, with a reply or at the end


class RecordingDecoder:
    """Decodes at once; keeps every decode's audio and kind, says which final it was."""

    language = "zh"

    def __init__(self) -> None:
        self.decodes: list[tuple[str, bytes]] = []

    def decode(self, pcm: bytes, *, beam_size=None, prompt=None, min_window=None):
        kind = "partial" if beam_size == 1 else "final"
        self.decodes.append((kind, pcm))
        finals = sum(1 for k, _ in self.decodes if k == "final")
        return Decoded(f"说了{finals}" if kind == "final" else "说", 0.9, 0.001)

    def finals(self) -> list[bytes]:
        return [pcm for kind, pcm in self.decodes if kind == "final"]


def test_given_a_pause_then_the_final_is_decoded_early_from_the_same_audio_as_at_the_cut():
    speech = tone(0.8) + SILENCE
    texts, audios = {}, {}
    for early_ms in (None, 300):
        decoder = RecordingDecoder()
        streams = WhisperStreams(decoder, early_ms=early_ms)
        streams.open(1, live=True)
        replies = feed(streams, 1, speech)
        finals = [i for i, (_, final, _) in enumerate(replies) if final]
        assert len(finals) == 1  # answered at the cut (600 ms of silence) in both cases
        texts[early_ms] = (replies[finals[0]][0], replies[finals[0]][2])
        audios[early_ms] = decoder.finals()
        if early_ms:
            assert streams.early_counts == {"used": 1, "dropped": 0}
        assert streams.finish(1) == ("", ())
    assert audios[None] == audios[300] and len(audios[300]) == 1  # one decode, of the same bytes
    assert texts[None] == texts[300]


def test_given_an_early_final_decoded_before_the_cut_then_its_text_is_the_partial_meanwhile():
    decoder = RecordingDecoder()
    streams = WhisperStreams(decoder)
    streams.open(1, live=True)
    feed(streams, 1, tone(0.8))
    quiet = feed(streams, 1, b"\x00\x00" * int(8000 * 0.48))  # 480 ms: past the early point, before the cut
    assert len(decoder.finals()) == 1 and not any(final for _, final, _ in quiet)
    assert quiet[-1][0] == "说了1"  # what the guard reads before the cut
    replies = feed(streams, 1, b"\x00\x00" * int(8000 * 0.32))
    assert [t for t, final, _ in replies if final] == ["说了1"] and len(decoder.finals()) == 1


def test_given_the_caller_speaks_again_after_the_early_point_then_that_decode_is_dropped_and_counted():
    decoder = RecordingDecoder()
    streams = WhisperStreams(decoder)
    streams.open(1, live=True)
    replies = feed(streams, 1, tone(0.6) + b"\x00\x00" * int(8000 * 0.4) + tone(0.6) + SILENCE)
    assert streams.finish(1) == ("", ())
    # one utterance (the pause was shorter than the cut's 600 ms): the early decode of its
    # first half was dropped, the whole was decoded again
    finals = decoder.finals()
    assert len(finals) == 2 and len(finals[1]) > len(finals[0]) + 0.5 * 16000
    assert streams.early_counts == {"used": 1, "dropped": 1}
    assert [(text, len(words)) for text, final, words in replies if final] == [("说了2", 1)]


def test_given_a_dropped_early_decode_then_its_cpu_is_still_taken():
    class Burning(RecordingDecoder):
        def decode(self, pcm, **kw):
            spent = time.process_time()
            while time.process_time() - spent < 0.05:
                pass
            return super().decode(pcm, **kw)

    decoder = Burning()
    streams = WhisperStreams(decoder, background=True)
    try:
        streams.open(1, live=True)
        feed(streams, 1, tone(0.6) + b"\x00\x00" * int(8000 * 0.4))  # early decode submitted
        early = streams.streams[1].early
        assert early is not None
        early.future.result(timeout=30)  # decoded (and its CPU known) before the caller goes on
        feed(streams, 1, tone(0.3))  # the caller goes on: dropped
        assert streams.early_counts["dropped"] == 1
        assert streams.take_cpu() >= 0.04  # the dropped decode's CPU, taken once
        assert streams.take_cpu() == 0.0
    finally:
        streams.close()


def test_given_a_recording_then_no_final_is_decoded_early():
    decoder = RecordingDecoder()
    streams = WhisperStreams(decoder)
    streams.open(1, live=False)
    feed(streams, 1, tone(0.6) + b"\x00\x00" * int(8000 * 0.4) + tone(0.6) + SILENCE)
    streams.finish(1)
    assert len(decoder.finals()) == 1 and streams.early_counts == {"used": 0, "dropped": 0}


def test_given_the_real_model_and_a_caller_who_pauses_then_the_final_is_ready_before_the_cut_with_the_same_text():
    """Whisper base on the built-in Mandarin clip, decoded inline: with the early final, each
    utterance's text is there (as the partial) by the request before its cut, and the finals
    are word for word those decoded at the cut."""
    from pathlib import Path

    from gateway.asr.whisper_backend import WhisperDecoder
    from gateway.asr.whisper_model import BUILTIN
    from gateway.asr.worker import calibration_clip

    model = Path.home() / ".cache" / "gateway12345" / "models" / f"{BUILTIN}-ct2"
    if not (model / "model.bin").exists():
        pytest.skip("the Whisper model is not installed (make setup)")
    decoder = WhisperDecoder(model, "zh")
    clip = calibration_clip("zh") + SILENCE
    runs = {}
    for early_ms in (None, 300):
        streams = WhisperStreams(decoder, early_ms=early_ms)
        streams.open(1, live=True, words=["着火", "救命"])
        replies = [streams.audio(1, clip[i:i + CHUNK]) for i in range(0, len(clip), CHUNK)]
        runs[early_ms] = (replies, streams.finish(1), dict(streams.early_counts))
    finals = {k: [(t, w) for t, final, w in replies if final] for k, (replies, _, _) in runs.items()}
    assert finals[None] and finals[None] == finals[300]  # same texts, same word times
    replies = runs[300][0]
    for i, (text, final, _) in enumerate(replies):
        if final:
            assert replies[i - 1][0] == text and not replies[i - 1][1]  # heard a request before the cut
    assert runs[300][2]["used"] == len(finals[300])
