"""The desk's ticket number and its "向来电人播报工单号" button in a real browser (Debian's Chromium,
Playwright), at 1366x768 and 768 px wide, against the real system: a caller talks to agent 8002,
the agent's desk shows the number (4-3-4) and one click reads it into the live call (the
announcement's Local channel runs and ends, the caller is still with the agent; audited).
What the caller hears is checked with the recogniser in tests/e2e/test_ticket_number.py.
Screenshots: test-artifacts/ticketno-*.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.test_desk_browser import (AGENT_A, AGENT_ID, ARTIFACTS, Browser, _add_user, _call, _channel_status,
                                         _in_thread, _no_sideways_scroll, _open_item, _sim_action, _ticket,
                                         _ticket_of_call, expect, PASSWORD, POP_TIMEOUT)
from gateway_dev.eventually import aeventually
from gateway_dev.system import say_zh

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

VIEWPORTS = {"1366x768": {"width": 1366, "height": 768}, "768x1024": {"width": 768, "height": 1024}}


@pytest.fixture(scope="module")
def users(system) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    _add_user(system, AGENT_A, "agent", AGENT_ID)
    return system.login("tn-boss", PASSWORD, "supervisor")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return say_zh("我建议在小区门口增设一个公交站", tmp_path_factory.mktemp("tn-speech") / "s.wav")


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_given_a_live_call_when_the_agent_clicks_read_number_then_it_is_read_and_the_call_stays(
        system, chromium, users, speech, size):
    token = users
    expect.set_options(timeout=20_000)
    _sim_action(system, {"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "90"})  # the agent stays on
    a = Browser(chromium, system, AGENT_A)
    page = a.page
    call = None
    try:
        page.set_viewport_size(VIEWPORTS[size])
        a.login(AGENT_A, "/desk")
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        call = _call(system, speech)
        uid = call.script.uniqueid
        ticket_id = _ticket_of_call(system, token, uid)
        expect(_open_item(page, ticket_id)).to_be_visible(timeout=POP_TIMEOUT)
        _open_item(page, ticket_id).locator("button.pick").click()
        ticket = page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')
        expect(ticket).to_be_visible()
        number = _ticket(system, token, ticket_id)["ticket_no"]
        row = ticket.locator("dl.facts dd.ticket-no")
        expect(row.locator(".value")).to_have_text(f"{number[:4]} {number[4:7]} {number[7:]}")
        button = row.locator("button.announce-number")
        expect(button).to_be_enabled(timeout=60_000)  # the call is with the agent
        assert _channel_status(system, uid).get("Application") == "Queue"
        _no_sideways_scroll(page)
        button.focus()
        expect(button).to_be_focused()  # keyboard reachable
        a.screenshot(f"ticketno-{size}-1-before")
        page.keyboard.press("Enter")
        expect(row.locator(".announce-result.ok")).to_contain_text("已播报")
        a.screenshot(f"ticketno-{size}-2-read")

        status, audit = system.http(f"/api/tickets/{ticket_id}/audit", token=token)
        done = [e for e in audit["items"] if e["action"] == "ticket.number_announced"]
        assert len(done) == 1 and done[0]["actor"] == AGENT_A and done[0]["details"]["ticket_no"] == number

        def still_with_agent() -> dict | None:  # after the announcement, the caller is still in the queue call
            now = _channel_status(system, uid)
            return now if now.get("Application") == "Queue" else None

        assert _in_thread(lambda: aeventually(still_with_agent, timeout=10, what="the caller still connected"))
        _sim_action(system, {"Action": "Hangup", "Channel": uid})
        result = call.finish()
        assert result["agent"] and result["queue"] == "q-suggest", result
        # the call has ended: the button answers with a clear message
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        assert a.errors == [], a.errors
    finally:
        _sim_action(system, {"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "1"})
        if call is not None and call.is_alive():
            _sim_action(system, {"Action": "Hangup", "Channel": call.script.uniqueid})
        a.close()
