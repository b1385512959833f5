"""What the agent desk reads and writes: decisions on draft tickets, unsaved drafts, history.

Theory of operation
-------------------
A draft ticket is decided once: ``submitted`` (dispatched to handling units) or
``answered`` (closed on the call). The decision carries the ticket version the
agent saw; the write checks that version and that the ticket is still a draft,
inside one transaction, and SQLAlchemy's version counter makes a concurrent
writer lose with ``StaleDataError`` (retried, then seen as decided). So of two
agents submitting the same ticket exactly one wins and the other gets a
:class:`Conflict` naming who decided it and when.

Unsaved edits live in ``ticket_drafts`` (one row per ticket and agent), apart
from the ticket, so autosaving never changes the ticket's version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from gateway.errors import Conflict, GatewayError, NotFound
from gateway.ticketing.models import AuditEvent, Call, Ticket, TicketDraft
from gateway.supervision.outcomes import ivr_exit
from gateway.ticketing.rows import iso, ticket_dict
from gateway.ticketing.store import TicketStore

MAX_DRAFT_BYTES = 32_000
# What a decision may carry is its schema: gateway.desk.schemas (SubmitBody, CloseBody).


class BadDecision(GatewayError):
    status_code = 400
    error_id = "bad-request"


ZoneInfo("Asia/Shanghai")  # read the default zone's file once at import, not on the event loop (cached)


class DeskStore:
    def __init__(self, store: TicketStore, *, timezone: str = "Asia/Shanghai") -> None:
        self.store = store
        self.tz = ZoneInfo(timezone)  # times in messages for people are local
        # async (session, ticket, actor, now): the units feature's dispatch, inside the submit's
        # transaction (gateway.units.store.UnitStore.dispatch_submitted); None: no dispatch rows
        self.on_submitted = None

    async def ticket_of_call(self, uniqueid: str) -> dict | None:
        async with self.store.read_session() as session:
            row = (await session.execute(
                sa.select(Ticket, Call.uniqueid).join(Call, Ticket.call_id == Call.id)
                .where(Call.uniqueid == uniqueid))).one_or_none()
        return None if row is None else ticket_dict(row[0], row[1])

    async def call_of_ticket(self, ticket_id: int) -> dict | None:
        async with self.store.read_session() as session:
            call = (await session.execute(
                sa.select(Call).join(Ticket, Ticket.call_id == Call.id).where(Ticket.id == ticket_id))).scalar()
            if call is None:
                return None
            return {"uniqueid": call.uniqueid, "agent": call.agent, "status": call.status,
                    "started_at": iso(call.started_at), "queue": call.queue}

    async def history(self, caller_number: str, *, since: datetime, exclude_id: int, limit: int = 20) -> list[dict]:
        """The caller's earlier tickets (same number) since ``since``, newest first."""
        if not caller_number:
            return []
        stmt = (sa.select(Ticket, Call.uniqueid).join(Call, Ticket.call_id == Call.id)
                .where(Ticket.caller_number == caller_number, Ticket.created_at >= since, Ticket.id != exclude_id)
                .order_by(Ticket.id.desc()).limit(limit))
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt)).all()
        return [ticket_dict(t, uid) for t, uid in rows]

    async def open_tickets(self, *, since: datetime, exclude_id: int, limit: int = 200) -> list[dict]:
        """Tickets not yet closed (draft or submitted) since ``since``: candidates for "same demand"."""
        stmt = (sa.select(Ticket, Call.uniqueid).join(Call, Ticket.call_id == Call.id)
                .where(Ticket.status.in_(("draft", "submitted")), Ticket.created_at >= since,
                       Ticket.id != exclude_id)
                .order_by(Ticket.id.desc()).limit(limit))
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt)).all()
        return [ticket_dict(t, uid) for t, uid in rows]

    async def inbox(self, agent_id: str, *, limit: int = 20) -> list[dict]:
        """Draft tickets of calls this agent answered, newest first (what a reloaded desk shows)."""
        stmt = (sa.select(Ticket, Call.uniqueid).join(Call, Ticket.call_id == Call.id)
                .where(Call.agent == agent_id, Ticket.status == "draft")
                .order_by(Ticket.id.desc()).limit(limit))
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt)).all()
        return [ticket_dict(t, uid) for t, uid in rows]

    async def decide(self, ticket_id: int, *, outcome: str, version_id: Any, fields: dict, actor: str,
                     now: datetime) -> dict:
        if outcome not in ("submitted", "answered"):
            raise ValueError(outcome)
        if isinstance(version_id, bool) or not isinstance(version_id, int):
            raise BadDecision("version_id (the ticket version you loaded) is required",
                              details={"field": "version_id"})

        async def work(session) -> int:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None:
                raise NotFound(f"no ticket {ticket_id}", details={"ticket_id": ticket_id})
            if ticket.status != "draft":
                when = (ticket.decided_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")
                        if ticket.decided_at else "?")
                raise Conflict(f"工单已由 {ticket.decided_by} 于 {when} 处理（{ticket.status}）"
                               f" / ticket already {ticket.status} by {ticket.decided_by} at {when}",
                               details={"status": ticket.status, "decided_by": ticket.decided_by,
                                        "decided_at": iso(ticket.decided_at), "version_id": ticket.version_id})
            if ticket.version_id != version_id:
                raise Conflict("工单已被更新，请刷新后再提交 / the ticket changed since you loaded it; reload",
                               details={"field": "version_id", "version_id": ticket.version_id})
            if fields.get("linked_ticket_id") is not None:
                if fields["linked_ticket_id"] == ticket_id or await session.get(Ticket, fields["linked_ticket_id"]) is None:
                    raise BadDecision("linked_ticket_id is not another existing ticket",
                                      details={"field": "linked_ticket_id"})
            for name, value in fields.items():
                if value is not None or name in ("place", "linked_ticket_id"):
                    setattr(ticket, name, value)
            ticket.status = outcome
            ticket.decided_by = actor[:64]
            ticket.decided_at = now
            await session.execute(sa.delete(TicketDraft).where(TicketDraft.ticket_id == ticket_id))
            if outcome == "submitted" and self.on_submitted is not None:
                await self.on_submitted(session, ticket, actor, now)
            session.add(AuditEvent(actor=actor[:32], action=f"ticket.{outcome}", object_type="ticket",
                                   object_id=str(ticket_id),
                                   details={k: v for k, v in fields.items() if k in (
                                       "category", "urgency", "dispatch_mode", "units", "linked_ticket_id",
                                       "followup_opt_out")}))
            return ticket.id

        await self.store.run_write(work)
        return await self.store.get_ticket(ticket_id)

    async def save_draft(self, ticket_id: int, username: str, data: dict, *, now: datetime) -> dict:
        async def work(session) -> dict:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None:
                raise NotFound(f"no ticket {ticket_id}", details={"ticket_id": ticket_id})
            if ticket.status != "draft":
                raise Conflict(f"ticket already {ticket.status} by {ticket.decided_by}",
                               details={"status": ticket.status, "decided_by": ticket.decided_by})
            row = (await session.execute(sa.select(TicketDraft).where(
                TicketDraft.ticket_id == ticket_id, TicketDraft.username == username))).scalar()
            if row is None:
                row = TicketDraft(ticket_id=ticket_id, username=username, data=data, updated_at=now)
                session.add(row)
            else:
                row.data = data
                row.updated_at = now
            return {"ticket_id": ticket_id, "data": data, "updated_at": iso(now)}

        return await self.store.run_write(work)

    async def get_draft(self, ticket_id: int, username: str) -> dict | None:
        async with self.store.read_session() as session:
            row = (await session.execute(sa.select(TicketDraft).where(
                TicketDraft.ticket_id == ticket_id, TicketDraft.username == username))).scalar()
        return None if row is None else {"ticket_id": ticket_id, "data": dict(row.data or {}),
                                         "updated_at": iso(row.updated_at)}

    async def audit(self, actor: str, action: str, ticket_id: int, details: dict | None = None) -> None:
        async def work(session) -> None:
            session.add(AuditEvent(actor=actor[:32], action=action, object_type="ticket", object_id=str(ticket_id),
                                   details=details or {}))

        await self.store.run_write(work)

    async def today_counts(self, since: datetime) -> dict:
        """Calls per line and per request type since ``since``; abandoned calls: in a queue (ended there
        without an agent) and in the IVR (hung up before a queue, :mod:`gateway.supervision.outcomes`),
        ``abandoned`` being both."""
        async with self.store.read_session() as session:
            per_line = dict((await session.execute(
                sa.select(Call.line_number, sa.func.count(Call.id)).where(Call.started_at >= since)
                .group_by(Call.line_number))).all())
            per_type = dict((await session.execute(
                sa.select(Ticket.category, sa.func.count(Ticket.id)).where(Ticket.created_at >= since)
                .group_by(Ticket.category))).all())
            abandoned = await session.scalar(
                sa.select(sa.func.count(Call.id)).where(
                    Call.started_at >= since, Call.status == "ended", Call.queue.is_not(None), Call.agent.is_(None)))
            # callers who hung up in the IVR (issue 14): the last node reached, no queue, no callback taken
            ivr_paths = (await session.execute(sa.select(Call.menu_path).where(
                Call.started_at >= since, Call.status == "ended", Call.queue.is_(None)))).scalars().all()
            total = await session.scalar(sa.select(sa.func.count(Call.id)).where(Call.started_at >= since))
            emergencies = await session.scalar(sa.select(sa.func.count(Ticket.id)).where(
                Ticket.created_at >= since, Ticket.emergency.is_(True)))
        abandoned_ivr = sum(ivr_exit(path)[0] == "abandoned_ivr" for path in ivr_paths)
        return {"calls": int(total or 0), "per_line": {k: int(v) for k, v in per_line.items()},
                "per_type": {(k or "未分类"): int(v) for k, v in per_type.items()},
                "abandoned": int(abandoned or 0) + abandoned_ivr, "abandoned_queue": int(abandoned or 0),
                "abandoned_ivr": abandoned_ivr, "emergencies": int(emergencies or 0)}
