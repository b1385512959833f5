"""The ``sms_outbox`` table: queue, claim, result, backoff; health and the supervisor's list.

Theory of operation
-------------------
A text is queued in the same transaction that decides it (the ticket's creation or the
moment its number is told), so it is never lost and never queued twice for one ticket and
kind. The worker (:mod:`gateway.sms.worker`) *claims* due rows: one ``UPDATE … WHERE
status IN (pending, failed) AND next_at <= now`` per row, setting ``status=sending``,
``sender`` (the instance) and ``next_at`` = now + lease, so of two gateway instances only the
one whose update matched sends it. A claim whose sender died (``sending`` past its lease)
is due again. After a send: ``sent`` (with the provider's reference), or ``failed`` with
``next_at`` after a backoff (30 s doubling, at most 30 min), or ``dead`` after
``max_attempts`` or a refusal for good (a bad number). State is in the database: a restart
loses nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.masking import mask_number
from gateway.ticketing.models import SmsOutbox, Ticket

OPEN = ("pending", "sending", "failed")  # not final
BACKOFF = (30.0, 1800.0)  # seconds: first retry, cap


def _now() -> datetime:
    return datetime.now(timezone.utc)


def backoff_seconds(attempts: int, *, first: float = BACKOFF[0], cap: float = BACKOFF[1]) -> float:
    """Wait before attempt ``attempts + 1`` (after ``attempts`` failed ones): 30 s, 60 s, 120 s… ≤ 30 min."""
    return min(cap, first * 2 ** max(0, attempts - 1))


async def queue(session: AsyncSession, *, ticket: Ticket | None, to_number: str, kind: str, body: str,
                now: datetime | None = None) -> SmsOutbox | None:
    """Queue one text (in the caller's transaction); None if this ticket has one of ``kind`` already."""
    if ticket is not None:
        stmt = sa.select(SmsOutbox.id).where(SmsOutbox.ticket_id == ticket.id, SmsOutbox.kind == kind).limit(1)
        if await session.scalar(stmt) is not None:
            return None
    row = SmsOutbox(ticket_id=ticket.id if ticket is not None else None, to_number=to_number, kind=kind, body=body,
                    status="pending", attempts=0, next_at=now or _now(), created_at=now or _now())
    session.add(row)
    await session.flush()
    return row


def row_dict(row: SmsOutbox, *, ticket_no: str | None = None, masked: bool = True) -> dict[str, Any]:
    """A text as JSON; ``masked`` (every view but the sender's): the number masked, no body."""
    out = {} if masked else {"body": row.body}
    return out | {
        "id": row.id, "ticket_id": row.ticket_id, "ticket_no": ticket_no,
        "to_number": mask_number(row.to_number) if masked else row.to_number,
        "kind": row.kind, "status": row.status, "attempts": row.attempts,
        "next_at": row.next_at.isoformat() if row.next_at else None, "last_error": row.last_error,
        "sender": row.sender, "provider_ref": row.provider_ref,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
    }


class Outbox:
    """The outbox over the ticket store's database (its transactions: ``run_write``/``read_session``)."""

    def __init__(self, store, *, lease_seconds: float = 120.0, max_attempts: int = 6,
                 retry_seconds: float = BACKOFF[0], clock=_now) -> None:
        self.store = store
        self.retry_seconds = retry_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.clock = clock

    async def claim(self, sender: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """Claim up to ``limit`` due texts for ``sender`` (unmasked: for sending only)."""
        now = self.clock()
        due = sa.or_(sa.and_(SmsOutbox.status.in_(("pending", "failed")), SmsOutbox.next_at <= now),
                     sa.and_(SmsOutbox.status == "sending", SmsOutbox.next_at <= now))  # a dead sender's lease

        async def work(session: AsyncSession) -> list[dict[str, Any]]:
            ids = (await session.scalars(sa.select(SmsOutbox.id).where(due).order_by(SmsOutbox.next_at,
                                                                                       SmsOutbox.id).limit(limit))).all()
            claimed = []
            for sms_id in ids:
                result = await session.execute(
                    sa.update(SmsOutbox).where(SmsOutbox.id == sms_id, due)
                    .values(status="sending", sender=sender[:64], next_at=now + self.lease)
                    .execution_options(synchronize_session=False))
                if result.rowcount == 1:
                    claimed.append(sms_id)
            if not claimed:
                return []
            rows = (await session.scalars(sa.select(SmsOutbox).where(SmsOutbox.id.in_(claimed)))).all()
            return [row_dict(r, masked=False) for r in rows]

        return await self.store.run_write(work)

    async def sent(self, sms_id: int, sender: str, provider_ref: str | None) -> bool:
        now = self.clock()

        async def work(session: AsyncSession) -> bool:
            result = await session.execute(
                sa.update(SmsOutbox).where(SmsOutbox.id == sms_id, SmsOutbox.status == "sending",
                                           SmsOutbox.sender == sender[:64])
                .values(status="sent", sent_at=now, attempts=SmsOutbox.attempts + 1, last_error=None,
                        provider_ref=(provider_ref or None) and str(provider_ref)[:128])
                .execution_options(synchronize_session=False))
            return result.rowcount == 1

        return await self.store.run_write(work)

    async def failed(self, sms_id: int, sender: str, error: str, *, final: bool = False) -> str | None:
        """Record a failed attempt: ``failed`` (retried after the backoff) or ``dead``; the new status."""
        now = self.clock()

        async def work(session: AsyncSession) -> str | None:
            row = await session.get(SmsOutbox, sms_id)
            if row is None or row.status != "sending" or row.sender != sender[:64]:
                return None
            row.attempts = (row.attempts or 0) + 1
            row.last_error = error[:255]
            if final or row.attempts >= self.max_attempts:
                row.status = "dead"
            else:
                row.status = "failed"
                row.next_at = now + timedelta(seconds=backoff_seconds(row.attempts, first=self.retry_seconds))
            return row.status

        return await self.store.run_write(work)

    async def retry(self, sms_id: int, *, actor: str = "supervisor") -> dict[str, Any]:
        """A supervisor's retry of a failed or dead text: due now, attempts counted afresh."""
        from gateway.errors import NotFound

        now = self.clock()

        async def work(session: AsyncSession) -> dict[str, Any]:
            row = await session.get(SmsOutbox, sms_id)
            if row is None:
                raise NotFound(f"no SMS {sms_id}", details={"sms_id": sms_id})
            before = row.status
            if row.status in ("failed", "dead", "pending"):
                row.status, row.next_at, row.attempts = "pending", now, 0
            from gateway.ticketing.models import AuditEvent

            session.add(AuditEvent(actor=actor[:32], action="sms.retry", object_type="sms",
                                   object_id=str(row.id), details={"before": before, "ticket_id": row.ticket_id}))
            return row_dict(row)

        return await self.store.run_write(work)

    async def stats(self) -> dict[str, Any]:
        now = self.clock()
        async with self.store.read_session() as session:
            counts = dict((await session.execute(
                sa.select(SmsOutbox.status, sa.func.count(SmsOutbox.id)).group_by(SmsOutbox.status))).all())
            oldest = await session.scalar(sa.select(sa.func.min(SmsOutbox.created_at))
                                          .where(SmsOutbox.status.in_(OPEN)))
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=timezone.utc)
        return {
            "backlog": sum(int(counts.get(s, 0)) for s in OPEN),
            "oldest_s": round(max(0.0, (now - oldest).total_seconds()), 1) if oldest is not None else 0.0,
            "dead": int(counts.get("dead", 0)),
            "sent": int(counts.get("sent", 0)),
            "failed": int(counts.get("failed", 0)),
        }

    async def listing(self, *, statuses=("pending", "sending", "failed", "dead"), limit: int = 50) -> list[dict]:
        """The supervisor's list (numbers masked), open and dead texts, oldest first."""
        async with self.store.read_session() as session:
            rows = (await session.execute(
                sa.select(SmsOutbox, Ticket.ticket_no).outerjoin(Ticket, Ticket.id == SmsOutbox.ticket_id)
                .where(SmsOutbox.status.in_(statuses)).order_by(SmsOutbox.id).limit(max(1, min(200, limit))))).all()
        return [row_dict(row, ticket_no=no) for row, no in rows]

    async def for_ticket(self, ticket_id: int) -> list[dict]:
        async with self.store.read_session() as session:
            rows = (await session.scalars(sa.select(SmsOutbox).where(SmsOutbox.ticket_id == ticket_id)
                                          .order_by(SmsOutbox.id))).all()
        return [row_dict(r) for r in rows]
