"""What goes into the daily report, weekly analysis and monthly bulletin (日报告、周分析、月通报).

Theory of operation
-------------------
A report covers one :class:`Period` (a day, a Monday-to-Sunday week, a calendar month) in the
centre's time zone. Its content is a list of :class:`Section` s, each made by a *section builder*
(``async (ReportInput) -> Section | None``) from the database; the renderers
(:mod:`gateway.supervision.report_render`) turn sections into HTML, PDF, CSV and XLSX without
knowing what they mean. A section is plain data: a heading, a few sentences, tables and bar
charts.

The builders here read ticket data directly: volumes by line, request type, district and matter
(district, street and matter as :mod:`gateway.supervision.places` resolved them once per ticket
for the rates, the warnings and the reports: table ``ticket_places``), overdue dispatches (督办), the follow-up (回访) answers and comments, and a simple top list
of hot spots (matter × street/district). Two parts of issue 14 plug in at integration through
:func:`report_sections` (the hook): the three rates (``gateway/supervision/rates.py``) and the
early warnings' hot spots (``gateway/supervision/warnings*.py``). Until then the rates section
says it is not connected and the simple hot-spot list stands.

Privacy: only counts leave the database for confidential tickets; no builder ever selects a
caller's number; texts quoted (comments, places of overdue tickets) are masked of personal
numbers (:mod:`gateway.pii`), and a confidential caller's texts are not quoted at all. A hot spot
needs at least ``hot_spot_min`` (≥ 2) tickets, so it never points at one caller.
"""

from __future__ import annotations

import calendar as _calendar
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from gateway.desk.catalogue import Catalogue
from gateway.pii import mask_personal
from gateway.supervision import places
from gateway.supervision.report_config import DEFAULTS, ReportsConfig
from gateway.supervision.report_tables import REPORT_KINDS
from gateway.ticketing.models import Call, Dispatch, Followup, Ticket
from gateway.ticketing.store import TicketStore

KIND_NAMES = {"daily": "日报告", "weekly": "周分析", "monthly": "月通报"}
SATISFACTION_NAMES = {"satisfied": "满意", "basic": "基本满意", "unsatisfied": "不满意"}
SOLVED_NAMES = {"yes": "已解决", "no": "未解决"}
UNKNOWN_DISTRICT = "未识别区域"
UNKNOWN_MATTER = "其他（未归类事项）"
DECIDED = places.DECIDED
OPEN_DISPATCH = ("sent", "accepted", "objected")


# -- periods ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    kind: str  # daily | weekly | monthly
    start: date  # first day (local)
    end: date  # last day (local, inclusive)
    tz: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if self.kind not in REPORT_KINDS:
            raise ValueError(f"kind must be one of {REPORT_KINDS}, got {self.kind!r}")
        if self.end < self.start:
            raise ValueError("a period ends on or after its start")

    @property
    def start_utc(self) -> datetime:
        return datetime.combine(self.start, time(0), ZoneInfo(self.tz)).astimezone(timezone.utc)

    @property
    def end_utc(self) -> datetime:
        """The first instant after the period (exclusive)."""
        return datetime.combine(self.end + timedelta(days=1), time(0), ZoneInfo(self.tz)).astimezone(timezone.utc)

    @property
    def label(self) -> str:
        s, e = self.start, self.end
        if self.kind == "daily":
            return f"{s.year}年{s.month}月{s.day}日"
        if self.kind == "weekly":
            return f"{s.isocalendar()[0]}年第{s.isocalendar()[1]}周（{s.month}月{s.day}日—{e.month}月{e.day}日）"
        return f"{s.year}年{s.month}月"

    @property
    def title(self) -> str:
        return f"{self.label}{KIND_NAMES[self.kind]}"

    def previous(self) -> Period:
        return period_containing(self.kind, self.start - timedelta(days=1), self.tz)

    def next(self) -> Period:
        return period_containing(self.kind, self.end + timedelta(days=1), self.tz)


def period_containing(kind: str, day: date, tz: str = "Asia/Shanghai") -> Period:
    if kind == "daily":
        return Period(kind, day, day, tz)
    if kind == "weekly":
        monday = day - timedelta(days=day.weekday())
        return Period(kind, monday, monday + timedelta(days=6), tz)
    if kind == "monthly":
        last = _calendar.monthrange(day.year, day.month)[1]
        return Period(kind, day.replace(day=1), day.replace(day=last), tz)
    raise ValueError(f"kind must be one of {REPORT_KINDS}, got {kind!r}")


def due_at(period: Period, at: time) -> datetime:
    """When the job makes ``period``'s report: ``at`` (local) on the day after it ends
    (the next day; Monday for a week; the 1st for a month)."""
    return datetime.combine(period.end + timedelta(days=1), at, ZoneInfo(period.tz))


def due_periods(kind: str, now: datetime, tz: str, at: time, *, catch_up: int) -> list[Period]:
    """The complete periods whose report is due by ``now``, latest first, at most ``catch_up``."""
    if catch_up <= 0:
        return []
    local = now.astimezone(ZoneInfo(tz)).date()
    p = period_containing(kind, local, tz).previous()
    if due_at(p, at) > now:
        p = p.previous()
    out = []
    while len(out) < catch_up:
        out.append(p)
        p = p.previous()
    return out


# -- what a section is -------------------------------------------------------------------------

@dataclass
class Table:
    key: str  # a stable id (CSV block, XLSX sheet)
    title: str
    columns: list[str]
    rows: list[list[Any]]
    numeric: tuple[int, ...] = ()  # columns that hold numbers (right-aligned)


@dataclass
class Chart:
    title: str
    labels: list[str]
    values: list[float]
    unit: str = "件"


@dataclass
class Section:
    key: str
    title: str
    lines: list[str] = field(default_factory=list)  # sentences, in order
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


@dataclass
class Report:
    period: Period
    generated_at: datetime
    city: str
    sections: list[Section]
    headline: dict[str, Any]

    @property
    def title(self) -> str:
        return f"12345 市民服务热线 {self.period.title}"


@dataclass
class ReportInput:
    """What a section builder reads: the store, the period, the catalogue (may be None), the config."""

    store: TicketStore
    period: Period
    now: datetime
    config: ReportsConfig = DEFAULTS
    catalogue: Catalogue | None = None
    headline: dict[str, Any] = field(default_factory=dict)  # builders put their headline figures here
    _facts: TicketFacts | None = None

    async def facts(self) -> TicketFacts:
        if self._facts is None:
            self._facts = await ticket_facts(self.store, self.period, self.catalogue, self.now)
        return self._facts


SectionBuilder = Callable[[ReportInput], Awaitable["Section | None"]]


# -- one pass over the period's tickets --------------------------------------------------------

@dataclass
class TicketFacts:
    tickets: int = 0
    answered: int = 0  # answered on the call
    submitted: int = 0  # dispatched to units
    emergency: int = 0
    confidential: int = 0
    by_line: Counter = field(default_factory=Counter)
    by_category: Counter = field(default_factory=Counter)
    by_district: Counter = field(default_factory=Counter)
    by_matter: Counter = field(default_factory=Counter)
    hot_spots: Counter = field(default_factory=Counter)  # (matter, place) -> tickets


def _tally(f: TicketFacts, catalogue: Catalogue | None, rows: list) -> None:
    """Count the grouped rows; district, street and matter are those :mod:`places` resolved."""
    matters = places.matter_names(catalogue)
    for status, line, category, emergency, confidential, district_id, street_id, matter_id, n in rows:
        f.tickets += n
        f.answered += n if status == "answered" else 0
        f.submitted += n if status == "submitted" else 0
        f.emergency += n if emergency else 0
        f.confidential += n if confidential else 0
        f.by_line[line or "（未知热线）"] += n
        f.by_category[category or "（未分类）"] += n
        f.by_district[places.place_name(catalogue, district_id) or UNKNOWN_DISTRICT] += n
        matter = matters.get(matter_id or "", UNKNOWN_MATTER)
        f.by_matter[matter] += n
        spot = places.place_label(catalogue, district_id, street_id)
        if spot and matter != UNKNOWN_MATTER:
            f.hot_spots[(matter, spot)] += n


async def ticket_facts(store: TicketStore, period: Period, catalogue: Catalogue | None, now: datetime) -> TicketFacts:
    """The period's decided tickets counted by line, type, district and matter: the tickets not
    resolved yet are resolved first (:func:`places.resolve_places`, once per ticket), then one
    ``GROUP BY`` over the tickets and their ``ticket_places`` rows."""
    await places.resolve_places(store, catalogue, now, since=period.start_utc, until=period.end_utc, on="created_at",
                                max_batches=None)
    p = places.TicketPlace
    cols = (Ticket.status, Ticket.line_name, Ticket.category, Ticket.emergency, Ticket.confidential,
            p.district_id, p.street_id, p.matter_id)
    stmt = (sa.select(*cols, sa.func.count()).outerjoin(p, p.ticket_id == Ticket.id)
            .where(Ticket.created_at >= period.start_utc, Ticket.created_at < period.end_utc,
                   Ticket.status.in_(DECIDED)).group_by(*cols))
    f = TicketFacts()
    async with store.read_session() as session:
        rows = (await session.execute(stmt)).all()
    _tally(f, catalogue, rows)
    return f


async def _scalar(store: TicketStore, stmt) -> int:
    async with store.read_session() as session:
        return int((await session.execute(stmt)).scalar() or 0)


def _calls_in(period: Period):
    return sa.select(sa.func.count()).select_from(Call).where(Call.started_at >= period.start_utc,
                                                              Call.started_at < period.end_utc)


def _tickets_in(period: Period):
    return sa.select(sa.func.count()).select_from(Ticket).where(
        Ticket.created_at >= period.start_utc, Ticket.created_at < period.end_utc, Ticket.status.in_(DECIDED))


def _share(n: int, total: int) -> str:
    return f"{n / total * 100:.1f}%" if total else "—"


def _change(now: int, before: int) -> str:
    if not before:
        return "—"
    return f"{(now - before) / before * 100:+.1f}%"


def _ranked(counter: Counter, total: int, top: int) -> list[list[Any]]:
    return [[i, name, n, _share(n, total)] for i, (name, n) in enumerate(counter.most_common(top), start=1)]


# -- the builders ----------------------------------------------------------------------------

async def overview(inp: ReportInput) -> Section:
    f = await inp.facts()
    prev = inp.period.previous()
    calls = await _scalar(inp.store, _calls_in(inp.period))
    calls_before = await _scalar(inp.store, _calls_in(prev))
    tickets_before = await _scalar(inp.store, _tickets_in(prev))
    inp.headline.update(calls=calls, tickets=f.tickets, answered=f.answered, submitted=f.submitted,
                        emergency=f.emergency)
    rows = [["来电量", calls, calls_before, _change(calls, calls_before)],
            ["受理工单", f.tickets, tickets_before, _change(f.tickets, tickets_before)],
            ["直接答复", f.answered, "", ""], ["派单办理", f.submitted, "", ""], ["紧急诉求", f.emergency, "", ""]]
    lines = [f"本期（{inp.period.label}）共接听来电 {calls} 个，受理工单 {f.tickets} 件，其中直接答复 {f.answered} 件"
             f"（{_share(f.answered, f.tickets)}），派单办理 {f.submitted} 件；紧急诉求 {f.emergency} 件。",
             f"与上期相比，来电量 {_change(calls, calls_before)}，受理工单 {_change(f.tickets, tickets_before)}。"]
    return Section("overview", "一、总体情况", lines,
                   [Table("overview", "主要指标", ["指标", "本期", "上期", "环比"], rows, (1, 2))])


async def volumes(inp: ReportInput) -> Section:
    f = await inp.facts()
    top = inp.config.top
    calls_by_line: dict[str, int] = {}
    async with inp.store.read_session() as session:
        stmt = (sa.select(Call.line_name, Call.line_number, sa.func.count()).where(
            Call.started_at >= inp.period.start_utc, Call.started_at < inp.period.end_utc)
            .group_by(Call.line_name, Call.line_number))
        for name, number, n in (await session.execute(stmt)).all():
            key = name or number or "（未知热线）"
            calls_by_line[key] = calls_by_line.get(key, 0) + int(n)
    lines_all = sorted(set(calls_by_line) | set(f.by_line), key=lambda k: (-calls_by_line.get(k, 0), k))
    line_rows = [[name, calls_by_line.get(name, 0), f.by_line.get(name, 0)] for name in lines_all]
    cats = f.by_category.most_common()
    sentences = []
    if f.tickets:
        first = cats[0]
        sentences.append(f"按诉求类型，{first[0]}类最多，{first[1]} 件（{_share(first[1], f.tickets)}）。")
        known = [(k, n) for k, n in f.by_district.most_common() if k != UNKNOWN_DISTRICT]
        if known:
            sentences.append(f"按区域，{known[0][0]}最多，{known[0][1]} 件。")
        matters = [(k, n) for k, n in f.by_matter.most_common() if k != UNKNOWN_MATTER]
        if matters:
            sentences.append("诉求量居前的事项：" + "、".join(f"{k}（{n} 件）" for k, n in matters[:3]) + "。")
    else:
        sentences.append("本期没有受理工单。")
    return Section("volumes", "二、诉求量分布", sentences, [
        Table("by_line", "按热线", ["热线", "来电", "工单"], line_rows, (1, 2)),
        Table("by_type", "按诉求类型", ["排名", "类型", "工单", "占比"], _ranked(f.by_category, f.tickets, 99), (0, 2)),
        Table("by_district", "按区域", ["排名", "区域", "工单", "占比"], _ranked(f.by_district, f.tickets, top), (0, 2)),
        Table("by_matter", "按事项", ["排名", "事项", "工单", "占比"], _ranked(f.by_matter, f.tickets, top), (0, 2)),
    ], [
        Chart("各类诉求工单量", [k for k, _ in cats], [n for _, n in cats]),
        Chart("各区域工单量", [k for k, _ in f.by_district.most_common(top)], [n for _, n in f.by_district.most_common(top)]),
        Chart("事项工单量（前 %d）" % top, [k for k, _ in f.by_matter.most_common(top)],
              [n for _, n in f.by_matter.most_common(top)]),
    ])


async def rates_not_connected(inp: ReportInput) -> Section:
    """The placeholder of the rates hook (see :func:`report_sections`)."""
    return Section("rates", "三、三率（响应率、解决率、满意率）及排名",
                   ["三率计算模块尚未接入本报告（gateway/supervision/rates.py）；回访结果见“回访与满意度”一节。"])


async def simple_hot_spots(inp: ReportInput) -> Section:
    """Matter × place (street or district) with the most tickets, at least ``hot_spot_min`` each."""
    f = await inp.facts()
    spots = [(k, n) for k, n in f.hot_spots.most_common() if n >= inp.config.hot_spot_min][: inp.config.top]
    rows = [[i, matter, place, n] for i, ((matter, place), n) in enumerate(spots, start=1)]
    lines = ([f"诉求最集中的是{spots[0][0][1]}的“{spots[0][0][0]}”，{spots[0][1]} 件。"] if spots
             else [f"本期没有同一地点同一事项达到 {inp.config.hot_spot_min} 件的热点。"])
    inp.headline["hot_spots"] = len(spots)
    return Section("hot_spots", "四、热点诉求", lines,
                   [Table("hot_spots", "热点（事项 × 地点）", ["排名", "事项", "地点", "工单"], rows, (0, 3))],
                   [Chart("热点工单量", [f"{p} {m}" for (m, p), _ in spots], [n for _, n in spots])] if spots else [])


async def overdue(inp: ReportInput) -> Section:
    """Dispatches whose deadline fell in the period and that were not replied to (办结) by it.

    Counted per unit (and still open) from light rows in deadline order; only the first
    ``overdue_max`` are read with their ticket for the list."""
    p = inp.period
    late = sa.or_(Dispatch.handled_at.is_(None), Dispatch.handled_at > Dispatch.due_at)
    where = (Dispatch.due_at >= p.start_utc, Dispatch.due_at < p.end_utc, Dispatch.status != "withdrawn", late)
    order = (Dispatch.due_at, Dispatch.id)
    detail = (sa.select(Dispatch.unit_name, Dispatch.status, Dispatch.due_at, Dispatch.handled_at, Ticket.ticket_no,
                        Ticket.category, Ticket.place, Ticket.confidential)
              .join(Ticket, Ticket.id == Dispatch.ticket_id).where(*where).order_by(*order)
              .limit(inp.config.overdue_max))
    async with inp.store.read_session() as session:
        light = (await session.execute(sa.select(Dispatch.unit_name, Dispatch.status).where(*where)
                                       .order_by(*order))).all()
        shown = (await session.execute(detail)).all() if inp.config.overdue_max else []
    by_unit: Counter = Counter(unit for unit, _ in light)
    still_open = sum(1 for _, status in light if status in OPEN_DISPATCH)
    tz = ZoneInfo(p.tz)
    listed = []
    for r in shown:
        place = "（保密）" if r.confidential else (mask_personal(r.place or "") or "—")
        end = r.handled_at or inp.now
        days = max(0.0, (end - r.due_at).total_seconds() / 86400)
        listed.append([r.ticket_no or "—", r.unit_name, r.category or "—", place,
                       r.due_at.astimezone(tz).strftime("%m-%d %H:%M"), f"{days:.1f}",
                       "已办结（超期）" if r.handled_at else "未办结"])
    inp.headline["overdue"] = len(light)
    lines = [f"本期到期未按时办结的派单 {len(light)} 件，涉及承办单位 {len(by_unit)} 个；截至报告生成时仍未办结 {still_open} 件。"]
    if len(light) > len(listed):
        lines.append(f"下表列出前 {len(listed)} 件。")
    unit_rows = [[i, u, n] for i, (u, n) in enumerate(by_unit.most_common(inp.config.top), start=1)]
    return Section("overdue", "五、超期督办", lines, [
        Table("overdue_units", "超期派单（按承办单位）", ["排名", "承办单位", "超期件数"], unit_rows, (0, 2)),
        Table("overdue", "超期工单", ["工单号", "承办单位", "类型", "地点", "办理时限", "超期天数", "状态"], listed, (5,)),
    ], [Chart("各承办单位超期件数", [u for u, _ in by_unit.most_common(inp.config.top)],
              [n for _, n in by_unit.most_common(inp.config.top)])] if light else [])


async def satisfaction(inp: ReportInput) -> Section:
    """The follow-up (回访) answers recorded in the period, and what callers said (masked).

    The answers are counted in SQL; only the answers with a comment are read (in the order they
    were given), to quote the first ``comments_max`` and count the confidential callers' withheld."""
    p = inp.period
    unit = (sa.select(Dispatch.unit_name).where(Dispatch.ticket_id == Ticket.id)
            .order_by(Dispatch.id).limit(1).scalar_subquery().label("unit_name"))
    done = (Followup.status == "done", Followup.answered_at >= p.start_utc, Followup.answered_at < p.end_utc)
    tally_stmt = (sa.select(Followup.solved, Followup.satisfaction, sa.func.count()).where(*done)
                  .group_by(Followup.solved, Followup.satisfaction))
    said = (sa.select(Followup.comment_transcript, Followup.satisfaction, Ticket.confidential, Ticket.id)
            .join(Ticket, Ticket.id == Followup.ticket_id)
            .where(*done, Followup.comment_transcript.is_not(None), Followup.comment_transcript != "")
            .order_by(Followup.answered_at, Followup.id))
    solved: Counter = Counter()
    sat: Counter = Counter()
    total = 0
    comments, withheld, quoted = [], 0, []
    async with inp.store.read_session() as session:
        for solved_as, satisfied_as, n in (await session.execute(tally_stmt)).all():
            total += int(n)
            if solved_as:
                solved[solved_as] += int(n)
            if satisfied_as:
                sat[satisfied_as] += int(n)
        for text, satisfied_as, confidential, ticket_id in (await session.execute(said)).all():
            text = (text or "").strip()
            if not text:
                continue
            if confidential:
                withheld += 1
            elif len(quoted) < inp.config.comments_max:
                quoted.append((ticket_id, satisfied_as, text))
        named = {row.id: row for row in (await session.execute(
            sa.select(Ticket.id, Ticket.ticket_no, unit).where(Ticket.id.in_({t for t, _, _ in quoted})))).all()
        } if quoted else {}
    for ticket_id, satisfied_as, text in quoted:
        r = named[ticket_id]
        comments.append([r.ticket_no or "—", r.unit_name or "—", SATISFACTION_NAMES.get(satisfied_as, "—"),
                         mask_personal(text)[:300]])
    tally = ([[SOLVED_NAMES[k], solved.get(k, 0), _share(solved.get(k, 0), total)] for k in SOLVED_NAMES]
             + [[SATISFACTION_NAMES[k], sat.get(k, 0), _share(sat.get(k, 0), total)] for k in SATISFACTION_NAMES])
    inp.headline.update(followups=total, satisfied=sat.get("satisfied", 0), basic=sat.get("basic", 0),
                        unsatisfied=sat.get("unsatisfied", 0))
    lines = [f"本期完成回访 {total} 件：已解决 {solved.get('yes', 0)} 件，未解决 {solved.get('no', 0)} 件；"
             f"满意 {sat.get('satisfied', 0)} 件，基本满意 {sat.get('basic', 0)} 件，不满意 {sat.get('unsatisfied', 0)} 件。"]
    if withheld:
        lines.append(f"另有 {withheld} 条意见来自要求保密的来电人，不予引用。")
    return Section("satisfaction", "六、回访与满意度", lines, [
        Table("followups", "回访结果", ["结果", "件数", "占比"], tally, (1,)),
        Table("comments", "来电人意见（已隐去个人号码）", ["工单号", "承办单位", "评价", "意见"], comments),
    ], [Chart("回访满意度", [SATISFACTION_NAMES[k] for k in SATISFACTION_NAMES],
              [sat.get(k, 0) for k in SATISFACTION_NAMES])] if total else [])


# -- the hook ----------------------------------------------------------------------------------

def report_sections(*, rates: SectionBuilder | None = None, hot_spots: SectionBuilder | None = None,
                    extra: list[SectionBuilder] | None = None) -> list[SectionBuilder]:
    """The report's sections in order. **Integration hook** for the other issue-14 parts:
    ``rates`` (a builder over ``gateway.supervision.rates.compute_rates``: the three rates and
    their ranking tables) replaces the "not connected" placeholder; ``hot_spots`` (a builder over
    the early warnings) replaces the simple matter × place list; ``extra`` builders go last."""
    return [overview, volumes, rates or rates_not_connected, hot_spots or simple_hot_spots, overdue, satisfaction,
            *(extra or [])]


DEFAULT_SECTIONS: list[SectionBuilder] = report_sections()


async def assemble(store: TicketStore, period: Period, *, now: datetime, config: ReportsConfig = DEFAULTS,
                   catalogue: Catalogue | None = None, sections: list[SectionBuilder] | None = None) -> Report:
    """The report of ``period``: every section builder in order (a builder may return None: left out)."""
    inp = ReportInput(store=store, period=period, now=now, config=config, catalogue=catalogue)
    out = []
    for build in sections or DEFAULT_SECTIONS:
        section = await build(inp)
        if section is not None:
            out.append(section)
    return Report(period=period, generated_at=now, city=catalogue.city if catalogue else "", sections=out,
                  headline=dict(inp.headline))
