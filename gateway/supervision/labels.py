"""Label values for the operators' Prometheus metrics, kept few and impersonal.

A label value is a configured name (a line's number, a queue, a menu node, an AGI verb, a
language): never a caller's number, a ticket number or free text. :class:`Bounded` makes
that hold even when something unexpected arrives: a value that does not look like a name,
one the configuration does not know (``known``), or one past the first ``limit`` distinct
values is counted as ``other``, so a hostile or misconfigured peer cannot grow the series
without bound nor put a number into a label.
"""

from __future__ import annotations

import re
from typing import Callable, Container

OTHER = "other"
NAME = re.compile(r"[A-Za-z][A-Za-z0-9 _.:/-]{0,47}")  # a queue, node, verb or language name
LINE = re.compile(r"[0-9]{3,20}")  # a configured line's number (12345, 96156): never a caller's


class Bounded:
    """The first ``limit`` distinct acceptable values as themselves, anything else as ``other``."""

    def __init__(self, pattern: re.Pattern = NAME, *, limit: int = 64,
                 known: Callable[[], Container[str] | None] | None = None) -> None:
        self.pattern = pattern
        self.limit = limit
        self.known = known  # the configuration's names now (None: any name of the pattern)
        self._seen: set[str] = set()

    def __call__(self, raw: object) -> str:
        value = str(raw or "")
        if value in self._seen:
            return value
        if not self.pattern.fullmatch(value) or len(self._seen) >= self.limit:
            return OTHER
        known = self.known() if self.known is not None else None
        if known is not None and value not in known:
            return OTHER
        self._seen.add(value)
        return value
