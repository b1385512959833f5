"""Async storage of calls, draft tickets and audit events.

Theory of operation: every public method is one short transaction on its own
session, so concurrent calls never share ORM state. On SQLite (WAL mode) each
transaction starts with ``BEGIN IMMEDIATE``: writers queue on the database lock
(``busy_timeout``) instead of failing when a read snapshot is upgraded to a
write. On PostgreSQL the unique ``tickets.call_id`` is what stops a second
draft for the same call; the loser catches the ``IntegrityError`` and re-reads.

Readers return plain, JSON-ready dicts (datetimes as ISO 8601 strings) so no
ORM object leaves this module.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Awaitable, Callable, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm.exc import StaleDataError

from gateway.errors import CallExists, NotFound, TicketDecided
from gateway.ticketing.migrate import ensure_sqlite_dir
from gateway.ticketing.models import AuditEvent, Call, Ticket

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_PAGE = 200
_ATTEMPTS = 3
_READ_ONLY = "gateway_read_only"  # execution option: transaction will not write


def _install_sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        # Take BEGIN out of the driver's hands so ours (below) is the only one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:  # noqa: ANN001
        # Readers keep WAL's concurrent snapshots; writers queue for the lock up front.
        reading = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _call_dict(call: Call, ticket_id: int | None) -> dict[str, Any]:
    return {
        "id": call.id,
        "uniqueid": call.uniqueid,
        "channel": call.channel,
        "caller_number": call.caller_number,
        "caller_id_raw": call.caller_id_raw,
        "caller_number_valid": call.caller_id_raw is None,
        "dialled_number": call.dialled_number,
        "line_number": call.line_number,
        "line_name": call.line_name,
        "merge_mode": call.merge_mode,
        "department": call.department,
        "flow_version": call.flow_version,
        "menu_path": list(call.menu_path or []),
        "status": call.status,
        "queue": call.queue,
        "agent": call.agent,
        "hangup_cause": call.hangup_cause,
        "hangup_cause_txt": call.hangup_cause_txt,
        "started_at": _iso(call.started_at),
        "ended_at": _iso(call.ended_at),
        "ticket_id": ticket_id,
    }


def _ticket_dict(ticket: Ticket, uniqueid: str) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "call_id": ticket.call_id,
        "uniqueid": uniqueid,
        "status": ticket.status,
        "caller_number": ticket.caller_number,
        "caller_id_raw": ticket.caller_id_raw,
        "caller_number_valid": ticket.caller_id_raw is None,
        "dialled_number": ticket.dialled_number,
        "line_number": ticket.line_number,
        "line_name": ticket.line_name,
        "merge_mode": ticket.merge_mode,
        "department": ticket.department,
        "handled_by": ticket.handled_by,
        "overflow_queue": ticket.overflow_queue,
        "overflow_reason": ticket.overflow_reason,
        "category": ticket.category,
        "channel_kind": ticket.channel_kind,
        "confidential": bool(ticket.confidential),
        "menu_path": list(ticket.menu_path or []),
        "recording_path": ticket.recording_path,
        "recording_duration_ms": ticket.recording_duration_ms,
        "queue": ticket.queue,
        "language": ticket.language,
        "transcript_status": ticket.transcript_status or "none",
        "transcript": ticket.transcript,
        "transcript_words": list(ticket.transcript_words or []),
        "transcript_confidence": ticket.transcript_confidence,
        "transcript_model": ticket.transcript_model,
        "transcript_rtf": ticket.transcript_rtf,
        "transcript_error": ticket.transcript_error,
        "emergency": bool(ticket.emergency),
        "emergency_words": list(ticket.emergency_words or []),
        "urgency": ticket.urgency,
        "place": ticket.place,
        "summary": ticket.summary,
        "dispatch_mode": ticket.dispatch_mode,
        "units": list(ticket.units or []),
        "answer": ticket.answer,
        "linked_ticket_id": ticket.linked_ticket_id,
        "decided_by": ticket.decided_by,
        "decided_at": _iso(ticket.decided_at),
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "version_id": ticket.version_id,
    }


def _audit_dict(item: AuditEvent) -> dict[str, Any]:
    return {
        "id": item.id,
        "at": _iso(item.at),
        "actor": item.actor,
        "action": item.action,
        "object_type": item.object_type,
        "object_id": item.object_id,
        "details": dict(item.details or {}),
    }


class TicketStore:
    """Calls, draft tickets and their audit trail in one SQL database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{_READ_ONLY: True})
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self._reader, expire_on_commit=False)

    @classmethod
    async def open(cls, database_url: str) -> TicketStore:
        """Connect to an already migrated database (see ``migrate.upgrade``)."""
        await asyncio.to_thread(ensure_sqlite_dir, database_url)  # mkdir: off the event loop
        engine = create_async_engine(database_url)
        if engine.dialect.name == "sqlite":
            _install_sqlite_pragmas(engine)
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> bool:
        try:
            async with self._reader.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
            return True
        except Exception as exc:  # health check: report, never raise
            log.warning("database ping failed: %s", type(exc).__name__)
            return False

    # -- shared with the other stores of this database (versions, users) ---------------

    async def run_write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in one write transaction (retried on lost races)."""
        return await self._write(work)

    def read_session(self) -> AsyncSession:
        return self._read_sessions()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def calls_per_line(self, since: datetime) -> dict[str, dict[str, Any]]:
        """Calls per dialled number since ``since``: count and the last call's time."""
        stmt = (sa.select(Call.dialled_number, sa.func.count(Call.id), sa.func.max(Call.started_at))
                .where(Call.started_at >= since).group_by(Call.dialled_number))
        async with self._read_sessions() as session:
            rows = (await session.execute(stmt)).all()
        return {number: {"calls": count, "last_call_at": _iso(last) if isinstance(last, datetime) else last}
                for number, count, last in rows}

    # -- helpers ---------------------------------------------------------

    async def _write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in its own transaction, retrying lost races a few times."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._sessions() as session, session.begin():
                    return await work(session)
            except (IntegrityError, StaleDataError):
                if attempt == _ATTEMPTS:
                    raise
                log.debug("write lost a race (attempt %d), retrying", attempt)
        raise AssertionError("unreachable")

    @staticmethod
    async def _call(session: AsyncSession, uniqueid: str, *, required: bool = True) -> Call | None:
        stmt = sa.select(Call).where(Call.uniqueid == uniqueid)
        call = (await session.execute(stmt)).scalar_one_or_none()
        if call is None and required:
            raise NotFound(f"no call {uniqueid!r}", details={"uniqueid": uniqueid})
        return call

    @staticmethod
    async def _ticket_of(session: AsyncSession, call: Call) -> Ticket | None:
        stmt = sa.select(Ticket).where(Ticket.call_id == call.id)
        return (await session.execute(stmt)).scalar_one_or_none()

    # -- calls -------------------------------------------------------------

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
    ) -> None:
        """Record a call entering the IVR; :class:`CallExists` if that uniqueid is already known.

        Asterisk never runs the IVR twice for one channel, so a second session with a
        known call id is a replay (or a forged FastAGI peer): it must not touch the call.
        """

        async def work(session: AsyncSession) -> None:
            if await self._call(session, uniqueid, required=False) is not None:
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
                )
            )

        await self._write(work)

    async def record_step(self, uniqueid: str, step: dict) -> None:
        """Append one IVR step to the call's (and its ticket's) menu path."""

        async def work(session: AsyncSession) -> None:
            call = await self._call(session, uniqueid)
            call.menu_path = [*(call.menu_path or []), dict(step)]
            ticket = await self._ticket_of(session, call)
            if ticket is not None and ticket.status == "draft":
                ticket.menu_path = [*(ticket.menu_path or []), dict(step)]

        await self._write(work)

    async def mark_queued(self, uniqueid: str, queue: str) -> bool:
        """The call joined ``queue``; False if the call is unknown."""

        async def work(session: AsyncSession) -> bool:
            call = await self._call(session, uniqueid, required=False)
            if call is None:
                return False
            previous, call.queue = call.queue, queue
            if call.status != "ended":
                call.status = "queued"
            ticket = await self._ticket_of(session, call)
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

        return await self._write(work)

    async def mark_agent(self, uniqueid: str, agent: str) -> bool:
        """An agent answered the call; False if the call is unknown."""

        async def work(session: AsyncSession) -> bool:
            call = await self._call(session, uniqueid, required=False)
            if call is None:
                return False
            call.agent = agent
            return True

        return await self._write(work)

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
            call = await self._call(session, uniqueid, required=False)
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

        return await self._write(work)

    # -- tickets -----------------------------------------------------------

    async def ensure_ticket(
        self,
        uniqueid: str,
        *,
        category: str | None,
        channel_kind: str | None,
        confidential: bool | None,
        handled_by: str | None,
        queue: str | None,
        department: str | None,
        language: str | None = None,
    ) -> int:
        """Create the call's draft ticket, or update its fields given as not None.

        The IVR only ever changes a draft (:class:`TicketDecided` otherwise), and it can
        raise confidentiality but never lower it: a caller who asked for 保密 keeps it.
        """
        given = {
            "language": language,
            "category": category,
            "channel_kind": channel_kind,
            "confidential": confidential,
            "handled_by": handled_by,
            "queue": queue,
            "department": department,
        }
        given = {k: v for k, v in given.items() if v is not None}

        async def work(session: AsyncSession) -> int:
            call = await self._call(session, uniqueid)
            ticket = await self._ticket_of(session, call)
            if ticket is None:
                return await self._create_ticket(session, call, given)
            _check_draft(ticket, uniqueid)
            if ticket.confidential:
                given.pop("confidential", None)
            changed = sorted(k for k, v in given.items() if getattr(ticket, k) != v)
            for name in changed:
                setattr(ticket, name, given[name])
            if changed:
                session.add(_audit("ivr", "ticket.updated", ticket.id, {"fields": changed}))
            return ticket.id

        return await self._write(work)

    @staticmethod
    async def _create_ticket(session: AsyncSession, call: Call, given: dict[str, Any]) -> int:
        ticket = Ticket(
            call_id=call.id,
            status="draft",
            caller_number=call.caller_number,
            caller_id_raw=call.caller_id_raw,
            dialled_number=call.dialled_number,
            line_number=call.line_number,
            line_name=call.line_name,
            merge_mode=call.merge_mode,
            department=call.department,
            confidential=False,
            menu_path=list(call.menu_path or []),
            queue=call.queue,
        )
        for name, value in given.items():
            setattr(ticket, name, value)
        session.add(ticket)
        await session.flush()  # IntegrityError here if another task won the race
        details = {
            "uniqueid": call.uniqueid,
            "line_number": ticket.line_number,
            "merge_mode": ticket.merge_mode,
            "category": ticket.category,
            "handled_by": ticket.handled_by,
            "confidential": ticket.confidential,
        }
        session.add(_audit("ivr", "ticket.draft_created", ticket.id, details))
        return ticket.id

    async def set_recording(self, uniqueid: str, *, path: str, duration_ms: int) -> None:
        """Attach the caller's recorded description to the call's draft ticket."""

        async def work(session: AsyncSession) -> None:
            call = await self._call(session, uniqueid)
            ticket = await self._ticket_of(session, call)
            if ticket is None:
                raise NotFound(f"call {uniqueid!r} has no ticket", details={"uniqueid": uniqueid})
            _check_draft(ticket, uniqueid)
            ticket.recording_path = path
            ticket.recording_duration_ms = duration_ms

        await self._write(work)

    # -- what the caller said ------------------------------------------------

    async def _update_ticket(self, uniqueid: str, action: str, change: Callable[[Ticket], dict], *,
                             draft_only: bool = True) -> int:
        async def work(session: AsyncSession) -> int:
            call = await self._call(session, uniqueid)
            ticket = await self._ticket_of(session, call)
            if ticket is None:
                raise NotFound(f"call {uniqueid!r} has no ticket", details={"uniqueid": uniqueid})
            if draft_only:
                _check_draft(ticket, uniqueid)
            details = change(ticket)
            session.add(_audit("ivr", action, ticket.id, details))
            return ticket.id

        return await self._write(work)

    async def set_emergency(self, uniqueid: str, words: list[str]) -> int:
        """Flag the ticket: the emergency guard heard ``words`` (kept in order, no duplicates)."""

        def change(ticket: Ticket) -> dict:
            merged = list(dict.fromkeys([*(ticket.emergency_words or []), *words]))[:20]
            ticket.emergency = True
            ticket.emergency_words = merged
            return {"words": merged}

        return await self._update_ticket(uniqueid, "ticket.emergency_flagged", change)

    async def set_transcript(self, uniqueid: str, transcript: dict, *, status: str = "done",
                             recovered: bool = False) -> int:
        """Store a transcript (``Transcript.to_json()``) on the call's ticket.

        Live (the IVR): only on a draft. ``recovered`` (the recovery job transcribing a
        recording later): on a ticket of any status whose transcript is still pending.
        """

        def change(ticket: Ticket) -> dict:
            if recovered and ticket.transcript_status not in ("pending", None, "none"):
                return {"status": ticket.transcript_status, "ignored": "not pending"}
            _apply_transcript(ticket, transcript, status)
            return {"status": status, "model": ticket.transcript_model, "rtf": ticket.transcript_rtf}

        return await self._update_ticket(uniqueid, "ticket.transcribed", change, draft_only=not recovered)

    async def set_transcript_pending(self, uniqueid: str, *, language: str | None, reason: str) -> int:
        """Recognition was not possible live: the recovery job will transcribe the recording."""

        def change(ticket: Ticket) -> dict:
            if ticket.transcript_status in ("done", "live"):
                return {"status": ticket.transcript_status, "ignored": reason[:200]}
            ticket.transcript_status = "pending"
            ticket.transcript_error = reason[:255]
            if language:
                ticket.language = language
            return {"status": "pending", "reason": reason[:200]}

        return await self._update_ticket(uniqueid, "ticket.transcript_pending", change)

    async def pending_transcripts(self, *, languages: list[str], limit: int = 20) -> list[dict[str, Any]]:
        """Tickets waiting for the recovery job (oldest first) with a recording to transcribe,
        in one of ``languages`` (those the engine can do now: the others wait for a model)."""
        if not languages:
            return []
        async with self._read_sessions() as session:
            stmt = (
                sa.select(Ticket, Call.uniqueid)
                .join(Call, Ticket.call_id == Call.id)
                .where(Ticket.transcript_status == "pending", Ticket.recording_path.is_not(None),
                       Ticket.language.in_(languages))
                .order_by(Ticket.id)
                .limit(max(1, min(MAX_PAGE, limit)))
            )
            rows = (await session.execute(stmt)).all()
        return [_ticket_dict(ticket, uid) for ticket, uid in rows]

    async def transcript_attempt_failed(self, ticket_id: int, error: str, *, give_up_after: int) -> str:
        """Count a failed recovery attempt; after ``give_up_after`` the status becomes ``failed``."""

        async def work(session: AsyncSession) -> str:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None:
                raise NotFound(f"no ticket {ticket_id}", details={"ticket_id": ticket_id})
            ticket.transcript_attempts = (ticket.transcript_attempts or 0) + 1
            ticket.transcript_error = error[:255]
            if ticket.transcript_attempts >= give_up_after:
                ticket.transcript_status = "failed"
            session.add(_audit("asr", "ticket.transcript_attempt_failed", ticket.id,
                               {"attempts": ticket.transcript_attempts, "error": error[:200]}))
            return ticket.transcript_status

        return await self._write(work)

    # -- readers -----------------------------------------------------------

    async def get_call(self, uniqueid: str) -> dict[str, Any] | None:
        async with self._read_sessions() as session:
            stmt = (
                sa.select(Call, Ticket.id)
                .outerjoin(Ticket, Ticket.call_id == Call.id)
                .where(Call.uniqueid == uniqueid)
            )
            row = (await session.execute(stmt)).one_or_none()
            return None if row is None else _call_dict(row[0], row[1])

    async def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        async with self._read_sessions() as session:
            stmt = (
                sa.select(Ticket, Call.uniqueid)
                .join(Call, Ticket.call_id == Call.id)
                .where(Ticket.id == ticket_id)
            )
            row = (await session.execute(stmt)).one_or_none()
            if row is None:
                raise NotFound(f"no ticket {ticket_id}", details={"ticket_id": ticket_id})
            return _ticket_dict(row[0], row[1])

    async def list_tickets(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        status: str | None = None,
        line_number: str | None = None,
        category: str | None = None,
    ) -> dict[str, Any]:
        """Newest first; ``limit`` is clamped to 1..200, ``offset`` to >= 0."""
        limit = max(1, min(MAX_PAGE, int(limit)))
        offset = max(0, int(offset))
        filters = []
        if status is not None:
            filters.append(Ticket.status == status)
        if line_number is not None:
            filters.append(Ticket.line_number == line_number)
        if category is not None:
            filters.append(Ticket.category == category)
        async with self._read_sessions() as session:
            total = await session.scalar(sa.select(sa.func.count(Ticket.id)).where(*filters))
            stmt = (
                sa.select(Ticket, Call.uniqueid)
                .join(Call, Ticket.call_id == Call.id)
                .where(*filters)
                .order_by(Ticket.id.desc())
                .limit(limit)
                .offset(offset)
            )
            rows = (await session.execute(stmt)).all()
        items = [_ticket_dict(ticket, uid) for ticket, uid in rows]
        return {"items": items, "total": int(total or 0), "limit": limit, "offset": offset}

    async def list_audit(self, object_type: str, object_id: str) -> list[dict[str, Any]]:
        async with self._read_sessions() as session:
            stmt = (
                sa.select(AuditEvent)
                .where(AuditEvent.object_type == object_type, AuditEvent.object_id == str(object_id))
                .order_by(AuditEvent.id)
            )
            return [_audit_dict(item) for item in (await session.scalars(stmt)).all()]

    async def count_calls(self) -> int:
        async with self._read_sessions() as session:
            return int(await session.scalar(sa.select(sa.func.count(Call.id))) or 0)


def _apply_transcript(ticket: Ticket, transcript: dict, status: str) -> None:
    ticket.transcript_status = status
    ticket.transcript = str(transcript.get("text") or "")[:20000]
    ticket.transcript_words = list(transcript.get("words") or [])[:5000]
    ticket.transcript_confidence = transcript.get("confidence")
    ticket.transcript_model = (transcript.get("model") or None) and str(transcript["model"])[:128]
    ticket.transcript_rtf = transcript.get("rtf")
    ticket.transcript_error = None
    if transcript.get("language"):
        ticket.language = str(transcript["language"])[:8]


def _check_draft(ticket: Ticket, uniqueid: str) -> None:
    if ticket.status != "draft":
        raise TicketDecided(f"ticket {ticket.id} of call {uniqueid!r} is {ticket.status}: the IVR may not change it",
                            details={"ticket_id": ticket.id, "status": ticket.status})


def _audit(actor: str, action: str, ticket_id: int, details: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        actor=actor, action=action, object_type="ticket", object_id=str(ticket_id), details=details
    )
