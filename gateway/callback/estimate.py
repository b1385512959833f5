"""How long a caller joining a queue now would wait (pure: AMI QueueStatus messages in, seconds out).

Theory of operation
-------------------
``QueueStatus`` answers with one ``QueueParams`` per queue (calls waiting, the average hold
time and talk time Asterisk keeps over the queue's completed calls), one ``QueueMember`` per
member (device status, paused, in a call) and one ``QueueEntry`` per waiting caller (how long
it has waited). :func:`parse_queue_status` turns them into a :class:`QueueSnapshot` per queue
(several Asterisk nodes: their snapshots are merged with :func:`merge`).

:func:`expected_wait` is the estimate. The callers ahead of a newcomer are those waiting plus
the callbacks of that queue still keeping a place. A free member takes one each at once; the
others are served as the staffed members finish calls, one average handling time (Asterisk's
talk time, or the configured default while the queue has no history) per ``staffed`` callers:

    ahead < free                -> 0
    staffed == 0                -> None (unknown: nobody to answer; treated as "long")
    otherwise                   -> ceil((ahead - free + 1) / staffed) * talk

Asterisk's own average hold time is a lagging figure (it only moves when a caller is answered);
the estimate takes the larger of the two once callers are waiting, so a queue whose callers
have all waited long is not called quick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

# ast_device_state: 1 NOT_INUSE is the only state in which a member can take a call now.
DEVICE_NOT_INUSE = "1"
DEVICE_UNAVAILABLE = {"4", "5"}  # invalid, unavailable: not staffed at all


@dataclass(frozen=True)
class Member:
    name: str
    status: str  # ast_device_state as a number in text
    paused: bool
    in_call: bool = False

    @property
    def staffed(self) -> bool:
        return not self.paused and self.status not in DEVICE_UNAVAILABLE

    @property
    def free(self) -> bool:
        return self.staffed and self.status == DEVICE_NOT_INUSE and not self.in_call


@dataclass(frozen=True)
class Waiting:
    uniqueid: str
    wait_s: float  # how long this caller has waited in the queue


@dataclass(frozen=True)
class QueueSnapshot:
    queue: str
    members: tuple = ()  # Member
    waiting: tuple = ()  # Waiting, in queue order
    holdtime_s: float = 0.0  # Asterisk's average hold time
    talktime_s: float = 0.0  # Asterisk's average talk time (0: no history yet)

    @property
    def staffed(self) -> int:
        return sum(m.staffed for m in self.members)

    @property
    def free(self) -> int:
        return sum(m.free for m in self.members)


def _num(value, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def parse_queue_status(messages: Iterable[Mapping[str, str]]) -> dict[str, QueueSnapshot]:
    """``QueueStatus`` events (any order) -> queue name -> snapshot."""
    params: dict[str, dict] = {}
    members: dict[str, list] = {}
    waiting: dict[str, list] = {}
    for raw in messages:
        h = {str(k).lower(): str(v) for k, v in dict(raw).items()}
        queue = h.get("queue", "")
        event = h.get("event", "")
        if not queue:
            continue
        if event == "QueueParams":
            params[queue] = h
        elif event == "QueueMember":
            members.setdefault(queue, []).append(Member(
                name=h.get("name") or h.get("membername") or h.get("location", ""),
                status=h.get("status", ""), paused=h.get("paused", "0") == "1",
                in_call=h.get("incall", "0") == "1"))
        elif event == "QueueEntry":
            waiting.setdefault(queue, []).append((int(_num(h.get("position"), 0)),
                                                  Waiting(h.get("uniqueid", ""), _num(h.get("wait")))))
    out = {}
    for queue in set(params) | set(members) | set(waiting):
        p = params.get(queue, {})
        out[queue] = QueueSnapshot(
            queue=queue, members=tuple(members.get(queue, ())),
            waiting=tuple(w for _, w in sorted(waiting.get(queue, []), key=lambda item: item[0])),
            holdtime_s=_num(p.get("holdtime")), talktime_s=_num(p.get("talktime")))
    return out


def merge(snapshots: Iterable[QueueSnapshot]) -> QueueSnapshot | None:
    """One queue's snapshots from several nodes as one (members and callers added up)."""
    items = list(snapshots)
    if not items:
        return None
    waiting = sorted((w for s in items for w in s.waiting), key=lambda w: -w.wait_s)
    return QueueSnapshot(
        queue=items[0].queue, members=tuple(m for s in items for m in s.members), waiting=tuple(waiting),
        holdtime_s=max(s.holdtime_s for s in items), talktime_s=max(s.talktime_s for s in items))


@dataclass(frozen=True)
class Estimate:
    seconds: float | None  # None: nobody staffs the queue, the wait cannot be told
    ahead: int
    free: int
    staffed: int

    def over(self, limit_s: float) -> bool:
        return self.seconds is None or self.seconds > limit_s


def expected_wait(snapshot: QueueSnapshot, *, callbacks_ahead: int = 0,
                  default_talk_s: float = 180.0) -> Estimate:
    """The wait of a caller who joins ``snapshot``'s queue now (see the module's notes)."""
    ahead = len(snapshot.waiting) + max(0, callbacks_ahead)
    free, staffed = snapshot.free, snapshot.staffed
    if ahead < free:
        return Estimate(0.0, ahead, free, staffed)
    if staffed == 0:
        return Estimate(None, ahead, free, staffed)
    talk = snapshot.talktime_s if snapshot.talktime_s > 0 else default_talk_s
    rounds = math.ceil((ahead - free + 1) / staffed)
    seconds = rounds * talk
    if snapshot.waiting:
        seconds = max(seconds, snapshot.holdtime_s)
    return Estimate(float(seconds), ahead, free, staffed)


# The offer says "预计等待约N分钟": N from this list (a prompt is rendered for each), rounded up;
# beyond the last the caller hears "超过30分钟" (also when the wait cannot be told).
MINUTE_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30)


def spoken_minutes(seconds: float | None) -> int | None:
    """The N of "约N分钟" for a wait (None: "more than the last step")."""
    if seconds is None:
        return None
    minutes = max(1, math.ceil(seconds / 60.0))
    return next((step for step in MINUTE_STEPS if step >= minutes), None)

