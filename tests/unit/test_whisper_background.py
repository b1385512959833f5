"""Whisper decoding on the worker's decoder thread (gateway.asr.whisper_backend.WhisperStreams,
``background=True``): no stream waits for another's decode, and replies keep their order and
meaning. The decoder here is a stand-in whose decodes wait for the test to let them finish,
so every moment is set by the test, not by timing."""

from __future__ import annotations

import math
import struct
import threading

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
    feed(streams, 2, tone(0.8) + SILENCE)
    assert streams.finish(2)[0] == "说了2"  # the cancelled stream's decode ran, its text went nowhere


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
