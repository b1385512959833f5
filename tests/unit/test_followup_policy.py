"""The follow-up's calling window, delay after 办结 and retries (pure, gateway.followup.policy)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.followup.policy import NeverOpen, RetryPolicy, after_unanswered, first_call_at, next_open
from gateway.ivr_flows.model import Schedule

CN = ZoneInfo("Asia/Shanghai")
WORKDAY = ((9 * 60, 20 * 60),)
# 2027: 10-01..10-07 National Day (10-01, 10-04..10-07 holidays here), 10-09 (Sat) a make-up working day.
WINDOW = Schedule("followup", weekly={d: WORKDAY for d in range(5)},
                  holidays=frozenset({"2027-10-01", "2027-10-04", "2027-10-05", "2027-10-06", "2027-10-07"}),
                  workdays=frozenset({"2027-10-09"}))
POLICY = RetryPolicy(delay=timedelta(hours=1), attempts=3, interval=timedelta(hours=2))


def cn(*args) -> datetime:
    return datetime(*args, tzinfo=CN)


def test_given_a_time_inside_the_window_when_next_open_then_the_same_time():
    assert next_open(WINDOW, cn(2027, 9, 28, 10, 15)) == cn(2027, 9, 28, 10, 15)


def test_given_evening_when_next_open_then_nine_the_next_working_morning():
    assert next_open(WINDOW, cn(2027, 9, 28, 20, 0)) == cn(2027, 9, 29, 9, 0)
    assert next_open(WINDOW, cn(2027, 9, 29, 6, 30)) == cn(2027, 9, 29, 9, 0)


def test_given_friday_night_when_next_open_then_monday_not_the_weekend():
    assert next_open(WINDOW, cn(2027, 9, 24, 21, 0)) == cn(2027, 9, 27, 9, 0)


def test_given_national_day_when_next_open_then_the_make_up_saturday_after_the_holidays():
    # 09-30 (Thu) evening -> 10-01 holiday, weekend, 10-04..07 holidays, 10-08 (Fri) opens.
    assert next_open(WINDOW, cn(2027, 9, 30, 20, 30)) == cn(2027, 10, 8, 9, 0)
    # 10-08 evening -> 10-09 is a Saturday but a make-up working day (调休)
    assert next_open(WINDOW, cn(2027, 10, 8, 20, 0)) == cn(2027, 10, 9, 9, 0)


def test_given_utc_input_when_next_open_then_answer_in_utc_and_same_instant():
    when = datetime(2027, 9, 28, 13, 0, tzinfo=timezone.utc)  # 21:00 in Beijing
    got = next_open(WINDOW, when)
    assert got.tzinfo == timezone.utc and got == cn(2027, 9, 29, 9, 0)


def test_given_always_schedule_when_next_open_then_now():
    now = cn(2027, 10, 1, 3, 0)
    assert next_open(Schedule("always", always_open=True), now) == now


def test_given_a_window_that_never_opens_then_never_open_is_raised():
    with pytest.raises(NeverOpen):
        next_open(Schedule("none", weekly={}), cn(2027, 1, 1, 0, 0))


def test_given_handled_late_afternoon_when_first_call_then_after_the_delay_or_next_morning():
    assert first_call_at(WINDOW, POLICY, handled_at=cn(2027, 9, 28, 15, 0), now=cn(2027, 9, 28, 15, 0)) \
        == cn(2027, 9, 28, 16, 0)
    assert first_call_at(WINDOW, POLICY, handled_at=cn(2027, 9, 28, 19, 30), now=cn(2027, 9, 28, 19, 30)) \
        == cn(2027, 9, 29, 9, 0)


def test_given_handled_long_ago_when_first_call_then_now_not_the_past():
    now = cn(2027, 9, 28, 11, 0)
    assert first_call_at(WINDOW, POLICY, handled_at=cn(2027, 9, 20, 10, 0), now=now) == now


def test_given_unanswered_attempts_when_after_unanswered_then_retry_in_window_until_the_last():
    first = after_unanswered(WINDOW, POLICY, attempts=1, now=cn(2027, 9, 28, 10, 0))
    assert (first.status, first.next_at) == ("scheduled", cn(2027, 9, 28, 12, 0))
    late = after_unanswered(WINDOW, POLICY, attempts=2, now=cn(2027, 9, 28, 19, 0))
    assert (late.status, late.next_at) == ("scheduled", cn(2027, 9, 29, 9, 0))
    last = after_unanswered(WINDOW, POLICY, attempts=3, now=cn(2027, 9, 28, 10, 0))
    assert (last.status, last.next_at) == ("unreachable", None)


def test_given_bad_policy_then_refused():
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(interval=timedelta(seconds=-1))
