"""The callback's pure rules: the expected wait, the number, the retry policy, whose turn it is."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.callback.estimate import (Member, QueueSnapshot, Waiting, expected_wait, merge, parse_queue_status,
                                       spoken_minutes)
from gateway.callback.policy import (BadCallbackNumber, BadMove, Pending, RetryPolicy, callback_number, check_move,
                                     due)

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)
FREE, BUSY, GONE = Member("a", "1", False), Member("b", "2", False, True), Member("c", "5", False)
PAUSED = Member("d", "1", True)

QUEUE_STATUS = [
    {"Event": "QueueParams", "Queue": "q-general", "Calls": "2", "Holdtime": "95", "TalkTime": "240"},
    {"Event": "QueueMember", "Queue": "q-general", "Name": "坐席一", "Status": "2", "Paused": "0", "InCall": "1"},
    {"Event": "QueueMember", "Queue": "q-general", "Name": "坐席二", "Status": "1", "Paused": "1", "InCall": "0"},
    {"Event": "QueueEntry", "Queue": "q-general", "Position": "2", "Uniqueid": "u2", "Wait": "30"},
    {"Event": "QueueEntry", "Queue": "q-general", "Position": "1", "Uniqueid": "u1", "Wait": "70"},
    {"Event": "QueueParams", "Queue": "q-help", "Calls": "0", "Holdtime": "0", "TalkTime": "0"},
    {"Event": "QueueStatusComplete", "EventList": "Complete"},
]


def test_given_queue_status_events_when_parsed_then_members_and_callers_in_queue_order():
    snaps = parse_queue_status(QUEUE_STATUS)
    general = snaps["q-general"]
    assert [w.uniqueid for w in general.waiting] == ["u1", "u2"]
    assert (general.staffed, general.free, general.talktime_s, general.holdtime_s) == (1, 0, 240.0, 95.0)
    assert snaps["q-help"].members == () and snaps["q-help"].waiting == ()


def test_given_free_member_and_nobody_waiting_when_estimated_then_no_wait():
    est = expected_wait(QueueSnapshot("q", members=(FREE, BUSY)))
    assert est.seconds == 0.0 and not est.over(60)


def test_given_everyone_busy_when_estimated_then_rounds_of_talk_time_over_staffed_members():
    snap = QueueSnapshot("q", members=(BUSY, Member("e", "2", False, True)), waiting=(Waiting("u", 10),) * 3,
                         talktime_s=200)
    # 3 waiting + me = 4 callers over 2 members: 2 rounds of 200 s
    assert expected_wait(snap).seconds == 400.0
    assert expected_wait(snap, callbacks_ahead=2).seconds == 600.0


def test_given_no_history_when_estimated_then_default_talk_time_is_used():
    assert expected_wait(QueueSnapshot("q", members=(BUSY,)), default_talk_s=150).seconds == 150.0


def test_given_nobody_staffs_the_queue_when_estimated_then_unknown_counts_as_over_any_limit():
    est = expected_wait(QueueSnapshot("q", members=(GONE, PAUSED)))
    assert est.seconds is None and est.over(10_000)


def test_given_long_asterisk_holdtime_when_callers_wait_then_estimate_is_not_below_it():
    snap = QueueSnapshot("q", members=(BUSY,), waiting=(Waiting("u", 5),), talktime_s=60, holdtime_s=500)
    assert expected_wait(snap).seconds == 500.0


def test_given_two_nodes_when_merged_then_members_and_callers_add_up_oldest_first():
    a = QueueSnapshot("q", members=(FREE,), waiting=(Waiting("x", 5),), talktime_s=100)
    b = QueueSnapshot("q", members=(BUSY,), waiting=(Waiting("y", 50),), talktime_s=120)
    m = merge([a, b])
    assert [w.uniqueid for w in m.waiting] == ["y", "x"] and m.staffed == 2 and m.talktime_s == 120
    assert merge([]) is None


@pytest.mark.parametrize("seconds,minutes", [(0, 1), (59, 1), (61, 2), (300, 5), (301, 6), (420, 8),
                                             (1700, 30), (1801, None), (None, None)])
def test_given_wait_when_spoken_then_minutes_round_up_to_a_rendered_step(seconds, minutes):
    assert spoken_minutes(seconds) == minutes


@pytest.mark.parametrize("raw,number", [("13800138000", "13800138000"), ("+8613800138000", "13800138000"),
                                        ("008619912345678", "19912345678"), ("01062345678", "01062345678"),
                                        ("057187654321", "057187654321"), ("0755 2345678".replace(" ", ""),
                                                                            "07552345678")])
def test_given_mobile_or_landline_with_area_code_when_checked_then_accepted(raw, number):
    assert callback_number(raw) == number


@pytest.mark.parametrize("raw,reason", [("", "withheld"), (None, "withheld"), ("anonymous", "digits"),
                                        ("1380013800", "11 digits"), ("12345", "11 digits"),
                                        ("62345678", "not a mobile"), ("0106234", "area code"),
                                        ("110", "11 digits")])
def test_given_unusable_number_when_checked_then_refused_with_reason(raw, reason):
    with pytest.raises(BadCallbackNumber, match=reason):
        callback_number(raw)


def test_given_policy_when_attempts_end_then_retry_until_the_last_then_give_up():
    policy = RetryPolicy(attempts=3, interval_s=120)
    assert policy.after("answered", 1, T0) == ("connected", None)
    assert policy.after("no_answer", 1, T0) == ("waiting", T0 + timedelta(seconds=120))
    assert policy.after("busy", 2, T0) == ("waiting", T0 + timedelta(seconds=120))
    assert policy.after("busy", 3, T0) == ("no_answer", None)
    assert policy.after("failed", 3, T0) == ("failed", None)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_given_final_status_when_moved_then_refused():
    check_move("waiting", "dialling")
    with pytest.raises(BadMove):
        check_move("done", "cancelled")
    with pytest.raises(BadMove):
        check_move("waiting", "connected")


def _cb(id_, minutes, status="waiting", next_at=None):
    return Pending(id_, "q", T0 + timedelta(minutes=minutes), status, next_at)


def test_given_a_caller_who_joined_before_the_place_when_agent_frees_then_not_yet():
    assert due([_cb(1, 5)], waiting_joined=[T0 + timedelta(minutes=4)], free_members=1, now=T0) == []


def test_given_only_later_callers_waiting_when_agent_frees_then_callback_goes_first():
    assert [c.id for c in due([_cb(1, 5)], waiting_joined=[T0 + timedelta(minutes=6)], free_members=1,
                              now=T0)] == [1]


def test_given_two_callbacks_and_one_free_member_then_the_older_place_only():
    assert [c.id for c in due([_cb(2, 6), _cb(1, 5)], waiting_joined=[], free_members=1, now=T0)] == [1]
    assert [c.id for c in due([_cb(2, 6), _cb(1, 5)], waiting_joined=[], free_members=2, now=T0)] == [1, 2]


def test_given_a_callback_already_dialling_then_it_takes_the_free_member():
    assert due([_cb(1, 5, "dialling"), _cb(2, 6)], waiting_joined=[], free_members=1, now=T0) == []


def test_given_no_free_member_then_nothing_is_placed():
    assert due([_cb(1, 5)], waiting_joined=[], free_members=0, now=T0) == []


def test_given_older_callback_waiting_out_its_retry_then_the_next_goes():
    later = T0 + timedelta(minutes=2)
    assert [c.id for c in due([_cb(1, 5, next_at=later), _cb(2, 6)], waiting_joined=[], free_members=1,
                              now=T0)] == [2]
