"""Giving a ticket its number in the database (issue 13; the numbers: :mod:`ticket_no`).

The call path draws the number (it is spoken before the database may have seen it) and
asks the database, when it answers quickly, whether the number is free. The number is
stored when the ticket is created; the unique constraint ``uq_tickets_ticket_no`` is the
judge. A number found taken at creation (it was drawn while the database was down and a
ticket of the same day got it meanwhile) is replaced by a fresh one: the change is audited
and, for a caller on a mobile who may be texted, an SMS tells the new number.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ticketing.models import Ticket
from gateway.ticketing.ticket_no import is_ticket_no, new_ticket_no

DRAWS = 20  # a fresh number is taken on the first draw but for one in a million per ticket of the day
ZoneInfo("Asia/Shanghai")  # loaded once here (a file read), not on the event loop; ZoneInfo caches it


def local_day(when: datetime | None, tz: str) -> date:
    """The centre's date at ``when`` (UTC now if None) in time zone ``tz``."""
    when = when or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(ZoneInfo(tz)).date()


async def taken(session: AsyncSession, ticket_no: str) -> bool:
    stmt = sa.select(Ticket.id).where(Ticket.ticket_no == ticket_no).limit(1)
    return (await session.scalar(stmt)) is not None


async def free_number(session: AsyncSession, day: date, *, draw=new_ticket_no) -> str:
    """A number of ``day`` not yet on any ticket (the unique constraint stays the backstop)."""
    for _ in range(DRAWS):
        number = draw(day)
        if not await taken(session, number):
            return number
    raise RuntimeError(f"no free ticket number for {day} after {DRAWS} draws")


async def assign(session: AsyncSession, preferred: str | None, day: date, *, draw=new_ticket_no) -> tuple[str, bool]:
    """``(number, replaced)``: ``preferred`` when it is a valid number still free, else a fresh one.

    ``replaced`` is True when a valid ``preferred`` (one the caller may have heard) had to be
    given up because another ticket has it.
    """
    if preferred and is_ticket_no(preferred):
        if not await taken(session, preferred):
            return preferred, False
        return await free_number(session, day, draw=draw), True
    return await free_number(session, day, draw=draw), False


def _audit(actor: str, action: str, ticket_id: int, details: dict) -> "AuditEvent":
    from gateway.ticketing.models import AuditEvent

    return AuditEvent(actor=actor, action=action, object_type="ticket", object_id=str(ticket_id), details=details)


def may_text(ticket: Ticket, consent: bool | None) -> str | None:
    """The mobile to text about ``ticket``, or None: no mobile, or confidential without consent."""
    from gateway.sms.texts import mobile_number

    if ticket.confidential and consent is not True:
        return None
    return mobile_number(ticket.caller_number)


async def renumbered(session: AsyncSession, ticket: Ticket, *, heard: str | None) -> None:
    """``ticket`` got another number than the one drawn (and maybe spoken): audit it, text it."""
    from gateway.sms import outbox, texts

    session.add(_audit("ivr", "ticket.renumbered", ticket.id, {"heard": heard, "ticket_no": ticket.ticket_no}))
    mobile = may_text(ticket, None)
    if mobile:
        await outbox.queue(session, ticket=ticket, to_number=mobile, kind="renumbered",
                           body=texts.renumbered_body(heard, ticket.ticket_no))


class NumberWrites:
    """The ticket store's ticket-number methods (mixed into :class:`TicketStore`)."""

    async def ticket_no_taken(self, ticket_no: str) -> bool:
        """Whether a ticket has ``ticket_no`` already (an index lookup)."""
        async with self.read_session() as session:
            return await taken(session, ticket_no)

    async def record_ticket_told(self, uniqueid: str, *, sms: bool | None = None) -> None:
        """The caller is being told the ticket number (journaled: ``record_``): audit it and queue
        the SMS with the number for a mobile (a confidential caller only with ``sms=True``)."""
        from gateway.sms import outbox, texts
        from gateway.ticketing.models import AuditEvent, SmsOutbox
        from gateway.ticketing.rows import find_call, ticket_of

        async def work(session: AsyncSession) -> None:
            call = await find_call(session, uniqueid)
            ticket = await ticket_of(session, call)
            if ticket is None or not ticket.ticket_no:
                return
            mobile = may_text(ticket, sms)
            queued = False
            if mobile:
                had = await session.scalar(sa.select(SmsOutbox.id).where(SmsOutbox.ticket_id == ticket.id).limit(1))
                if had is None:
                    change = await session.scalar(
                        sa.select(AuditEvent.details).where(AuditEvent.object_type == "ticket",
                                                            AuditEvent.object_id == str(ticket.id),
                                                            AuditEvent.action == "ticket.renumbered").limit(1))
                    body = (texts.renumbered_body((change or {}).get("heard"), ticket.ticket_no) if change
                            else texts.ticket_no_body(ticket.ticket_no))
                    queued = await outbox.queue(session, ticket=ticket, to_number=mobile,
                                                kind="renumbered" if change else "ticket_no", body=body) is not None
            if queued:
                how = "queued"
            elif not texts.mobile_number(ticket.caller_number):
                how = "no mobile"
            elif mobile is None:
                how = "not asked"  # confidential, no consent
            else:
                how = "queued before"
            session.add(_audit("ivr", "ticket.number_told", ticket.id, {"ticket_no": ticket.ticket_no, "sms": how}))

        await self.run_write(work)
