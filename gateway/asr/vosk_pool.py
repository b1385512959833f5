"""Warm Vosk recognisers kept for the next stream of the same language and grammar.

Why: a Vosk model with a lookahead graph (``HCLr.fst`` + ``Gr.fst``, as the small models
ship) composes the decoding graph lazily, in a cache that belongs to the recogniser. A
fresh recogniser pays for that composition while it decodes its first seconds: measured
with the small Korean model on this project's 2-core VM, its fourth 160 ms chunk takes
0.7-0.9 s (every time, whatever the audio), and the whole first 15 s cost 0.38 CPU s per
audio second against 0.12-0.17 for the same recogniser reused after its final result
(bench/README.md, issue 15). That one stall puts a caller's results 0.7 s behind.

So a worker keeps the recognisers of ended streams, made clean, per (language, sample rate,
grammar), and hands them to the next stream with the same key. The pool is bounded: at
most ``per_key`` idle recognisers per key and ``total`` in all (the least recently used
key's go first), since each holds its part of the composed graph in memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Hashable


class RecognizerPool:
    """``take(key)`` a warm recogniser or a new one from ``make(key)``; ``give(key, rec)`` it back."""

    def __init__(self, make: Callable[[Hashable], Any], *, per_key: int = 6, total: int = 16) -> None:
        self.make = make
        self.per_key, self.total = per_key, total
        self.idle: OrderedDict[Hashable, list] = OrderedDict()
        self.reused = 0
        self.made = 0

    def __len__(self) -> int:
        return sum(len(recs) for recs in self.idle.values())

    def take(self, key: Hashable):
        recs = self.idle.get(key)
        if recs:
            rec = recs.pop()
            if not recs:
                del self.idle[key]
            self.reused += 1
            return rec
        self.made += 1
        return self.make(key)

    def give(self, key: Hashable, rec) -> None:
        """Keep ``rec`` (already made clean by the caller: see ``Worker._release``) for
        ``key``, unless the pool is full (then it is dropped)."""
        if self.per_key <= 0 or self.total <= 0:
            return
        recs = self.idle.setdefault(key, [])
        self.idle.move_to_end(key)
        if len(recs) >= self.per_key:
            return
        recs.append(rec)
        while len(self) > self.total:
            oldest = next(iter(self.idle))
            self.idle[oldest].pop(0)
            if not self.idle[oldest]:
                del self.idle[oldest]
