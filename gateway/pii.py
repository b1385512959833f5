"""Personal data in what callers say: find it and mask it (pure, no I/O).

Theory of operation
-------------------
Callers read out identity card numbers, phone numbers, car plates and bank card
numbers, and a recogniser writes them as ASCII digits (``13800138000``), as
Chinese digits read one by one (``幺三八零零…``, ``一三八 零零一三…``) or mixed,
often with spaces or dashes between groups. Detection therefore works on *digit
runs*: maximal stretches of digit-like characters (0-9, 〇零一二三四五六七八九幺两,
full-width digits, and X at the end of an identity number) that may be split by
spaces, dashes or dots. Each run is read as ASCII digits and classified:

* ``id_card``: 18 characters, GB 11643-1999 check digit right (or 15 digits, the
  first-generation card, with a plausible birth date);
* ``bank_card``: 16 to 19 digits passing the Luhn check;
* ``mobile``: 11 digits starting 13-19 (with +86 / 86 in front too);
* ``landline``: an area code (0 + 2-3 digits) and 7-8 digits, or 7-8 digits alone;
* ``number``: any other run of 6 digits or more (order numbers, addresses, half a
  phone number): masked too, since nothing tells it is harmless.

Plates (``京A12345``, ``京A·D12345``, new-energy plates with 6 characters) are
found by their own pattern. Masking keeps the shape a reader needs (the kind, the
last 4 digits of a phone or card, the province of a plate) and nothing that
identifies the person. Quantities read as numbers (``三百二十``, ``5个``) are not
digit runs and stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGITS = {**{c: c for c in "0123456789"}, **{chr(0xFF10 + i): str(i) for i in range(10)},
           "〇": "0", "零": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5",
           "六": "6", "七": "7", "八": "8", "九": "9"}
_JOINERS = " -－—·、　"  # not "." : addresses, versions and decimals are no identifiers
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"
_PLATE = re.compile(rf"([{_PROVINCES}])\s?([A-Z])\s?[·•.\s]?\s?((?:[A-Z0-9]\s?){{4,5}}[A-Z0-9挂学警港澳])")
_DATE = re.compile(r"[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}")  # a date is not a phone number
_MIN_RUN = 6
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Found:
    kind: str  # id_card, bank_card, mobile, landline, plate, number
    start: int  # span in the text it was found in
    end: int
    digits: str  # the run as ASCII (plates: the plate without spaces)


def id_card_valid(value: str) -> bool:
    """GB 11643-1999: 17 digits and a check character (0-9 or X)."""
    if not re.fullmatch(r"[0-9]{17}[0-9X]", value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == value[17] and 1 <= int(value[10:12]) <= 12 and 1 <= int(value[12:14]) <= 31


def luhn_valid(value: str) -> bool:
    if not value.isascii() or not value.isdigit():
        return False
    total = 0
    for i, d in enumerate(reversed(value)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _runs(text: str):
    """``(start, end, ascii_digits)`` of each digit run in ``text`` (joiners inside are allowed)."""
    i, n = 0, len(text)
    while i < n:
        if text[i] not in _DIGITS:
            i += 1
            continue
        start, digits, end = i, [], i
        while i < n:
            ch = text[i]
            if ch in _DIGITS:
                digits.append(_DIGITS[ch])
                i += 1
                end = i
            elif ch in "Xx" and len(digits) == 17:
                digits.append("X")
                i += 1
                end = i
                break
            elif ch in _JOINERS and i + 1 < n and (text[i + 1] in _DIGITS or text[i + 1] in _JOINERS):
                i += 1
            else:
                break
        yield start, end, "".join(digits)
        i = max(i, end)


def _kind(digits: str) -> str | None:
    if len(digits) == 18 and id_card_valid(digits):
        return "id_card"
    if len(digits) == 15 and 1 <= int(digits[8:10]) <= 12 and 1 <= int(digits[10:12]) <= 31:
        return "id_card"
    plain = digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
    if len(plain) == 11 and re.fullmatch(r"1[3-9][0-9]{9}", plain):
        return "mobile"
    if 16 <= len(digits) <= 19 and luhn_valid(digits):
        return "bank_card"
    if re.fullmatch(r"0[1-9][0-9]{1,2}[2-9][0-9]{6,7}", digits) or re.fullmatch(r"[2-9][0-9]{6,7}", digits):
        return "landline"
    if len(digits) >= _MIN_RUN:
        return "number"
    return None


def find_personal(text: str) -> list[Found]:
    """Every identifier in ``text``, in order (plates first where they overlap a digit run)."""
    if not text:
        return []
    found = [Found("plate", m.start(), m.end(), re.sub(r"[\s·•.]", "", m.group(0))) for m in _PLATE.finditer(text)]
    taken = [(f.start, f.end) for f in found]
    for start, end, digits in _runs(text):
        if any(s < end and start < e for s, e in taken) or _DATE.fullmatch(text[start:end]):
            continue
        if (start > 0 and _LATIN.match(text[start - 1])) or (end < len(text) and _LATIN.match(text[end])):
            continue  # part of a token such as a call id or a UUID (86b4636c-1234-44a8), not spoken digits
        kind = _kind(digits)
        if kind is not None:
            found.append(Found(kind, start, end, digits))
    return sorted(found, key=lambda f: f.start)


_KEEP = {"plate": (2, 2), "mobile": (3, 4), "bank_card": (0, 4), "id_card": (0, 4), "landline": (0, 4),
         "number": (0, 0)}


def _masked(found: Found, original: str) -> str:
    """``original`` with its significant characters masked but the first/last few of its kind
    (same length: spacing and script are the caller's own)."""
    head, tail = _KEEP[found.kind]
    significant = [i for i, ch in enumerate(original) if ch in _DIGITS or ch.isalpha()]
    keep = set(significant[:head]) | set(significant[len(significant) - tail:] if tail else [])
    return "".join(ch if (i in keep or i not in significant) else "*" for i, ch in enumerate(original))


def mask_personal(text: str) -> str:
    """``text`` with every identifier masked (the kind stays readable, the person does not)."""
    if not text:
        return text
    out, last = [], 0
    for found in find_personal(text):
        out.append(text[last:found.start])
        out.append(_masked(found, text[found.start:found.end]))
        last = found.end
    out.append(text[last:])
    return "".join(out)


def mask_words(words: list[dict]) -> list[dict]:
    """Transcript words (``{"word": ..., "start": ..., ...}``) with the identifiers masked.

    Detection runs on the words joined with spaces (an identifier is often split over
    several words); each word then gets its own part of the masked text back.
    """
    texts = [str(w.get("word", "")) for w in words]
    joined = " ".join(texts)
    masked = mask_personal(joined)
    if masked == joined:
        return [dict(w) for w in words]
    out, pos = [], 0
    for word, text in zip(words, texts):
        out.append({**word, "word": masked[pos:pos + len(text)]})
        pos += len(text) + 1
    return out
