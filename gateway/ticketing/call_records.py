"""The calls half of :class:`gateway.ticketing.store.TicketStore`: a call's life from the IVR to hang-up.

:class:`CallRecords` is mixed into ``TicketStore`` (one object, one database, as before) and
works only through its public transactions, :meth:`~gateway.ticketing.store.TicketStore.run_write`
and :meth:`~gateway.ticketing.store.TicketStore.read_session`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import CallExists
from gateway.ticketing.models import AuditEvent, Call, Ticket
from gateway.ticketing.rows import call_dict, find_call, iso, ticket_of


class CallRecords:
    """Calls: recorded when they enter the IVR, updated from AMI events, read back as dicts."""

    async def start_call(
        self,
        *,
        uniqueid: str,
        channel: str,
        caller_number: str,
        dialled_number: str,
        line_number: str,
        line_name: str,
        merge_mode: str,
        department: str | None,
        flow_version: str | None,
        started_at: datetime,
        caller_id_raw: str | None = None,
        instance: str | None = None,
    ) -> None:
        """Record a call entering the IVR; :class:`CallExists` if that uniqueid is already known.

        Asterisk never runs the IVR twice for one channel, so a second session with a
        known call id is a replay (or a forged FastAGI peer): it must not touch the call.
        """

        async def work(session: AsyncSession) -> None:
            if await find_call(session, uniqueid, required=False) is not None:
                raise CallExists(f"call {uniqueid!r} is already recorded", details={"uniqueid": uniqueid})
            session.add(
                Call(
                    uniqueid=uniqueid,
                    channel=channel,
                    caller_number=caller_number,
                    caller_id_raw=caller_id_raw,
                    dialled_number=dialled_number,
                    line_number=line_number,
                    line_name=line_name,
                    merge_mode=merge_mode,
                    department=department,
                    flow_version=flow_version,
                    menu_path=[],
                    status="in_ivr",
                    started_at=started_at,
                    instance=instance,
                )
            )

        await self.run_write(work)

    async def record_step(self, uniqueid: str, step: dict) -> None:
        """Append one IVR step to the call's (and its ticket's) menu path."""

        async def work(session: AsyncSession) -> None:
            call = await find_call(session, uniqueid)
            call.menu_path = [*(call.menu_path or []), dict(step)]
            ticket = await ticket_of(session, call)
            if ticket is not None and ticket.status == "draft":
                ticket.menu_path = [*(ticket.menu_path or []), dict(step)]

        await self.run_write(work)

    async def mark_queued(self, uniqueid: str, queue: str) -> bool:
        """The call joined ``queue``; False if the call is unknown."""

        async def work(session: AsyncSession) -> bool:
            call = await find_call(session, uniqueid, required=False, lock=True)
            if call is None:
                return False
            previous, call.queue = call.queue, queue
            if call.status != "ended":
                call.status = "queued"
            ticket = await ticket_of(session, call)
            if ticket is None:
                return True
            if previous and previous != queue:
                # A second queue: the first (a sub-centre) did not answer in time and the
                # dialplan overflowed the call. The ticket keeps both.
                ticket.overflow_queue = queue
                ticket.overflow_reason = "no_answer"
                session.add(AuditEvent(actor="ami", action="call.overflowed", object_type="ticket",
                                       object_id=str(ticket.id), details={"from": previous, "to": queue}))
            elif ticket.queue != queue:
                ticket.queue = queue
            return True

        return await self.run_write(work)

    async def mark_agent(self, uniqueid: str, agent: str) -> bool:
        """An agent answered the call; False if the call is unknown."""

        async def work(session: AsyncSession) -> bool:
            call = await find_call(session, uniqueid, required=False, lock=True)
            if call is None:
                return False
            call.agent = agent
            return True

        return await self.run_write(work)

    async def finish_call(
        self,
        uniqueid: str,
        *,
        hangup_cause: int | None,
        hangup_cause_txt: str | None,
        ended_at: datetime,
    ) -> bool:
        """Mark the call ended; False if it never reached the IVR. The first finish wins."""

        async def work(session: AsyncSession) -> bool:
            call = await find_call(session, uniqueid, required=False, lock=True)
            if call is None:
                return False
            if call.status == "ended":
                return True
            call.status = "ended"
            call.hangup_cause = hangup_cause
            call.hangup_cause_txt = hangup_cause_txt
            call.ended_at = ended_at
            session.add(
                AuditEvent(
                    actor="ami",
                    action="call.ended",
                    object_type="call",
                    object_id=uniqueid,
                    details={"hangup_cause": hangup_cause, "hangup_cause_txt": hangup_cause_txt},
                )
            )
            return True

        return await self.run_write(work)

    # -- reconciliation (gateway.calls.reconcile) ----------------------------

    async def calls_to_reconcile(self, *, since: datetime, limit: int = 5000) -> list[dict[str, Any]]:
        """Every call still open, and the calls started since ``since``: what reconciliation checks.

        Each is a small dict: uniqueid, status, started_at/ended_at (datetimes), queue, agent,
        channel, and its ticket's id, status and recording path (None without a ticket).
        """
        stmt = (
            sa.select(Call.uniqueid, Call.status, Call.started_at, Call.ended_at, Call.queue, Call.agent,
                      Call.channel, Ticket.id, Ticket.status, Ticket.recording_path)
            .outerjoin(Ticket, Ticket.call_id == Call.id)
            .where(sa.or_(Call.ended_at.is_(None), Call.started_at >= since))
            .order_by(Call.id.desc())  # the newest first, if there are more than ``limit``
            .limit(limit)
        )
        async with self.read_session() as session:
            rows = (await session.execute(stmt)).all()
        keys = ("uniqueid", "status", "started_at", "ended_at", "queue", "agent", "channel", "ticket_id",
                "ticket_status", "recording_path")
        return [dict(zip(keys, row)) for row in rows]

    async def repair_call(
        self,
        uniqueid: str,
        *,
        ended_at: datetime | None = None,
        hangup_cause: int | None = None,
        hangup_cause_txt: str | None = None,
        queue: str | None = None,
        agent: str | None = None,
        recording_path: str | None = None,
        recording_duration_ms: int | None = None,
        note: dict[str, Any] | None = None,
    ) -> list[str]:
        """Fill what the call's row lacks, never overwrite: the end (with its cause) if still open,
        the queue and agent if unknown, the recording if its draft ticket has none. Returns the
        fields changed (none for an unknown call); running it twice changes nothing more."""

        async def work(session: AsyncSession) -> list[str]:
            call = await find_call(session, uniqueid, required=False)
            if call is None:
                return []
            changed: list[str] = []
            ticket = await ticket_of(session, call)
            if queue and not call.queue:
                call.queue = queue
                changed.append("queue")
                if ticket is not None and not ticket.queue:
                    ticket.queue = queue
            if agent and not call.agent:
                call.agent = agent
                changed.append("agent")
            if ended_at is not None and call.status != "ended":
                call.status = "ended"
                call.ended_at = ended_at
                call.hangup_cause = hangup_cause
                call.hangup_cause_txt = hangup_cause_txt
                call.menu_path = [*(call.menu_path or []), {"node": "reconciled", "cause": hangup_cause_txt}]
                changed.append("ended")
            elif queue and "queue" in changed and call.status == "in_ivr":
                call.status = "queued"
            if (recording_path and ticket is not None and ticket.status == "draft"
                    and not ticket.recording_path):
                ticket.recording_path = recording_path
                ticket.recording_duration_ms = recording_duration_ms
                changed.append("recording")
            if changed:
                session.add(AuditEvent(actor="reconcile", action="call.reconciled", object_type="call",
                                       object_id=uniqueid, details={"changed": changed, **(note or {})}))
            return changed

        return await self.run_write(work)

    async def create_reconciled_call(
        self,
        *,
        uniqueid: str,
        channel: str,
        caller_number: str,
        caller_id_raw: str | None,
        dialled_number: str,
        line_number: str,
        line_name: str,
        merge_mode: str,
        department: str | None,
        started_at: datetime,
        ended_at: datetime | None,
        hangup_cause_txt: str | None,
        queue: str | None,
        agent: str | None,
        menu_path: list[dict],
        note: dict[str, Any],
    ) -> int | None:
        """A call Asterisk handled while the gateway did not (its CDR has no row here): its row and a
        draft ticket, both marked as made by reconciliation. None if the call is known already."""

        async def work(session: AsyncSession) -> int | None:
            if await find_call(session, uniqueid, required=False) is not None:
                return None
            path = [*menu_path, {"node": "reconciled", "source": note.get("source", "cdr")}]
            call = Call(uniqueid=uniqueid, channel=channel, caller_number=caller_number, caller_id_raw=caller_id_raw,
                        dialled_number=dialled_number, line_number=line_number, line_name=line_name,
                        merge_mode=merge_mode, department=department, flow_version=None, menu_path=path,
                        status="ended" if ended_at else ("queued" if queue else "in_ivr"), queue=queue,
                        agent=agent, started_at=started_at, ended_at=ended_at, hangup_cause_txt=hangup_cause_txt)
            session.add(call)
            await session.flush()
            ticket = Ticket(call_id=call.id, status="draft", caller_number=caller_number, caller_id_raw=caller_id_raw,
                            dialled_number=dialled_number, line_number=line_number, line_name=line_name,
                            merge_mode=merge_mode, department=department, confidential=False, menu_path=path,
                            queue=queue)
            from gateway.ticketing import numbering  # the ticket number (issue 13): none was spoken

            ticket.ticket_no = await numbering.free_number(
                session, numbering.local_day(started_at, getattr(self, "timezone", "Asia/Shanghai")))
            session.add(ticket)
            await session.flush()
            session.add(AuditEvent(actor="reconcile", action="ticket.draft_created", object_type="ticket",
                                   object_id=str(ticket.id),
                                   details={"uniqueid": uniqueid, **note, "ticket_no": ticket.ticket_no}))
            return ticket.id

        return await self.run_write(work)

    # -- readers -----------------------------------------------------------

    async def calls_per_line(self, since: datetime) -> dict[str, dict[str, Any]]:
        """Calls per dialled number since ``since``: count and the last call's time."""
        stmt = (sa.select(Call.dialled_number, sa.func.count(Call.id), sa.func.max(Call.started_at))
                .where(Call.started_at >= since).group_by(Call.dialled_number))
        async with self.read_session() as session:
            rows = (await session.execute(stmt)).all()
        return {number: {"calls": count, "last_call_at": iso(last) if isinstance(last, datetime) else last}
                for number, count, last in rows}

    async def get_call(self, uniqueid: str) -> dict[str, Any] | None:
        async with self.read_session() as session:
            stmt = (
                sa.select(Call, Ticket.id)
                .outerjoin(Ticket, Ticket.call_id == Call.id)
                .where(Call.uniqueid == uniqueid)
            )
            row = (await session.execute(stmt)).one_or_none()
            return None if row is None else call_dict(row[0], row[1])

    async def call_exists(self, uniqueid: str) -> bool:
        """Whether a row for ``uniqueid`` exists (an index lookup, no row loaded)."""
        async with self.read_session() as session:
            stmt = sa.select(Call.id).where(Call.uniqueid == uniqueid).limit(1)
            return (await session.scalar(stmt)) is not None

    async def count_calls(self) -> int:
        async with self.read_session() as session:
            return int(await session.scalar(sa.select(sa.func.count(Call.id))) or 0)
