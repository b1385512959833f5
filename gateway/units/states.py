"""One unit's part of a ticket (a dispatch) as a table of transitions, and the ticket's stage
derived from its dispatches (pure).

Theory of operation
-------------------
A dispatch is ``sent`` to its unit, which ``accept``s it (签收) or ``object``s (派单异议: not
ours, with a reason); an accepted dispatch gets notes and one 办结 reply (``handle``). An
objection goes to the hotline: a supervisor ``reject``s it (back to the same unit, ``sent``
again) or ``withdraw``s the dispatch (re-dispatched elsewhere, or the ticket closed). A
forbidden transition raises :class:`ForbiddenTransition` (HTTP 409), naming the state it was in.

The ticket's ``handling`` follows from its dispatches that are not withdrawn:
any objected -> ``review`` (review_reason ``objection``); all handled -> ``handled``; all
accepted or handled -> ``accepted``; else ``dispatched``. ``closed`` and a review for another
reason (the 回访's ``unsolved``/``unsatisfied``, or ``no_unit``) are set by whoever decides them,
never derived.
"""

from __future__ import annotations

from gateway.errors import GatewayError

ACTIVE = ("sent", "accepted")  # the unit is working on it (deadline running)

TRANSITIONS: dict[tuple[str, str], str] = {
    ("sent", "accept"): "accepted",
    ("sent", "object"): "objected",
    ("accepted", "object"): "objected",
    ("sent", "note"): "sent",
    ("accepted", "note"): "accepted",
    ("accepted", "handle"): "handled",
    ("objected", "reject"): "sent",
    ("objected", "withdraw"): "withdrawn",
    ("sent", "withdraw"): "withdrawn",
    ("accepted", "withdraw"): "withdrawn",
}

WHY = {  # (state, action) refused: what the unit is told
    ("accepted", "accept"): "已签收 / already accepted",
    ("handled", "handle"): "已办结，不能重复办结 / already replied 办结",
    ("sent", "handle"): "请先签收 / accept the ticket before replying 办结",
    ("objected", "accept"): "已提出派单异议，等待热线审核 / objected; the hotline is reviewing it",
    ("objected", "note"): "已提出派单异议，等待热线审核 / objected; the hotline is reviewing it",
    ("objected", "handle"): "已提出派单异议，等待热线审核 / objected; the hotline is reviewing it",
    ("objected", "object"): "已提出派单异议 / already objected",
    ("withdrawn", "accept"): "该派单已撤回 / this dispatch was withdrawn",
}


class ForbiddenTransition(GatewayError):
    status_code = 409
    error_id = "conflict"


def transition(state: str, action: str) -> str:
    """The state after ``action``; raises :class:`ForbiddenTransition` if not allowed from ``state``."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        why = WHY.get((state, action))
        if why is None:
            word = {"withdrawn": "已撤回 / withdrawn", "handled": "已办结 / handled"}.get(state, state)
            why = f"当前状态（{word}）不能{ZH.get(action, action)} / cannot {action} a dispatch that is {state}"
        raise ForbiddenTransition(why, details={"status": state, "action": action}) from None


ZH = {"accept": "签收", "object": "提出异议", "note": "添加进展", "handle": "办结", "reject": "驳回异议",
      "withdraw": "撤回"}


def ticket_stage(statuses: list[str]) -> tuple[str, str | None]:
    """``(handling, review_reason)`` of a ticket whose dispatches are in ``statuses``."""
    live = [s for s in statuses if s != "withdrawn"]
    if not live:
        return "review", "no_unit"
    if "objected" in live:
        return "review", "objection"
    if all(s == "handled" for s in live):
        return "handled", None
    if all(s in ("accepted", "handled") for s in live):
        return "accepted", None
    return "dispatched", None
