"""End to end, type-ahead (issue 10.2): a caller who knows the menu presses a key during the
greeting on a real call through the sandbox Asterisk; the key answers the type menu, the
prompts before it are cut short and the menu is not played."""

from __future__ import annotations

import asyncio

import pytest

from gateway_dev.simcall import CallScript, place_call

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_given_a_key_during_the_greeting_when_the_call_goes_on_then_it_answers_the_type_menu_at_once(system):
    result = asyncio.run(place_call(system.settings, CallScript(number="12345", caller="13700000042", early="4",
                                                                digits="1", timeout=300)))
    steps = {s["node"]: s for s in result["menu_path"]}
    assert steps["greeting"].get("typeahead") == "4", result["path"]
    assert steps["type_menu"]["key"] == "4" and steps["type_menu"]["via"] == "typeahead"
    assert steps["emergency_notice"].get("skipped") == "typeahead"
    assert steps["confidential_menu"]["key"] == "1"  # the next menu is asked and answered as usual
    assert "main-type_menu" not in result["heard"] and "main-emergency_notice" not in result["heard"]
    status, ticket = system.http(f"/api/tickets/{result['ticket_id']}", token=system.token())
    assert ticket["category"] == "投诉" and ticket["confidential"] is True and ticket["queue"] == "q-complaint"
