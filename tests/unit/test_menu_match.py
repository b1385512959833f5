"""Mandarin menu words matched tolerantly in toneless pinyin (pure)."""

from __future__ import annotations

import pytest

from gateway.asr.menu_match import MenuMatcher, best_alignment, syllables

MENU = MenuMatcher.of({"1": ["咨询"], "2": ["建议"], "3": ["举报"], "4": ["投诉"], "5": ["求助"],
                       "6": ["企业服务", "绿色通道"], "9": ["한국어", "韩语"]})


def test_syllables_are_toneless_pinyin_of_the_han_characters_only():
    assert syllables("我要投诉!") == ("wo", "yao", "tou", "su")
    assert syllables("한국어") == () and syllables("") == ()


@pytest.mark.parametrize("said, word", [
    ("投诉", "投诉"), ("我要投诉", "投诉"), ("偷诉了", "投诉"), ("头宿", "投诉"), ("辞询", "咨询"), ("资讯", "咨询"),
    ("咨询一下", "咨询"), ("企业的服务", "企业服务"), ("绿色通道", "绿色通道"), ("居报", "举报"), ("求住", "求助"),
    ("韩语", "韩语"), ("陶述", "投诉"), ("桃树", "投诉"),
])
def test_given_a_recognised_menu_word_or_a_near_homophone_then_the_match_is_sure(said, word):
    match = MENU.match(said)
    assert match.word == word and match.sure, match


@pytest.mark.parametrize("said", ["推荐", "今天天气很好", "豆腐"])
def test_given_a_word_that_only_resembles_an_option_then_it_is_not_sure(said):
    match = MENU.match(said)
    assert not match.sure, match  # the flow asks again / the caller presses a key


@pytest.mark.parametrize("said", ["吃饭", "", "hello"])
def test_given_unrelated_speech_then_no_option(said):
    match = MENU.match(said)
    assert match.word is None and not match.sure and not match.unsure


def test_given_two_options_that_score_alike_then_it_is_not_sure():
    menu = MenuMatcher.of([["投诉"], ["投宿"]])
    assert not menu.match("投诉投宿").sure


def test_alignment_is_free_at_both_ends_and_costs_partial_syllables():
    assert best_alignment(("tou", "su"), ("wo", "yao", "tou", "su", "le")) == 0
    assert 0 < best_alignment(("tou", "su"), ("tou", "shu")) < 0.5
    assert best_alignment((), ("a",)) == float("inf")


GUARD = ["着火", "火灾", "煤气", "燃气泄漏", "漏气", "受伤", "流血", "打人", "杀人", "抢劫", "车祸", "交通事故", "救命", "화재"]


@pytest.mark.parametrize("said, words", [
    ("找火了。", ["着火"]), ("着火了", ["着火"]), ("救名啊", ["救命"]), ("有人在打人", ["打人"]),
])
def test_given_a_menu_answer_that_sounds_like_an_emergency_word_then_the_guard_hears_it(said, words):
    from gateway.asr.menu_match import sounds_like

    assert sounds_like(said, GUARD) == words


@pytest.mark.parametrize("said", ["投诉", "我要咨询", "企业服务", "查询进度", "韩语", "", "화재 아님"])
def test_given_an_option_word_then_no_emergency_word_sounds_in_it(said):
    from gateway.asr.menu_match import sounds_like

    assert sounds_like(said, [w for w in GUARD if w != "화재"]) == []
