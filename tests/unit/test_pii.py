"""Personal data in what callers say (issue 10.4): found in realistic 12345 transcripts, in
ASCII or Chinese digits, masked for everyone but the agent who answered."""

from __future__ import annotations

import logging

import pytest

from gateway.desk.access import dispatch_document, ticket_view
from gateway.logs import MaskingFilter
from gateway.pii import find_personal, id_card_valid, luhn_valid, mask_personal, mask_words

ID = "11010519491231002X"  # the GB 11643 standard's example: check character X


@pytest.mark.parametrize("text,kinds", [
    (f"我叫张三，身份证号{ID}，住在朝阳区", ["id_card"]),
    ("身份证号码幺幺零幺零五幺九四九幺二三幺零零二X", ["id_card"]),  # read digit by digit, 1 as 幺
    ("身份证 110105 19491231 002x", ["id_card"]),  # in groups, lower-case x
    ("我的手机号是13800138000，有事打给我", ["mobile"]),
    ("电话 幺三八 零零幺三 八零零零", ["mobile"]),
    ("手机加86 138 0013 8000", ["mobile"]),
    ("家里座机010-62345678，白天没人", ["landline"]),
    ("退款打到我的卡上 6222 0212 3456 7890 128", ["bank_card"]),
    ("车牌京A12345的车天天堵在小区门口", ["plate"]),
    ("那辆车是京A·D12345，新能源的", ["plate"]),
    ("粤B 9x8y7 不是车牌", []),
    ("快递单号 7731 2026 5566 98 一直没送到", ["number"]),
    ("我13800138000，车牌沪C88888，身份证" + ID, ["mobile", "plate", "id_card"]),
])
def test_given_a_realistic_transcript_when_searched_then_each_identifier_is_found(text, kinds):
    assert [f.kind for f in find_personal(text)] == kinds
    masked = mask_personal(text)
    assert len(masked) == len(text)  # same shape: word times and highlights still line up
    for found in find_personal(text):
        assert text[found.start:found.end] != masked[found.start:found.end]


@pytest.mark.parametrize("text", [
    "朝阳区三里屯路19号楼下的餐馆油烟太大，已经三个月了",
    "一百二十块钱的押金一直不退，说要3个工作日",
    "2026-12-01 下午三点开始停水",
    "十二月一号晚上八点半以后施工噪音",
    "我家住在5号楼2单元1101",  # a flat number is short: left alone
])
def test_given_ordinary_speech_when_masked_then_nothing_changes(text):
    assert mask_personal(text) == text


def test_given_identifiers_when_masked_then_only_what_a_reader_needs_is_left():
    assert mask_personal(f"身份证{ID}") == "身份证**************002X"
    assert mask_personal("电话13800138000") == "电话138****8000"
    assert mask_personal("车牌京A12345") == "车牌京A***45"
    assert mask_personal("幺三八零零幺三八零零零") == "幺三八****八零零零"


def test_given_the_checksums_when_checked_then_wrong_ones_are_no_identity_or_card_numbers():
    assert id_card_valid(ID) and not id_card_valid("110105194912310021")
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert [f.kind for f in find_personal("110105194912310021")] == ["number"]  # still masked, as a number


def test_given_transcript_words_when_masked_then_each_word_keeps_its_time_and_its_part():
    words = [{"word": "电话", "start": 0.1}, {"word": "幺三八", "start": 0.6}, {"word": "零零幺三", "start": 1.2},
             {"word": "八零零零", "start": 1.9}, {"word": "谢谢", "start": 2.6}]
    masked = mask_words(words)
    assert [w["word"] for w in masked] == ["电话", "幺三八", "****", "八零零零", "谢谢"]
    assert [w["start"] for w in masked] == [0.1, 0.6, 1.2, 1.9, 2.6]


def _ticket(**over) -> dict:
    return {"id": 7, "caller_number": "13700000001", "recording_path": None, "confidential": False,
            "transcript": f"我身份证{ID}，手机13800138000，车牌京A12345", "status": "submitted",
            "transcript_words": [{"word": ID, "start": 0.5}], "summary": "来电人手机13800138000反映噪音",
            "place": "朝阳区", **over}


def test_given_viewers_when_the_ticket_is_shown_then_only_the_answering_agent_sees_identifiers_whole():
    agent, boss = {"role": "agent", "agent_id": "8001"}, {"role": "supervisor"}
    mine = ticket_view(_ticket(), agent, call_agent="8001")
    assert ID in mine["transcript"] and "13800138000" in mine["transcript"]
    seen = ticket_view(_ticket(), boss, call_agent="8001")
    assert ID not in seen["transcript"] and "13800138000" not in seen["transcript"] and "京A12345" not in seen["transcript"]
    assert seen["transcript_words"][0]["word"].endswith("002X") and ID not in str(seen["transcript_words"])
    assert seen["personal_data_masked"] is True


def test_given_a_confidential_caller_when_dispatched_then_identifiers_in_the_summary_are_masked_too():
    assert "13800138000" not in str(dispatch_document(_ticket(confidential=True)))
    assert "13800138000" in dispatch_document(_ticket())["summary"]  # the caller agreed to be named


def test_given_a_log_line_with_spoken_identifiers_when_filtered_then_they_are_masked():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "heard: %s", (f"身份证幺幺零幺零五幺九四九幺二三幺零零二X",),
                               None)
    MaskingFilter().filter(record)
    assert "幺幺零幺零五" not in record.getMessage() and record.getMessage().endswith("零零二X")


def test_given_another_callers_ticket_when_suggested_as_similar_then_its_identifiers_are_masked():
    from gateway.desk.suggest_model import PastTicket

    past = PastTicket.from_ticket({"id": 3, "status": "draft", "transcript": "我是13800138000，小区门口垃圾没人清"})
    assert "13800138000" not in past.snippet and "垃圾没人清" in past.snippet


def test_given_log_lines_with_addresses_and_versions_when_masked_then_they_stay_readable():
    from gateway.masking import mask_text

    for line in ("AMI connected to 127.0.0.1:5038 as gateway", "FastAGI listening on 192.168.100.200:4573",
                 "Asterisk 22.10.1 ready", "config version 2026-12-01T08:00:00+08:00"):
        assert mask_text(line) == line
    assert mask_text("caller 13800138000 from 10.0.0.1") == "caller 138****8000 from 10.0.0.1"


def test_given_call_ids_and_uuids_in_the_log_when_masked_then_they_stay_whole():
    from gateway.masking import mask_text

    for line in ("AudioSocket as-1: connected for 86b4636c-9921-44a8-bd12-35a110aee431",
                 "call sim-8713c7ede56f4ccc from 138****8000 to 12345 (primary) started"):
        assert mask_text(line) == line
