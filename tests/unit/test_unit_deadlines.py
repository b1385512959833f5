"""Deadlines by urgency and request type; working days with China's public holidays and 调休."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.errors import ConfigError
from gateway.units.deadlines import (DEFAULTS, Calendar, add_working_days, calendar_from_hotlines,
                                     load_deadlines, parse_deadlines)

TZ = ZoneInfo("Asia/Shanghai")
CAL_2027 = Calendar(holidays=frozenset({"2027-10-01", "2027-10-04", "2027-10-05", "2027-10-06", "2027-10-07"}),
                    workdays=frozenset({"2027-10-09"}))


def local(*args):
    return datetime(*args, tzinfo=TZ)


@pytest.mark.parametrize("start, days, end", [
    (local(2027, 3, 1, 10, 0), 5, local(2027, 3, 9, 0, 0)),      # Mon -> end of next Mon
    (local(2027, 3, 5, 16, 0), 1, local(2027, 3, 9, 0, 0)),      # Fri -> end of Mon
    (local(2027, 3, 6, 9, 0), 1, local(2027, 3, 9, 0, 0)),       # Sat: the day itself does not count
    (local(2027, 9, 30, 9, 0), 1, local(2027, 10, 9, 0, 0)),     # National Day: Fri 10-08 is the 1st
    (local(2027, 9, 30, 9, 0), 2, local(2027, 10, 10, 0, 0)),    # then Sat 10-09, a make-up working day
])
def test_given_calendar_when_adding_working_days_then_weekends_and_holidays_are_skipped(start, days, end):
    assert add_working_days(start, days, CAL_2027) == end


def test_given_defaults_when_due_then_urgency_hours_are_clock_hours_even_on_holidays():
    start = local(2027, 10, 1, 22, 0)
    assert DEFAULTS.due_at(start, "emergency", "求助", CAL_2027) == local(2027, 10, 2, 0, 0)
    assert DEFAULTS.due_at(start, "urgent", "投诉", CAL_2027) == local(2027, 10, 2, 22, 0)


def test_given_category_limit_when_due_then_the_earlier_of_urgency_and_type_applies():
    start = local(2027, 3, 1, 10, 0)
    assert DEFAULTS.due_at(start, "normal", "咨询", CAL_2027) == local(2027, 3, 3, 0, 0)  # 1 working day
    assert DEFAULTS.due_at(start, "normal", "建议", CAL_2027) == local(2027, 3, 9, 0, 0)  # 5 < 10
    assert DEFAULTS.due_at(start, None, None, CAL_2027) == local(2027, 3, 9, 0, 0)


def test_given_reminder_fraction_when_remind_time_then_before_the_deadline():
    start = datetime(2027, 3, 1, 0, 0, tzinfo=timezone.utc)
    due = DEFAULTS.due_at(start, "emergency", None, CAL_2027)
    assert start < DEFAULTS.remind_time(start, due) < due


def test_given_the_shipped_file_when_loaded_then_it_is_valid_and_matches_the_documented_defaults(tmp_path):
    from pathlib import Path

    loaded = load_deadlines(Path(__file__).resolve().parents[2] / "config" / "deadlines.yaml")
    assert loaded == DEFAULTS
    assert load_deadlines(tmp_path / "absent.yaml") == DEFAULTS


@pytest.mark.parametrize("text, field, words", [
    ("urgency: {normal: {hours: 2, working_days: 1}}\n", "urgency.normal", "either hours or working_days"),
    ("urgency: {urgent: {hours: 2}}\n", "urgency", "missing required key 'normal'"),
    ("urgency: {normal: {working_days: 0}}\n", "urgency.normal.working_days", "out of range"),
    ("urgency: {normal: {working_days: 1.5}}\n", "urgency.normal.working_days", "whole number"),
    ("urgency: {normal: {hours: 2}}\ncategories: {咨讯: {hours: 1}}\n", "categories.咨讯", "unknown key"),
    ("urgency: {normal: {hours: 2}}\nremind_at: 2\n", "remind_at", "out of range"),
    ("urgency: {normal: {hours: 2}}\nreminder: 0.5\n", "reminder", "unknown key"),
])
def test_given_bad_file_when_parsed_then_every_problem_names_line_and_field(text, field, words):
    with pytest.raises(ConfigError) as caught:
        parse_deadlines(text)
    problems = caught.value.problems
    assert any(p.field == field and words in p.message and p.line for p in problems), problems
    assert all(p.message_zh for p in problems)


def test_given_hotlines_text_when_calendar_then_holidays_and_workdays_are_read():
    text = ('timezone: Asia/Shanghai\npublic_holidays:\n  "2027":\n    holidays: ["2027-10-01"]\n'
            '    workdays: [2027-10-09]\n')
    cal = calendar_from_hotlines(text)
    assert cal.holidays == {"2027-10-01"} and cal.workdays == {"2027-10-09"}
    assert not cal.is_working_day(local(2027, 10, 1).date()) and cal.is_working_day(local(2027, 10, 9).date())
