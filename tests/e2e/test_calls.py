"""End to end: real Asterisk (sandbox), real FastAGI gateway, real SQLite.

Calls are placed by the simulated caller (AMI Originate of a Local channel,
keys as DTMF through the call, speech played into the call).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gateway.ivr_flows.calendar import is_open
from gateway.ivr_flows.validate import load_config
from gateway_dev.simcall import CallScript, place_calls
from gateway_dev.system import say_zh

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CATEGORY_BY_KEY = {"1": "咨询", "2": "建议", "3": "举报", "4": "投诉", "5": "求助"}


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "caller.wav"
    return say_zh("小区门口的垃圾三天没有人清运", path)


async def _calls(system, scripts: list[CallScript]) -> list[dict]:
    return await place_calls(system.settings, scripts)


def _ticket(system, ticket_id: int) -> dict:
    status, body = system.http(f"/api/tickets/{ticket_id}", token=system.token())
    assert status == 200, body
    return body


def test_given_the_cli_when_a_caller_chooses_complaint_then_a_draft_ticket_holds_type_number_and_path(system, speech):
    proc = system.cli("call", "12345", "--from", "13800138000", "--digits", "41", "--say", str(speech), "--json")
    result = json.loads(proc.stdout)

    assert result["ticket_id"] is not None
    assert result["hangup_cause"] == 16
    assert "type_menu:4" in result["path"] and "confidential_menu:1" in result["path"]
    ticket = _ticket(system, result["ticket_id"])
    assert ticket["status"] == "draft"
    assert ticket["category"] == "投诉"
    assert ticket["caller_number"] == "13800138000"
    assert ticket["dialled_number"] == "12345"
    assert ticket["confidential"] is True
    assert ticket["queue"] == "q-complaint"
    assert [step["node"] for step in ticket["menu_path"]][:6] == [
        "hours", "greeting", "emergency_notice", "korean_hint", "hot_topics", "type_menu"]
    assert ticket["language"] == "zh"
    # live (the Mandarin recogniser was up) or pending (still loading: the recording waits for it)
    assert ticket["transcript_status"] in ("done", "pending")
    assert ticket["transcript"] if ticket["transcript_status"] == "done" else ticket["recording_path"]
    recording = Path(ticket["recording_path"])
    assert recording.is_file() and recording.stat().st_size > 8000  # the caller's speech was recorded
    assert ticket["recording_duration_ms"] > 1000
    status, call = system.http(f"/api/calls/{result['uniqueid']}", token=system.token())
    assert call["status"] == "ended" and call["hangup_cause"] == 16 and call["agent"]


def test_given_each_example_line_when_called_then_it_follows_its_merge_mode(system):
    config = load_config(system.config_dir)
    numbers = [n for n, line in config.lines.items() if line.mode != "primary"]
    now = datetime.now(timezone.utc)
    results = asyncio.run(_calls(system, [CallScript(number=n, caller="13900000000", digits="32") for n in numbers]))

    for number, result in zip(numbers, results):
        line = config.lines[number]
        assert result["ticket_id"] is not None, (number, result)
        ticket = _ticket(system, result["ticket_id"])
        assert ticket["line_number"] == number and ticket["merge_mode"] == line.mode
        assert ticket["department"] == line.department
        assert ticket["category"] == "举报" and ticket["confidential"] is False
        if line.mode == "retired":
            assert result["heard"][0] == f"line-{number}-announcement"
            assert result["heard"][1] == "main-greeting"  # then the 12345 flow itself
            assert ticket["queue"] == "q-report" and ticket["handled_by"] is None
        elif line.mode == "dual_number":
            assert result["heard"][0] == f"line-{number}-greeting"
            assert ticket["queue"] == line.queue and ticket["handled_by"] is None
        elif line.mode == "sub_centre":
            if is_open(config.schedules[line.hours], now):
                assert result["heard"][0] == f"line-{number}-greeting"
                assert ticket["queue"] == line.queue and ticket["handled_by"] == line.handled_by
            else:  # after hours: overflows to 12345 central, which records the call
                assert result["heard"][0] == "main-closed_to_central"
                assert ticket["queue"] == "q-report" and ticket["handled_by"] is None
        status, call = system.http(f"/api/calls/{result['uniqueid']}", token=system.token())
        assert call["dialled_number"] == number and call["status"] == "ended"


def test_given_a_caller_when_they_hang_up_in_the_menu_then_a_call_record_remains_and_no_ticket(system):
    (result,) = asyncio.run(_calls(system, [CallScript(number="12345", hangup_at_menu=1)]))

    assert result["ticket_id"] is None
    status, call = system.http(f"/api/calls/{result['uniqueid']}", token=system.token())
    assert status == 200
    assert call["ticket_id"] is None
    assert call["status"] == "ended" and call["hangup_cause"] is not None
    assert call["menu_path"][-1]["node"] == "caller_hangup"


def test_given_30_callers_at_once_when_they_choose_different_menus_then_every_call_gets_the_right_ticket(system):
    digits = ["12", "21", "31", "42", "52", "62", "8", "41", "11", "22"] * 3
    scripts = [CallScript(number="12345", caller=f"1390000{i:04d}", digits=d, timeout=400) for i, d in enumerate(digits)]
    results = asyncio.run(_calls(system, scripts))

    assert len({r["uniqueid"] for r in results}) == 30
    for script, result in zip(scripts, results):
        assert result["hangup_cause"] is not None, result
        assert result["ticket_id"] is not None, result
        ticket = _ticket(system, result["ticket_id"])
        assert ticket["caller_number"] == script.caller
        key = script.digits[0]
        if key in CATEGORY_BY_KEY:
            assert ticket["category"] == CATEGORY_BY_KEY[key]
            assert ticket["confidential"] is (script.digits[1] == "1")
        elif key == "6":
            assert ticket["channel_kind"] == "enterprise" and ticket["queue"] == "q-enterprise"
        else:  # an invalid key three times: straight to an agent, no recording
            assert ticket["queue"] == "q-general" and ticket["recording_path"] is None
            assert [s.get("result") for s in ticket["menu_path"] if s["node"] == "type_menu"][:1] == ["invalid"]


def test_given_the_gateway_is_down_when_a_call_arrives_then_it_still_reaches_an_agent(system):
    system.stop_gateway()
    try:
        (result,) = asyncio.run(_calls(system, [CallScript(number="12345", digits="4")]))
    finally:
        system.start_gateway()

    assert result["queue"] == "q-general" and result["agent"]  # Asterisk's fail-safe, not a dropped call
    assert result["hangup_cause"] == 16 and result["heard"] == []
