"""Bench and unit-test helper: put a ticket where the unit API leaves it after every unit replied 办结.

The state the units part writes: ``handling="handled"``, ``handled_at`` = now and a public
``TicketEvent(kind="handled", text=the reply)``. ``bench/followup.py`` hands hundreds of tickets
to the follow-up scheduler at once with it (the scheduler's rate is what it measures); the
end-to-end tests go through the desk and unit APIs instead (tests/e2e/test_followup.py).
Development harness only.
"""

from __future__ import annotations

from datetime import datetime

from gateway.ticketing.models import AuditEvent, Ticket, TicketEvent
from gateway.ticketing.store import TicketStore


async def mark_handled(store: TicketStore, ticket_id: int, *, now: datetime, text: str = "已办结",
                       opt_out: bool | None = None) -> None:
    async def work(session) -> None:
        ticket = await session.get(Ticket, ticket_id)
        if ticket.status == "draft":
            ticket.status = "submitted"
        ticket.handling = "handled"
        ticket.handled_at = now
        if opt_out is not None:
            ticket.followup_opt_out = opt_out
        session.add(TicketEvent(ticket_id=ticket_id, at=now, actor="unit-test", kind="handled", text=text,
                                public=True))
        session.add(AuditEvent(actor="unit-test", action="ticket.handled", object_type="ticket",
                               object_id=str(ticket_id), details={}))

    await store.run_write(work)
