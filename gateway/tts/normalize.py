"""Mandarin text as a telephone voice must say it: digits, keys, times and dates in words.

Pure (no I/O, no third-party import); every engine (Kokoro, the espeak-ng fallback) gets
the same text. The rules are those of Chinese telephony announcements, applied in order:

1. Full-width digits and ％＃＊ become ASCII first, so one set of rules sees them.
2. Dates: ``2026-12-01`` and ``2026年12月1日`` → 二零二六年十二月一日 (a year digit by
   digit, with 一 not 幺); month and day as numbers (十二月一日, 五号).
3. Clock times: ``8:30`` → 八点三十分, ``9:00`` → 九点, ``8:05`` → 八点零五分, ``2:00`` →
   两点; ranges ``09:00-18:00`` → 九点到十八点.
4. ``7×24`` → 七乘二十四 (how 12345 says its 7×24 service); ``95%`` → 百分之九十五.
5. Menu keys after 按/拨/输入/选择: ``按1`` → 按一, ``请按 4 键`` → 请按四键, ``按0`` → 按零,
   ``按#号键``/``按#`` → 按井号键, ``按*`` → 按星号键; a lone ``#`` is 井号, ``*`` 星号.
6. Codes: digits spelt out with spaces (``1 2 3 1 9``) digit by digit; digit groups joined by ``-`` (ticket ``20261201-0042``) digit by digit with
   杠 between groups; a landline ``010-12345678`` with a pause after the area code;
   ``1-3`` (short numbers) → 一到三.
7. A quantity of three or more digits before a unit (``200元``, ``500米``) is a number:
   二百元. Any other run of three or more digits is read digit by digit, 1 as 幺 and 0 as
   零: ``12345`` → 幺二三四五, ``110`` → 幺幺零.
8. One or two digits are a quantity: ``3个工作日`` → 三个工作日, ``第1`` → 第一, and 2
   before a measure word is 两 (两个, 两点); a leading zero is read as digits (``05`` → 零五).
"""

from __future__ import annotations

import re

DIGITS = "零一二三四五六七八九"
PHONE_DIGITS = "零幺二三四五六七八九"  # digit-by-digit reading of numbers: 1 is 幺
_FULLWIDTH = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)}, "％": "%", "＃": "#", "＊": "*"})

# Measure words before which 2 is 两 (两个工作日, 两点), and units that make a long number
# a quantity (二百元, not 二零零元).
_LIANG_BEFORE = "个位名件次天周小时分钟种条家辆张份年点项岁斤公里千万百倍遍"
_UNITS = ("元|块|角|米|公里|千米|平方米|平米|公斤|千克|斤|克|吨|毫升|升|人次|人|户|家|次|件|个|天|"
          "分钟|小时|秒|岁|辆|条|份|页|字|名|栋|层|平方|度|万|亿")
_TIME = r"([01]?\d|2[0-4])[:：]([0-5]\d)"


def say_digits(run: str, *, yao: bool = True) -> str:
    """Digit by digit: ``12345`` → 幺二三四五 (``yao=False``: 一二三四五, as in years)."""
    table = PHONE_DIGITS if yao else DIGITS
    return "".join(table[int(c)] for c in run)


def _section(n: int) -> str:
    """0 < n < 10000 as a number: 2024 → 二千零二十四 (十 alone for 10-19 is the caller's job)."""
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, value)
        if d:
            if zero:
                out += "零"
            out += DIGITS[d] + unit
            zero = False
        elif out:
            zero = True
    return out


def say_number(text: str) -> str:
    """An integer or a decimal as a quantity: 24 → 二十四, 105 → 一百零五, 3.5 → 三点五."""
    whole, _, frac = text.partition(".")
    n = int(whole)
    if n == 0:
        out = "零"
    else:
        parts, rest, units = [], n, ["", "万", "亿"]
        i = 0
        while rest:
            rest, sec = divmod(rest, 10000)
            parts.append((sec, units[i]))
            i += 1
        out, zero = "", False
        for sec, unit in reversed(parts):
            if sec == 0:
                zero = bool(out)
                continue
            if out and (zero or sec < 1000):
                out += "零"
            out += _section(sec) + unit
            zero = False
        if out.startswith("一十"):
            out = out[1:]  # 十二, not 一十二
    if frac:
        out += "点" + say_digits(frac, yao=False)
    return out


def _short(run: str, following: str = "") -> str:
    """One or two digits as callers say them; 2 before a measure word is 两."""
    if len(run) == 2 and run[0] == "0":
        return say_digits(run, yao=False)
    if run == "2" and following and following[0] in _LIANG_BEFORE:
        return "两"
    return say_number(run)


def _hour(h: str) -> str:
    return "两" if int(h) == 2 else say_number(str(int(h)))


def _clock(h: str, m: str) -> str:
    minutes = int(m)
    if minutes == 0:
        return _hour(h) + "点"
    if minutes < 10:
        return _hour(h) + "点零" + DIGITS[minutes] + "分"
    return _hour(h) + "点" + say_number(str(minutes)) + "分"


def _key(k: str) -> str:
    return {"#": "井号键", "*": "星号键"}.get(k) or DIGITS[int(k)]


def _keys(m: re.Match) -> str:
    out = m.group("verb")
    for part in re.finditer(r"(?P<sep>[或和、至到,，]?)\s*(?P<k>[0-9#*])(?:\s*(?P<suf>号键|键|号))?", m.group("keys")):
        out += part.group("sep")
        k, suf = part.group("k"), part.group("suf") or ""
        out += _key(k) if k in "#*" else DIGITS[int(k)] + suf
    return out


def _code(m: re.Match) -> str:
    groups = m.group(0).split("-")
    return "杠".join(say_digits(g) for g in groups)


_RULES: list[tuple[re.Pattern, object]] = [
    # 2. dates
    (re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)"),
     lambda m: f"{say_digits(m[1], yao=False)}年{say_number(str(int(m[2])))}月{say_number(str(int(m[3])))}日"),
    (re.compile(r"(?<!\d)(\d{4})\s*年"), lambda m: say_digits(m[1], yao=False) + "年"),
    (re.compile(r"(?<!\d)(\d{1,2})\s*月(?!份?\d)"), lambda m: say_number(str(int(m[1]))) + "月"),
    # 5. keys (before days: 按1号键 is a key, not the 1st)
    (re.compile(r"(?P<verb>按|拨|输入|选择|选)\s*(?P<keys>[0-9#*](?![0-9])(?:\s*(?:号键|键|号))?"
                r"(?:\s*[或和、至到,，]\s*[0-9#*](?![0-9])(?:\s*(?:号键|键|号))?)*)"), _keys),
    (re.compile(r"(?<![0-9])([0-9])\s*(号键|键)"), lambda m: DIGITS[int(m[1])] + m[2]),
    (re.compile(r"[#＃]\s*(?:号键|键|号)?|井号(?!键)"), lambda m: "井号键"),
    (re.compile(r"(?<=[按击])\s*\*\s*(?:号键|键|号)?"), lambda m: "星号键"),
    (re.compile(r"(?<!\d)(\d{1,2})\s*(日|号)"), lambda m: say_number(str(int(m[1]))) + m[2]),
    # 3. clock times and their ranges
    (re.compile(rf"(?<![\d:]){_TIME}\s*[-–—~～至到]\s*{_TIME}(?![\d:])"),
     lambda m: _clock(m[1], m[2]) + "到" + _clock(m[3], m[4])),
    (re.compile(rf"(?<![\d:]){_TIME}(?![\d:])"), lambda m: _clock(m[1], m[2])),
    # 4. 7×24, percentages, decimals
    (re.compile(r"(?<!\d)(\d{1,2})\s*[×xX*]\s*(\d{1,2})(?!\d)"),
     lambda m: say_number(m[1]) + "乘" + say_number(m[2])),
    (re.compile(r"(\d+(?:\.\d+)?)\s*%"), lambda m: "百分之" + say_number(m[1])),
    # 6. codes: digits spelt out with spaces (1 2 3 1 9), landline, ticket numbers, short ranges
    (re.compile(r"(?<![\d ])\d(?: \d){2,}(?![\d])"), lambda m: say_digits(m[0].replace(" ", ""))),
    (re.compile(r"(?<![\d-])(0\d{2,3})-(\d{7,8})(?![\d-])"), lambda m: say_digits(m[1]) + "，" + say_digits(m[2])),
    (re.compile(r"(?<![\d-])\d+(?:-\d+)+(?![\d-])"),
     lambda m: _code(m) if any(len(g) >= 3 for g in m[0].split("-"))
     else "到".join(_short(g) for g in m[0].split("-"))),
    (re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])"), lambda m: say_number(m[0])),
    # 7. long numbers: quantities before a unit, otherwise digit by digit
    (re.compile(rf"(?<!\d)([1-9]\d{{2,7}})(?=\s*(?:{_UNITS}))"), lambda m: say_number(m[1])),
    (re.compile(r"\d{3,}"), lambda m: say_digits(m[0])),
    # 8. short numbers
    (re.compile(r"(?<!\d)(\d{1,2})(?!\d)(.?)"), lambda m: _short(m[1], m[2]) + m[2]),
    (re.compile(r"\*"), lambda m: "星号"),
]


def normalize_zh(text: str) -> str:
    """Telephony Mandarin: no ASCII digit, ``#`` or ``*`` is left for an engine to guess."""
    text = text.translate(_FULLWIDTH)
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text
