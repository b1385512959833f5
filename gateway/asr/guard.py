"""Emergency keywords in recognised text.

Recognisers put spaces between Chinese characters or Korean morphemes where a person
would not ("着 火 了", "불 이 야"), so keywords in Chinese, Japanese or Korean script are
matched as substrings with all spaces removed from both sides. Keywords in other scripts
(Latin...) are matched as whole words, ignoring case and spacing. Text is NFKC-normalised
first (full-width letters, decomposed Hangul).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

_CJK = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def find_emergency(text: str, keywords: Iterable[str]) -> list[str]:
    """The keywords (as given, in their order, once each) that occur in ``text``."""
    said = _norm(text or "")
    squeezed = "".join(said.split())
    spaced = " " + " ".join(re.findall(r"\w+", said)) + " "
    found: list[str] = []
    for keyword in keywords:
        word = _norm(keyword or "").strip()
        if not word or keyword in found:
            continue
        if _CJK.search(word):
            hit = "".join(word.split()) in squeezed
        else:
            tokens = re.findall(r"\w+", word)
            hit = bool(tokens) and " " + " ".join(tokens) + " " in spaced
        if hit:
            found.append(keyword)
    return found
