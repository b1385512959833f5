"""Emergency keywords in recognised text."""

from __future__ import annotations

import pytest

from gateway.asr.guard import find_emergency

ZH = ["着火", "燃气泄漏", "救命", "交通事故"]
KO = ["화재", "불이", "교통사고", "살려", "다쳤"]


@pytest.mark.parametrize("text, expected", [
    ("我家着火了", ["着火"]),
    ("我 家 着 火 了", ["着火"]),
    ("燃 气 泄漏 了 救 命", ["燃气泄漏", "救命"]),
    ("交通 事故", ["交通事故"]),
])
def test_given_chinese_with_spaces_between_characters_then_keywords_are_found(text, expected):
    assert find_emergency(text, ZH) == expected


@pytest.mark.parametrize("text, expected", [
    ("화재 신고 합니다", ["화재"]),
    ("불 이 났 어요", ["불이"]),
    ("교통 사고 가 나서 사람 이 다쳤 어요", ["교통사고", "다쳤"]),
    ("살 려 주세요", ["살려"]),
])
def test_given_korean_morphemes_with_spaces_then_keywords_are_found(text, expected):
    assert find_emergency(text, KO) == expected


@pytest.mark.parametrize("text, keywords", [
    ("我想咨询一下社保", ZH), ("着 急", ZH), ("", ZH),
    ("상담 원 과 통화 하고 싶어요", KO), ("민원 신고", KO), ("불 만 이 있어요", KO),
])
def test_given_ordinary_requests_then_nothing_is_found(text, keywords):
    assert find_emergency(text, keywords) == []


def test_given_latin_keywords_then_case_is_ignored_and_whole_words_only():
    keywords = ["fire", "Gas Leak", "help"]
    assert find_emergency("There is a FIRE and a gas   leak", keywords) == ["fire", "Gas Leak"]
    assert find_emergency("firewall helpdesk", keywords) == []


def test_given_fullwidth_or_decomposed_text_then_it_is_normalised():
    decomposed = "\u1112\u116a\u110c\u1162"  # 화재 as conjoining jamo
    assert find_emergency(decomposed, KO) == ["화재"]
    assert find_emergency("ＦＩＲＥ", ["fire"]) == ["fire"]


def test_given_repeated_or_empty_keywords_then_each_is_reported_once():
    assert find_emergency("救命 救命", ["救命", "救命", "", " "]) == ["救命"]
