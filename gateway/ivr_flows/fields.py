"""Reading the fields of a YAML source: each mistake becomes a problem with its line and field.

:class:`Reader` is shared by every configuration file's checks (flows, ``hotlines.yaml``,
the desk's catalogue and knowledge base): a wrong value is recorded on the source as a
:class:`gateway.ivr_flows.yamlsrc.ConfigProblem` and ``None`` returned, so one pass
reports every problem of a file.
"""

from __future__ import annotations

import difflib
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.ivr_flows import yamlsrc

ID = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")  # flow, node and broadcast ids
# Control characters (NUL...) are refused in every text; names and labels are written into
# Asterisk's config files (``; <line name>``), so they must also be a single line.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\n\r\x85\u2028\u2029]")


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut short: a message must not echo a 100 KB value back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class Reader:
    """Field access on one source that records problems instead of raising."""

    def __init__(self, src: yamlsrc.Source) -> None:
        self.src = src

    def mapping(self, value: Any, path: tuple, *, required=(), optional=()) -> dict | None:
        if not isinstance(value, dict):
            self.src.problem(path, f"expected a mapping, got {kind_of(value)}")
            return None
        allowed = set(required) | set(optional)
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                more = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(sorted(allowed))})"
                self.src.problem(path + (key,), f"unknown key{more}")
        for key in required:
            if key not in value:
                self.src.problem(path, f"missing required key {key!r}")
        return value

    def text(self, value: Any, path: tuple, *, pattern: re.Pattern | None = None, what: str = "",
             one_line: bool = False) -> str | None:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            self.src.problem(path, f"expected text, got {kind_of(value)}")
            return None
        text = str(value).strip()
        if not text:
            self.src.problem(path, "must not be empty")
            return None
        if _CONTROL.search(text):
            self.src.problem(path, "contains control characters (such as NUL) / 含有控制字符")
            return None
        if one_line and _LINE_BREAK.search(text):
            self.src.problem(path, "must be a single line / 必须为单行文字")
            return None
        if pattern and not pattern.match(text):
            self.src.problem(path, f"{show(text)} is not a valid {what or 'value'}")
            return None
        return text

    def zone(self, value: Any, path: tuple) -> str | None:
        """An IANA time zone name such as Asia/Shanghai."""
        name = self.text(value, path, pattern=re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"),
                         what="time zone (e.g. Asia/Shanghai)")
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.src.problem(path, f"{show(name)} is not a known time zone (e.g. Asia/Shanghai)")
            return None
        return name

    def number(self, value: Any, path: tuple, *, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.src.problem(path, f"expected a number, got {kind_of(value)}")
            return None
        if not low <= value <= high:
            self.src.problem(path, f"{show(value)} is out of range {low}..{high}")
            return None
        return value

    def choice(self, value: Any, path: tuple, choices: tuple) -> str | None:
        text = self.text(value, path)
        if text is None:
            return None
        if text not in choices:
            hint = difflib.get_close_matches(text, choices, n=1)
            more = f"; did you mean {hint[0]!r}?" if hint else ""
            self.src.problem(path, f"{show(text)} is not one of {', '.join(choices)}{more}")
            return None
        return text

    def ref(self, value: Any, path: tuple, known: dict, what: str) -> str | None:
        text = self.text(value, path)
        if text is not None and text not in known:
            self.src.problem(path, f"unknown {what} {show(text)}")
            return None
        return text


def kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), type(value).__name__)
