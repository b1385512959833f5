"""The three rates (三率: 响应率, 解决率, 满意率) per level and period, as SQL aggregates.

The function other parts call (the reports use it)::

    async def compute_rates(store, level: str, start: datetime, end: datetime,
                            config: RatesConfig = DEFAULTS, *, now: datetime | None = None,
                            labels: Mapping[str, str] | None = None) -> list[RateRow]

``store`` is a :class:`gateway.ticketing.store.TicketStore` (or anything with ``engine`` and
``read_session()``); ``level`` one of :data:`LEVELS`; ``[start, end)`` aware datetimes (use
:func:`period_bounds` for a local day/week/month); ``now`` decides which dispatches are due
yet (default: the wall clock); ``labels`` names keys (catalogue ids → names) where the
database holds only ids (district, street). Rows come ranked (see :func:`rank_rows`).
``total_rates(...)`` gives the same figures for all tickets of the period at once.

Theory of operation
-------------------
Which tickets: submitted for dispatch (``status='submitted'`` with a ``handling`` stage),
counted in the period in which they were dispatched (``decided_at``, local time of the
centre). A ticket belongs to the key of its level:

=============  ======================================================================
``unit``       each handling unit it was dispatched to (``dispatches.unit_id``; a 双派
               ticket counts for both units; withdrawn dispatches do not count)
``district``   ``ticket_places.district_id`` (see :mod:`gateway.supervision.places`)
``street``     ``ticket_places.street_id`` (street or township)
``line``       the line it came in on (``tickets.line_number``)
``sub_centre`` the same, only lines that were ``sub_centre`` (设分中心) when the call came
``type``       the request type (``tickets.category``: 咨询 建议 举报 投诉 求助)
=============  ======================================================================

Two GROUP BY queries per level: one over the dispatches (response: due, responded in time),
one over the tickets left-joined to their follow-up (tickets, surveyed, solved, 满意 / 基本满意
/ 不满意). The rates are then ``weighted count ÷ base`` (:mod:`gateway.supervision.rates_config`),
``None`` when the base is 0. No Python loop over tickets; the indexes are migration 0015's.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from gateway.errors import BadRequest
from gateway.supervision.rates_config import DEFAULTS, RATES, RatesConfig
from gateway.supervision.places import TicketPlace
from gateway.ticketing.models import Dispatch, Followup, Ticket

LEVELS = ("unit", "district", "street", "line", "sub_centre", "type")
LEVEL_ZH = {"unit": "承办单位", "district": "区", "street": "街道乡镇", "line": "热线", "sub_centre": "分中心",
            "type": "诉求类型"}
PERIODS = ("day", "week", "month", "custom")
MAX_DAYS = 366
UNKNOWN_LABEL = "未识别 unknown"
# rate -> outcomes a supervisor may list the tickets of (rates_tickets)
OUTCOMES = {
    "response": ("due", "in_time", "late", "not_due"),
    "resolution": ("surveyed", "solved", "unsolved"),
    "satisfaction": ("surveyed", "satisfied", "basic", "unsatisfied"),
}


class BadRatesQuery(BadRequest):
    error_id = "bad-rates-query"


@dataclass
class RateRow:
    key: str  # "" for tickets without one (e.g. a place the catalogue does not know)
    label: str
    tickets: int = 0
    dispatches: int = 0  # live dispatches (response's population)
    due: int = 0  # of those, accepted or past their limit: the response rate's base
    responded: int = 0  # responded in time
    surveyed: int = 0  # follow-ups answered (回访 done): resolution's and satisfaction's base
    solved: int = 0
    unsolved: int = 0
    satisfied: int = 0
    basic: int = 0
    unsatisfied: int = 0
    response_rate: float | None = None
    resolution_rate: float | None = None
    satisfaction_rate: float | None = None
    rank: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- formulas (pure) -------------------------------------------------------------------------------
def ratio(numerator: float, base: int) -> float | None:
    """``numerator / base`` rounded to 4 places, ``None`` when nothing to rest on."""
    return None if base <= 0 else round(numerator / base, 4)


def response_rate(responded: int, due: int) -> float | None:
    return ratio(responded, due)


def resolution_rate(solved: int, unsolved: int, surveyed: int, config: RatesConfig = DEFAULTS) -> float | None:
    w = config.resolution_weights
    return ratio(solved * w["solved"] + unsolved * w["unsolved"], surveyed)


def satisfaction_rate(satisfied: int, basic: int, unsatisfied: int, surveyed: int,
                      config: RatesConfig = DEFAULTS) -> float | None:
    w = config.satisfaction_weights
    return ratio(satisfied * w["satisfied"] + basic * w["basic"] + unsatisfied * w["unsatisfied"], surveyed)


def finish(row: RateRow, config: RatesConfig) -> RateRow:
    row.response_rate = response_rate(row.responded, row.due)
    row.resolution_rate = resolution_rate(row.solved, row.unsolved, row.surveyed, config)
    row.satisfaction_rate = satisfaction_rate(row.satisfied, row.basic, row.unsatisfied, row.surveyed, config)
    return row


def rank_rows(rows: list[RateRow], by: str) -> list[RateRow]:
    """Best first by rate ``by`` (ties share a rank: 1, 2, 2, 4), then the larger base; rows
    without that rate (base 0) last, unranked."""
    rate = f"{by}_rate"
    base = {"response": "due", "resolution": "surveyed", "satisfaction": "surveyed"}[by]
    rated = sorted((r for r in rows if getattr(r, rate) is not None),
                   key=lambda r: (-getattr(r, rate), -getattr(r, base), r.key))
    rest = sorted((r for r in rows if getattr(r, rate) is None), key=lambda r: (-r.tickets, r.key))
    previous, rank = None, 0
    for i, r in enumerate(rated, start=1):
        value = getattr(r, rate)
        if value != previous:
            rank, previous = i, value
        r.rank = rank
    for r in rest:
        r.rank = None
    return rated + rest


# -- periods ---------------------------------------------------------------------------------------
def _day(value: str, name: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadRatesQuery(f"{name} must be a date YYYY-MM-DD / {name} 须为日期（年-月-日）",
                            details={"parameter": name}) from None


def period_bounds(period: str, tz: str, *, day: str | None = None, start: str | None = None,
                  end: str | None = None, today: date | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of a local ``day``/``week`` (Monday first)/``month`` holding
    ``day``, or ``custom`` from ``start`` to ``end`` (dates, both included)."""
    zone = ZoneInfo(tz)
    if period not in PERIODS:
        raise BadRatesQuery(f"period must be one of {', '.join(PERIODS)} / 统计周期有误", details={"parameter": "period"})
    if period == "custom":
        if not start or not end:
            raise BadRatesQuery("a custom period needs start and end / 自定义周期须给出开始和结束日期",
                                details={"parameter": "start" if not start else "end"})
        first, last = _day(start, "start"), _day(end, "end")
        if last < first:
            raise BadRatesQuery("end is before start / 结束日期早于开始日期", details={"parameter": "end"})
        if (last - first).days + 1 > MAX_DAYS:
            raise BadRatesQuery(f"a period is at most {MAX_DAYS} days / 统计周期最长 {MAX_DAYS} 天",
                                details={"parameter": "end"})
        stop = last + timedelta(days=1)
    else:
        d = _day(day, "date") if day else (today or datetime.now(zone).date())
        if period == "day":
            first, stop = d, d + timedelta(days=1)
        elif period == "week":
            first = d - timedelta(days=d.weekday())
            stop = first + timedelta(days=7)
        else:
            first = d.replace(day=1)
            stop = (first + timedelta(days=32)).replace(day=1)

    def utc(x: date) -> datetime:
        return datetime(x.year, x.month, x.day, tzinfo=zone).astimezone(timezone.utc)

    return utc(first), utc(stop)


# -- SQL -------------------------------------------------------------------------------------------
def _level_key(level: str):
    """(key column, label column or None, needs the dispatch join, needs the places join)."""
    if level == "unit":
        return Dispatch.unit_id, sa.func.max(Dispatch.unit_name), True, False
    if level == "district":
        return TicketPlace.district_id, None, False, True
    if level == "street":
        return TicketPlace.street_id, None, False, True
    if level in ("line", "sub_centre"):
        return Ticket.line_number, sa.func.max(Ticket.line_name), False, False
    if level == "type":
        return Ticket.category, None, False, False
    if level in ("all", "all_sub_centre"):
        return sa.literal("all"), None, False, False
    raise BadRatesQuery(f"level must be one of {', '.join(LEVELS)} / 统计层级有误", details={"parameter": "level"})


def _ticket_filter(level: str, start: datetime, end: datetime) -> list:
    out = [Ticket.decided_at >= start, Ticket.decided_at < end, Ticket.status == "submitted",
           Ticket.handling.is_not(None)]
    if level in ("sub_centre", "all_sub_centre"):
        out.append(Ticket.merge_mode == "sub_centre")
    return out


def _flag(cond) -> Any:
    return sa.case((cond, 1), else_=0)


def response_conditions(config: RatesConfig, dialect: str, now: datetime):
    """(due, in time) of a dispatch as SQL conditions."""
    accepted = Dispatch.accepted_at.is_not(None)
    if config.response_within == "deadline":
        due = sa.or_(accepted, Dispatch.due_at <= now)
        in_time = sa.and_(accepted, Dispatch.accepted_at <= Dispatch.due_at)
        return due, in_time
    hours = config.response_hours
    due = sa.or_(accepted, Dispatch.created_at <= now - timedelta(hours=hours))
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)
        elapsed = (sa.func.julianday(Dispatch.accepted_at) - sa.func.julianday(Dispatch.created_at)) * 24.0
    else:
        elapsed = sa.func.extract("epoch", Dispatch.accepted_at - Dispatch.created_at) / 3600.0
    return due, sa.and_(accepted, elapsed <= hours)


def response_query(level: str, start: datetime, end: datetime, config: RatesConfig, dialect: str, now: datetime):
    key, _label, _d, places = _level_key(level)
    due, in_time = response_conditions(config, dialect, now)
    stmt = (sa.select(key.label("key"), sa.func.count().label("dispatches"),
                      sa.func.coalesce(sa.func.sum(_flag(due)), 0).label("due"),
                      sa.func.coalesce(sa.func.sum(_flag(in_time)), 0).label("responded"))
            .select_from(Dispatch).join(Ticket, Ticket.id == Dispatch.ticket_id))
    if places:
        stmt = stmt.outerjoin(TicketPlace, TicketPlace.ticket_id == Ticket.id)
    return stmt.where(Dispatch.status != "withdrawn", *_ticket_filter(level, start, end)).group_by(key)


def followup_query(level: str, start: datetime, end: datetime):
    key, label, dispatch_join, places = _level_key(level)
    done = Followup.status == "done"
    cols = [key.label("key"), sa.func.count().label("tickets"),
            sa.func.coalesce(sa.func.sum(_flag(done)), 0).label("surveyed")]
    for name, column, value in (("solved", Followup.solved, "yes"), ("unsolved", Followup.solved, "no"),
                                ("satisfied", Followup.satisfaction, "satisfied"),
                                ("basic", Followup.satisfaction, "basic"),
                                ("unsatisfied", Followup.satisfaction, "unsatisfied")):
        cols.append(sa.func.coalesce(sa.func.sum(_flag(sa.and_(done, column == value))), 0).label(name))
    if label is not None:
        cols.append(label.label("label"))
    stmt = sa.select(*cols).select_from(Ticket)
    if dispatch_join:
        stmt = stmt.join(Dispatch, sa.and_(Dispatch.ticket_id == Ticket.id, Dispatch.status != "withdrawn"))
    if places:
        stmt = stmt.outerjoin(TicketPlace, TicketPlace.ticket_id == Ticket.id)
    stmt = stmt.outerjoin(Followup, Followup.ticket_id == Ticket.id)
    return stmt.where(*_ticket_filter(level, start, end)).group_by(key)


def _engine_dialect(store) -> str:
    return store.engine.dialect.name


async def _rows(store, level: str, start: datetime, end: datetime, config: RatesConfig, now: datetime,
                labels: Mapping[str, str] | None) -> list[RateRow]:
    dialect = _engine_dialect(store)
    by_key: dict[str, RateRow] = {}
    async with store.read_session() as session:
        for r in (await session.execute(followup_query(level, start, end))).mappings():
            key = "" if r["key"] is None else str(r["key"])
            row = RateRow(key=key, label=key)
            if "label" in r and r["label"]:
                row.label = str(r["label"])
            for name in ("tickets", "surveyed", "solved", "unsolved", "satisfied", "basic", "unsatisfied"):
                setattr(row, name, int(r[name]))
            by_key[key] = row
        for r in (await session.execute(response_query(level, start, end, config, dialect, now))).mappings():
            key = "" if r["key"] is None else str(r["key"])
            row = by_key.setdefault(key, RateRow(key=key, label=key))
            row.dispatches, row.due, row.responded = int(r["dispatches"]), int(r["due"]), int(r["responded"])
    for row in by_key.values():
        if labels and row.key in labels:
            row.label = labels[row.key]
        if not row.key:
            row.label = UNKNOWN_LABEL
        finish(row, config)
    return list(by_key.values())


async def compute_rates(store, level: str, start: datetime, end: datetime, config: RatesConfig = DEFAULTS, *,
                        now: datetime | None = None, labels: Mapping[str, str] | None = None) -> list[RateRow]:
    """The three rates of every key of ``level`` for tickets dispatched in ``[start, end)``, ranked."""
    if level not in LEVELS:
        raise BadRatesQuery(f"level must be one of {', '.join(LEVELS)} / 统计层级有误", details={"parameter": "level"})
    now = now or datetime.now(timezone.utc)
    rows = await _rows(store, level, start, end, config, now, labels)
    return rank_rows(rows, config.rank_by)


async def total_rates(store, start: datetime, end: datetime, config: RatesConfig = DEFAULTS, *,
                      now: datetime | None = None, level: str | None = None) -> RateRow:
    """All tickets of the period together (a 双派 ticket's two dispatches both count for response);
    with ``level="sub_centre"``, all tickets of sub-centre lines (the total of that ranking)."""
    scope = "all_sub_centre" if level == "sub_centre" else "all"
    rows = await _rows(store, scope, start, end, config, now or datetime.now(timezone.utc), None)
    row = rows[0] if rows else finish(RateRow(key="all", label="全部 all"), config)
    row.label = "全部 all"
    return row


async def timed_rates(store, level: str, start: datetime, end: datetime, config: RatesConfig = DEFAULTS, **kw):
    """``(rows, seconds)``: for the bench."""
    t0 = time.perf_counter()
    rows = await compute_rates(store, level, start, end, config, **kw)
    return rows, time.perf_counter() - t0


__all__ = ["LEVELS", "OUTCOMES", "PERIODS", "RATES", "RateRow", "compute_rates", "period_bounds", "rank_rows",
           "total_rates"]
