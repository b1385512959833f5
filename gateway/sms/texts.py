"""Who gets a text and what it says (pure)."""

from __future__ import annotations

import re

from gateway.ticketing.ticket_no import spoken_groups

# A mainland China mobile: 11 digits starting 13-19, with an optional +86 / 0086 / 86 prefix.
_MOBILE = re.compile(r"^(?:\+86|0086|86)?(1[3-9]\d{9})$")
PROGRESS_HINT = "查询办理进度请拨打12345按7查询。"


def mobile_number(number: str | None) -> str | None:
    """The 11-digit mobile number in ``number``, or None for a landline, an invalid or no number."""
    match = _MOBILE.match((number or "").strip())
    return match.group(1) if match else None


def _grouped(ticket_no: str) -> str:
    return " ".join(spoken_groups(ticket_no))


def ticket_no_body(ticket_no: str) -> str:
    return f"【12345】您的诉求已受理，工单号：{_grouped(ticket_no)}。{PROGRESS_HINT}"


def renumbered_body(heard: str | None, ticket_no: str) -> str:
    before = f"来电时播报的工单号{_grouped(heard)}已更正为" if heard else "工单号为"
    return f"【12345】您的诉求已受理，{before}：{_grouped(ticket_no)}，请以本短信为准。{PROGRESS_HINT}"
