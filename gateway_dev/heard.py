"""What a simulated caller heard, as a listener would judge it (tests and bench/ only).

``heard_digits`` keeps the digits of a Mandarin transcript (Chinese numerals as said digit by
digit: 幺/一 → 1, 两 → 2...); ``number_cer`` is the character error rate of a number against
the stretch of heard digits that matches it best (the recording holds other prompts' digits
too: 12345, 110...); ``occurrences`` counts the exact readings of a number.
"""

from __future__ import annotations

from gateway.asr.zh_text import edit_distance, to_simplified

_DIGIT = {"零": "0", "〇": "0", "○": "0", "洞": "0", "幺": "1", "一": "1", "壹": "1", "二": "2", "两": "2",
          "三": "3", "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}


def heard_digits(text: str) -> str:
    out = []
    for ch in to_simplified(text or ""):
        if ch.isascii() and ch.isdigit():
            out.append(ch)
        elif ch in _DIGIT:
            out.append(_DIGIT[ch])
        elif ch.isdigit():  # full-width
            out.append(str(int(ch)))
    return "".join(out)


def _best_window(number: str, digits: str) -> tuple[int, int, int]:
    """(distance, start, end) of the window of ``digits`` (±2 long) closest to ``number``."""
    n = len(number)
    best = (n, 0, 0)
    for width in range(max(1, n - 2), n + 3):
        for start in range(0, max(1, len(digits) - width + 1)):
            window = digits[start:start + width]
            if "x" in window:
                continue
            best = min(best, (edit_distance(number, window), start, start + width))
    return best


def number_cer(number: str, digits: str) -> float:
    """Edit distance of ``number`` to its best-matching window of ``digits`` (±2 long), over its length."""
    return _best_window(number, digits)[0] / len(number) if digits else 1.0


def readings_cer(number: str, digits: str, times: int) -> list[float]:
    """The CER of each of ``times`` separate readings of ``number`` in ``digits``, best first."""
    out = []
    for _ in range(times):
        distance, start, end = _best_window(number, digits)
        out.append(distance / len(number))
        digits = digits[:start] + "x" * (end - start) + digits[end:]
    return out


def occurrences(number: str, digits: str) -> int:
    return sum(1 for i in range(len(digits) - len(number) + 1) if digits[i:i + len(number)] == number)
