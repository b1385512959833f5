"""Rows of the ticket database as JSON-ready dicts, and the lookups every store of it shares.

No ORM object leaves the stores: readers return these dicts (datetimes as ISO 8601 strings).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import NotFound
from gateway.ticketing.models import AuditEvent, Call, Ticket


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def call_dict(call: Call, ticket_id: int | None) -> dict[str, Any]:
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
        "started_at": iso(call.started_at),
        "ended_at": iso(call.ended_at),
        "ticket_id": ticket_id,
        "instance": call.instance,
    }


def ticket_dict(ticket: Ticket, uniqueid: str) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "ticket_no": ticket.ticket_no,
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
        "recording_problem": ticket.recording_problem,
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
        "decided_at": iso(ticket.decided_at),
        "handling": ticket.handling,
        "due_at": iso(ticket.due_at),
        "review_reason": ticket.review_reason,
        "handled_at": iso(ticket.handled_at),
        "followup_opt_out": bool(ticket.followup_opt_out),
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "version_id": ticket.version_id,
    }


def audit_dict(item: AuditEvent) -> dict[str, Any]:
    return {
        "id": item.id,
        "at": iso(item.at),
        "actor": item.actor,
        "action": item.action,
        "object_type": item.object_type,
        "object_id": item.object_id,
        "details": dict(item.details or {}),
    }


async def find_call(session: AsyncSession, uniqueid: str, *, required: bool = True, lock: bool = True) -> Call | None:
    """The call, locked for this (write) transaction by default: ``FOR UPDATE`` on PostgreSQL, so
    two writers of one call (an AMI event and the IVR, or two gateway instances) take turns and
    the second reads what the first committed (one ``call.ended``, one overflow); SQLite ignores
    it (its writers already take turns on the whole database)."""
    stmt = sa.select(Call).where(Call.uniqueid == uniqueid)
    if lock:
        stmt = stmt.with_for_update()
    call = (await session.execute(stmt)).scalar_one_or_none()
    if call is None and required:
        raise NotFound(f"no call {uniqueid!r}", details={"uniqueid": uniqueid})
    return call


async def ticket_of(session: AsyncSession, call: Call) -> Ticket | None:
    stmt = sa.select(Ticket).where(Ticket.call_id == call.id)
    return (await session.execute(stmt)).scalar_one_or_none()
