"""What progress by phone reads from the database: tickets as :class:`TicketView` and the
wrong numbers a calling number keyed lately (counted from the calls' menu paths)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from gateway.ivr_flows.progress import TicketView
from gateway.ticketing.models import Call, Dispatch, Ticket, TicketEvent

MAX_OPEN = 50  # open tickets of one number looked at (the offer names the newest few)
MAX_RECENT_CALLS = 200  # calls of one number looked at for its wrong numbers


class ProgressLookup:
    def __init__(self, store) -> None:
        self.store = store  # gateway.ticketing.store.TicketStore (its read sessions)

    async def open_tickets(self, caller: str, since: datetime) -> list[TicketView]:
        """The number's submitted, not closed, not confidential tickets filed since ``since``, newest first."""
        async with self.store.read_session() as session:
            stmt = (
                sa.select(Ticket)
                .where(Ticket.caller_number == caller, Ticket.status == "submitted",
                       sa.or_(Ticket.handling.is_(None), Ticket.handling != "closed"),
                       Ticket.confidential.is_(False), Ticket.created_at >= since)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                .limit(MAX_OPEN)
            )
            tickets = list((await session.scalars(stmt)).all())
            return [await _view(session, t) for t in tickets]

    async def find(self, ticket_no: str) -> TicketView | None:
        async with self.store.read_session() as session:
            ticket = await session.scalar(sa.select(Ticket).where(Ticket.ticket_no == ticket_no))
            return None if ticket is None else await _view(session, ticket)

    async def wrong_numbers(self, caller: str, since: datetime, *, besides: str) -> int:
        """Wrong ticket numbers keyed by calls from ``caller`` since ``since`` (other than ``besides``)."""
        async with self.store.read_session() as session:
            stmt = (
                sa.select(Call.menu_path)
                .where(Call.caller_number == caller, Call.started_at >= since, Call.uniqueid != besides)
                .order_by(Call.started_at.desc())
                .limit(MAX_RECENT_CALLS)
            )
            paths = (await session.scalars(stmt)).all()
        return sum(1 for path in paths for step in (path or [])
                   if isinstance(step, dict) and step.get("result") == "wrong_number")


async def _view(session, ticket: Ticket) -> TicketView:
    units = (await session.scalars(
        sa.select(Dispatch.unit_name).where(Dispatch.ticket_id == ticket.id, Dispatch.status != "withdrawn")
        .order_by(Dispatch.id))).all()
    reply = await session.scalar(
        sa.select(TicketEvent.text).where(TicketEvent.ticket_id == ticket.id, TicketEvent.public.is_(True),
                                          TicketEvent.text.is_not(None), TicketEvent.text != "")
        .order_by(TicketEvent.at.desc(), TicketEvent.id.desc()).limit(1))
    followed = await session.scalar(
        sa.select(sa.func.count(TicketEvent.id)).where(TicketEvent.ticket_id == ticket.id,
                                                       TicketEvent.kind == "followup"))
    return TicketView(id=ticket.id, filed_at=ticket.created_at, caller_number=ticket.caller_number,
                      status=ticket.status, handling=ticket.handling, confidential=bool(ticket.confidential),
                      category=ticket.category, units=tuple(units), reply=reply, followed_up=bool(followed))
