"""What the handling units and the hotline's supervisors read and write after dispatch.

Theory of operation
-------------------
Every write is one transaction that locks the ticket row (``FOR UPDATE`` on PostgreSQL;
SQLite's writers take turns anyway), re-reads the dispatch, applies one transition of
:mod:`gateway.units.states` (a forbidden one raises 409), re-derives the ticket's stage, and
writes a :class:`TicketEvent` (what happened, shown in the ticket's history), an
:class:`AuditEvent` (who did it; never a phone number or the texts) and, for the events a unit's
own system hears about, a :class:`UnitHookDelivery`. The ticket's version counter makes a
concurrent writer lose (retried by the store, then refused by the state check), so of two
办结 replies one wins and the other gets a 409; the ``handled`` event is written once.

A unit reads only its own dispatches: another unit's dispatch, or a ticket it never got,
is "not found" (404), never "forbidden" (which would say it exists). It never gets the
caller's number of a confidential ticket (nor, at all, through a webhook), nor the
recording, nor other units' internal notes; what the caller said reaches it with personal
numbers masked (:mod:`gateway.pii`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from gateway.errors import Conflict, GatewayError, NotFound
from gateway.masking import mask_number
from gateway.pii import mask_personal
from gateway.ticketing.models import AuditEvent, Dispatch, Ticket, TicketEvent, UnitHookDelivery
from gateway.ticketing.rows import iso
from gateway.ticketing.store import TicketStore
from gateway.units import outbox
from gateway.units.deadlines import DEFAULTS, Calendar, Deadlines
from gateway.units.states import ACTIVE, ticket_stage, transition

HOOK_EVENTS = ("dispatched", "reminder", "overdue", "withdrawn")
UNIT_STATES = ("new", "accepted", "overdue", "handled", "objected", "all")


class UnknownUnit(GatewayError):
    status_code = 400
    error_id = "unknown-unit"


@dataclass(frozen=True)
class UnitRef:
    id: str
    name: str


def dispatch_dict(d: Dispatch, now: datetime | None = None) -> dict[str, Any]:
    out = {"id": d.id, "ticket_id": d.ticket_id, "unit_id": d.unit_id, "unit_name": d.unit_name,
           "status": d.status, "due_at": iso(d.due_at), "accepted_at": iso(d.accepted_at),
           "handled_at": iso(d.handled_at), "result": d.result, "objection": d.objection,
           "reminded_at": iso(d.reminded_at), "overdue_at": iso(d.overdue_at), "created_at": iso(d.created_at)}
    if now is not None and d.due_at is not None:
        left = (d.due_at - now).total_seconds()
        out["seconds_left"] = int(left)
        out["overdue"] = d.status in ACTIVE and left < 0
    return out


def event_dict(e: TicketEvent) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "actor": e.actor, "kind": e.kind, "unit_id": e.unit_id,
            "dispatch_id": e.dispatch_id, "text": e.text, "public": bool(e.public)}


def unit_ticket_view(t: Ticket) -> dict[str, Any]:
    """The ticket as a handling unit sees it: no confidential caller's number, no recording,
    what the caller said with personal numbers masked."""
    out = {k: getattr(t, k) for k in ("id", "ticket_no", "category", "urgency", "place", "summary",
                                      "line_name", "dispatch_mode", "handling", "emergency")}
    out.update(created_at=iso(t.created_at), decided_at=iso(t.decided_at), due_at=iso(t.due_at),
               handled_at=iso(t.handled_at), version_id=t.version_id, confidential=bool(t.confidential))
    out["transcript"] = mask_personal(t.transcript or "") or None
    if t.confidential:
        out["caller_number"] = None
        out["caller"] = "保密 (confidential: contact through 12345)"
        for key in ("place", "summary"):
            if out.get(key):
                out[key] = mask_personal(out[key])
    else:
        out["caller_number"] = mask_number(t.caller_number) if t.caller_number else None
    return out


def hook_payload(event: str, t: Ticket, d: Dispatch, text: str | None, at: datetime) -> dict[str, Any]:
    """What a unit's own system receives: ids and texts, never the caller's number."""
    summary, place = t.summary, t.place
    if t.confidential:
        summary, place = mask_personal(summary or "") or None, mask_personal(place or "") or None
    return {"event": event, "at": iso(at), "unit_id": d.unit_id, "dispatch_id": d.id, "ticket_id": t.id,
            "ticket_no": t.ticket_no, "status": d.status, "due_at": iso(d.due_at), "category": t.category,
            "urgency": t.urgency, "place": place, "summary": summary, "confidential": bool(t.confidential),
            "text": text}


class UnitStore:
    def __init__(self, store: TicketStore, *, units: Callable[[], dict] = dict,
                 deadlines: Callable[[], Deadlines] = lambda: DEFAULTS,
                 calendar: Callable[[], Calendar] = Calendar, hooked: Callable[[str], bool] = lambda _u: False) -> None:
        self.store = store
        self.units = units  # unit id -> name (the catalogue's, at each use)
        self.deadlines = deadlines
        self.calendar = calendar
        self.hooked = hooked  # whether a unit has a webhook (deliveries are queued only then)

    # -- helpers (inside a write transaction) ------------------------------------------------
    def _event(self, session, t: Ticket, kind: str, actor: str, now: datetime, *, d: Dispatch | None = None,
               text: str | None = None, public: bool = False) -> None:
        session.add(TicketEvent(ticket_id=t.id, dispatch_id=d.id if d else None, at=now, actor=actor[:64],
                                kind=kind, unit_id=d.unit_id if d else None, text=text, public=public))

    def _audit(self, session, actor: str, action: str, t: Ticket, **details) -> None:
        session.add(AuditEvent(actor=actor[:32], action=action, object_type="ticket", object_id=str(t.id),
                               details=details))

    def _hook(self, session, event: str, t: Ticket, d: Dispatch, text: str | None, now: datetime) -> None:
        if self.hooked(d.unit_id):
            session.add(outbox.new(UnitHookDelivery, now, unit_id=d.unit_id, event=event, ticket_id=t.id,
                                   payload=hook_payload(event, t, d, text, now)))

    async def _locked_ticket(self, session, ticket_id: int) -> Ticket:
        t = (await session.execute(sa.select(Ticket).where(Ticket.id == ticket_id).with_for_update())).scalar()
        if t is None:
            raise NotFound(f"no ticket {ticket_id}", details={"ticket_id": ticket_id})
        return t

    async def _restage(self, session, t: Ticket, actor: str, now: datetime) -> None:
        """Derive the ticket's stage from its dispatches; the public ``handled`` event when it becomes handled."""
        rows = (await session.execute(sa.select(Dispatch).where(Dispatch.ticket_id == t.id)
                                      .order_by(Dispatch.id))).scalars().all()
        handling, reason = ticket_stage([d.status for d in rows])
        live = [d for d in rows if d.status in ACTIVE and d.due_at is not None]
        t.due_at = min((d.due_at for d in live), default=t.due_at)
        if handling == "handled" and t.handling != "handled":
            t.handled_at = now
            results = [d.result for d in rows if d.status == "handled" and d.result]
            text = results[0] if len(results) == 1 else "\n".join(
                f"{d.unit_name}：{d.result}" for d in rows if d.status == "handled" and d.result)
            self._event(session, t, "handled", actor, now, text=text, public=True)
        t.handling, t.review_reason = handling, reason

    def _new_dispatch(self, session, t: Ticket, unit: UnitRef, now: datetime) -> Dispatch:
        due = self.deadlines().due_at(now, t.urgency, t.category, self.calendar())
        d = Dispatch(ticket_id=t.id, unit_id=unit.id, unit_name=unit.name, status="sent", due_at=due,
                     created_at=now, updated_at=now)
        session.add(d)
        return d

    def resolve_units(self, units: list[dict]) -> tuple[list[UnitRef], list[str]]:
        """The catalogue units among the desk's ``units`` (by id, else by exact name), and the
        names of those that are not in the catalogue."""
        known = self.units()
        by_name = {name: uid for uid, name in known.items()}
        found: list[UnitRef] = []
        missing: list[str] = []
        for u in units or []:
            uid = u.get("id") if u.get("id") in known else by_name.get(u.get("name") or "")
            if uid is None:
                missing.append(str(u.get("name") or u.get("id") or "?"))
            elif uid not in [f.id for f in found]:
                found.append(UnitRef(uid, known[uid]))
        return found, missing

    # -- dispatch (inside the desk's submit transaction) ----------------------------------------
    async def dispatch_submitted(self, session, t: Ticket, actor: str, now: datetime) -> None:
        """Called by :class:`gateway.ticketing.desk_store.DeskStore` when an agent submits: one
        dispatch per catalogue unit; with none, the ticket stays at the hotline for review."""
        found, missing = self.resolve_units(list(t.units or []))
        dispatches = [self._new_dispatch(session, t, u, now) for u in found]
        await session.flush()
        for d in dispatches:
            self._event(session, t, "dispatched", actor, now, d=d, text=d.unit_name, public=True)
            self._hook(session, "dispatched", t, d, None, now)
        if dispatches:
            t.handling, t.review_reason = "dispatched", None
            t.due_at = min(d.due_at for d in dispatches)
        else:
            t.handling, t.review_reason = "review", "no_unit"
            self._event(session, t, "review", actor, now,
                        text="无目录内承办单位，待热线派单 / no catalogue unit: the hotline dispatches it")
        self._audit(session, actor, "ticket.dispatched", t, dispatches=[d.id for d in dispatches],
                    units=[u.id for u in found], unknown_units=missing)

    # -- the unit's side --------------------------------------------------------------------------
    async def list_for_unit(self, unit_id: str, state: str, now: datetime, *, limit: int = 200) -> list[dict]:
        stmt = (sa.select(Dispatch, Ticket).join(Ticket, Ticket.id == Dispatch.ticket_id)
                .where(Dispatch.unit_id == unit_id))
        if state == "new":
            stmt = stmt.where(Dispatch.status == "sent")
        elif state == "accepted":
            stmt = stmt.where(Dispatch.status == "accepted")
        elif state == "overdue":
            stmt = stmt.where(Dispatch.status.in_(ACTIVE), Dispatch.due_at < now)
        elif state == "handled":
            stmt = stmt.where(Dispatch.status == "handled")
        elif state == "objected":
            stmt = stmt.where(Dispatch.status == "objected")
        else:
            stmt = stmt.where(Dispatch.status != "withdrawn")
        order = Dispatch.handled_at.desc() if state == "handled" else Dispatch.due_at.asc()
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt.order_by(order, Dispatch.id).limit(limit))).all()
        return [{**dispatch_dict(d, now), "ticket": _brief(t)} for d, t in rows]

    async def _unit_dispatch(self, session, dispatch_id: int, unit_id: str) -> Dispatch:
        d = await session.get(Dispatch, dispatch_id)
        if d is None or d.unit_id != unit_id:  # another unit's: not found, as if it did not exist
            raise NotFound(f"no dispatch {dispatch_id}", details={"dispatch_id": dispatch_id})
        return d

    async def open_for_unit(self, dispatch_id: int, unit_id: str, now: datetime) -> dict:
        async with self.store.read_session() as session:
            d = await self._unit_dispatch(session, dispatch_id, unit_id)
            t = await session.get(Ticket, d.ticket_id)
            events = (await session.execute(sa.select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                                            .order_by(TicketEvent.at, TicketEvent.id))).scalars().all()
            others = (await session.execute(sa.select(Dispatch).where(
                Dispatch.ticket_id == t.id, Dispatch.id != d.id, Dispatch.status != "withdrawn"))).scalars().all()
        mine = [e for e in events if e.public or (e.unit_id == unit_id and e.kind in (
            "note", "reminder", "overdue", "objected", "withdrawn", "rejected"))]
        return {"dispatch": dispatch_dict(d, now), "ticket": unit_ticket_view(t),
                "events": [event_dict(e) for e in mine],
                "co_units": [{"unit_name": o.unit_name, "status": o.status} for o in others]}

    async def unit_action(self, dispatch_id: int, unit_id: str, action: str, actor: str, now: datetime, *,
                          text: str | None = None, public: bool = True) -> dict:
        """accept / object (text: the reason) / note (text, public or internal) / handle (text: 办结 result)."""

        async def work(session) -> None:
            d0 = await self._unit_dispatch(session, dispatch_id, unit_id)
            t = await self._locked_ticket(session, d0.ticket_id)
            d = (await session.execute(sa.select(Dispatch).where(Dispatch.id == dispatch_id)
                                       .with_for_update())).scalar_one()
            await session.refresh(d)
            new = transition(d.status, action)
            d.status, d.updated_at = new, now
            if action == "accept":
                d.accepted_at = now
                self._event(session, t, "accepted", actor, now, d=d, text=d.unit_name, public=True)
            elif action == "object":
                d.objection = text
                self._event(session, t, "objected", actor, now, d=d, text=text)
            elif action == "note":
                self._event(session, t, "note", actor, now, d=d, text=text, public=public)
            elif action == "handle":
                d.handled_at, d.result = now, text
            await self._restage(session, t, actor, now)
            t.updated_at = now  # the ticket's version moves: a concurrent writer loses
            self._audit(session, actor, f"unit.{action}", t, dispatch_id=d.id, unit_id=unit_id,
                        **({"public": public} if action == "note" else {}),
                        **({"chars": len(text)} if text else {}))

        await self.store.run_write(work)
        return await self.open_for_unit(dispatch_id, unit_id, now)

    # -- the hotline's side (supervisors) ------------------------------------------------------
    async def review_list(self, now: datetime, *, limit: int = 200) -> list[dict]:
        async with self.store.read_session() as session:
            tickets = (await session.execute(sa.select(Ticket).where(Ticket.handling == "review")
                                             .order_by(Ticket.updated_at).limit(limit))).scalars().all()
            ids = [t.id for t in tickets]
            ds = (await session.execute(sa.select(Dispatch).where(Dispatch.ticket_id.in_(ids))
                                        .order_by(Dispatch.id))).scalars().all() if ids else []
        by_ticket: dict[int, list] = {}
        for d in ds:
            by_ticket.setdefault(d.ticket_id, []).append(dispatch_dict(d, now))
        return [{**_brief(t), "version_id": t.version_id, "review_reason": t.review_reason,
                 "dispatches": by_ticket.get(t.id, [])} for t in tickets]

    async def overdue_list(self, now: datetime, *, limit: int = 500) -> list[dict]:
        """督办: dispatches past their deadline that their unit has not replied to, latest first."""
        stmt = (sa.select(Dispatch, Ticket).join(Ticket, Ticket.id == Dispatch.ticket_id)
                .where(Dispatch.status.in_(ACTIVE), Dispatch.due_at < now)
                .order_by(Dispatch.due_at).limit(limit))
        async with self.store.read_session() as session:
            rows = (await session.execute(stmt)).all()
        return [{**dispatch_dict(d, now), "late_seconds": int((now - d.due_at).total_seconds()),
                 "ticket": _brief(t)} for d, t in rows]

    async def events(self, ticket_id: int) -> list[dict]:
        async with self.store.read_session() as session:
            rows = (await session.execute(sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                                          .order_by(TicketEvent.at, TicketEvent.id))).scalars().all()
        return [event_dict(e) for e in rows]

    async def dispatches(self, ticket_id: int, now: datetime) -> list[dict]:
        async with self.store.read_session() as session:
            rows = (await session.execute(sa.select(Dispatch).where(Dispatch.ticket_id == ticket_id)
                                          .order_by(Dispatch.id))).scalars().all()
        return [dispatch_dict(d, now) for d in rows]

    async def review_action(self, ticket_id: int, action: str, actor: str, now: datetime, *, version_id: int,
                            reason: str, units: list[str] | None = None) -> dict:
        """A supervisor on a ticket under review: ``redispatch`` (to ``units``), ``reject`` (the
        objection: back to the same unit) or ``close`` (with the reason)."""
        known = self.units()
        if action == "redispatch":
            bad = [u for u in units or [] if u not in known]
            if bad or not units:
                raise UnknownUnit(f"not a unit of the catalogue: {', '.join(bad) or '(none given)'}",
                                  details={"field": "units", "unknown": bad})

        async def work(session) -> dict:
            t = await self._locked_ticket(session, ticket_id)
            if t.handling != "review":
                raise Conflict(f"工单不在审核中（{t.handling}）/ the ticket is not under review (it is {t.handling})",
                               details={"handling": t.handling, "version_id": t.version_id})
            if t.version_id != version_id:
                raise Conflict("工单已被更新，请刷新 / the ticket changed since you loaded it; reload",
                               details={"field": "version_id", "version_id": t.version_id})
            ds = (await session.execute(sa.select(Dispatch).where(Dispatch.ticket_id == t.id)
                                        .order_by(Dispatch.id).with_for_update())).scalars().all()
            objected = [d for d in ds if d.status == "objected"]
            if action == "reject":
                if not objected:
                    raise Conflict("没有待审核的派单异议 / there is no objection to reject",
                                   details={"review_reason": t.review_reason})
                for d in objected:
                    d.status, d.updated_at = transition(d.status, "reject"), now
                    d.due_at = self.deadlines().due_at(now, t.urgency, t.category, self.calendar())
                    d.reminded_at = d.overdue_at = None
                    self._event(session, t, "rejected", actor, now, d=d, text=reason)
                    self._hook(session, "dispatched", t, d, reason, now)
                await self._restage(session, t, actor, now)
            elif action == "close":
                for d in ds:
                    if d.status in ("sent", "accepted", "objected"):
                        d.status, d.updated_at = transition(d.status, "withdraw"), now
                        self._event(session, t, "withdrawn", actor, now, d=d, text=reason)
                        self._hook(session, "withdrawn", t, d, reason, now)
                t.handling, t.review_reason = "closed", None
                self._event(session, t, "closed", actor, now, text=reason)
            else:  # redispatch
                for d in objected:
                    d.status, d.updated_at = transition(d.status, "withdraw"), now
                    self._event(session, t, "withdrawn", actor, now, d=d, text=reason)
                    self._hook(session, "withdrawn", t, d, reason, now)
                new = [self._new_dispatch(session, t, UnitRef(u, known[u]), now) for u in dict.fromkeys(units)]
                await session.flush()
                for d in new:
                    self._event(session, t, "redispatched", actor, now, d=d, text=d.unit_name, public=True)
                    self._hook(session, "dispatched", t, d, reason, now)
                t.handled_at = None
                t.handling = None  # re-derived below (a review of a handled ticket starts over)
                await self._restage(session, t, actor, now)
            t.updated_at = now
            self._audit(session, actor, f"review.{action}", t, units=list(units or []),
                        withdrawn=[d.id for d in objected] if action != "reject" else [],
                        review_reason=t.review_reason)
            return {"ticket_id": t.id}

        await self.store.run_write(work)
        async with self.store.read_session() as session:
            t = await session.get(Ticket, ticket_id)
            out = {**_brief(t), "version_id": t.version_id, "review_reason": t.review_reason}
        return {**out, "dispatches": await self.dispatches(ticket_id, now), "events": await self.events(ticket_id)}

    # -- reminders (the periodic job) ------------------------------------------------------------
    async def due_reminders(self, now: datetime, *, limit: int = 200) -> int:
        """Reminders before the deadline and ``overdue`` notices at it, each claimed once (a
        compare-and-set on ``reminded_at`` / ``overdue_at``): several instances may run this."""
        async with self.store.read_session() as session:
            rows = (await session.execute(sa.select(Dispatch.id, Dispatch.created_at, Dispatch.due_at,
                                                    Dispatch.reminded_at, Dispatch.overdue_at)
                                          .where(Dispatch.status.in_(ACTIVE), Dispatch.due_at.is_not(None),
                                                 sa.or_(Dispatch.reminded_at.is_(None), Dispatch.overdue_at.is_(None)))
                                          .order_by(Dispatch.due_at).limit(limit))).all()
        remind_at = self.deadlines()
        sent = 0
        for did, created, due, reminded, overdue in rows:
            if due <= now and overdue is None:
                sent += await self._notice(did, "overdue", now)
            elif reminded is None and now >= remind_at.remind_time(created, due):
                sent += await self._notice(did, "reminder", now)
        return sent

    async def _notice(self, dispatch_id: int, kind: str, now: datetime) -> int:
        column = Dispatch.overdue_at if kind == "overdue" else Dispatch.reminded_at

        async def work(session) -> int:
            values = {column.key: now}
            if kind == "overdue":
                values["reminded_at"] = sa.func.coalesce(Dispatch.reminded_at, now)
            claimed = (await session.execute(sa.update(Dispatch).where(
                Dispatch.id == dispatch_id, column.is_(None), Dispatch.status.in_(ACTIVE)).values(**values)
                .execution_options(synchronize_session=False))).rowcount
            if not claimed:
                return 0  # another instance (or a reply) got there first
            d = await session.get(Dispatch, dispatch_id)
            t = await session.get(Ticket, d.ticket_id)
            local = d.due_at.astimezone(ZoneInfo(self.calendar().timezone)).strftime("%Y-%m-%d %H:%M")
            text = (f"已超过办理时限（{local}）/ past its deadline ({local})" if kind == "overdue"
                    else f"即将到期（{local}）/ due soon ({local})")
            self._event(session, t, kind, "system", now, d=d, text=text)
            self._hook(session, "overdue" if kind == "overdue" else "reminder", t, d, text, now)
            return 1

        return await self.store.run_write(work)


def _brief(t: Ticket) -> dict[str, Any]:
    """A ticket in a list: no caller's number at all, what the caller said not included."""
    return {"id": t.id, "ticket_no": t.ticket_no, "category": t.category, "urgency": t.urgency,
            "place": mask_personal(t.place or "") or None if t.confidential else t.place,
            "summary": (mask_personal(t.summary or "") or None) if t.confidential else t.summary,
            "handling": t.handling, "due_at": iso(t.due_at), "confidential": bool(t.confidential),
            "emergency": bool(t.emergency), "decided_at": iso(t.decided_at)}
