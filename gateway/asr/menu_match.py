"""Which menu option a Mandarin caller said, tolerantly (pure).

A free-text recogniser (Whisper) has no grammar: a caller saying 投诉 may come out as 投诉,
投诉了, 我要投诉, 头宿 or 偷诉. So the utterance and every option word are compared in toneless
pinyin (``pypinyin``): each option word is aligned against every stretch of the utterance
with an edit distance over syllables, where two syllables cost by initial and final, with
the usual confusions cheap (tou/tou 0, su/shu 0.1, tao/tou 0.15, zi/tui 0.7). An option's score is ``1 - cost / syllables``;
the exact characters anywhere in the utterance score 1.

:meth:`MenuMatcher.match` is *sure* when the best option scores at least ``sure`` and beats
every other option by ``margin``; a best score between ``maybe`` and ``sure`` is a guess the
flow should confirm (or hand over to the keypad); below ``maybe`` nothing was chosen. Single
two-syllable words are where recognisers fail most (咨询 → 推荐), which is why the margin
and the confirm band exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Mapping

from gateway.asr.zh_text import edit_distance

_HAN = re.compile(r"[\u3400-\u9fff]")


@lru_cache(maxsize=4096)
def syllables(text: str) -> tuple[str, ...]:
    """Toneless pinyin of the Han characters of ``text`` (other characters dropped)."""
    from pypinyin import Style, lazy_pinyin

    han = "".join(_HAN.findall(text or ""))
    return tuple(lazy_pinyin(han, style=Style.NORMAL, errors="ignore")) if han else ()


def preload() -> None:
    """Import pypinyin and its dictionaries now (blocking: call it in a thread at start). Loaded
    lazily by the first caller who says a menu choice, they cost the event loop a second or more
    and the process ~50 MB in one step under load (tracemalloc: pypinyin/phrases_dict.py,
    pinyin_dict.py; bench/README.md, 2026-12-02)."""
    syllables("咨询")


_INITIAL_GROUPS = ({"z", "zh"}, {"c", "ch"}, {"s", "sh"}, {"l", "n"}, {"f", "h"}, {"j", "q", "x"}, {"r", "l"})
_FINAL_GROUPS = ({"ao", "ou"}, {"an", "ang"}, {"en", "eng"}, {"in", "ing"}, {"ian", "iang"}, {"uan", "uang"},
                 {"u", "v"}, {"o", "uo"}, {"e", "ei"}, {"ui", "uei"}, {"un", "uen"}, {"iu", "iou"})
_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z",
             "c", "s", "y", "w")


def _split(syllable: str) -> tuple[str, str]:
    for initial in _INITIALS:
        if syllable.startswith(initial) and len(syllable) > len(initial):
            return initial, syllable[len(initial):]
    return "", syllable


def _part(a: str, b: str, groups) -> float:
    if a == b:
        return 0.0
    if any(a in g and b in g for g in groups):
        return 0.25
    return _letters(a, b) if a and b else 1.0


def syllable_cost(a: str, b: str) -> float:
    """0 (same) .. 1: initials weigh 0.4, finals 0.6; the confusions of telephone Mandarin
    (z/zh, s/sh, l/n, j/q/x, ao/ou, an/ang, en/eng, in/ing...) cost a quarter."""
    if a == b:
        return 0.0
    (ia, fa), (ib, fb) = _split(a), _split(b)
    return 0.4 * _part(ia, ib, _INITIAL_GROUPS) + 0.6 * _part(fa, fb, _FINAL_GROUPS)


def _letters(a: str, b: str) -> float:
    if a == b:
        return 0.0
    return edit_distance(a, b) / max(len(a), len(b))


def best_alignment(word: tuple[str, ...], said: tuple[str, ...]) -> float:
    """Least syllable edit cost of ``word`` against any stretch of ``said`` (free start and end)."""
    if not word:
        return float("inf")
    previous = [0.0] * (len(said) + 1)  # free start anywhere in said
    for i, w in enumerate(word, 1):
        current = [float(i)] + [0.0] * len(said)
        for j, s in enumerate(said, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + syllable_cost(w, s))
        previous = current
    return min(previous)  # free end


@dataclass(frozen=True)
class Match:
    word: str | None  # the option word matched best (None: nothing close)
    score: float  # 0..1
    sure: bool
    runner_up: float = 0.0

    @property
    def unsure(self) -> bool:
        return self.word is not None and not self.sure


@dataclass(frozen=True)
class MenuMatcher:
    """Matches utterances against option words; ``groups`` are words that mean the same option."""

    groups: tuple[tuple[str, ...], ...]
    sure: float = 0.65
    maybe: float = 0.5
    margin: float = 0.15

    @classmethod
    def of(cls, options: Mapping[str, Iterable[str]] | Iterable[Iterable[str]], **kw) -> "MenuMatcher":
        values = options.values() if isinstance(options, Mapping) else options
        return cls(tuple(tuple(w for w in words if w) for words in values), **kw)

    def score(self, text: str, word: str) -> float:
        squeezed = "".join((text or "").split())
        if word and word in squeezed:
            return 1.0
        w, s = syllables(word), syllables(squeezed)
        if not w or not s:
            return 0.0
        return max(0.0, 1.0 - best_alignment(w, s) / len(w))

    def match(self, text: str) -> Match:
        scored = []  # (score, word) best per group
        for group in self.groups:
            best = max(((self.score(text, word), word) for word in group), default=(0.0, None))
            scored.append(best)
        scored.sort(key=lambda item: item[0], reverse=True)
        if not scored or scored[0][1] is None or scored[0][0] < self.maybe:
            return Match(None, scored[0][0] if scored else 0.0, False)
        top, word = scored[0]
        second = scored[1][0] if len(scored) > 1 else 0.0
        return Match(word, top, top >= self.sure and top - second >= self.margin, second)


def sounds_like(text: str, words: Iterable[str], *, at_least: float = 0.9) -> list[str]:
    """The Chinese ``words`` that ``text`` holds in toneless pinyin (score >= ``at_least``).

    For the emergency guard at a menu: a recogniser writes a short 着火了 as 找火了 (same
    syllables, another tone), which no substring finds. Menus only: the emergency node asks
    the caller to confirm with a key, so a homophone costs one key press, a miss a fire."""
    matcher = MenuMatcher(())
    return [w for w in dict.fromkeys(words) if syllables(w) and matcher.score(text, w) >= at_least]
