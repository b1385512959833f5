"""Telephony normalisation of Mandarin prompt texts (gateway.tts.normalize): pure, no engine."""

from __future__ import annotations

import re

import pytest

from gateway.tts.normalize import normalize_zh, say_digits, say_number

CASES = [
    # numbers callers dial are read digit by digit, 1 as 幺
    ("您好，欢迎致电12345市民服务热线。", "您好，欢迎致电幺二三四五市民服务热线。"),
    ("如遇紧急情况，请挂机拨打110、119、120或122。", "如遇紧急情况，请挂机拨打幺幺零、幺幺九、幺二零或幺二二。"),
    ("火警请拨119，治安报警请拨110。", "火警请拨幺幺九，治安报警请拨幺幺零。"),
    ("价格举报热线12358已并入12345市民服务热线。", "价格举报热线幺二三五八已并入幺二三四五市民服务热线。"),
    ("您的工单号是20261201-0042，请记录。", "您的工单号是二零二六幺二零幺杠零零四二，请记录。"),
    ("请拨打010-12345678咨询。", "请拨打零幺零，幺二三四五六七八咨询。"),
    ("验证码100", "验证码幺零零"),
    ("您拨打的1 2 3 1 9已并入12345市民服务热线。", "您拨打的幺二三幺九已并入幺二三四五市民服务热线。"),
    # menu keys are 一…九, 零, 井号键, 星号键
    ("咨询请按1，建议请按2，举报请按3，投诉请按4，求助请按5，企业服务绿色通道请按6。",
     "咨询请按一，建议请按二，举报请按三，投诉请按四，求助请按五，企业服务绿色通道请按六。"),
    ("如遇紧急情况，请按0。", "如遇紧急情况，请按零。"),
    ("请按 4 键", "请按四键"),
    ("保密请按1号键", "保密请按一号键"),
    ("说完请按#号键。", "说完请按井号键。"),
    ("说完请按#。", "说完请按井号键。"),
    ("说完请按井号键。", "说完请按井号键。"),
    ("返回上一级请按*", "返回上一级请按星号键"),
    ("重听请按*号键", "重听请按星号键"),
    ("满意请按1或2", "满意请按一或二"),
    ("按９", "按九"),
    # times and dates as people say them
    ("工作时间为8:30至17:30。", "工作时间为八点三十分到十七点三十分。"),
    ("服务时间09:00-18:00", "服务时间九点到十八点"),
    ("8:05开始", "八点零五分开始"),
    ("下午2:00", "下午两点"),
    ("12:00", "十二点"),
    ("自2026年12月1日起", "自二零二六年十二月一日起"),
    ("12月1日", "十二月一日"),
    ("2026-12-01", "二零二六年十二月一日"),
    ("2011年", "二零一一年"),
    ("5号线地铁站", "五号线地铁站"),
    ("12345热线提供7×24小时服务", "幺二三四五热线提供七乘二十四小时服务"),
    # quantities
    ("将在3个工作日内答复", "将在三个工作日内答复"),
    ("2个工作日", "两个工作日"),
    ("1-3个工作日", "一到三个工作日"),
    ("第1次", "第一次"),
    ("10个", "十个"),
    ("满意率95%", "满意率百分之九十五"),
    ("上涨12.5%", "上涨百分之十二点五"),
    ("3.5公里", "三点五公里"),
    ("罚款200元", "罚款二百元"),
    ("补贴1050元", "补贴一千零五十元"),
    ("影响30000户", "影响三万户"),
]


@pytest.mark.parametrize("text,spoken", CASES)
def test_given_a_prompt_text_when_normalised_then_it_reads_as_a_beijing_caller_hears_it(text, spoken):
    assert normalize_zh(text) == spoken


@pytest.mark.parametrize("text,_", CASES)
def test_given_any_text_when_normalised_then_no_digit_hash_or_star_is_left(text, _):
    assert not re.search(r"[0-9０-９#＃*＊%％]", normalize_zh(text))


def test_given_a_text_without_numbers_when_normalised_then_it_is_unchanged():
    text = "没有听到您的声音，请在提示音后再说一次。"
    assert normalize_zh(text) == text


def test_given_digits_when_read_one_by_one_then_one_is_yao_except_in_years():
    assert say_digits("12345") == "幺二三四五"
    assert say_digits("2011", yao=False) == "二零一一"


@pytest.mark.parametrize("number,words", [("0", "零"), ("7", "七"), ("10", "十"), ("12", "十二"), ("20", "二十"),
                                          ("105", "一百零五"), ("1000", "一千"), ("1010", "一千零一十"),
                                          ("10001", "一万零一"), ("250000", "二十五万"), ("3.05", "三点零五")])
def test_given_a_quantity_when_said_then_it_is_a_chinese_number(number, words):
    assert say_number(number) == words
