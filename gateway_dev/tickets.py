"""Dev harness: move a ticket on after intake directly in the database (what the units part
does once merged: submitted, a ticket number, dispatches to units, their public replies).
Used by tests of progress by phone; never imported by the product."""

from __future__ import annotations

from datetime import datetime

from gateway.ticketing.models import Dispatch, Ticket, TicketEvent


async def advance_ticket(store, ticket_id: int, *, ticket_no: str | None = None, status: str = "submitted",
                         handling: str | None = None, units: tuple = (), reply: str | None = None,
                         confidential: bool | None = None, category: str | None = None,
                         created_at: datetime | None = None, followed_up: bool = False) -> None:
    """Set the ticket's number/status/handling; add one dispatch per unit name and, with
    ``reply``, a public ``note`` event (or ``handled`` when handling is handled/closed)."""

    async def work(session) -> None:
        ticket = await session.get(Ticket, ticket_id)
        if ticket_no is not None:
            ticket.ticket_no = ticket_no
        ticket.status, ticket.handling = status, handling
        if confidential is not None:
            ticket.confidential = confidential
        if category is not None:
            ticket.category = category
        if created_at is not None:
            ticket.created_at = created_at
        dispatch_ids = []
        for n, name in enumerate(units):
            dispatch = Dispatch(ticket_id=ticket_id, unit_id=f"unit-{n}", unit_name=name,
                                status="handled" if handling in ("handled", "closed") else "accepted")
            session.add(dispatch)
            await session.flush()
            dispatch_ids.append(dispatch.id)
        if reply is not None:
            kind = "handled" if handling in ("handled", "closed") else "note"
            session.add(TicketEvent(ticket_id=ticket_id, dispatch_id=dispatch_ids[0] if dispatch_ids else None,
                                    actor="unit", kind=kind, unit_id="unit-0", text=reply, public=True))
            session.add(TicketEvent(ticket_id=ticket_id, actor="unit", kind="note", unit_id="unit-0",
                                    text="内部备注：不对外", public=False))
        if followed_up:
            session.add(TicketEvent(ticket_id=ticket_id, actor="followup", kind="followup", text=None, public=False))

    await store.run_write(work)
