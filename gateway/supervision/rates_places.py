"""Where a ticket is, for the rates by district and street/township: table ``ticket_places``.

Tickets carry the place as the agent wrote it (``tickets.place``, free text such as
"朝阳区工体北路8号") and the units they were dispatched to; the responsibility catalogue
(config/catalogue.yaml) knows which district and street/township a place name, landmark or
community belongs to, and that every district and street is a unit too. A ticket's place is
resolved once, in this order, and kept in its own row (never on the ticket: writing the
ticket would bump its version and make a concurrent unit's or agent's write lose):

1. ``place`` text → :meth:`Catalogue.find_place` (source ``place``);
2. a dispatch to a street/township or district unit (source ``dispatch``);
3. the summary text (source ``summary``);
4. nothing found: a row with no district and no street (source ``none``: counted under
   "未识别 unknown"), so it is not tried again.

:func:`classify_places` does this in batches for tickets without a row (the rates plugin's
job, and the API before a district or street ranking, for the period asked). The SQL of the
rates then only joins this table.

The indexes the rates' GROUP BY queries rest on are declared here too (migration 0015).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.ticketing.models import Base, Dispatch, Followup, RowId, Ticket, UtcDateTime

PLACE_SOURCES = ("place", "dispatch", "summary", "none")


class TicketPlace(Base):
    """The district and street/township (catalogue unit ids) a submitted ticket is about."""

    __tablename__ = "ticket_places"
    __table_args__ = (sa.Index("ix_ticket_places_district_street", "district_id", "street_id"),)

    ticket_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("tickets.id"), primary_key=True)
    district_id: Mapped[str | None] = mapped_column(sa.String(64))
    street_id: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16))  # PLACE_SOURCES
    resolved_at: Mapped[datetime] = mapped_column(UtcDateTime())


# What the rates' queries filter and group on: submitted tickets by decision time (status first:
# SQLite then takes this index, not ix_tickets_status, whose range is every submitted ticket), then
# the dispatches and the follow-up of each, read from the indexes alone (covering).
sa.Index("ix_tickets_rates", Ticket.status, Ticket.decided_at, Ticket.handling)
sa.Index("ix_dispatches_rates", Dispatch.ticket_id, Dispatch.status, Dispatch.unit_id, Dispatch.accepted_at,
         Dispatch.due_at, Dispatch.created_at, Dispatch.unit_name)
sa.Index("ix_followups_rates", Followup.ticket_id, Followup.status, Followup.solved, Followup.satisfaction)


def resolve_place(catalogue, place: str | None, unit_ids: list[str], summary: str | None) -> tuple[str | None, str | None, str]:
    """``(district_id, street_id, source)`` of one ticket (pure; ``catalogue`` a desk Catalogue)."""
    if catalogue is None:
        return None, None, "none"
    hit = catalogue.find_place(place) if place else None
    if hit is not None:
        return (hit.district.id if hit.district else None), (hit.street.id if hit.street else None), "place"
    for uid in unit_ids:
        unit = catalogue.units.get(uid)
        if unit is not None and unit.kind in ("street", "township"):
            return unit.district, unit.id, "dispatch"
    for uid in unit_ids:
        unit = catalogue.units.get(uid)
        if unit is not None and unit.kind == "district":
            return unit.id, None, "dispatch"
    hit = catalogue.find_place(summary) if summary else None
    if hit is not None:
        return (hit.district.id if hit.district else None), (hit.street.id if hit.street else None), "summary"
    return None, None, "none"


async def classify_places(store, catalogue, now: datetime, *, start: datetime | None = None,
                          end: datetime | None = None, batch: int = 2000, max_batches: int = 50) -> int:
    """Resolve the place of submitted tickets that have no ``ticket_places`` row (decided in
    ``[start, end)`` when given); returns how many were written."""
    written = 0
    for _ in range(max_batches):
        stmt = (sa.select(Ticket.id, Ticket.place, Ticket.summary)
                .outerjoin(TicketPlace, TicketPlace.ticket_id == Ticket.id)
                .where(TicketPlace.ticket_id.is_(None), Ticket.status == "submitted", Ticket.handling.is_not(None)))
        if start is not None:
            stmt = stmt.where(Ticket.decided_at >= start)
        if end is not None:
            stmt = stmt.where(Ticket.decided_at < end)
        async with store.read_session() as session:
            rows = (await session.execute(stmt.order_by(Ticket.id).limit(batch))).all()
            if not rows:
                return written
            ids = [r.id for r in rows]
            units: dict[int, list[str]] = {}
            for tid, uid in (await session.execute(sa.select(Dispatch.ticket_id, Dispatch.unit_id)
                                                   .where(Dispatch.ticket_id.in_(ids))
                                                   .order_by(Dispatch.id))).all():
                units.setdefault(tid, []).append(uid)
        values = []
        for r in rows:
            district, street, source = resolve_place(catalogue, r.place, units.get(r.id, []), r.summary)
            values.append({"ticket_id": r.id, "district_id": district, "street_id": street, "source": source,
                           "resolved_at": now})

        async def work(session, values=values) -> int:
            have = set((await session.execute(sa.select(TicketPlace.ticket_id).where(
                TicketPlace.ticket_id.in_([v["ticket_id"] for v in values])))).scalars())
            fresh = [v for v in values if v["ticket_id"] not in have]  # another instance got there first
            if fresh:
                await session.execute(sa.insert(TicketPlace), fresh)
            return len(fresh)

        written += await store.run_write(work)
        if len(rows) < batch:
            return written
    return written
