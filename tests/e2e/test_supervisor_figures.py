"""End to end, the call-centre figures (issue 14) on the real sandbox Asterisk.

Three callers on a fresh gateway: A reaches queue q-report (举报, agent 8003 only) and is answered
(the simulated agent talks as long as the Asterisk global GW_AGENT_TALK says, read when it answers:
here until the test hangs up); B reaches the same queue while 8003 talks to A and hangs up while
waiting (abandoned in the queue); C hangs up when the first menu starts (abandoned in the IVR, at
that menu's node). /api/supervisor/figures then shows one answered call within the service level,
one abandoned in the queue, one abandoned in the IVR at its node, the service level 1/2, agent
8003 talking (Asterisk's QueueStatus), and the board's "abandoned" card counts both kinds. The
supervisor board is checked in Debian's Chromium at 1366 and 768 px, by keyboard, with screenshots.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import pytest

from gateway_dev.eventually import aeventually, eventually
from gateway_dev.simcall import CallScript, place_call, sim_ami_client
from gateway_dev.system import ROOT
from tests.e2e.conftest import own_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ARTIFACTS = ROOT / "test-artifacts"
QUEUE_KEYS = "32"  # 举报 -> q-report (agent 8003 only), not confidential
ANSWERED, IN_QUEUE, IN_IVR = "sim-fig-answered", "sim-fig-queue", "sim-fig-ivr"


@pytest.fixture(scope="module")
def system():
    # no callback offer (a 1 h limit): B simply waits in the queue until it hangs up; the ticket
    # number is not read (tell_number=False: 12 s a call, before A talks and before B queues;
    # the reading is test_ticket_number.py's)
    with own_system("figures", tell_number=False,
                    extra_env={"GATEWAY_SPEECH": "false", "GATEWAY_CALLBACK_OVER_SECONDS": "3600"}) as sysm:
        yield sysm


async def _ami(system, action: dict) -> None:
    ami = sim_ami_client(system.settings)
    await ami.start()
    try:
        await ami.wait_connected(10)
        await ami.action(action)
    finally:
        await ami.close()


def _overview(system) -> dict:
    status, body = system.http("/api/supervisor/overview", token=system.token())
    assert status == 200, body
    return body


def _figures(system, query: str = "period=today") -> dict:
    status, body = system.http(f"/api/supervisor/figures?{query}", token=system.token())
    assert status == 200, body
    return body


@pytest.fixture(scope="module")
def three_calls(system):
    """A answered (still talking), B abandoned in the queue, C abandoned in the IVR."""
    async def scenario():
        await _ami(system, {"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "600"})
        answered = asyncio.create_task(place_call(system.settings, CallScript(
            number="12345", caller="13800000101", digits=QUEUE_KEYS, uniqueid=ANSWERED, timeout=240)))

        def talking():
            return any(c["uniqueid"] == ANSWERED for c in _overview(system).get("talking", []))

        await aeventually(lambda: asyncio.to_thread(talking), timeout=90, what="A talking to agent 8003")
        queued = asyncio.create_task(place_call(system.settings, CallScript(
            number="12345", caller="13800000102", digits=QUEUE_KEYS, uniqueid=IN_QUEUE, timeout=180)))
        in_ivr = asyncio.create_task(place_call(system.settings, CallScript(
            number="12345", caller="13800000103", hangup_at_menu=1, uniqueid=IN_IVR)))

        def waiting():
            queue = _overview(system).get("queues", {}).get("q-report", {})
            return any(c["uniqueid"] == IN_QUEUE for c in queue.get("calls", []))

        await aeventually(lambda: asyncio.to_thread(waiting), timeout=90, what="B waiting in q-report")
        await _ami(system, {"Action": "Hangup", "Channel": IN_QUEUE})  # B gives up while waiting
        results = {"queued": await queued, "in_ivr": await in_ivr}
        return answered, results

    # A's caller script must keep running (its AMI connection read) while the tests look: a loop
    # of its own in a thread; the test ends A's call at the end
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="figures-calls", daemon=True)
    thread.start()
    answered, results = asyncio.run_coroutine_threadsafe(scenario(), loop).result(timeout=240)
    try:
        yield results
    finally:
        async def finish():
            await _ami(system, {"Action": "Hangup", "Channel": ANSWERED})
            await answered

        try:
            asyncio.run_coroutine_threadsafe(finish(), loop).result(timeout=60)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


def test_given_answered_and_abandoned_calls_when_figures_are_read_then_each_is_counted_where_it_happened(
        system, three_calls):
    assert three_calls["queued"]["queue"] == "q-report" and three_calls["queued"]["agent"] is None
    status, call = system.http(f"/api/calls/{IN_IVR}", token=system.token())
    assert status == 200 and call["queue"] is None and call["menu_path"][-1]["node"] == "caller_hangup"
    node = call["menu_path"][-1]["at"]

    def counted():
        t = _figures(system)["totals"]
        return t["calls"] == 3 and t["abandoned_queue"] == 1 and t["abandoned_ivr"] == 1 and t["answered"] == 1

    eventually(counted, timeout=30, what="three calls counted in today's figures")
    figures = _figures(system)
    t = figures["totals"]
    assert (t["offered"], t["answered_in_sl"], t["service_level"], t["abandon_rate_queue"]) == (2, 1, 0.5, 0.5)
    assert t["ivr_abandon_nodes"] == [{"node": node, "calls": 1}] and node == "type_menu"
    assert t["asa_s"] is not None and t["asa_s"] <= 20
    queues = {q["queue"]: q for q in figures["per_queue"]}
    assert (queues["q-report"]["offered"], queues["q-report"]["answered"], queues["q-report"]["abandoned"]) == (2, 1, 1)
    lines = {x["line"]: x for x in figures["per_line"]}
    assert (lines["12345"]["calls"], lines["12345"]["abandoned_ivr"]) == (3, 1)
    agents = {a["agent"]: a for a in figures["agents"]["items"]}
    assert figures["agents"]["nodes_answered"] == 1
    assert agents["8003"]["state"] == "talking" and agents["8003"]["answered"] == 1
    assert agents["8001"]["state"] == "available"
    assert figures["pending"]["drafts"]["per_queue"] and figures["pending"]["drafts"]["total"] >= 2
    for number in ("13800000101", "13800000102", "13800000103"):
        assert number not in str(figures)  # no caller's number in the figures
    today = _overview(system)["today"]
    assert (today["abandoned"], today["abandoned_queue"], today["abandoned_ivr"]) == (2, 1, 1)
    trend = system.http("/api/supervisor/figures/trend?period=today", token=system.token())[1]
    assert len(trend["points"]) == 24 and sum(p["abandoned_ivr"] for p in trend["points"]) == 1
    status, bad = system.http("/api/supervisor/figures?period=fortnight", token=system.token())
    assert status == 400 and bad["error"] == "bad-figures-query" and bad["message_zh"]


def test_given_the_board_when_opened_in_chromium_then_figures_table_and_charts_at_1366_and_768(
        system, three_calls):
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Debian Chromium")
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            base = f"http://127.0.0.1:{system.http_port}"
            context = browser.new_context(base_url=base, locale="zh-CN", viewport={"width": 1366, "height": 768})
            context.add_cookies([{"name": "gw_session", "url": base,
                                  "value": system.login("fig-lead", "fig-lead-pw-12345", "supervisor")}])
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto("/supervisor")
            expect(page.locator("body")).to_have_attribute("data-figures-ready", "true", timeout=20_000)
            cards = page.locator("#figures-cards")
            expect(cards.locator('[data-key="service_level"] .n')).to_have_text("50.0%")
            expect(cards.locator('[data-key="abandoned_ivr"] .n')).to_have_text("1")
            expect(cards.locator('[data-key="abandoned_queue"] .n')).to_have_text("1")
            expect(page.locator('#figures-ivr tr[data-node="type_menu"]')).to_contain_text("1")
            expect(page.locator('#figures-agents tr[data-agent="8003"]')).to_contain_text("通话中")
            expect(page.locator("#today-abandoned")).to_have_text("2")
            expect(page.locator("#today-abandoned-split")).to_contain_text("语音导航 IVR 1")
            expect(page.locator("#figures-trend-chart svg")).to_be_visible()
            expect(page.locator("#figures-trend-chart")).to_contain_text("服务水平")  # the chart's Chinese legend
            for width, height in ((1366, 768), (768, 1024)):
                page.set_viewport_size({"width": width, "height": height})
                page.wait_for_function("document.querySelector('#figures-trend-chart svg').getBoundingClientRect()"
                                       f".width <= {width}")
                expect(page.locator("#figures-lines")).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / f"figures-supervisor-{width}.png"), full_page=True)
                overflow = page.evaluate("(() => { const s = document.querySelector('#figures-section');"
                                         " return s.scrollWidth - s.clientWidth; })()")
                assert overflow <= 0, f"the figures overflow their section by {overflow} px at {width} px"
            # by keyboard: a custom period without dates is refused with the error summary focused,
            # then the week is chosen and shown
            page.locator("#figures-kind").focus()
            page.keyboard.press("End")  # 自定义 custom: its start and end fields appear
            page.keyboard.press("Tab")
            focused = page.evaluate("document.activeElement.id")
            assert focused == "figures-start", focused
            page.locator("#figures-go").focus()
            page.keyboard.press("Enter")
            summary = page.locator("#figures-errors")
            expect(summary).to_be_focused()
            expect(summary).to_contain_text("开始")
            page.locator("#figures-kind").focus()
            page.keyboard.press("Home")
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowDown")  # 按周 week
            page.locator("#figures-go").focus()
            page.keyboard.press("Enter")
            expect(page.locator("#figures-period")).to_contain_text(re.compile("按周"))
            expect(page.locator("#figures-trend tbody tr")).to_have_count(7)
            expect(summary).to_be_empty()
            assert not errors, errors
        finally:
            browser.close()
