"""Callbacks in the ticket database: requested by the IVR, claimed and updated by the dispatcher.

Every method is one short transaction (``TicketStore.run_write``). The claim is one
conditional ``UPDATE … WHERE status = 'waiting'``: of two gateway instances that try the same
callback, exactly one sees a row changed, and only that one places the call. What happens to
a callback is written on the ticket's audit trail (``callback.*``; details carry no number).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.callback.policy import FINAL_STATUSES, OPEN_STATUSES, BadMove, RetryPolicy, check_move
from gateway.errors import Conflict, NotFound
from gateway.masking import mask_number
from gateway.ticketing.models import AuditEvent, Call, Callback, Ticket
from gateway.ticketing.rows import iso
from gateway.ticketing.store import TicketStore


class CallbackNotOpen(Conflict):
    error_id = "callback-not-open"


def callback_dict(row: Callback, *, masked: bool = True) -> dict[str, Any]:
    return {
        "id": row.id,
        "ticket_id": row.ticket_id,
        "call_uniqueid": row.call_uniqueid,
        "queue": row.queue,
        "number": mask_number(row.number) if masked else row.number,
        "number_source": row.number_source,
        "requested_at": iso(row.requested_at),
        "status": row.status,
        "attempts": row.attempts,
        "next_at": iso(row.next_at),
        "last_result": row.last_result,
        "agent": row.agent,
        "outbound_uniqueid": row.outbound_uniqueid,
        "claimed_by": row.claimed_by,
        "updated_at": iso(row.updated_at),
    }


def _audit(ticket_id: int | None, actor: str, action: str, details: dict) -> AuditEvent | None:
    if ticket_id is None:
        return None
    return AuditEvent(actor=actor, action=action, object_type="ticket", object_id=str(ticket_id), details=details)


class CallbackStore:
    def __init__(self, store: TicketStore) -> None:
        self.store = store

    async def request(self, *, call_uniqueid: str, queue: str, number: str, number_source: str,
                      requested_at: datetime) -> dict[str, Any]:
        """Keep the caller's place: a new ``waiting`` callback (the call's ticket, if it has one yet)."""

        async def work(session: AsyncSession) -> dict:
            ticket_id = (await session.execute(
                sa.select(Ticket.id).join(Call, Ticket.call_id == Call.id).where(Call.uniqueid == call_uniqueid)
            )).scalar_one_or_none()
            row = Callback(ticket_id=ticket_id, call_uniqueid=call_uniqueid, queue=queue, number=number,
                           number_source=number_source, requested_at=requested_at, status="waiting", attempts=0,
                           created_at=requested_at, updated_at=requested_at)
            session.add(row)
            await session.flush()
            audit = _audit(ticket_id, "ivr", "callback.requested",
                           {"callback_id": row.id, "queue": queue, "number_source": number_source})
            if audit is not None:
                session.add(audit)
            return callback_dict(row)

        return await self.store.run_write(work)

    async def get(self, callback_id: int, *, masked: bool = True) -> dict[str, Any]:
        async with self.store.read_session() as session:
            row = await session.get(Callback, callback_id)
            if row is None:
                raise NotFound(f"no callback {callback_id}")
            return callback_dict(row, masked=masked)

    async def by_outbound(self, outbound_uniqueid: str) -> dict[str, Any] | None:
        async with self.store.read_session() as session:
            row = (await session.execute(sa.select(Callback).where(
                Callback.outbound_uniqueid == outbound_uniqueid))).scalar_one_or_none()
            return callback_dict(row) if row is not None else None

    async def open(self, *, queue: str | None = None) -> list[dict[str, Any]]:
        """Open callbacks (waiting, dialling, connected), oldest place first."""
        query = sa.select(Callback).where(Callback.status.in_(OPEN_STATUSES))
        if queue is not None:
            query = query.where(Callback.queue == queue)
        async with self.store.read_session() as session:
            rows = (await session.execute(query.order_by(Callback.requested_at, Callback.id))).scalars()
            return [callback_dict(r) for r in rows]

    async def recent(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """Open callbacks, then the latest finished ones (the supervisor's list)."""
        async with self.store.read_session() as session:
            opened = (await session.execute(sa.select(Callback).where(Callback.status.in_(OPEN_STATUSES))
                                            .order_by(Callback.requested_at, Callback.id).limit(limit))).scalars()
            out = [callback_dict(r) for r in opened]
            closed = (await session.execute(sa.select(Callback).where(Callback.status.in_(FINAL_STATUSES))
                                            .order_by(Callback.updated_at.desc()).limit(max(0, limit - len(out)))
                                            )).scalars()
            return out + [callback_dict(r) for r in closed]

    async def claim(self, callback_id: int, *, instance: str, now: datetime) -> dict[str, Any] | None:
        """Take the callback for one attempt (status dialling); None if another instance has it,
        it was cancelled, or it is not due yet."""

        async def work(session: AsyncSession) -> dict | None:
            result = await session.execute(
                sa.update(Callback)
                .where(Callback.id == callback_id, Callback.status == "waiting",
                       sa.or_(Callback.next_at.is_(None), Callback.next_at <= now))
                .values(status="dialling", claimed_by=instance, claimed_at=now, attempts=Callback.attempts + 1,
                        outbound_uniqueid=None, updated_at=now)
                .execution_options(synchronize_session=False))
            if result.rowcount != 1:
                return None
            row = await session.get(Callback, callback_id, populate_existing=True)
            if row.ticket_id is None:  # the IVR's ticket was still in the journal when the place was kept
                row.ticket_id = (await session.execute(
                    sa.select(Ticket.id).join(Call, Ticket.call_id == Call.id)
                    .where(Call.uniqueid == row.call_uniqueid))).scalar_one_or_none()
            return callback_dict(row, masked=False)

        return await self.store.run_write(work)

    async def _move(self, callback_id: int, new: str, *, actor: str, action: str, now: datetime,
                    expect: tuple[str, ...] | None = None, details: dict | None = None, **values) -> dict | None:
        async def work(session: AsyncSession) -> dict | None:
            row = await session.get(Callback, callback_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no callback {callback_id}")
            if expect is not None and row.status not in expect:
                return None
            if new != row.status:
                try:
                    check_move(row.status, new)
                except BadMove as exc:
                    raise CallbackNotOpen(exc.message, details={"status": row.status}) from None
            row.status = new
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = now
            audit = _audit(row.ticket_id, actor, action, {"callback_id": row.id, "status": new,
                                                         "attempts": row.attempts, **(details or {})})
            if audit is not None:
                session.add(audit)
            return callback_dict(row)

        return await self.store.run_write(work)

    async def dialled(self, callback_id: int, *, outbound_uniqueid: str | None, now: datetime) -> None:
        """The attempt's outbound channel is known (before the outcome): AgentConnect can find it."""

        async def work(session: AsyncSession) -> None:
            await session.execute(sa.update(Callback).where(Callback.id == callback_id)
                                  .values(outbound_uniqueid=outbound_uniqueid, updated_at=now)
                                  .execution_options(synchronize_session=False))

        await self.store.run_write(work)

    async def attempt_ended(self, callback_id: int, *, outcome: str, reason: str, policy: RetryPolicy,
                            now: datetime, outbound_uniqueid: str | None = None) -> dict | None:
        """One attempt's outcome (answered, no_answer, busy, failed): connected, or the next try, or
        given up. Ignored (None) unless the callback is dialling (e.g. cancelled meanwhile)."""
        async with self.store.read_session() as session:
            row = await session.get(Callback, callback_id)
            attempts = row.attempts if row is not None else 0
        status, next_at = policy.after(outcome, attempts, now)
        values = {"last_result": f"{outcome}: {reason}"[:200] if reason else outcome, "next_at": next_at}
        if outbound_uniqueid:
            values["outbound_uniqueid"] = outbound_uniqueid
        return await self._move(callback_id, status, actor="callback", action=f"callback.{status}", now=now,
                                expect=("dialling",), details={"outcome": outcome}, **values)

    async def agent_answered(self, callback_id: int, *, agent: str, now: datetime) -> dict | None:
        """An agent took the called-back citizen: done, and the original call is that agent's (the
        desk's inbox, the number and the recording follow the call's agent)."""
        out = await self._move(callback_id, "done", actor="callback", action="callback.done", now=now,
                               expect=("dialling", "connected"), details={"agent": agent}, agent=agent)
        if out is not None:
            async def work(session: AsyncSession) -> None:
                await session.execute(sa.update(Call).where(Call.uniqueid == out["call_uniqueid"])
                                      .values(agent=agent).execution_options(synchronize_session=False))

            await self.store.run_write(work)
        return out

    async def left_unanswered(self, callback_id: int, *, policy: RetryPolicy, now: datetime) -> dict | None:
        """The citizen answered but hung up in the queue before an agent took the call."""
        async with self.store.read_session() as session:
            row = await session.get(Callback, callback_id)
            attempts = row.attempts if row is not None else 0
        status, next_at = policy.after("abandoned", attempts, now)
        return await self._move(callback_id, status, actor="callback", action=f"callback.{status}", now=now,
                                expect=("connected",), details={"outcome": "abandoned"},
                                last_result="abandoned: hung up in the queue", next_at=next_at)

    async def cancel(self, callback_id: int, *, actor: str, now: datetime) -> dict:
        out = await self._move(callback_id, "cancelled", actor=actor, action="callback.cancelled", now=now)
        assert out is not None
        return out

    async def release_stale(self, *, older_than: timedelta, now: datetime, instance: str | None = None) -> int:
        """Dialling callbacks whose instance died mid-attempt (claimed long ago, or by ``instance``
        at its start) go back to waiting, to be placed again."""

        async def work(session: AsyncSession) -> int:
            cond = Callback.claimed_at < now - older_than
            if instance is not None:
                cond = sa.or_(cond, Callback.claimed_by == instance)
            rows = (await session.execute(sa.select(Callback).where(Callback.status == "dialling", cond)
                                          .with_for_update())).scalars().all()
            for row in rows:
                row.status, row.next_at, row.updated_at = "waiting", None, now
                row.last_result = "interrupted: the gateway placing it stopped"
                audit = _audit(row.ticket_id, "callback", "callback.waiting",
                               {"callback_id": row.id, "status": "waiting", "attempts": row.attempts,
                                "outcome": "interrupted"})
                if audit is not None:
                    session.add(audit)
            return len(rows)

        return await self.store.run_write(work)

    async def of_ticket(self, ticket_id: int) -> dict[str, Any] | None:
        """The latest callback of a ticket (the desk pop's flag)."""
        async with self.store.read_session() as session:
            row = (await session.execute(sa.select(Callback).where(Callback.ticket_id == ticket_id)
                                         .order_by(Callback.id.desc()).limit(1))).scalar_one_or_none()
            return callback_dict(row) if row is not None else None
