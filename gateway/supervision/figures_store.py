"""The rows the call-centre figures are computed from (reads only; the database is the shared state).

A call's ticket gives the end of its after-call work (``tickets.decided_at``); the agent leg's
hang-up is its ``AgentConnect`` time plus Asterisk's ``TalkTime`` (:mod:`.figures`).

Every instance reads the same database, so every supervisor board shows the same figures
whichever gateway instance serves it. Caller numbers are never selected.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from gateway.callback.service import PURPOSE as CALLBACK_PURPOSE
from gateway.supervision.figures import CallRow, LegRow
from gateway.supervision.queue_legs import QueueLeg
from gateway.ticketing.models import Call, Callback, OutboundCall, Ticket

OPEN_CALLBACKS = ("waiting", "dialling")


class FiguresStore:
    def __init__(self, store) -> None:
        self.store = store

    async def calls(self, start: datetime, end: datetime) -> list[CallRow]:
        """The calls that started in [start, end), with their queue legs, and the menu path of
        those that ended without reaching a queue (where an IVR abandonment happened)."""
        in_period = sa.and_(Call.started_at >= start, Call.started_at < end)
        async with self.store.read_session() as session:
            rows = (await session.execute(
                sa.select(Call.uniqueid, Call.line_number, Call.line_name, Call.status, Call.queue, Call.agent,
                          Call.started_at, Ticket.decided_at).outerjoin(Ticket, Ticket.call_id == Call.id)
                .where(in_period).order_by(Call.id))).all()
            paths = dict((await session.execute(
                sa.select(Call.uniqueid, Call.menu_path).where(
                    in_period, sa.or_(Call.queue.is_(None), Call.queue == ""), Call.status == "ended"))).all())
            legs = (await session.execute(
                _LEGS.join(Call, Call.uniqueid == QueueLeg.uniqueid).where(in_period).order_by(QueueLeg.id))).all()
        by_call = _legs_by_call(legs)
        return [CallRow(uniqueid=uid, line=line or "", line_name=name or "", status=status, queue=queue, agent=agent,
                        started_at=started, menu_path=paths.get(uid), legs=by_call.get(uid, []), decided_at=decided)
                for uid, line, name, status, queue, agent, started, decided in rows]

    async def callback_calls(self, start: datetime, end: datetime) -> list[CallRow]:
        """The gateway's callback calls (``outbound_calls`` of purpose callback) started in [start, end),
        with their queue legs; line and ticket (its decision: after-call work) are the original call's."""
        ob = OutboundCall
        in_period = sa.and_(ob.purpose == CALLBACK_PURPOSE, ob.started_at >= start, ob.started_at < end)
        async with self.store.read_session() as session:
            rows = (await session.execute(
                sa.select(ob.uniqueid, ob.started_at, ob.ended_at, Call.line_number, Call.line_name, Ticket.decided_at)
                .select_from(ob).outerjoin(Callback, sa.cast(Callback.id, sa.String) == ob.ref)
                .outerjoin(Call, Call.uniqueid == Callback.call_uniqueid).outerjoin(Ticket, Ticket.call_id == Call.id)
                .where(in_period).order_by(ob.id))).all()
            legs = (await session.execute(
                _LEGS.join(ob, ob.uniqueid == QueueLeg.uniqueid).where(in_period).order_by(QueueLeg.id))).all()
        by_call = _legs_by_call(legs)
        return [CallRow(uniqueid=uid, line=line or "", line_name=name or "", status="ended" if ended else "up",
                        queue=None, agent=None, started_at=started, legs=by_call.get(uid, []), decided_at=decided)
                for uid, started, ended, line, name, decided in rows]

    async def pending(self, now: datetime) -> dict[str, Any]:
        """What waits now: open callbacks per queue, undecided draft tickets per line and queue."""
        async with self.store.read_session() as session:
            callbacks = (await session.execute(
                sa.select(Callback.queue, sa.func.count(Callback.id), sa.func.min(Callback.requested_at))
                .where(Callback.status.in_(OPEN_CALLBACKS)).group_by(Callback.queue))).all()
            drafts = (await session.execute(
                sa.select(Ticket.line_number, Ticket.queue, sa.func.count(Ticket.id), sa.func.min(Ticket.created_at))
                .where(Ticket.status == "draft").group_by(Ticket.line_number, Ticket.queue))).all()
            by_agent = (await session.execute(
                sa.select(Call.agent, sa.func.count(Ticket.id)).join(Call, Call.id == Ticket.call_id)
                .where(Ticket.status == "draft", Call.agent.is_not(None)).group_by(Call.agent))).all()

        def age(oldest: datetime | None) -> float | None:
            return round(max(0.0, (now - oldest).total_seconds()), 1) if oldest is not None else None

        per_line: dict[str, int] = {}
        per_queue: dict[str, int] = {}
        oldest = None
        for line, queue, count, first in drafts:
            per_line[line or ""] = per_line.get(line or "", 0) + int(count)
            per_queue[queue or ""] = per_queue.get(queue or "", 0) + int(count)
            oldest = first if oldest is None or (first is not None and first < oldest) else oldest
        cb_oldest = min((first for _, _, first in callbacks if first is not None), default=None)
        return {
            "callbacks": {"total": sum(int(c) for _, c, _ in callbacks),
                          "per_queue": [{"queue": q, "waiting": int(c), "oldest_s": age(f)} for q, c, f in callbacks],
                          "oldest_s": age(cb_oldest)},
            "drafts": {"total": sum(per_line.values()),
                       "per_line": [{"line": k, "drafts": v} for k, v in sorted(per_line.items())],
                       "per_queue": [{"queue": k, "drafts": v} for k, v in sorted(per_queue.items())],
                       "per_agent": {str(a): int(c) for a, c in by_agent},
                       "oldest_s": age(oldest)},
        }


_LEGS = sa.select(QueueLeg.uniqueid, QueueLeg.queue, QueueLeg.hold_s, QueueLeg.talk_s, QueueLeg.answered_at,
                  QueueLeg.abandoned, QueueLeg.agent, QueueLeg.joined_at, QueueLeg.left_at)


def _legs_by_call(legs) -> dict[str, list[LegRow]]:
    by_call: dict[str, list[LegRow]] = {}
    for uid, queue, hold, talk, answered_at, abandoned, agent, joined, left in legs:
        if hold is None and answered_at is None and left is not None and joined is not None:
            hold = max(0.0, (left - joined).total_seconds())  # timed out: no HoldTime from Asterisk
        ended = answered_at + timedelta(seconds=talk) if answered_at is not None and talk is not None else None
        by_call.setdefault(uid, []).append(LegRow(uid, queue, hold, talk, answered_at is not None,
                                                  bool(abandoned), agent, ended))
    return by_call
