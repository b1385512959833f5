"""The 12345 flow and each merge mode, walked with a scripted channel (no Asterisk)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gateway.ivr_flows.engine import CallState, Interpreter
from gateway.ivr_flows.validate import load_config
from tests.unit.scripted import RecordingObserver, ScriptedChannel

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")
# Saturday 2027-02-20 is a make-up working day (调休) in config/hotlines.yaml
WEEKDAY_OPEN = datetime(2027, 3, 3, 2, 0, tzinfo=timezone.utc)  # Wed 10:00 in Beijing
SUNDAY = datetime(2027, 3, 7, 2, 0, tzinfo=timezone.utc)
MAKEUP_SATURDAY = datetime(2027, 2, 20, 2, 0, tzinfo=timezone.utc)
HOLIDAY = datetime(2027, 1, 1, 2, 0, tzinfo=timezone.utc)


async def walk(number: str, channel: ScriptedChannel, *, when=WEEKDAY_OPEN):
    observer = RecordingObserver()
    state = CallState(uniqueid="u1", line=CONFIG.lines[number], caller="13800138000", dialled=number)
    await Interpreter(CONFIG, clock=lambda: when).run(state, channel, observer)
    return state, observer


@pytest.mark.parametrize("key,category,queue", [
    ("1", "咨询", "q-consult"), ("2", "建议", "q-suggest"), ("3", "举报", "q-report"),
    ("4", "投诉", "q-complaint"), ("5", "求助", "q-help"),
])
async def test_given_12345_when_caller_picks_a_request_type_then_it_is_recorded_and_queued_by_type(key, category, queue):
    channel = ScriptedChannel([key, "2"])
    state, observer = await walk("12345", channel)

    assert state.outcome == "queued" and channel.transferred == queue
    assert state.vars["category"] == category and state.vars["confidential"] is False
    assert channel.played[:5] == ["main-greeting", "main-emergency_notice", "main-korean_hint",
                                  "main-emergency_key", "main-type_menu"]  # no zh model: the key is offered
    assert channel.recordings == ["u1"] and observer.recordings[0].duration_ms == 2300
    assert [s["node"] for s in observer.steps] == [
        "hours", "greeting", "emergency_notice", "korean_hint", "hot_topics", "type_menu", "confidential_menu",
        "describe", "tell_number", "to_queue"]
    assert observer.ticket_points[0]["category"] == category  # the ticket exists before the recording


async def test_given_12345_when_caller_picks_the_green_channel_then_enterprise_queue():
    state, _ = await walk("12345", ScriptedChannel(["6", "1"]))
    assert state.queue == "q-enterprise" and state.vars["channel_kind"] == "enterprise"
    assert state.vars["confidential"] is True


async def test_given_the_confidentiality_menu_when_no_key_then_not_confidential_by_default():
    state, observer = await walk("12345", ScriptedChannel(["4", ""]))
    assert state.vars["confidential"] is False
    assert observer.steps[6] == {"node": "confidential_menu", "key": "2", "label": "不保密", "result": "default"}


async def test_given_a_menu_when_keys_are_invalid_three_times_then_an_agent_takes_the_call():
    channel = ScriptedChannel(["8", "*", "8"])
    state, observer = await walk("12345", channel)

    assert channel.transferred == "q-general" and channel.recordings == []
    menu = [s for s in observer.steps if s["node"] == "type_menu"]
    assert [s["result"] for s in menu] == ["invalid", "invalid", "invalid"]
    assert channel.played.count("main-invalid") == 2  # repeated twice, then the agent
    assert "main-to_agent" in channel.played
    assert len(observer.ticket_points) == 1  # reaching an agent writes the draft


async def test_given_a_menu_when_caller_presses_nothing_then_it_repeats_twice_then_an_agent():
    channel = ScriptedChannel(["", "", ""])
    state, observer = await walk("12345", channel)
    assert [s["result"] for s in observer.steps if s["node"] == "type_menu"] == ["no_input"] * 3
    assert channel.played.count("main-no_input") == 2 and state.queue == "q-general"


async def test_given_one_wrong_key_when_the_retry_is_right_then_the_flow_continues():
    state, observer = await walk("12345", ScriptedChannel(["8", "3", "1"]))
    assert state.vars["category"] == "举报" and state.queue == "q-report"


async def test_given_a_caller_when_they_hang_up_in_the_menu_then_no_ticket_point_is_reached():
    state, observer = await walk("12345", ScriptedChannel(["HANGUP"]))
    assert state.outcome == "caller_hangup"
    assert observer.ticket_points == [] and observer.steps[-1] == {"node": "caller_hangup", "at": "type_menu"}


async def test_given_a_caller_when_they_hang_up_during_the_greeting_then_the_call_ends_there():
    state, observer = await walk("12345", ScriptedChannel([], hangup_on_prompt="greeting"))
    assert state.outcome == "caller_hangup" and observer.steps[-1]["at"] == "greeting"


async def test_given_a_caller_when_they_hang_up_while_recording_then_ticket_and_recording_are_kept():
    channel = ScriptedChannel(["4", "1"], record_end="hangup")
    state, observer = await walk("12345", channel)
    assert state.outcome == "caller_hangup" and channel.transferred is None
    assert len(observer.ticket_points) == 1 and observer.recordings[0].ended_by == "hangup"


async def test_given_a_recording_when_caller_presses_hash_then_flow_goes_on_to_the_queue():
    state, observer = await walk("12345", ScriptedChannel(["5", "2"], record_end="dtmf"))
    assert state.queue == "q-help"
    assert [s for s in observer.steps if s["node"] == "describe"][0]["result"] == "dtmf"


@pytest.mark.parametrize("number", ["12319", "12358"])
async def test_given_a_retired_line_when_called_then_announcement_then_12345_flow_with_department(number):
    channel = ScriptedChannel(["2", "2"])
    state, observer = await walk(number, channel)
    line = CONFIG.lines[number]
    assert channel.played[:3] == [f"line-{number}-announcement", "main-greeting", "main-emergency_notice"]
    assert state.vars["department"] == line.department and state.queue == "q-suggest"
    assert observer.steps[0] == {"node": "announcement"}


@pytest.mark.parametrize("number", ["12315", "12369"])
async def test_given_a_dual_number_line_when_called_then_own_greeting_and_own_skill_queue(number):
    channel = ScriptedChannel(["4", "2"])
    state, _ = await walk(number, channel)
    assert channel.played[0] == f"line-{number}-greeting"
    assert state.queue == CONFIG.lines[number].queue  # the line's skill queue wins over the type's
    assert state.vars["category"] == "投诉" and "handled_by" not in state.vars


async def test_given_a_dual_number_line_when_menu_fails_then_its_own_skill_queue_takes_it():
    state, _ = await walk("12315", ScriptedChannel(["", "", ""]))
    assert state.queue == "q-12315"


async def test_given_a_sub_centre_in_hours_when_called_then_its_own_queue_and_handled_by():
    channel = ScriptedChannel(["1", "2"])
    state, observer = await walk("12366", channel, when=WEEKDAY_OPEN)
    assert channel.played[0] == "line-12366-greeting"
    assert state.queue == "q-12366" and state.vars["handled_by"] == "国家税务总局北京市税务局"
    assert observer.ticket_points[0]["handled_by"] == "国家税务总局北京市税务局"


@pytest.mark.parametrize("when,opened", [(SUNDAY, False), (HOLIDAY, False), (MAKEUP_SATURDAY, True)])
async def test_given_a_sub_centre_with_office_hours_when_called_then_the_calendar_decides(when, opened):
    channel = ScriptedChannel(["1", "2"])
    state, observer = await walk("12366", channel, when=when)
    assert observer.steps[0] == {"node": "hours", "result": "open" if opened else "closed"}
    if opened:
        assert state.queue == "q-12366"
    else:  # after hours the call overflows to 12345 central, which still records it
        assert channel.played[0] == "main-closed_to_central" and channel.played[1] == "main-greeting"
        assert state.queue == "q-consult" and not state.vars["handled_by"]
        assert state.vars["overflow"] == "after_hours"


async def test_given_the_primary_line_when_called_at_any_time_then_it_is_open():
    state, observer = await walk("12345", ScriptedChannel(["1", "2"]), when=HOLIDAY)
    assert observer.steps[0] == {"node": "hours", "result": "open"}


def _variant(old: str, new: str):
    """The shipped configuration with ``old`` replaced by ``new`` (it reads config/: call it in a thread)."""
    from gateway.ivr_flows.validate import config_from_files, read_files

    files = read_files(Path(__file__).resolve().parents[2] / "config")
    assert old in files["hotlines.yaml"], old
    files["hotlines.yaml"] = files["hotlines.yaml"].replace(old, new, 1)
    return config_from_files(files)


async def _walk_on(config, number, channel, when=WEEKDAY_OPEN):
    observer = RecordingObserver()
    state = CallState(uniqueid="u1", line=config.lines[number], caller="13800138000", dialled=number)
    await Interpreter(config, clock=lambda: when).run(state, channel, observer)
    return state, observer


async def test_given_a_hot_topic_broadcast_when_active_for_the_line_then_it_plays_before_the_menu():
    config = await asyncio.to_thread(
        _variant, "broadcasts: []", 'broadcasts:\n  - {id: outage, text: 今日全市停水，正在抢修。, '
        'start: "2027-03-01T00:00:00+08:00", end: "2027-03-05T00:00:00+08:00", lines: ["12345", "12319"]}')
    channel = ScriptedChannel(["1", "2"])
    _, observer = await _walk_on(config, "12345", channel)
    assert channel.played[3:6] == ["broadcast-outage", "main-emergency_key", "main-type_menu"]
    assert {"node": "hot_topics", "broadcasts": ["outage"]} in observer.steps
    channel = ScriptedChannel(["1", "2"])
    await _walk_on(config, "12315", channel)  # not one of its lines
    assert "broadcast-outage" not in channel.played
    channel = ScriptedChannel(["1", "2"])
    await _walk_on(config, "12345", channel, when=SUNDAY)  # after its end
    assert "broadcast-outage" not in channel.played


async def test_given_a_retired_line_when_its_announcement_is_switched_off_then_it_goes_straight_to_12345():
    config = await asyncio.to_thread(_variant, "    announce: true ", "    announce: false ")
    channel = ScriptedChannel(["1", "2"])
    state, _ = await _walk_on(config, "12319", channel)
    assert channel.played[0] == "main-greeting"
    assert "line-12319-announcement" not in channel.played


async def test_given_a_sub_centre_in_hours_when_transferred_then_it_overflows_to_central_after_its_time():
    channel = ScriptedChannel(["4", "2"])
    state, observer = await walk("12366", channel, when=WEEKDAY_OPEN)
    assert channel.transferred == "q-12366" and channel.overflow == ("q-complaint", 30)
    assert observer.steps[-1] == {"node": "to_queue", "queue": "q-12366", "overflow_queue": "q-complaint",
                                  "overflow_seconds": 30}


# -- type-ahead: keys pressed before the menu answer it ------------------------------------------
async def test_given_a_key_during_the_greeting_when_the_menu_comes_then_it_answers_it_without_playing_it():
    """A caller who knows the menu presses 4 during the greeting: no notice, no menu, straight on."""
    channel = ScriptedChannel(["1"], ahead={"main-greeting": "4"})
    state, observer = await walk("12345", channel)

    assert state.vars["category"] == "投诉" and channel.transferred == "q-complaint"
    assert channel.interrupted == ["main-greeting"]
    assert "main-type_menu" not in channel.played and "main-emergency_notice" not in channel.played
    steps = {s["node"]: s for s in observer.steps}
    assert steps["greeting"]["typeahead"] == "4" and steps["emergency_notice"]["skipped"] == "typeahead"
    assert steps["type_menu"] == {"node": "type_menu", "key": "4", "via": "typeahead", "label": "投诉",
                                  "result": "ok"}
    assert steps["confidential_menu"]["key"] == "1"  # the next menu is asked as usual


async def test_given_a_prompt_that_may_not_be_cut_when_a_key_is_pressed_then_it_plays_on_and_the_key_waits():
    from dataclasses import replace

    flow = CONFIG.flows["main"]
    notice = replace(flow.nodes["emergency_notice"], interruptible=False)
    config = replace(CONFIG, flows={**CONFIG.flows, "main": replace(flow, nodes={**flow.nodes,
                                                                               "emergency_notice": notice})})
    channel = ScriptedChannel(["2"], ahead={"main-emergency_notice": "4"})
    observer = RecordingObserver()
    state = CallState(uniqueid="u1", line=config.lines["12345"], caller="13800138000", dialled="12345")
    await Interpreter(config, clock=lambda: WEEKDAY_OPEN).run(state, channel, observer)

    assert channel.interrupted == [] and "main-emergency_notice" in channel.played
    assert "main-korean_hint" not in channel.played  # later interruptible prompts are skipped
    assert state.vars["category"] == "投诉" and "main-type_menu" not in channel.played


async def test_given_the_emergency_key_during_the_greeting_when_the_menu_comes_then_the_emergency_path():
    channel = ScriptedChannel([], ahead={"main-greeting": "0"})
    state, observer = await walk("12345", channel)
    assert any(s["node"] == "emergency_guard" and s["via"] == "key" for s in observer.steps)


def test_given_a_play_node_when_interruptible_is_not_a_boolean_then_a_line_numbered_problem():
    from gateway.errors import ConfigError
    from gateway.ivr_flows.validate import config_from_files, read_files

    root = Path(__file__).resolve().parents[2] / "config"
    files = read_files(root)
    files["flows/main.yaml"] = files["flows/main.yaml"].replace(
        "    prompt: emergency_notice\n", "    prompt: emergency_notice\n    interruptible: maybe\n", 1)
    with pytest.raises(ConfigError) as err:
        config_from_files(files)
    assert any("interruptible" in str(p) for p in err.value.problems)
