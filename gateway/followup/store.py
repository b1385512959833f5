"""The follow-ups' rows (table ``followups``) and what they change on the ticket.

Theory of operation: one row per ticket (``ticket_id`` is unique: "不层层回访", one
follow-up, never several). The scheduler creates it for a ticket that reached
``handling="handled"``; a gateway instance *claims* a due row (``scheduled`` ->
``calling``, ``claimed_by`` its instance id, ``attempts`` + 1) in one write transaction
before it dials, so two instances never call the same citizen; a row left ``calling`` by an
instance that died is released after a while (:meth:`FollowupStore.release_stale`). The
answers (by the IVR or an agent at the desk) are written with the ticket's new stage in one
transaction: ``closed``, or ``review`` with ``review_reason`` ``unsolved``/``unsatisfied``,
a public :class:`TicketEvent` (``kind="followup"``) and an audit event.

State transitions (anything else raises :class:`FollowupConflict`)::

    scheduled -> calling -> done | scheduled (retry) | unreachable | refused
    scheduled | unreachable -> done (the desk)      scheduled -> cancelled (ticket not handled)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gateway.errors import Conflict, NotFound
from gateway.ticketing.models import (
    FOLLOWUP_SATISFACTION,
    FOLLOWUP_SOLVED,
    AuditEvent,
    Followup,
    Ticket,
    TicketEvent,
)
from gateway.ticketing.rows import iso
from gateway.ticketing.store import TicketStore

SOLVED_ZH = {"yes": "已解决", "no": "未解决"}
SATISFACTION_ZH = {"satisfied": "满意", "basic": "基本满意", "unsatisfied": "不满意"}
# Which transitions a row may take (h11-style table): status -> statuses it may go to.
TRANSITIONS = {
    "scheduled": {"calling", "cancelled", "done", "refused"},
    "calling": {"done", "scheduled", "unreachable", "refused"},
    "unreachable": {"done"},
    "done": set(),
    "refused": set(),
    "cancelled": set(),
}


class FollowupConflict(Conflict):
    error_id = "followup-conflict"


class FollowupDone(Conflict):
    """The ticket's one follow-up is already recorded (不层层回访)."""

    error_id = "followup-done"


class FollowupCalling(Conflict):
    error_id = "followup-calling"


class NotHandled(Conflict):
    error_id = "not-handled"


class BadAnswer(Conflict):
    status_code = 400
    error_id = "bad-followup-answer"


@dataclass(frozen=True)
class Answers:
    solved: str  # FOLLOWUP_SOLVED
    satisfaction: str  # FOLLOWUP_SATISFACTION
    comment_path: str | None = None
    comment_transcript: str | None = None
    comment_status: str | None = None  # done, pending, none

    def __post_init__(self) -> None:
        if self.solved not in FOLLOWUP_SOLVED:
            raise BadAnswer(f"solved must be one of {FOLLOWUP_SOLVED} / 是否解决的取值有误", details={"field": "solved"})
        if self.satisfaction not in FOLLOWUP_SATISFACTION:
            raise BadAnswer(f"satisfaction must be one of {FOLLOWUP_SATISFACTION} / 满意度的取值有误",
                            details={"field": "satisfaction"})

    @property
    def review_reason(self) -> str | None:
        """未解决 or 不满意 puts the ticket on the review list (unsolved first: it says more)."""
        if self.solved == "no":
            return "unsolved"
        if self.satisfaction == "unsatisfied":
            return "unsatisfied"
        return None

    def summary_zh(self) -> str:
        return f"回访：{SOLVED_ZH[self.solved]}，{SATISFACTION_ZH[self.satisfaction]}"


def followup_dict(row: Followup, ticket: Ticket | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "ticket_id": row.ticket_id,
        "status": row.status,
        "next_at": iso(row.next_at),
        "attempts": row.attempts,
        "last_outcome": row.last_outcome,
        "via": row.via,
        "solved": row.solved,
        "satisfaction": row.satisfaction,
        "comment_path": row.comment_path,
        "comment_transcript": row.comment_transcript,
        "comment_status": row.comment_status,
        "answered_at": iso(row.answered_at),
        "agent": row.agent,
        "uniqueid": row.uniqueid,
        "claimed_by": row.claimed_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if ticket is not None:
        out["ticket"] = {
            "id": ticket.id, "ticket_no": ticket.ticket_no, "caller_number": ticket.caller_number,
            "confidential": bool(ticket.confidential), "category": ticket.category, "summary": ticket.summary,
            "handling": ticket.handling, "review_reason": ticket.review_reason,
            "handled_at": iso(ticket.handled_at), "created_at": iso(ticket.created_at),
            "followup_opt_out": bool(ticket.followup_opt_out),
        }
    return out


def _move(row: Followup, to: str) -> None:
    if to not in TRANSITIONS[row.status]:
        if row.status == "done" or row.status == "refused":
            raise FollowupDone(f"follow-up of ticket {row.ticket_id} already {row.status} / 该工单已回访（不重复回访）",
                               details={"status": row.status, "via": row.via, "agent": row.agent,
                                        "answered_at": iso(row.answered_at)})
        if row.status == "calling":
            raise FollowupCalling(f"ticket {row.ticket_id} is being called now / 该工单正在回访通话中",
                                  details={"status": row.status, "claimed_by": row.claimed_by})
        raise FollowupConflict(f"follow-up of ticket {row.ticket_id}: {row.status} -> {to} is not allowed"
                               f" / 回访状态不允许此操作", details={"status": row.status, "to": to})
    row.status = to


def callable_number(ticket: Ticket) -> bool:
    """The caller's number can be called back: a valid number was received (confidential callers too:
    the hotline knows their number; only the units never see it)."""
    number = ticket.caller_number or ""
    return ticket.caller_id_raw is None and number.lstrip("+").isdigit() and 3 <= len(number) <= 20


class FollowupStore:
    def __init__(self, store: TicketStore) -> None:
        self.store = store

    # -- scheduling ------------------------------------------------------------------------

    async def unscheduled(self, *, limit: int = 100) -> list[dict]:
        """Handled tickets without a follow-up row (oldest 办结 first)."""
        stmt = (sa.select(Ticket.id, Ticket.handled_at)
                .outerjoin(Followup, Followup.ticket_id == Ticket.id)
                .where(Ticket.handling == "handled", Followup.id.is_(None))
                .order_by(Ticket.handled_at, Ticket.id).limit(limit))
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt)).all()
        return [{"ticket_id": tid, "handled_at": handled_at} for tid, handled_at in rows]

    async def create(self, ticket_id: int, *, next_at: datetime, now: datetime, actor: str = "followup") -> dict | None:
        """The ticket's follow-up row: ``scheduled`` at ``next_at``; ``refused`` when the caller
        refused at intake and ``unreachable`` without a number to call (both close the ticket).
        None when the ticket already has one (another instance was first) or is no longer handled."""

        async def work(session) -> dict | None:
            ticket = await session.get(Ticket, ticket_id, with_for_update=True)
            if ticket is None or ticket.handling != "handled":
                return None
            if (await session.execute(sa.select(Followup.id).where(Followup.ticket_id == ticket_id))).first():
                return None
            row = Followup(ticket_id=ticket_id, status="scheduled", next_at=next_at, attempts=0,
                           created_at=now, updated_at=now)
            session.add(row)
            if ticket.followup_opt_out:
                row.status, row.next_at, row.last_outcome = "refused", None, "opt_out"
                _close(session, ticket, now, actor, "回访：来电人不需要回访", public=False)
            elif not callable_number(ticket):
                row.status, row.next_at, row.last_outcome = "unreachable", None, "no_number"
                _close(session, ticket, now, actor, "回访：无可回拨的号码", public=False)
            await session.flush()  # IntegrityError if another instance created it meanwhile
            session.add(_audit(actor, "followup.created", ticket_id,
                               {"status": row.status, "next_at": iso(row.next_at), "reason": row.last_outcome}))
            return followup_dict(row)

        try:
            return await self.store.run_write(work)
        except IntegrityError:
            return None

    async def claim_due(self, instance: str, *, now: datetime, limit: int) -> list[dict]:
        """Take up to ``limit`` due rows for this instance (``calling``, one more attempt), with what
        the call needs; rows whose ticket left ``handled`` meanwhile are cancelled instead."""

        async def work(session) -> list[dict]:
            stmt = (sa.select(Followup).where(Followup.status == "scheduled", Followup.next_at <= now)
                    .order_by(Followup.next_at, Followup.id).limit(limit).with_for_update(skip_locked=True))
            out = []
            for row in (await session.execute(stmt)).scalars():
                ticket = await session.get(Ticket, row.ticket_id)
                if ticket is None or ticket.handling != "handled":
                    _move(row, "cancelled")
                    row.next_at, row.updated_at = None, now
                    session.add(_audit("followup", "followup.cancelled", row.ticket_id,
                                       {"handling": ticket.handling if ticket else None}))
                    continue
                _move(row, "calling")
                row.attempts += 1
                row.claimed_by, row.claimed_at, row.updated_at = instance[:64], now, now
                item = followup_dict(row, ticket)
                out.append(item)
            return out

        return await self.store.run_write(work)

    async def release_stale(self, *, now: datetime, older_than: timedelta, instance: str | None = None) -> list[dict]:
        """Rows left ``calling`` by an instance that stopped (claimed longer ago than ``older_than``,
        or by ``instance`` itself at its start): the caller is told nothing; they are retried."""
        cond = Followup.claimed_at <= now - older_than
        if instance is not None:
            cond = sa.or_(cond, Followup.claimed_by == instance[:64])

        async def work(session) -> list[dict]:
            rows = (await session.execute(sa.select(Followup).where(Followup.status == "calling", cond)
                                          .with_for_update())).scalars().all()
            return [followup_dict(r) for r in rows]

        return await self.store.run_write(work)

    # -- outcomes ---------------------------------------------------------------------------

    async def unanswered(self, followup_id: int, *, outcome: str, uniqueid: str | None, status: str,
                         next_at: datetime | None, now: datetime) -> dict:
        """An attempt without answers (no answer, busy, failed, no key pressed): ``scheduled`` again
        at ``next_at``, or ``unreachable`` (the ticket is closed: a follow-up is not possible)."""
        if status not in ("scheduled", "unreachable"):
            raise ValueError(status)

        async def work(session) -> dict:
            row = await _row(session, followup_id)
            _move(row, status)
            row.last_outcome, row.next_at, row.updated_at = outcome[:32], next_at, now
            if uniqueid:
                row.uniqueid = uniqueid[:64]
            row.claimed_by = row.claimed_at = None
            session.add(_audit("followup", "followup.attempt", row.ticket_id,
                               {"attempt": row.attempts, "outcome": row.last_outcome, "status": status,
                                "next_at": iso(next_at), "uniqueid": row.uniqueid}))
            if status == "unreachable":
                ticket = await session.get(Ticket, row.ticket_id)
                if ticket is not None and ticket.handling == "handled":
                    _close(session, ticket, now, "followup", f"回访：{row.attempts}次未接通", public=False)
            return followup_dict(row)

        return await self.store.run_write(work)

    async def refused(self, followup_id: int, *, uniqueid: str | None, now: datetime, actor: str = "followup") -> dict:
        """The caller pressed 9 (no more follow-up calls): ``refused``, the ticket closed."""

        async def work(session) -> dict:
            row = await _row(session, followup_id)
            _move(row, "refused")
            row.via, row.last_outcome, row.next_at, row.updated_at = "ivr", "refused", None, now
            row.answered_at = now
            if uniqueid:
                row.uniqueid = uniqueid[:64]
            row.claimed_by = row.claimed_at = None
            ticket = await session.get(Ticket, row.ticket_id)
            ticket.followup_opt_out = True
            if ticket.handling == "handled":
                _close(session, ticket, now, actor, "回访：来电人不希望再接到回访", public=False)
            session.add(_audit(actor, "followup.refused", row.ticket_id, {"uniqueid": row.uniqueid}))
            return followup_dict(row)

        return await self.store.run_write(work)

    async def answered(self, ticket_id: int, answers: Answers, *, via: str, now: datetime, actor: str,
                       followup_id: int | None = None, uniqueid: str | None = None,
                       agent: str | None = None) -> dict:
        """Store the answers on the follow-up and the ticket (closed, or review), audited.

        ``via="desk"``: an agent's follow-up by phone; the row is created when the scheduler has
        not made it yet; a second follow-up of the ticket raises :class:`FollowupDone` (409)."""
        if via not in ("ivr", "desk"):
            raise ValueError(via)

        async def work(session) -> dict:
            ticket = await session.get(Ticket, ticket_id, with_for_update=True)
            if ticket is None:
                raise NotFound(f"no ticket {ticket_id}", details={"ticket_id": ticket_id})
            row = (await session.execute(sa.select(Followup).where(Followup.ticket_id == ticket_id)
                                         .with_for_update())).scalar_one_or_none()
            if row is not None and followup_id is not None and row.id != followup_id:
                raise FollowupConflict("not this ticket's follow-up", details={"followup_id": followup_id})
            if row is None:
                if ticket.handling != "handled":
                    raise NotHandled(f"ticket {ticket_id} is not handled (办结) yet / 工单尚未办结，不能回访",
                                     details={"handling": ticket.handling})
                row = Followup(ticket_id=ticket_id, status="scheduled", attempts=0, created_at=now, updated_at=now)
                session.add(row)
            if via == "desk" and row.status == "calling":
                raise FollowupCalling(f"ticket {ticket_id} is being called now / 该工单正在回访通话中",
                                      details={"status": row.status, "claimed_by": row.claimed_by})
            _move(row, "done")
            row.via, row.solved, row.satisfaction = via, answers.solved, answers.satisfaction
            row.comment_path, row.comment_transcript = answers.comment_path, answers.comment_transcript
            row.comment_status = answers.comment_status
            row.answered_at, row.updated_at, row.next_at, row.last_outcome = now, now, None, "answered"
            row.agent = agent[:64] if agent else None
            if uniqueid:
                row.uniqueid = uniqueid[:64]
            if via == "desk":
                row.attempts += 1
            row.claimed_by = row.claimed_at = None
            reason = answers.review_reason
            ticket.handling = "review" if reason else "closed"
            ticket.review_reason = reason
            session.add(TicketEvent(ticket_id=ticket_id, at=now, actor=actor[:64], kind="followup",
                                    text=answers.summary_zh(), public=True))
            if reason:
                session.add(TicketEvent(ticket_id=ticket_id, at=now, actor=actor[:64], kind="review",
                                        text={"unsolved": "回访未解决，转回审核", "unsatisfied": "回访不满意，转回审核"}[reason],
                                        public=False))
            session.add(_audit(actor, "ticket.followup", ticket_id, {
                "via": via, "solved": answers.solved, "satisfaction": answers.satisfaction,
                "comment": bool(answers.comment_path or answers.comment_transcript), "handling": ticket.handling,
                "review_reason": reason, "agent": row.agent, "uniqueid": row.uniqueid}))
            await session.flush()
            return followup_dict(row, ticket)

        return await self.store.run_write(work)

    async def set_comment_transcript(self, followup_id: int, *, text: str | None, status: str) -> None:
        async def work(session) -> None:
            row = await _row(session, followup_id)
            row.comment_transcript, row.comment_status = text, status
            session.add(_audit("asr", "followup.comment_transcribed", row.ticket_id, {"status": status}))

        await self.store.run_write(work)

    async def set_uniqueid(self, followup_id: int, uniqueid: str) -> None:
        async def work(session) -> None:
            row = await _row(session, followup_id)
            row.uniqueid = uniqueid[:64]

        await self.store.run_write(work)

    # -- readers -----------------------------------------------------------------------------

    async def get(self, followup_id: int) -> dict:
        async with self.store.read_session() as session:
            row = await session.get(Followup, followup_id)
            if row is None:
                raise NotFound(f"no follow-up {followup_id}", details={"followup_id": followup_id})
            return followup_dict(row, await session.get(Ticket, row.ticket_id))

    async def of_ticket(self, ticket_id: int) -> dict | None:
        async with self.store.read_session() as session:
            row = (await session.execute(sa.select(Followup).where(Followup.ticket_id == ticket_id))).scalar()
            return None if row is None else followup_dict(row, await session.get(Ticket, ticket_id))

    async def listing(self, statuses: tuple[str, ...], *, limit: int = 100) -> list[dict]:
        """Follow-ups in ``statuses`` with their ticket, the due ones first."""
        stmt = (sa.select(Followup, Ticket).join(Ticket, Ticket.id == Followup.ticket_id)
                .where(Followup.status.in_(statuses))
                .order_by(Followup.next_at.is_(None), Followup.next_at, Followup.id.desc()).limit(limit))
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt)).all()
        return [followup_dict(f, t) for f, t in rows]

    async def handled_without_followup(self, *, limit: int = 100) -> list[dict]:
        """Handled tickets the scheduler has not reached yet (the desk may follow them up by hand)."""
        stmt = (sa.select(Ticket).outerjoin(Followup, Followup.ticket_id == Ticket.id)
                .where(Ticket.handling == "handled", Followup.id.is_(None)).order_by(Ticket.handled_at).limit(limit))
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt)).scalars().all()
        return [{"id": None, "ticket_id": t.id, "status": "pending", "attempts": 0, "next_at": None,
                 "ticket": followup_dict(Followup(ticket_id=t.id, status="scheduled", attempts=0), t)["ticket"]}
                for t in rows]

    async def audit(self, actor: str, action: str, ticket_id: int, details: dict | None = None) -> None:
        async def work(session) -> None:
            session.add(_audit(actor, action, ticket_id, details or {}))

        await self.store.run_write(work)

    async def review_list(self, *, limit: int = 100) -> list[dict]:
        """Tickets the follow-up put on the review list (未解决 or 不满意), newest answers first."""
        stmt = (sa.select(Followup, Ticket).join(Ticket, Ticket.id == Followup.ticket_id)
                .where(Ticket.handling == "review", Ticket.review_reason.in_(("unsolved", "unsatisfied")))
                .order_by(Followup.answered_at.desc(), Followup.id.desc()).limit(limit))
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt)).all()
        return [followup_dict(f, t) for f, t in rows]

    async def counts(self) -> dict:
        async with self.store.read_session() as session:
            rows = (await session.execute(sa.select(Followup.status, sa.func.count(Followup.id))
                                          .group_by(Followup.status))).all()
        return {status: int(n) for status, n in rows}


async def _row(session, followup_id: int) -> Followup:
    row = (await session.execute(sa.select(Followup).where(Followup.id == followup_id).with_for_update())).scalar()
    if row is None:
        raise NotFound(f"no follow-up {followup_id}", details={"followup_id": followup_id})
    return row


def _close(session, ticket: Ticket, now: datetime, actor: str, text: str, *, public: bool) -> None:
    ticket.handling = "closed"
    session.add(TicketEvent(ticket_id=ticket.id, at=now, actor=actor[:64], kind="closed", text=text, public=public))


def _audit(actor: str, action: str, ticket_id: int, details: dict) -> AuditEvent:
    return AuditEvent(actor=actor[:32], action=action, object_type="ticket", object_id=str(ticket_id),
                      details=details)
