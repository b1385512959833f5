"""Tables for calls, draft tickets and the audit trail.

Portable between SQLite and PostgreSQL: JSON columns use ``sa.JSON`` and every
timestamp goes through :class:`UtcDateTime`, which stores UTC and always hands
back timezone-aware values (SQLite itself keeps no offset).

The schema is created by the hand-written migration
``migrations/versions/0001_initial.py``; keep the two in step.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

CALL_STATUSES = ("in_ivr", "queued", "ended")
TICKET_STATUSES = ("draft", "submitted", "answered")  # answered: closed on the call
DISPATCH_MODES = ("direct", "dual")
URGENCIES = ("normal", "urgent", "emergency")
TRANSCRIPT_STATUSES = ("none", "live", "done", "pending", "failed")
MERGE_MODES = ("primary", "retired", "dual_number", "sub_centre")
CATEGORIES = ("咨询", "建议", "举报", "投诉", "求助")
# After the agent submits a ticket for dispatch (issue 13): where it stands with the units.
#   dispatched  sent to its unit(s), not yet accepted by all
#   accepted    every unit accepted; work under way
#   review      back at the hotline: a unit objected (派单异议), or the 回访 found it unsolved
#               or the caller unsatisfied (review_reason says which); a supervisor re-dispatches
#               (-> dispatched), or closes it (-> closed)
#   handled     every unit replied 办结; the follow-up (回访) is due
#   closed      follow-up done (or not possible), or a supervisor closed it
HANDLING_STAGES = ("dispatched", "accepted", "review", "handled", "closed")
# One unit's part of a dispatched ticket.
DISPATCH_STATUSES = ("sent", "accepted", "objected", "handled", "withdrawn")
# What happened to a ticket after intake, in order (ticket_events.kind).
TICKET_EVENT_KINDS = ("dispatched", "accepted", "objected", "note", "handled", "redispatched", "closed",
                      "reminder", "overdue", "followup", "review", "sms", "withdrawn", "rejected")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(sa.types.TypeDecorator):
    """``DateTime(timezone=True)`` that stores UTC and reads back aware datetimes.

    A naive value is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# Ids of the tables that grow with every call (calls, tickets, their audit trail, desk drafts):
# 64-bit on PostgreSQL (BIGINT/BIGSERIAL: an audit row or more per call outlives 2**31), and
# SQLite's INTEGER PRIMARY KEY (the 64-bit rowid) there. Migration 0006 widens older databases.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Call(Base):
    """One inbound call, from the IVR's first step to the AMI Hangup."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    uniqueid: Mapped[str] = mapped_column(sa.String(64), unique=True, index=True)
    channel: Mapped[str] = mapped_column(sa.String(128))
    caller_number: Mapped[str] = mapped_column(sa.String(32))
    # What Asterisk gave as caller ID when it was not a valid number (caller_number is then "").
    caller_id_raw: Mapped[str | None] = mapped_column(sa.String(80))
    dialled_number: Mapped[str] = mapped_column(sa.String(32))
    line_number: Mapped[str] = mapped_column(sa.String(32))
    line_name: Mapped[str] = mapped_column(sa.String(128))
    merge_mode: Mapped[str] = mapped_column(sa.String(16))
    department: Mapped[str | None] = mapped_column(sa.String(128))
    flow_version: Mapped[str | None] = mapped_column(sa.String(64))
    menu_path: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    status: Mapped[str] = mapped_column(sa.String(16), default="in_ivr")
    queue: Mapped[str | None] = mapped_column(sa.String(64))
    agent: Mapped[str | None] = mapped_column(sa.String(128))
    hangup_cause: Mapped[int | None] = mapped_column(sa.Integer)
    hangup_cause_txt: Mapped[str | None] = mapped_column(sa.String(128))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The gateway instance (GATEWAY_INSTANCE_ID, the bus's name for it) whose FastAGI ran the IVR.
    instance: Mapped[str | None] = mapped_column(sa.String(64))

    ticket: Mapped[Ticket | None] = relationship(back_populates="call", uselist=False)


class Ticket(Base):
    """The draft ticket the IVR pre-fills for the agent (at most one per call)."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    call_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("calls.id"), unique=True)
    # What the caller hears and keys (gateway/ticketing/ticket_no.py); never the id.
    ticket_no: Mapped[str | None] = mapped_column(sa.String(16), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="draft", index=True)
    caller_number: Mapped[str] = mapped_column(sa.String(32), index=True)
    caller_id_raw: Mapped[str | None] = mapped_column(sa.String(80))
    dialled_number: Mapped[str] = mapped_column(sa.String(32))
    line_number: Mapped[str] = mapped_column(sa.String(32), index=True)
    line_name: Mapped[str] = mapped_column(sa.String(128))
    merge_mode: Mapped[str] = mapped_column(sa.String(16))
    department: Mapped[str | None] = mapped_column(sa.String(128))
    handled_by: Mapped[str | None] = mapped_column(sa.String(128))
    category: Mapped[str | None] = mapped_column(sa.String(16), index=True)
    channel_kind: Mapped[str | None] = mapped_column(sa.String(32))
    confidential: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    menu_path: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    recording_path: Mapped[str | None] = mapped_column(sa.String(512))
    recording_duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    # Why the recording cannot be trusted (issue 12): "disk_low: ...", "empty: ...", "truncated: ...".
    recording_problem: Mapped[str | None] = mapped_column(sa.String(200))
    queue: Mapped[str | None] = mapped_column(sa.String(64))
    overflow_queue: Mapped[str | None] = mapped_column(sa.String(64))
    overflow_reason: Mapped[str | None] = mapped_column(sa.String(32))
    # What the caller said (issue 4): live transcript, or "pending" until the recovery job runs.
    language: Mapped[str | None] = mapped_column(sa.String(8))
    transcript_status: Mapped[str] = mapped_column(sa.String(16), default="none", index=True)
    transcript: Mapped[str | None] = mapped_column(sa.Text)
    transcript_words: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON)
    transcript_confidence: Mapped[float | None] = mapped_column(sa.Float)
    transcript_model: Mapped[str | None] = mapped_column(sa.String(128))
    transcript_rtf: Mapped[float | None] = mapped_column(sa.Float)
    transcript_attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    transcript_error: Mapped[str | None] = mapped_column(sa.String(255))
    emergency: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    emergency_words: Mapped[list[str] | None] = mapped_column(sa.JSON)
    # The agent's decision (issue 5): submitted for dispatch, or answered on the call.
    urgency: Mapped[str | None] = mapped_column(sa.String(16))
    place: Mapped[str | None] = mapped_column(sa.String(200))
    summary: Mapped[str | None] = mapped_column(sa.Text)
    dispatch_mode: Mapped[str | None] = mapped_column(sa.String(16))
    units: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON)
    answer: Mapped[str | None] = mapped_column(sa.Text)
    linked_ticket_id: Mapped[int | None] = mapped_column(RowId)
    decided_by: Mapped[str | None] = mapped_column(sa.String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # After dispatch (issue 13): HANDLING_STAGES; the deadline by urgency and type; why it is
    # under review; when every unit replied 办结; whether the caller refused a 回访 at intake.
    handling: Mapped[str | None] = mapped_column(sa.String(16), index=True)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    review_reason: Mapped[str | None] = mapped_column(sa.String(32))
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    followup_opt_out: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    version_id: Mapped[int] = mapped_column(sa.Integer)

    call: Mapped[Call] = relationship(back_populates="ticket")

    __mapper_args__ = {"version_id_col": version_id}


class Dispatch(Base):
    """One handling unit's part of a submitted ticket (a 双派 ticket has two)."""

    __tablename__ = "dispatches"
    __table_args__ = (sa.Index("ix_dispatches_unit_status", "unit_id", "status"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("tickets.id"), index=True)
    unit_id: Mapped[str] = mapped_column(sa.String(64))  # a catalogue id (config/catalogue.yaml)
    unit_name: Mapped[str] = mapped_column(sa.String(128))
    status: Mapped[str] = mapped_column(sa.String(16), default="sent")  # DISPATCH_STATUSES
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    result: Mapped[str | None] = mapped_column(sa.Text)  # the 办结 reply
    objection: Mapped[str | None] = mapped_column(sa.Text)  # why the unit says it is not theirs
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # When the "overdue" notice (at the deadline) went out; reminded_at is the one before it
    # (migration 0010_units). Both are claimed with a compare-and-set: once across instances.
    overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class OutboxRow:
    """The columns every webhook outbox shares (a mixin): the units' ``unit_hook_deliveries`` and the
    early warnings' ``warning_deliveries``. Queued, claimed, retried with backoff and given up by
    one code, :mod:`gateway.units.outbox` (:class:`gateway.units.hooks.HookSender` sends them).
    A table adds ``unit_id`` (the hook's name), ``event`` and what the delivery is about."""

    id: Mapped[int] = mapped_column(RowId, primary_key=True, sort_order=-10)
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class UnitHookDelivery(OutboxRow, Base):
    """One event for a unit's own system (its webhook): dispatched, reminder, overdue, withdrawn.

    Written in the transaction that made the event, delivered (HMAC-signed JSON) by the units
    feature's periodic job, retried with backoff; ``delivered_at`` or ``failed_at`` ends it.
    Never holds a confidential caller's number (the payload is built from ids and texts).
    """

    __tablename__ = "unit_hook_deliveries"
    __table_args__ = (sa.Index("ix_unit_hook_deliveries_pending", "delivered_at", "next_at"),)

    unit_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    event: Mapped[str] = mapped_column(sa.String(16))
    ticket_id: Mapped[int] = mapped_column(RowId)


class TicketEvent(Base):
    """What happened to a ticket after intake (dispatch, a unit's note or reply, review...).

    ``public`` marks what the caller may hear by phone (progress): a unit's notes and replies,
    never internal remarks. ``text`` never holds the caller's number.
    """

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("tickets.id"), index=True)
    dispatch_id: Mapped[int | None] = mapped_column(RowId, sa.ForeignKey("dispatches.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(16))  # TICKET_EVENT_KINDS
    unit_id: Mapped[str | None] = mapped_column(sa.String(64))
    text: Mapped[str | None] = mapped_column(sa.Text)
    public: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class AuditEvent(Base):
    """Who did what to which object; ``details`` never holds phone numbers."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(32))
    action: Mapped[str] = mapped_column(sa.String(64))
    object_type: Mapped[str] = mapped_column(sa.String(32))
    object_id: Mapped[str] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class ConfigVersion(Base):
    """One version of the hotline configuration (the whole of config/, as YAML texts).

    History is linear: every change, schedule and rollback is a new row. The
    version calls follow is the latest ``applied`` one.
    """

    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(sa.String(16))
    files: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)  # applied, scheduled, cancelled
    parent_id: Mapped[int | None] = mapped_column(sa.Integer)
    diff: Mapped[str] = mapped_column(sa.Text, default="")
    change: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)  # the operation, for scheduled changes
    error: Mapped[str | None] = mapped_column(sa.Text)  # why a scheduled change could not be applied
    comment: Mapped[str] = mapped_column(sa.String(500))
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    effective_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TicketDraft(Base):
    """What an agent has typed into a ticket and not yet submitted (survives a browser reload).

    Kept apart from the ticket so saving it never bumps the ticket's version.
    """

    __tablename__ = "ticket_drafts"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "username", name="uq_ticket_drafts_ticket_user"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("tickets.id"), index=True)
    username: Mapped[str] = mapped_column(sa.String(64))
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    agent_id: Mapped[str | None] = mapped_column(sa.String(32))  # queue member (agents in hotlines.yaml)
    unit_id: Mapped[str | None] = mapped_column(sa.String(64))  # role "unit": a catalogue unit id
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class UserSession(Base):
    """A login: only a hash of the token is stored; the CSRF token is bound to it."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


# The 回访 (issue 13): one follow-up per ticket ("不层层回访"), by the IVR or an agent.
#   scheduled    waiting for next_at (inside the calling window)
#   calling      claimed by a gateway instance (claimed_by), the call is being placed or runs
#   done         answers recorded (solved, satisfaction, maybe a comment)
#   unreachable  the last attempt went unanswered (busy, no answer, failed, no answer to a question)
#   refused      the caller does not want a follow-up (at intake, or key 9 during the call)
#   cancelled    the ticket left "handled" before the call (e.g. re-dispatched)
FOLLOWUP_STATUSES = ("scheduled", "calling", "done", "unreachable", "refused", "cancelled")
FOLLOWUP_SOLVED = ("yes", "no")
FOLLOWUP_SATISFACTION = ("satisfied", "basic", "unsatisfied")


class Followup(Base):
    """The follow-up (回访) of one handled ticket: when it is due, its attempts and its answers."""

    __tablename__ = "followups"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("tickets.id"), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="scheduled", index=True)
    next_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_outcome: Mapped[str | None] = mapped_column(sa.String(32))  # answered, no_answer, busy, failed, no_input
    via: Mapped[str | None] = mapped_column(sa.String(8))  # ivr, desk
    solved: Mapped[str | None] = mapped_column(sa.String(8))  # FOLLOWUP_SOLVED
    satisfaction: Mapped[str | None] = mapped_column(sa.String(16))  # FOLLOWUP_SATISFACTION
    comment_path: Mapped[str | None] = mapped_column(sa.String(512))
    comment_transcript: Mapped[str | None] = mapped_column(sa.Text)
    comment_status: Mapped[str | None] = mapped_column(sa.String(16))  # TRANSCRIPT_STATUSES
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    agent: Mapped[str | None] = mapped_column(sa.String(64))  # the desk user who recorded the answers
    uniqueid: Mapped[str | None] = mapped_column(sa.String(64))  # the last outbound call's id
    claimed_by: Mapped[str | None] = mapped_column(sa.String(64))  # the instance placing the call
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

OUTBOUND_OUTCOMES = ("answered", "no_answer", "busy", "failed")


class OutboundCall(Base):
    """One call the gateway placed to a citizen (gateway.pbx.outbound): every attempt leaves a row.

    ``outcome`` is None while the call rings; ``ended_at`` is set when an unanswered attempt
    ends, or by the AMI Hangup of an answered one. ``ref`` is the purpose's own id (a callback,
    a ticket number), never a phone number."""

    __tablename__ = "outbound_calls"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    uniqueid: Mapped[str] = mapped_column(sa.String(80), unique=True, index=True)
    purpose: Mapped[str] = mapped_column(sa.String(32))
    ref: Mapped[str] = mapped_column(sa.String(64), index=True)
    number: Mapped[str] = mapped_column(sa.String(32))
    node: Mapped[str | None] = mapped_column(sa.String(64))
    outcome: Mapped[str | None] = mapped_column(sa.String(16))  # OUTBOUND_OUTCOMES
    reason: Mapped[str | None] = mapped_column(sa.String(200))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
# The SMS outbox (issue 13): texts to callers, sent by gateway/sms/ with retries.
SMS_STATUSES = ("pending", "sending", "sent", "failed", "dead")
SMS_KINDS = ("ticket_no", "renumbered")


class SmsOutbox(Base):
    """One text message to a caller: written with the ticket, sent later by the SMS worker.

    ``pending`` waits for ``next_at``; ``sending`` is claimed by one gateway instance
    (``sender`` names it; a claim older than the lease is taken back); ``failed`` waits for
    a retry after a failed attempt; ``sent`` and ``dead`` (``attempts`` used up, or refused
    for good) are final. ``to_number`` is the caller's number: masked wherever it is shown.
    """

    __tablename__ = "sms_outbox"
    __table_args__ = (sa.Index("ix_sms_outbox_status_next_at", "status", "next_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(RowId, sa.ForeignKey("tickets.id"), index=True)
    to_number: Mapped[str] = mapped_column(sa.String(32))
    kind: Mapped[str] = mapped_column(sa.String(16))  # SMS_KINDS
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # SMS_STATUSES
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.String(255))
    sender: Mapped[str | None] = mapped_column(sa.String(64))
    provider_ref: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
# A callback instead of waiting (issue 13, virtual hold): gateway.callback.policy has the moves.
CALLBACK_STATUSES = ("waiting", "dialling", "connected", "no_answer", "failed", "cancelled", "done")


class Callback(Base):
    """A caller's place in a queue, kept while they hung up; the gateway calls them back.

    The ticket stays the original call's ticket. ``claimed_by`` names the gateway instance
    that placed the current attempt (one row claim: two instances never both call).
    """

    __tablename__ = "callbacks"
    __table_args__ = (sa.Index("ix_callbacks_status_queue", "status", "queue"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(RowId, sa.ForeignKey("tickets.id"), index=True)
    call_uniqueid: Mapped[str] = mapped_column(sa.String(64), unique=True)  # the original call
    queue: Mapped[str] = mapped_column(sa.String(64))
    number: Mapped[str] = mapped_column(sa.String(32))  # the number to call (never in logs unmasked)
    number_source: Mapped[str] = mapped_column(sa.String(16))  # caller_id or keyed
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())  # the place kept in the queue
    status: Mapped[str] = mapped_column(sa.String(16), default="waiting")  # CALLBACK_STATUSES
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_result: Mapped[str | None] = mapped_column(sa.String(200))
    agent: Mapped[str | None] = mapped_column(sa.String(128))
    outbound_uniqueid: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

