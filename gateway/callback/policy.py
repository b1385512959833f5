"""Callback rules, pure: the number to call, whose turn it is, what an attempt's outcome leads to.

Theory of operation
-------------------
A callback is a caller's place in a queue, kept while they hang up. ``requested_at`` is the
moment they would have joined the queue. States (``callbacks.status``) and their moves:

    waiting    -> dialling (claimed by one gateway instance, Originate sent), cancelled
    dialling   -> connected (the citizen answered and went into the queue),
                  waiting (no answer / busy / failed with attempts left: next_at = now + interval),
                  no_answer / failed (the last attempt), waiting (the claiming instance died)
    connected  -> done (an agent took the call), waiting (the citizen hung up in the queue
                  before an agent answered, attempts left) or no_answer
    no_answer, failed, cancelled, done: final

**Keeping the place** (:func:`due`): a callback of queue Q is placed when Q has a
member free (or about to be: the dispatcher runs on a member becoming free, AgentComplete,
and periodically) AND no caller still waiting in Q joined it before the callback's
``requested_at`` (those were ahead of it) AND no other callback of Q requested earlier is
due (first come, first served among callbacks too; one waiting out its retry interval does
not hold the others up). Callers who joined later are behind
it: the callback is placed although they are waiting, and the citizen enters the queue with a
high priority (QUEUE_PRIO) so that they are answered next. One callback per free member at a
time: a dialling callback counts as taking a member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from gateway.errors import GatewayError

STATUSES = ("waiting", "dialling", "connected", "no_answer", "failed", "cancelled", "done")
OPEN_STATUSES = ("waiting", "dialling", "connected")
FINAL_STATUSES = ("no_answer", "failed", "cancelled", "done")
MOVES = {
    "waiting": {"dialling", "cancelled"},
    "dialling": {"connected", "waiting", "no_answer", "failed", "cancelled"},
    "connected": {"done", "waiting", "no_answer", "failed"},
}


class BadCallbackNumber(GatewayError):
    """The number a caller keyed cannot be called back (reason in the message)."""


class BadMove(GatewayError):
    """A callback cannot go from its status to the one asked (e.g. cancel a finished one)."""


def check_move(current: str, new: str) -> None:
    if new not in MOVES.get(current, set()):
        raise BadMove(f"a callback in status {current!r} cannot become {new!r}")


_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"0[1-9][0-9]{1,2}[2-9][0-9]{6,7}")  # area code (010, 0571...) + 7 or 8 digits


def callback_number(text: str | None) -> str:
    """A number the gateway may call back: a mainland mobile (11 digits, 1[3-9]...) or a
    landline with its area code (0 + 2-3 digits + 7-8 digits, 10 to 12 digits in all).

    A caller ID of ``+86``/``86``/``0086`` + mobile is taken as the mobile. Raises
    :class:`BadCallbackNumber` with the reason otherwise (an empty or withheld number too).
    """
    digits = (text or "").strip()
    if not digits:
        raise BadCallbackNumber("no number (withheld or empty)")
    if not re.fullmatch(r"\+?[0-9]+", digits):
        raise BadCallbackNumber("not a number (digits only)")
    digits = digits.lstrip("+")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and _MOBILE.fullmatch(digits[len(prefix):]):
            digits = digits[len(prefix):]
    if _MOBILE.fullmatch(digits):
        return digits
    if _LANDLINE.fullmatch(digits) and 10 <= len(digits) <= 12:
        return digits
    if digits.startswith("1"):
        raise BadCallbackNumber("a mobile number has 11 digits and starts 13-19")
    if digits.startswith("0"):
        raise BadCallbackNumber("a landline needs its area code and a 7 or 8 digit number")
    raise BadCallbackNumber("not a mobile or a landline with area code")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # calls in all, the first included
    interval_s: float = 120.0  # between the end of one attempt and the next

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.interval_s < 0:
            raise ValueError("interval_s must not be negative")

    def after(self, outcome: str, attempts: int, now: datetime) -> tuple[str, datetime | None]:
        """``(status, next_at)`` after attempt number ``attempts`` ended with ``outcome``
        (the outbound outcome: answered, no_answer, busy, failed; or ``abandoned``: the citizen
        answered but hung up before an agent took the call)."""
        if outcome == "answered":
            return "connected", None
        if attempts < self.attempts:
            return "waiting", now + timedelta(seconds=self.interval_s)
        return ("no_answer" if outcome in ("no_answer", "busy", "abandoned") else "failed"), None


@dataclass(frozen=True)
class Pending:
    """An open callback as the place rule sees it."""

    id: int
    queue: str
    requested_at: datetime
    status: str
    next_at: datetime | None = None


def due(callbacks: Iterable[Pending], *, waiting_joined: Iterable[datetime], free_members: int,
        now: datetime) -> list[Pending]:
    """The callbacks of one queue to place now, oldest place first (at most one per free member)."""
    items = sorted(callbacks, key=lambda c: (c.requested_at, c.id))
    joined = list(waiting_joined)
    placed: list[Pending] = []
    busy = sum(c.status in ("dialling", "connected") for c in items)
    for callback in items:
        if free_members - busy - len(placed) < 1:
            break
        if callback.status != "waiting":
            continue
        if callback.next_at is not None and callback.next_at > now:
            continue  # waiting out its retry interval: the next in line may go
        if any(j < callback.requested_at for j in joined):
            break  # a caller ahead of this place still waits, and of every later one
        placed.append(callback)
    return placed
