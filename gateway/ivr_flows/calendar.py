"""Opening hours: is a line open at a given instant?"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.ivr_flows.model import Schedule


def is_open(schedule: Schedule, when: datetime) -> bool:
    """True when ``schedule`` is open at ``when`` (an aware datetime).

    Holidays close the whole day; a make-up working day (调休) opens with
    Monday's hours even when it falls on a weekend.
    """
    if schedule.always_open:
        return True
    if when.tzinfo is None:
        raise ValueError("is_open needs an aware datetime")
    local = when.astimezone(ZoneInfo(schedule.timezone))
    day = local.date().isoformat()
    if day in schedule.holidays:
        return False
    weekday = 0 if day in schedule.workdays else local.weekday()
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in schedule.weekly.get(weekday, ()))
