"""Early warnings' tables and queries (migration ``0016``): alerts, their tickets, webhook outbox.

The tickets' facts (matter, street, district, address, the hour the call came in) are the rows of
``ticket_places`` (:mod:`gateway.supervision.places`, resolved once per ticket for the rates, the
warnings and the reports). Counting a month is then a ``GROUP BY`` over hours, not a month of text
matching.

Tables (declared on the ticketing schema's ``Base``; :mod:`gateway.schema` gathers them):

* ``warning_alerts`` — one row per alert (an *episode*): ``active_subject`` holds the subject
  (kind, matter, place) while the episode lasts and is unique, so two runs (or two instances)
  can never open the same alert twice; it is cleared when the subject has not been found for a
  whole window, and a later surge of the same subject is a new alert.
* ``warning_alert_tickets`` — the tickets behind an alert (added as runs find more).
  An alert keeps what it was last notified at (``notified_count``/``notified_ratio``) and its last
  growth (``grown_at``, ``grown_from``...; migration ``0021_warning_outbox``): a run that finds it
  grown past ``grown:`` of warnings.yaml notifies again (``warning.grown``) instead of updating it
  silently.
* ``warning_deliveries`` — the supervisors' webhook outbox: the shared outbox columns
  (:class:`gateway.ticketing.models.OutboxRow`, :mod:`gateway.units.outbox`) plus the alert, sent by
  :class:`gateway.units.hooks.HookSender` (the units' sender, given this table).

Nothing here holds a caller's number; a confidential ticket's place and summary are left out of
every answer (``confidential: true``), the others' texts are masked for personal numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.errors import Conflict, NotFound
from gateway.pii import mask_personal
from gateway.supervision.places import TicketPlace
from gateway.supervision.warnings import TYPE_PREFIX, GrownSettings
from gateway.supervision.warnings import grown as grew_enough
from gateway.ticketing.models import (AuditEvent, Base, OutboxRow, RowId, Ticket, UnitHookDelivery, UtcDateTime,
                                      utcnow)
from gateway.units import outbox
from gateway.ticketing.rows import iso

ALERT_STATUSES = ("open", "acknowledged", "forwarded")
WEBHOOK = "warnings"  # the supervisors' webhook's name in the outbox (HookSender's unit_id)
# the matter a ticket counts under: its catalogue matter, else "type:<request type>"
_MATTER = sa.func.coalesce(TicketPlace.matter_id, sa.literal(TYPE_PREFIX) + sa.func.coalesce(Ticket.category, "未分类"))


class WarningAlert(Base):
    __tablename__ = "warning_alerts"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # surge | repeat
    subject: Mapped[str] = mapped_column(sa.String(300), index=True)
    active_subject: Mapped[str | None] = mapped_column(sa.String(300), unique=True)
    matter: Mapped[str] = mapped_column(sa.String(64))
    matter_name: Mapped[str] = mapped_column(sa.String(128))
    level: Mapped[str] = mapped_column(sa.String(16))  # street | district | address
    place_id: Mapped[str | None] = mapped_column(sa.String(64))
    place_name: Mapped[str] = mapped_column(sa.String(200))
    count: Mapped[int] = mapped_column(sa.Integer)
    baseline: Mapped[float | None] = mapped_column(sa.Float)
    expected: Mapped[float | None] = mapped_column(sa.Float)
    p_value: Mapped[float | None] = mapped_column(sa.Float)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime())
    window_end: Mapped[datetime] = mapped_column(UtcDateTime())
    units: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)  # suggested: [{id, name}]
    status: Mapped[str] = mapped_column(sa.String(16), default="open", index=True)  # ALERT_STATUSES
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    forwarded_by: Mapped[str | None] = mapped_column(sa.String(64))
    forwarded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    forwarded_unit_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    forwarded_unit_name: Mapped[str | None] = mapped_column(sa.String(128))
    note: Mapped[str | None] = mapped_column(sa.Text)
    # the last notice to the supervisors (created or grown; migration 0021) and the last growth
    notified_count: Mapped[int | None] = mapped_column(sa.Integer)
    notified_ratio: Mapped[float | None] = mapped_column(sa.Float)
    grown_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    grown_from: Mapped[int | None] = mapped_column(sa.Integer)
    grown_from_ratio: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class WarningAlertTicket(Base):
    __tablename__ = "warning_alert_tickets"

    alert_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("warning_alerts.id"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("tickets.id"), primary_key=True, index=True)


class WarningDelivery(OutboxRow, Base):
    """One notice to the supervisors' webhook: the shared outbox columns (:class:`OutboxRow`, sent
    by :class:`HookSender`) and the alert it is about."""

    __tablename__ = "warning_deliveries"
    __table_args__ = (sa.Index("ix_warning_deliveries_pending", "delivered_at", "next_at"),)

    unit_id: Mapped[str] = mapped_column(sa.String(64))  # the hook's name (WEBHOOK)
    event: Mapped[str] = mapped_column(sa.String(32))
    alert_id: Mapped[int] = mapped_column(RowId, sa.ForeignKey("warning_alerts.id"), index=True)


class WarningState(Conflict):
    error_id = "warning-state"


@dataclass(frozen=True)
class Finding:
    """One surge or repeated demand found by a run, with what the alert shows."""

    kind: str
    subject: str
    matter: str
    matter_name: str
    level: str
    place_id: str | None
    place_name: str
    count: int
    window_start: datetime
    window_end: datetime
    ticket_ids: tuple[int, ...]
    baseline: float | None = None
    expected: float | None = None
    p_value: float | None = None
    units: list = field(default_factory=list)


def ratio_of(a: WarningAlert) -> float | None:
    return round(a.count / a.expected, 2) if a.expected else None


def alert_dict(a: WarningAlert, tickets: int | None = None) -> dict[str, Any]:
    ratio = ratio_of(a)
    return {"id": a.id, "kind": a.kind, "status": a.status, "active": a.active_subject is not None,
            "matter": a.matter, "matter_name": a.matter_name, "level": a.level, "place_id": a.place_id,
            "place_name": a.place_name, "count": a.count, "baseline": a.baseline, "expected": a.expected,
            "ratio": ratio, "p_value": a.p_value, "window_start": iso(a.window_start), "window_end": iso(a.window_end),
            "units": list(a.units or []), "first_seen_at": iso(a.first_seen_at), "last_seen_at": iso(a.last_seen_at),
            "ended_at": iso(a.ended_at), "acknowledged_by": a.acknowledged_by,
            "acknowledged_at": iso(a.acknowledged_at), "forwarded_by": a.forwarded_by,
            "forwarded_at": iso(a.forwarded_at), "forwarded_unit_id": a.forwarded_unit_id,
            "forwarded_unit_name": a.forwarded_unit_name, "note": a.note, "tickets": tickets,
            "grown": None if a.grown_at is None else {"at": iso(a.grown_at), "from_count": a.grown_from,
                                                      "to_count": a.notified_count, "from_ratio": a.grown_from_ratio,
                                                      "to_ratio": a.notified_ratio}}


def ticket_brief(t: Ticket) -> dict[str, Any]:
    """A ticket behind an alert: never the caller's number; a confidential one without its texts."""
    out = {"id": t.id, "ticket_no": t.ticket_no, "created_at": iso(t.created_at), "category": t.category,
           "urgency": t.urgency, "status": t.status, "handling": t.handling, "confidential": bool(t.confidential),
           "units": [u.get("name") for u in (t.units or []) if isinstance(u, dict)]}
    if t.confidential:
        out.update(place=None, summary=None)
    else:
        out.update(place=mask_personal(t.place or "") or None, summary=mask_personal(t.summary or "") or None)
    return out


def payload(event: str, a: WarningAlert, ticket_ids: list[int], ticket_nos: list[str | None]) -> dict[str, Any]:
    """What a webhook receives: the alert and its tickets' ids and numbers (no texts, no callers)."""
    body = alert_dict(a)
    body.pop("note", None)
    return {"event": event, "alert": body,
            "tickets": [{"id": i, "ticket_no": n} for i, n in zip(ticket_ids, ticket_nos)]}


class WarningStore:
    def __init__(self, store, *, webhook: Callable[[], bool] = lambda: False,
                 unit_hooked: Callable[[str], bool] = lambda _u: False) -> None:
        self.store = store
        self.webhook = webhook  # whether the supervisors' webhook is configured (deliveries queued only then)
        self.unit_hooked = unit_hooked  # whether a unit has a webhook (gateway.units.hooks)

    # -- the tickets' facts (table ticket_places, gateway.supervision.places) -----------------------
    async def first_hour(self) -> int | None:
        """The hour of the first ticket ever resolved (history starts there)."""
        async with self.store.read_session() as session:
            return (await session.execute(sa.select(sa.func.min(TicketPlace.hour)))).scalar()

    async def hourly_counts(self, from_hour: int, to_hour: int) -> list[tuple[tuple, int, int]]:
        """((matter, level, place), hour, n) for hours ``from_hour`` .. ``to_hour``, per street and per district."""
        f, matter = TicketPlace, _MATTER
        out: list[tuple[tuple, int, int]] = []
        async with self.store.read_session() as session:
            for level, column in (("street", f.street_id), ("district", f.district_id)):
                rows = await session.execute(
                    sa.select(matter, column, f.hour, sa.func.count()).join(Ticket, Ticket.id == f.ticket_id)
                    .where(f.hour >= from_hour, f.hour <= to_hour, column.is_not(None)).group_by(matter, column, f.hour))
                out.extend(((m, level, p), h, n) for m, p, h, n in rows)
        return out

    async def repeat_rows(self, from_hour: int, to_hour: int) -> list[tuple[int, str, str]]:
        f = TicketPlace
        async with self.store.read_session() as session:
            rows = await session.execute(sa.select(f.ticket_id, _MATTER, f.address).join(Ticket, Ticket.id == f.ticket_id)
                                         .where(f.hour >= from_hour, f.hour <= to_hour, f.address.is_not(None)))
            return [tuple(r) for r in rows]

    async def tickets_of(self, matter: str, level: str, place: str, from_hour: int, to_hour: int) -> list[int]:
        f = TicketPlace
        column = f.street_id if level == "street" else f.district_id
        async with self.store.read_session() as session:
            return list((await session.execute(
                sa.select(f.ticket_id).join(Ticket, Ticket.id == f.ticket_id)
                .where(_MATTER == matter, column == place, f.hour >= from_hour,
                                             f.hour <= to_hour).order_by(f.ticket_id))).scalars())

    async def places_of(self, ticket_ids: list[int]) -> list[tuple[int, str | None, bool, str | None]]:
        """(id, place, confidential, street) of tickets (a repeat alert's label)."""
        async with self.store.read_session() as session:
            rows = await session.execute(
                sa.select(Ticket.id, Ticket.place, Ticket.confidential, TicketPlace.street_id)
                .join(TicketPlace, TicketPlace.ticket_id == Ticket.id)
                .where(Ticket.id.in_(ticket_ids)).order_by(Ticket.id))
            return [tuple(r) for r in rows]

    # -- a run's findings -> alerts -------------------------------------------------------------
    async def apply(self, findings: list[Finding], now: datetime, *, keep: Callable[[str], timedelta],
                    grown: GrownSettings = GrownSettings()) -> dict:
        """Open or update one alert per finding; notify again those that grew
        (:func:`gateway.supervision.warnings.grown`); end the episodes not found for ``keep(kind)``.
        Returns the counts and the ids of new and grown alerts."""

        async def work(session) -> dict:
            out = {"created": [], "updated": 0, "grown": [], "ended": 0}
            for f in findings:
                a = (await session.execute(sa.select(WarningAlert).where(WarningAlert.active_subject == f.subject)
                                           .with_for_update())).scalar()
                if a is None:
                    a = WarningAlert(kind=f.kind, subject=f.subject, active_subject=f.subject, matter=f.matter,
                                     matter_name=f.matter_name[:128], level=f.level, place_id=f.place_id,
                                     place_name=f.place_name[:200], status="open", first_seen_at=now,
                                     created_at=now, units=list(f.units), count=f.count,
                                     window_start=f.window_start, window_end=f.window_end, last_seen_at=now)
                    session.add(a)
                    await session.flush()
                    out["created"].append(a.id)
                    session.add(AuditEvent(actor="warnings", action="warning.created", object_type="warning",
                                           object_id=str(a.id), details={"kind": f.kind, "count": f.count,
                                                                         "matter": f.matter, "place": f.place_id}))
                else:
                    out["updated"] += 1
                # the peak count of the episode; window_start stays where it was first found
                a.count = max(a.count, f.count)
                a.baseline, a.expected, a.p_value = f.baseline, f.expected, f.p_value
                a.window_end, a.last_seen_at, a.updated_at = f.window_end, now, now
                if a.id in out["created"] or a.notified_count is None:  # (None: never known, e.g. restored)
                    a.notified_count, a.notified_ratio = a.count, ratio_of(a)
                elif grew_enough(grown, notified=a.notified_count, notified_ratio=a.notified_ratio,
                                    count=a.count, ratio=ratio_of(a)):
                    self._grew(session, a, now)
                    out["grown"].append(a.id)
                have = set((await session.execute(sa.select(WarningAlertTicket.ticket_id)
                                                  .where(WarningAlertTicket.alert_id == a.id))).scalars())
                new = [tid for tid in f.ticket_ids if tid not in have]
                if new:
                    await session.execute(sa.insert(WarningAlertTicket),
                                          [{"alert_id": a.id, "ticket_id": tid} for tid in new])
                if a.id in out["created"] and self.webhook():
                    await self._queue(session, a, "warning.created", now)
                elif a.id in out["grown"]:
                    await self._notify_grown(session, a, now)
            found = {f.subject for f in findings}
            active = (await session.execute(sa.select(WarningAlert).where(WarningAlert.active_subject.is_not(None))
                                            )).scalars().all()
            for a in active:
                if a.subject not in found and a.last_seen_at < now - keep(a.kind):
                    a.active_subject, a.ended_at, a.updated_at = None, now, now
                    out["ended"] += 1
            return out

        return await self.store.run_write(work)

    def _grew(self, session, a: WarningAlert, now: datetime) -> None:
        a.grown_from, a.grown_from_ratio, a.grown_at = a.notified_count, a.notified_ratio, now
        a.notified_count, a.notified_ratio = a.count, ratio_of(a)
        reopened = a.status == "acknowledged"
        if reopened:  # acknowledged when it was smaller: the supervisor has to look again
            a.status = "open"
        session.add(AuditEvent(actor="warnings", action="warning.grown", object_type="warning", object_id=str(a.id),
                               details={"from": a.grown_from, "to": a.count, "from_ratio": a.grown_from_ratio,
                                        "to_ratio": a.notified_ratio, "reopened": reopened}))

    async def _notify_grown(self, session, a: WarningAlert, now: datetime) -> None:
        if self.webhook():
            await self._queue(session, a, "warning.grown", now)
        if a.status == "forwarded" and a.forwarded_unit_id and self.unit_hooked(a.forwarded_unit_id):
            ids, nos = await self._ticket_numbers(session, a.id)
            if ids:
                session.add(outbox.new(UnitHookDelivery, now, unit_id=a.forwarded_unit_id, event="warning.grown",
                                       ticket_id=ids[0], payload=payload("warning.grown", a, ids, nos)))

    async def _ticket_numbers(self, session, alert_id: int) -> tuple[list[int], list[str | None]]:
        rows = (await session.execute(sa.select(Ticket.id, Ticket.ticket_no).join(
            WarningAlertTicket, WarningAlertTicket.ticket_id == Ticket.id)
            .where(WarningAlertTicket.alert_id == alert_id).order_by(Ticket.id))).all()
        return [r.id for r in rows], [r.ticket_no for r in rows]

    async def _queue(self, session, a: WarningAlert, event: str, now: datetime) -> None:
        ids, nos = await self._ticket_numbers(session, a.id)
        session.add(outbox.new(WarningDelivery, now, unit_id=WEBHOOK, event=event, alert_id=a.id,
                               payload=payload(event, a, ids, nos)))

    # -- reading --------------------------------------------------------------------------------
    async def list_alerts(self, status: str, *, unit_id: str | None = None, limit: int = 200) -> list[dict]:
        w = WarningAlert
        counts = (sa.select(WarningAlertTicket.alert_id, sa.func.count().label("n"))
                  .group_by(WarningAlertTicket.alert_id).subquery())
        q = sa.select(w, counts.c.n).outerjoin(counts, counts.c.alert_id == w.id)
        if status == "active":
            q = q.where(w.status.in_(("open", "acknowledged")))
        elif status != "all":
            q = q.where(w.status == status)
        if unit_id is not None:
            q = q.where(w.forwarded_unit_id == unit_id)
        q = q.order_by(w.last_seen_at.desc(), w.id.desc()).limit(limit)
        async with self.store.read_session() as session:
            return [alert_dict(a, n or 0) for a, n in (await session.execute(q)).all()]

    async def _alert(self, session, alert_id: int, *, lock: bool = False) -> WarningAlert:
        q = sa.select(WarningAlert).where(WarningAlert.id == alert_id)
        a = (await session.execute(q.with_for_update() if lock else q)).scalar()
        if a is None:
            raise NotFound(f"no warning {alert_id}", details={"warning_id": alert_id})
        return a

    async def detail(self, alert_id: int, *, unit_id: str | None = None) -> dict:
        async with self.store.read_session() as session:
            a = await self._alert(session, alert_id)
            if unit_id is not None and a.forwarded_unit_id != unit_id:
                raise NotFound(f"no warning {alert_id}", details={"warning_id": alert_id})
            tickets = (await session.execute(sa.select(Ticket).join(
                WarningAlertTicket, WarningAlertTicket.ticket_id == Ticket.id)
                .where(WarningAlertTicket.alert_id == alert_id).order_by(Ticket.created_at, Ticket.id))).scalars().all()
            forwards = [] if unit_id is not None else (await session.execute(
                sa.select(AuditEvent).where(AuditEvent.object_type == "warning", AuditEvent.object_id == str(alert_id),
                                            AuditEvent.action == "warning.forwarded")
                .order_by(AuditEvent.at, AuditEvent.id))).scalars().all()
        out = alert_dict(a, len(tickets))
        out["ticket_list"] = [ticket_brief(t) for t in tickets]
        if unit_id is None:  # who forwarded it where, in order (supervisors only)
            out["forwards"] = [{"at": iso(e.at), "by": e.actor, "unit_id": (e.details or {}).get("unit_id"),
                                "unit_name": (e.details or {}).get("unit_name")} for e in forwards]
        return out

    # -- a supervisor's actions -----------------------------------------------------------------
    async def acknowledge(self, alert_id: int, actor: str, now: datetime, *, note: str | None = None) -> dict:
        async def work(session) -> dict:
            a = await self._alert(session, alert_id, lock=True)
            if a.status != "open":
                raise WarningState(f"warning {alert_id} is {a.status}, not open / 该预警已{_ZH[a.status]}，不能再签收",
                                   details={"status": a.status})
            a.status, a.acknowledged_by, a.acknowledged_at, a.updated_at = "acknowledged", actor[:64], now, now
            if note:
                a.note = note
            session.add(AuditEvent(actor=actor[:32], action="warning.acknowledged", object_type="warning",
                                   object_id=str(a.id), details={"note": bool(note)}))
            return alert_dict(a)

        return await self.store.run_write(work)

    async def forward(self, alert_id: int, actor: str, now: datetime, *, unit_id: str, unit_name: str,
                      note: str | None = None) -> dict:
        """To the responsible unit: the alert is on its list (``/api/unit/warnings``) and, when the
        unit has a webhook, a ``warning`` event is queued for it with the units' deliveries.

        A forwarded alert may be forwarded again (re-sent to the same unit, or to another one, which
        then holds it: the earlier unit no longer lists it); each forwarding is audited
        (``warning.forwarded`` with ``again`` and the earlier unit) and listed in :meth:`detail`."""

        async def work(session) -> dict:
            a = await self._alert(session, alert_id, lock=True)
            before = a.forwarded_unit_id if a.status == "forwarded" else None
            a.status, a.forwarded_by, a.forwarded_at, a.updated_at = "forwarded", actor[:64], now, now
            a.forwarded_unit_id, a.forwarded_unit_name = unit_id, unit_name[:128]
            if note:
                a.note = note
            ids, nos = await self._ticket_numbers(session, a.id)
            session.add(AuditEvent(actor=actor[:32], action="warning.forwarded", object_type="warning",
                                   object_id=str(a.id), details={"unit_id": unit_id, "unit_name": unit_name[:128],
                                                                 "note": bool(note), "again": before is not None,
                                                                 "from_unit_id": before}))
            if ids and self.unit_hooked(unit_id):
                body = payload("warning", a, ids, nos)
                session.add(outbox.new(UnitHookDelivery, now, unit_id=unit_id, event="warning", ticket_id=ids[0],
                                       payload=body))
            if self.webhook():
                await self._queue(session, a, "warning.forwarded", now)
            return alert_dict(a, len(ids))

        return await self.store.run_write(work)

    async def delivery_problems(self, *, limit: int = 100) -> list[dict]:
        """Webhook notices not delivered yet that failed at least once, and those given up."""
        async with self.store.read_session() as session:
            rows = await outbox.problems(session, WarningDelivery, limit=limit)
        return [{"id": r.id, "alert_id": r.alert_id, "event": r.event, "attempts": r.attempts,
                 "next_at": iso(r.next_at), "failed_at": iso(r.failed_at), "last_error": r.last_error,
                 "created_at": iso(r.created_at)} for r in rows]

    async def delivery_counts(self) -> dict[str, int]:
        async with self.store.read_session() as session:
            return await outbox.counts(session, WarningDelivery)


_ZH = {"open": "待处理", "acknowledged": "签收", "forwarded": "转交"}
