"""Deadlines (办理时限) of dispatched tickets, by urgency and request type (pure; no I/O but the loader).

Theory of operation
-------------------
``config/deadlines.yaml`` gives a time limit per urgency (``emergency``, ``urgent``, ``normal``)
and, optionally, per request type (咨询, 建议, 举报, 投诉, 求助). A limit is either clock
``hours`` (counted straight through nights, weekends and holidays: an emergency does not wait
for Monday) or ``working_days``. A ticket's deadline is the *earlier* of its urgency's and its
type's limit, counted from the moment it is dispatched.

Working days are the hotline's calendar: Monday to Friday, minus China's public holidays, plus
the make-up working days (调休) of ``hotlines.yaml``'s ``public_holidays`` (the configuration
the hotline administration versions). N working days run to the end (24:00, local time) of the
Nth working day after the day of dispatch; the day of dispatch itself does not count, whether
or not it is a working day.

A reminder goes to the unit when ``remind_at`` (a fraction, default 0.8) of the time between
dispatch and deadline has passed, and an ``overdue`` notice at the deadline.

The defaults (:data:`DEFAULTS`, also written out in config/deadlines.yaml) are examples, not an
official table: the regulation (北京市接诉即办工作条例, see ../shared/seed and DOMAIN.md) asks for
"分级分类快速响应" and 限时办理 without fixing numbers here; centres publish e.g. a 2-hour response for
urgent matters and handling limits of 1, 5 or 10 days by type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import Reader
from gateway.ivr_flows.model import CATEGORIES
from gateway.ticketing.models import URGENCIES

FILE = "deadlines.yaml"
MAX_HOURS = 24 * 90
MAX_DAYS = 60


@dataclass(frozen=True)
class Limit:
    hours: float | None = None
    working_days: int | None = None

    def describe(self) -> str:
        return f"{self.hours:g} h" if self.hours is not None else f"{self.working_days} working days"


@dataclass(frozen=True)
class Calendar:
    """Working days: Mon-Fri, minus ``holidays``, plus ``workdays`` (ISO dates), in ``timezone``."""

    timezone: str = "Asia/Shanghai"
    holidays: frozenset = frozenset()
    workdays: frozenset = frozenset()

    def is_working_day(self, day: date) -> bool:
        iso = day.isoformat()
        if iso in self.workdays:
            return True
        return day.weekday() < 5 and iso not in self.holidays


@dataclass(frozen=True)
class Deadlines:
    urgency: dict = field(default_factory=dict)  # urgency -> Limit
    categories: dict = field(default_factory=dict)  # 咨询... -> Limit
    remind_at: float = 0.8

    def limit_for(self, urgency: str | None, category: str | None) -> list[Limit]:
        out = [self.urgency.get(urgency or "normal") or self.urgency["normal"]]
        if category in self.categories:
            out.append(self.categories[category])
        return out

    def due_at(self, start: datetime, urgency: str | None, category: str | None, calendar: Calendar) -> datetime:
        """The deadline of a ticket dispatched at ``start`` (aware datetime; returned in UTC's zone of start)."""
        return min(add_limit(start, lim, calendar) for lim in self.limit_for(urgency, category))

    def remind_time(self, start: datetime, due: datetime) -> datetime:
        return start + (due - start) * self.remind_at


DEFAULTS = Deadlines(
    urgency={"emergency": Limit(hours=2), "urgent": Limit(hours=24), "normal": Limit(working_days=5)},
    categories={"咨询": Limit(working_days=1), "建议": Limit(working_days=10)},
    remind_at=0.8,
)


def add_working_days(start: datetime, days: int, calendar: Calendar) -> datetime:
    """The end (24:00 local) of the ``days``-th working day after ``start``'s local day."""
    tz = ZoneInfo(calendar.timezone)
    day = start.astimezone(tz).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            counted += 1
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(start.tzinfo)


def add_limit(start: datetime, limit: Limit, calendar: Calendar) -> datetime:
    if limit.hours is not None:
        return start + timedelta(hours=limit.hours)
    return add_working_days(start, int(limit.working_days or 0), calendar)


# -- loading ------------------------------------------------------------------------------------
def _limit(r: Reader, raw: Any, path: tuple) -> Limit | None:
    m = r.mapping(raw, path, optional=("hours", "working_days"))
    if m is None:
        return None
    if ("hours" in m) == ("working_days" in m):
        r.src.problem(path, "give either hours or working_days")
        return None
    if "hours" in m:
        hours = r.number(m["hours"], path + ("hours",), low=0.25, high=MAX_HOURS)
        return None if hours is None else Limit(hours=float(hours))
    days = m["working_days"]
    if isinstance(days, bool) or not isinstance(days, int):
        r.src.problem(path + ("working_days",), "expected a whole number of working days")
        return None
    if not 1 <= days <= MAX_DAYS:
        r.src.problem(path + ("working_days",), f"{days} is out of range 1..{MAX_DAYS}")
        return None
    return Limit(working_days=days)


def deadlines_from_source(src: yamlsrc.Source) -> Deadlines:
    if src.problems:
        raise ConfigError(src.problems)
    r = Reader(src)
    top = r.mapping(src.data, (), required=("urgency",), optional=("version", "categories", "remind_at")) or {}
    urgency: dict = {}
    raw_u = r.mapping(top.get("urgency", {}), ("urgency",), required=("normal",), optional=URGENCIES) or {}
    for name, raw in raw_u.items():
        if name in URGENCIES:
            lim = _limit(r, raw, ("urgency", name))
            if lim:
                urgency[name] = lim
    categories: dict = {}
    raw_c = top.get("categories") or {}
    cm = r.mapping(raw_c, ("categories",), optional=CATEGORIES) or {}
    for name, raw in cm.items():
        if name in CATEGORIES:
            lim = _limit(r, raw, ("categories", name))
            if lim:
                categories[name] = lim
    remind_at = DEFAULTS.remind_at
    if "remind_at" in top:
        value = r.number(top["remind_at"], ("remind_at",), low=0.1, high=0.99)
        remind_at = float(value) if value is not None else remind_at
    if src.problems:
        raise ConfigError(src.problems)
    return Deadlines(urgency=urgency, categories=categories, remind_at=remind_at)


def parse_deadlines(text: str, file: str = FILE) -> Deadlines:
    return deadlines_from_source(yamlsrc.parse(text, file))


def load_deadlines(path: Path | str) -> Deadlines:
    """``config/deadlines.yaml``, validated (every problem with file, line and field); the
    defaults when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return DEFAULTS
    return deadlines_from_source(yamlsrc.read(path))


def calendar_from_hotlines(text: str | None, timezone: str = "Asia/Shanghai") -> Calendar:
    """The public holidays and make-up working days of a (valid) ``hotlines.yaml`` text."""
    if not text:
        return Calendar(timezone=timezone)
    src = yamlsrc.parse(text, "hotlines.yaml")
    data = src.data if isinstance(src.data, dict) else {}
    holidays: set = set()
    workdays: set = set()
    for spec in (data.get("public_holidays") or {}).values():
        if isinstance(spec, dict):
            holidays |= {str(d) for d in spec.get("holidays") or []}
            workdays |= {str(d) for d in spec.get("workdays") or []}
    return Calendar(timezone=str(data.get("timezone") or timezone), holidays=frozenset(holidays),
                    workdays=frozenset(workdays))
