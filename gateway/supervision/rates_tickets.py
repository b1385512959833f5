"""The tickets behind a figure of the rates: one key of one level, one rate, one outcome.

Same population and conditions as :mod:`gateway.supervision.rates` (so the count here is the
figure's count), one page at a time. A row never holds the caller's number; a confidential
caller's ticket shows its place with personal numbers and names masked
(:func:`gateway.pii.mask_personal`) and no summary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gateway.pii import mask_personal
from gateway.supervision.rates import OUTCOMES, BadRatesQuery, _level_key, _ticket_filter, response_conditions
from gateway.supervision.rates_config import DEFAULTS, RatesConfig
from gateway.supervision.places import TicketPlace
from gateway.ticketing.models import Dispatch, Followup, Ticket
from gateway.ticketing.rows import iso

MAX_PER_PAGE = 200
CONFIDENTIAL_PLACE = "（保密 confidential）"


def _key_condition(level: str, key: str):
    column = _level_key(level)[0]
    return column.is_(None) if key == "" else column == key


async def rate_tickets(store, level: str, key: str, rate: str, outcome: str | None, start: datetime,
                       end: datetime, config: RatesConfig = DEFAULTS, *, now: datetime, page: int = 1,
                       per_page: int = 50) -> dict[str, Any]:
    if rate not in OUTCOMES:
        raise BadRatesQuery(f"rate must be one of {', '.join(OUTCOMES)} / 指标有误", details={"parameter": "rate"})
    outcome = outcome or ("due" if rate == "response" else "surveyed")
    if outcome not in OUTCOMES[rate]:
        raise BadRatesQuery(f"outcome of {rate} must be one of {', '.join(OUTCOMES[rate])} / 结果取值有误",
                            details={"parameter": "outcome"})
    _key, _label, _dj, places = _level_key(level)
    where = [*_ticket_filter(level, start, end), _key_condition(level, key)]
    if rate == "response":
        due, in_time = response_conditions(config, store.engine.dialect.name, now)
        cond = {"due": due, "in_time": in_time, "late": sa.and_(due, sa.not_(in_time)),
                "not_due": sa.not_(due)}[outcome]
        stmt = (sa.select(Ticket, Dispatch.unit_name, Dispatch.accepted_at, Dispatch.due_at.label("d_due"),
                          sa.literal(None).label("solved"), sa.literal(None).label("satisfaction"))
                .select_from(Dispatch).join(Ticket, Ticket.id == Dispatch.ticket_id)
                .where(Dispatch.status != "withdrawn", cond))
    else:
        done = Followup.status == "done"
        cond = {"surveyed": done, "solved": sa.and_(done, Followup.solved == "yes"),
                "unsolved": sa.and_(done, Followup.solved == "no"),
                "satisfied": sa.and_(done, Followup.satisfaction == "satisfied"),
                "basic": sa.and_(done, Followup.satisfaction == "basic"),
                "unsatisfied": sa.and_(done, Followup.satisfaction == "unsatisfied")}[outcome]
        if level == "unit":
            stmt = (sa.select(Ticket, Dispatch.unit_name, Dispatch.accepted_at, Dispatch.due_at.label("d_due"),
                              Followup.solved, Followup.satisfaction)
                    .select_from(Ticket)
                    .join(Dispatch, sa.and_(Dispatch.ticket_id == Ticket.id, Dispatch.status != "withdrawn")))
        else:
            stmt = sa.select(Ticket, sa.literal(None).label("unit_name"), sa.literal(None).label("accepted_at"),
                             sa.literal(None).label("d_due"), Followup.solved, Followup.satisfaction).select_from(Ticket)
        stmt = stmt.join(Followup, Followup.ticket_id == Ticket.id).where(cond)
    if places:
        stmt = stmt.outerjoin(TicketPlace, TicketPlace.ticket_id == Ticket.id)
    stmt = stmt.where(*where)
    async with store.read_session() as session:
        total = (await session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = (await session.execute(stmt.order_by(Ticket.decided_at, Ticket.id)
                                      .limit(per_page).offset((page - 1) * per_page))).all()
        ids = [r[0].id for r in rows]
        units: dict[int, list[str]] = {}
        if ids:
            for tid, name in (await session.execute(sa.select(Dispatch.ticket_id, Dispatch.unit_name).where(
                    Dispatch.ticket_id.in_(ids), Dispatch.status != "withdrawn").order_by(Dispatch.id))).all():
                units.setdefault(tid, []).append(name)
    items = []
    for t, unit_name, accepted_at, d_due, solved, satisfaction in rows:
        items.append({
            "id": t.id, "ticket_no": t.ticket_no, "category": t.category, "urgency": t.urgency,
            "line_name": t.line_name, "units": [unit_name] if unit_name else units.get(t.id, []),
            "handling": t.handling, "decided_at": iso(t.decided_at),
            "due_at": iso(d_due or t.due_at), "accepted_at": iso(accepted_at),
            "solved": solved, "satisfaction": satisfaction, "confidential": bool(t.confidential),
            "place": (mask_personal(t.place or "") or CONFIDENTIAL_PLACE) if t.confidential else t.place,
        })
    return {"items": items, "total": int(total), "page": page, "per_page": per_page, "level": level, "key": key,
            "rate": rate, "outcome": outcome}
