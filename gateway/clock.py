"""The gateway's notion of "now": calendars, broadcasts and scheduled changes all ask it.

Production uses the system clock. With ``GATEWAY_TEST_CLOCK=true`` the clock can be
set through ``PUT /api/test/clock`` so tests check a holiday, a make-up working day
or a scheduled change at its time without sleeping or changing the machine's clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class Clock:
    adjustable = False

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    __call__ = now


class AdjustableClock(Clock):
    """The system clock shifted by an offset; setting it moves "now", time still runs."""

    adjustable = True

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self._offset

    __call__ = now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("the clock needs a date and time with a UTC offset")
        self._offset = when - datetime.now(timezone.utc)

    def reset(self) -> None:
        self._offset = timedelta(0)
