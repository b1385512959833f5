"""When a follow-up call may be placed: the calling window, the delay after 办结, the retries.

Pure functions (no I/O, no clock of their own): the scheduler asks them with "now".

The window is a schedule of ``hotlines.yaml`` (``GATEWAY_FOLLOWUP_HOURS``, default
``followup``: working days 09:00-20:00): the same weekly hours, public holidays and make-up
working days (调休) as every office-hours schedule (:func:`gateway.ivr_flows.calendar.is_open`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.ivr_flows.calendar import is_open
from gateway.ivr_flows.model import Schedule

SEARCH_DAYS = 400  # a window that never opens within this is a configuration mistake


class NeverOpen(ValueError):
    """The calling window has no opening within SEARCH_DAYS days."""


@dataclass(frozen=True)
class RetryPolicy:
    delay: timedelta = timedelta(hours=1)  # at least this long after 办结 before the first call
    attempts: int = 3  # calls placed at most
    interval: timedelta = timedelta(hours=2)  # between an unanswered call and the next

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a follow-up needs at least one attempt")
        if self.delay < timedelta(0) or self.interval < timedelta(0):
            raise ValueError("delay and interval must not be negative")


def next_open(schedule: Schedule, when: datetime) -> datetime:
    """The first instant at or after ``when`` at which ``schedule`` is open."""
    if when.tzinfo is None:
        raise ValueError("next_open needs an aware datetime")
    if schedule.always_open or is_open(schedule, when):
        return when
    zone = ZoneInfo(schedule.timezone)
    local = when.astimezone(zone)
    for offset in range(SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        iso_day = day.isoformat()
        if iso_day in schedule.holidays:
            continue
        weekday = 0 if iso_day in schedule.workdays else day.weekday()
        for start, _end in sorted(schedule.weekly.get(weekday, ())):
            opening = datetime(day.year, day.month, day.day, start // 60, start % 60, tzinfo=zone)
            if opening >= local:
                return opening.astimezone(when.tzinfo)
    raise NeverOpen(f"schedule {schedule.name!r} does not open within {SEARCH_DAYS} days")


def first_call_at(schedule: Schedule, policy: RetryPolicy, *, handled_at: datetime | None,
                  now: datetime) -> datetime:
    """When the first follow-up call of a ticket handled at ``handled_at`` is due."""
    earliest = max(now, (handled_at or now) + policy.delay)
    return next_open(schedule, earliest)


@dataclass(frozen=True)
class AfterAttempt:
    status: str  # "scheduled" (next_at says when) or "unreachable"
    next_at: datetime | None


def after_unanswered(schedule: Schedule, policy: RetryPolicy, *, attempts: int, now: datetime) -> AfterAttempt:
    """What follows the ``attempts``-th call left unanswered (no answer, busy, failed, no key)."""
    if attempts >= policy.attempts:
        return AfterAttempt("unreachable", None)
    return AfterAttempt("scheduled", next_open(schedule, now + policy.interval))
