"""Mandarin recogniser output as a Beijing agent reads it (pure).

Whisper writes Chinese in Traditional characters about as often as in Simplified, spells
numbers in hanzi (一三八零零一三八零零零, 八十八号), and sometimes loops on one token when the
audio is unclear (刷刷刷刷…). :func:`normalise` gives Simplified Chinese (OpenCC ``t2s``),
numbers in digits where people write digits (digit strings of three or more, and numbers
before a unit: 88号, 3点, 2024年, 5楼), no spaces between Han characters, and runs of one
character or word repeated more than three times cut to one.

Counting words stay in hanzi: 一个人, 三天, 两次 read as words, not as figures.
"""

from __future__ import annotations

import re
from functools import lru_cache

_NUM = "零〇一二两三四五六七八九十百千万亿幺"
_DIGITS = {"零": "0", "〇": "0", "幺": "1", "一": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5",
           "六": "6", "七": "7", "八": "8", "九": "9"}
_RUN = re.compile(f"[{_NUM}]+")
# units after which a number is written in digits (addresses, times, dates, money, floors)
_UNITS = ("号", "路", "弄", "巷", "栋", "幢", "楼", "层", "单元", "室", "户", "年", "月", "日", "点", "分",
          "秒", "元", "块", "岁", "公里", "米", "路公交", "次列车", "平米", "平方米", "毫米", "度", "%")
_HAN_SPACE = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])")
_REPEAT = re.compile(r"(.{1,4}?)\1{3,}")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def _number(run: str) -> str | None:
    if all(c in _DIGITS for c in run):  # a digit string: 一三八…, 幺幺零
        return "".join(_DIGITS[c] for c in run)
    import cn2an

    try:
        value = cn2an.cn2an(run.replace("幺", "一"), "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


def numbers_to_digits(text: str) -> str:
    def replace(match: re.Match) -> str:
        run = match.group(0)
        after = text[match.end():match.end() + 4]
        if len(run) >= 3 or (len(run) >= 1 and after.startswith(_UNITS) and not run == "两"):
            return _number(run) or run
        return run

    return _RUN.sub(replace, text)


def collapse_repeats(text: str) -> str:
    return _REPEAT.sub(r"\1", text)


_ASCII_PUNCT = re.compile(r"(?<=[\u3400-\u9fff])([,.?!;:])(?=[\u3400-\u9fff]|$)")
_FULL = {",": "，", ".": "。", "?": "？", "!": "！", ";": "；", ":": "："}


def normalise(text: str) -> str:
    text = to_simplified(text or "").strip()
    text = _ASCII_PUNCT.sub(lambda m: _FULL[m.group(1)], text)
    text = _HAN_SPACE.sub("", text)
    text = collapse_repeats(text)
    return numbers_to_digits(text)


_PUNCT = re.compile(r"[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65,.!?;:'\"()\[\]…—-]+")


def for_scoring(text: str) -> str:
    """What a character error rate compares: normalised, without punctuation or spaces."""
    return _PUNCT.sub("", normalise(text)).upper()


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (both scored as above)."""
    ref, hyp = for_scoring(reference), for_scoring(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (insert, delete, substitute: 1 each)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
        previous = current
    return previous[-1]
