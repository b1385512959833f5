"""Async storage of calls, draft tickets and audit events.

Theory of operation: every public method is one short transaction on its own
session, so concurrent calls never share ORM state. On SQLite (WAL mode) each
transaction starts with ``BEGIN IMMEDIATE``: writers queue on the database lock
(``busy_timeout``) instead of failing when a read snapshot is upgraded to a
write. On PostgreSQL every write transaction locks its call's row first
(``SELECT … FOR UPDATE``, :func:`gateway.ticketing.rows.find_call`), so writers of
one call take turns and never overwrite what the other committed; the unique
``tickets.call_id`` stays the backstop against a second draft (a loser catches
the ``IntegrityError`` and re-reads).

Readers return plain, JSON-ready dicts (datetimes as ISO 8601 strings,
:mod:`gateway.ticketing.rows`) so no ORM object leaves the store. The calls'
methods live in :mod:`gateway.ticketing.call_records`, mixed into
:class:`TicketStore`; this module holds the connection, the transactions and the
draft tickets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm.exc import StaleDataError

from gateway.errors import NotFound, TicketDecided
from gateway.ticketing.call_records import CallRecords
from gateway.ticketing.migrate import ensure_sqlite_dir
from gateway.ticketing.models import AuditEvent, Call, Ticket
from gateway.ticketing.rows import audit_dict, find_call, ticket_dict, ticket_of

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


class TicketStore(CallRecords):
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
            call = await find_call(session, uniqueid)
            ticket = await ticket_of(session, call)
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
            call = await find_call(session, uniqueid)
            ticket = await ticket_of(session, call)
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
            call = await find_call(session, uniqueid)
            ticket = await ticket_of(session, call)
            if ticket is None:
                raise NotFound(f"call {uniqueid!r} has no ticket", details={"uniqueid": uniqueid})
            if draft_only:
                _check_draft(ticket, uniqueid)
            details = change(ticket)
            session.add(_audit("ivr", action, ticket.id, details))
            return ticket.id

        return await self._write(work)

    async def set_recording_problem(self, uniqueid: str, problem: str) -> int:
        """Flag the ticket's recording as missing or damaged (``problem`` says why; the last one wins)."""

        def change(ticket: Ticket) -> dict:
            ticket.recording_problem = problem[:200]
            return {"problem": ticket.recording_problem}

        return await self._update_ticket(uniqueid, "ticket.recording_problem", change, draft_only=False)

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
        return [ticket_dict(ticket, uid) for ticket, uid in rows]

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
            return ticket_dict(row[0], row[1])

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
        items = [ticket_dict(ticket, uid) for ticket, uid in rows]
        return {"items": items, "total": int(total or 0), "limit": limit, "offset": offset}

    async def list_audit(self, object_type: str, object_id: str) -> list[dict[str, Any]]:
        async with self._read_sessions() as session:
            stmt = (
                sa.select(AuditEvent)
                .where(AuditEvent.object_type == object_type, AuditEvent.object_id == str(object_id))
                .order_by(AuditEvent.id)
            )
            return [audit_dict(item) for item in (await session.scalars(stmt)).all()]



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
