"""The admin page in a real browser (Debian's Chromium driven by Playwright) against the real system.

Logs in through /login, reads the lines, changes a greeting, dry-runs a call, is refused an
invalid change with every problem shown, and rolls back; the API is checked after each step.
Screenshots go to ``test-artifacts/admin-*.png``. Needs ``/usr/bin/chromium`` (Debian package
``chromium``), ``fonts-wqy-microhei`` for the Chinese text, and the ``playwright`` Python package;
no browser is downloaded.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request

import pytest

from gateway_dev.system import GATEWAY, ROOT, System
from tests.e2e.conftest import running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]  # the first test also starts the System


@pytest.fixture(scope="module")
def system():
    """A System of its own: this file expects the shipped lines as they are (12315 双号并行 ...), and a
    file before it on the shared System may leave the live configuration changed."""
    sysm = System(prefix="gw-e2e-adminui-", log_level="INFO", test_clock=True, tell_number=False)
    with running(sysm, logs=lambda s: [(s.log_path, "e2e-adminui-gateway.log")]):
        yield sysm

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
expect = playwright_api.expect

ARTIFACTS = ROOT / "test-artifacts"
USER, PASSWORD = "admin-ui", "browser test password 12345"

MODES = {  # the shipped config/hotlines.yaml
    "12345": ("主号", "primary"),
    "12319": ("整体并入", "retired"),
    "12358": ("整体并入", "retired"),
    "12315": ("双号并行", "dual_number"),
    "12369": ("双号并行", "dual_number"),
    "12366": ("设分中心", "sub_centre"),
    "12360": ("设分中心", "sub_centre"),
}
NEW_GREETING = "您好，这里是12369环保举报热线（浏览器测试），由12345统一受理。"
COMMENT = "浏览器测试：更新12369问候语 UI test greeting"


def _add_admin(system) -> None:
    """``gateway user add admin-ui --role admin --password-stdin`` (the password on stdin)."""
    proc = subprocess.run(GATEWAY + ["user", "add", USER, "--role", "admin", "--password-stdin"], env=system.env,
                          cwd=ROOT, input=PASSWORD + "\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 or "exists already" in proc.stderr, proc.stderr[-2000:]


def _bearer(system) -> str:
    """A second session for the API checks and the clean-up, independent of the browser."""
    req = urllib.request.Request(f"http://127.0.0.1:{system.http_port}/api/login", method="POST",
                                 data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
        cookie = resp.headers.get("Set-Cookie", "")
    return cookie.split("gw_session=", 1)[1].split(";", 1)[0]


def _versions(system, token) -> list[dict]:
    status, body = system.http("/api/admin/versions", token=token)
    assert status == 200, body
    return body["items"]


def _live(system, token) -> dict:
    status, body = system.http("/api/admin/overview", token=token)
    assert status == 200, body
    return body


def test_given_an_admin_in_the_browser_when_changing_dry_running_and_rolling_back_then_the_page_and_api_agree(
        system, chromium):
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("admin-*.png"):
        old.unlink()
    _add_admin(system)
    token = _bearer(system)
    base = _versions(system, token)
    base_live = _live(system, token)
    base_id, base_count = base_live["version"], len(base)  # the live version (the newest applied one)
    base_hash = next(v["content_hash"] for v in base if v["id"] == base_id)
    expect.set_options(timeout=20_000)
    url = f"http://127.0.0.1:{system.http_port}"
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=url, locale="zh-CN",
                                   timezone_id="Asia/Shanghai")
    page = context.new_page()
    errors: list[str] = []

    def screenshot(name: str) -> None:  # from the top, so the sticky header and status sit where they belong
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)

    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        # -- log in: /admin without a session goes to the login page, and back after it --------
        page.goto("/admin")
        expect(page).to_have_url(re.compile(r"/login\?next=/admin$"))
        page.fill("#username", USER)
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name=re.compile("登录")).click()
        expect(page).to_have_url(re.compile(r"/admin$"))
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.locator("#who")).to_contain_text(USER)
        expect(page.locator("#who")).to_contain_text("admin")
        expect(page.get_by_role("heading", level=1)).to_contain_text("12345 热线归并管理")

        # -- the lines with their modes ----------------------------------------------------------------
        rows = page.locator("#lines tbody tr")
        expect(rows).to_have_count(len(MODES))
        for number, (chinese, code) in MODES.items():
            row = page.locator(f'#lines tbody tr[data-number="{number}"]')
            expect(row.locator("td.mode")).to_contain_text(chinese)
            expect(row.locator("td.mode")).to_contain_text(code)
        expect(page.locator('#lines tr[data-number="12366"]')).to_contain_text("国家税务总局北京市税务局")
        expect(page.locator('#lines tr[data-number="12366"]')).to_contain_text("q-12366")
        history = page.locator("#versions tbody tr")
        expect(history).to_have_count(base_count)
        screenshot("1-after-login")

        # -- change 12369's greeting with a comment ---------------------------------------------------
        form = page.locator("#change-form")
        form.locator("#c-number").select_option("12369")
        expect(form.locator("#c-queue")).to_have_value("q-12369")  # prefilled from the live line
        form.locator("#c-greeting").fill(NEW_GREETING)
        form.locator("#c-comment").fill(COMMENT)
        form.locator("#c-submit").click()
        status = page.get_by_role("status")
        _applied(page)  # a new prompt text may be rendered first
        expect(status).to_have_class(re.compile(r"\bok\b"))
        expect(history).to_have_count(base_count + 1)
        changed = _versions(system, token)
        new_id = changed[0]["id"]
        top = history.first
        expect(top).to_have_attribute("data-version", str(new_id))
        expect(top).to_contain_text(COMMENT)
        expect(top).to_contain_text(USER)
        expect(top).to_contain_text("当前")
        top.locator("details summary").click()
        diff = top.locator("details pre")
        expect(diff).to_be_visible()
        expect(diff).to_contain_text(re.compile(rf'^\+\s+greeting: "?{re.escape(NEW_GREETING)}"?$', re.M))
        expect(diff).to_contain_text(re.compile(r'^-\s+greeting: "?您好，12369环保举报热线。"?$', re.M))
        expect(form.locator("#c-greeting")).to_have_value(NEW_GREETING)  # reloaded from the new live version
        screenshot("2-after-change")

        assert len(changed) == base_count + 1
        assert changed[0]["comment"] == COMMENT and changed[0]["created_by"] == USER
        assert changed[0]["status"] == "applied" and changed[0]["change"] == {
            "op": "update_line", "number": "12369", "fields": {"greeting": NEW_GREETING}}
        assert NEW_GREETING in changed[0]["diff"]
        lines = {ln["number"]: ln for ln in _live(system, token)["lines"]}
        assert lines["12369"]["greeting"] == NEW_GREETING and lines["12369"]["mode"] == "dual_number"

        # -- dry run: 12366 on a make-up working day (调休) at night: closed, 12345 central takes it ----
        dry = page.locator("#dry-form")
        dry.locator("#d-number").fill("12366")
        dry.locator("#d-at").fill("2027-02-20T23:00")
        dry.locator("#d-digits").fill("12")
        dry.locator("#d-submit").click()
        result = page.locator("#dry-result")
        expect(result.locator("#dry-open")).to_contain_text("非服务时间 closed")
        expect(result.locator("#dry-destination")).to_contain_text(re.compile(r"队列 queue q-[a-z0-9-]+"))
        expect(result.locator("#dry-destination")).to_contain_text("q-consult")
        expect(result.locator("#dry-path")).to_contain_text("hours(closed)>closed_central")
        heard = result.locator("#dry-heard li")
        expect(heard.first).to_contain_text("分中心现在不在服务时间，现在为您转接12345市民服务热线。")
        expect(heard.first).to_contain_text("main-closed_to_central")
        expect(result).to_contain_text("纳税缴费服务热线")
        screenshot("3-after-dry-run")

        # -- an invalid change: refused with every problem next to the form, nothing changes ------------
        form.locator("#c-number").select_option("12315")
        form.locator("#c-queue").fill("q-nowhere")
        form.locator("#c-comment").fill("浏览器测试：不存在的队列 must be refused")
        form.locator("#c-submit").click()
        problems = form.locator(".problems")
        expect(problems).to_contain_text("nothing was changed")
        expect(problems.locator("li")).to_have_count(1)
        expect(problems.locator("li").first).to_contain_text("queue")
        expect(problems.locator("li").first).to_contain_text("unknown queue")
        expect(problems.locator("li").first).to_contain_text("q-nowhere")
        expect(form.locator("#c-queue")).to_have_attribute("aria-invalid", "true")
        expect(status).to_have_class(re.compile(r"\berror\b"))
        expect(status).to_contain_text("422")
        expect(form.locator("#c-queue")).to_have_value("q-nowhere")  # the admin's input is kept
        expect(history).to_have_count(base_count + 1)
        screenshot("4-refused")
        assert len(_versions(system, token)) == base_count + 1
        assert {ln["number"]: ln for ln in _live(system, token)["lines"]}["12315"]["queue"] == "q-12315"

        # -- roll back to the version before the change ---------------------------------------------
        page.locator(f'#versions tr[data-version="{base_id}"] button[data-action="rollback"]').click()
        dialog = page.locator("dialog#ask")
        expect(dialog).to_be_visible()
        dialog.locator("#ask-comment").fill("浏览器测试结束，回滚 UI test clean-up")
        dialog.locator("#ask-ok").click()
        expect(dialog).to_be_hidden()
        _applied(page)  # a new prompt text may be rendered first
        expect(history).to_have_count(base_count + 2)
        expect(history.first).to_contain_text(f"rollback to v{base_id}")
        expect(history.first).to_contain_text("当前")
        expect(page.locator(f'#versions tr[data-version="{new_id}"] button[data-action="rollback"]')).to_be_visible()
        # the version that runs again (same content as the live one) offers no roll back
        expect(page.locator(f'#versions tr[data-version="{base_id}"] button[data-action="rollback"]')).to_have_count(0)
        expect(form.locator("#c-comment")).to_have_value("")
        form.locator("#c-number").select_option("12369")
        expect(form.locator("#c-greeting")).to_have_value("您好，12369环保举报热线。")
        screenshot("5-after-rollback")

        # -- the API through the browser's own session (cookie; a GET needs no CSRF token) ---------------
        answer = page.request.get("/api/admin/versions")
        assert answer.ok, answer.text()
        items = answer.json()["items"]
        assert len(items) == base_count + 2
        assert items[0]["change"] == {"op": "rollback", "to": base_id} and items[0]["created_by"] == USER
        assert items[0]["content_hash"] == base_hash
        assert items[1]["comment"] == COMMENT
        assert page.request.get("/api/admin/overview").json()["content_hash"] == base_live["content_hash"]
        me = page.request.get("/api/me").json()
        assert me["user"]["username"] == USER
        # an unsafe request with the cookie but without the CSRF token is refused
        forged = page.request.patch("/api/admin/lines/12369", data={"fields": {"greeting": "x"}, "comment": "x"})
        assert forged.status == 403, forged.text()

        # -- log out ------------------------------------------------------------------------------------
        page.locator("#logout").click()
        expect(page).to_have_url(re.compile(r"/login"))
        assert page.request.get("/api/me").status == 401
        assert errors == [], errors
    finally:
        context.close()
        if _live(system, token)["content_hash"] != base_live["content_hash"]:  # a failure above: put it back
            system.http(f"/api/admin/versions/{base_id}/rollback", method="POST", token=token,
                        body={"comment": "browser test clean-up"})


def _login(chromium, system):
    context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                   base_url=f"http://127.0.0.1:{system.http_port}", locale="zh-CN",
                                   timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.goto("/login?next=/admin")
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name=re.compile("登录")).click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return context, page


def test_given_an_admin_in_the_browser_when_creating_broadcasting_scheduling_and_cancelling_then_each_shows(
        system, chromium):
    _add_admin(system)
    token = _bearer(system)
    base = _versions(system, token)
    base_hash = _live(system, token)["content_hash"]
    expect.set_options(timeout=20_000)
    context, page = _login(chromium, system)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    status, history = page.get_by_role("status"), page.locator("#versions tbody tr")
    try:
        # a new retired line (整体并入) through the create form
        create = page.locator("#create-form")
        create.locator("#n-number").fill("12388")
        create.locator("#n-name").fill("测试热线")
        create.locator("#n-mode").select_option("retired")
        expect(create.locator("#n-queue")).to_be_hidden()  # a retired line has no queue of its own
        create.locator("#n-department").fill("测试局")
        create.locator("#n-comment").fill("浏览器测试：新建热线")
        create.locator("#n-submit").click()
        _applied(page)  # a new prompt text may be rendered first
        row = page.locator('#lines tr[data-number="12388"]')
        expect(row).to_contain_text("整体并入")
        expect(row).to_contain_text("测试局")

        # a broadcast on that line
        form = page.locator("#broadcast-form")
        form.locator("#b-id").fill("ui-test-outage")
        form.locator("#b-text").fill("<b>测试</b>播报：今晚停水。")  # shown as text, never as markup
        form.locator("#b-start").fill("2027-03-01T08:00")
        form.locator("#b-end").fill("2027-03-02T08:00")
        form.locator('#b-lines input[value="all"]').uncheck()
        form.locator('#b-lines input[value="12388"]').check()
        form.locator("#b-comment").fill("浏览器测试：播报")
        form.locator("#b-submit").click()
        item = page.locator('#broadcast-list li[data-broadcast="ui-test-outage"]')
        expect(item).to_contain_text("<b>测试</b>播报：今晚停水。")
        expect(item).to_contain_text("[12388]")
        expect(item.locator("b")).to_have_count(1)  # only the id is bold
        live = _live(system, token)
        assert live["broadcasts"] == [{"id": "ui-test-outage", "text": "<b>测试</b>播报：今晚停水。",
                                       "start": "2027-03-01T08:00:00+08:00", "end": "2027-03-02T08:00:00+08:00",
                                       "lines": ["12388"]}]

        # retire 12315 from 2099 on: scheduled, then cancelled from the history
        page.locator("#c-number").select_option("12315")
        page.locator("#retire").click()
        dialog = page.locator("dialog#ask")
        dialog.locator("#ask-comment").fill("浏览器测试：计划撤号")
        dialog.locator("#ask-when").fill("2099-01-01T00:00")
        dialog.locator("#ask-ok").click()
        expect(status).to_contain_text("已计划")
        top = history.first
        expect(top).to_have_attribute("data-status", "scheduled")
        expect(top).to_contain_text("2099-01-01 00:00:00")
        expect(page.locator('#lines tr[data-number="12315"]')).to_contain_text("双号并行")  # not yet
        top.locator('button[data-action="cancel"]').click()
        dialog.locator("#ask-comment").fill("浏览器测试：取消")
        dialog.locator("#ask-ok").click()
        expect(top).to_have_attribute("data-status", "cancelled")
        expect(top.locator('button[data-action="cancel"]')).to_have_count(0)
        items = _versions(system, token)
        assert items[0]["status"] == "cancelled" and items[0]["change"]["op"] == "retire_line"
        assert len(items) == len(base) + 3
        assert errors == [], errors
    finally:
        context.close()
        if _live(system, token)["content_hash"] != base_hash:
            status_code, body = system.http(f"/api/admin/versions/{base[0]['id']}/rollback", method="POST",
                                            token=token, body={"comment": "browser test clean-up"})
            assert status_code == 201, body
    assert _live(system, token)["content_hash"] == base_hash


def test_chinese_font_is_installed():
    """The screenshots must show Chinese, not boxes: WenQuanYi Micro Hei from fonts-wqy-microhei."""
    if shutil.which("fc-list") is None:
        pytest.skip("no fontconfig")
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, timeout=30).stdout
    assert "WenQuanYi Micro Hei" in fonts or "Noto Sans CJK" in fonts, "apt-get install fonts-wqy-microhei"


# -- issue 11: narrow windows, the retired-line notice, stale dry runs, every problem at once ----------
VIEWPORTS = {"1366": {"width": 1366, "height": 768}, "768": {"width": 768, "height": 1024}}


def _login_at(chromium, system, viewport):
    context = chromium.new_context(viewport=viewport, base_url=f"http://127.0.0.1:{system.http_port}",
                                   locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.goto("/login?next=/admin")
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name=re.compile("登录")).click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return context, page


def _admin_at(system, chromium, viewport):
    """The admin logged in at /admin in a window of ``viewport``; the page's script errors collected."""
    _add_admin(system)
    expect.set_options(timeout=20_000)
    context, page = _login_at(chromium, system, viewport)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, errors


def _applied(page) -> None:
    """The status line says the change runs (a new prompt text is rendered first: allow for a slow voice)."""
    expect(page.get_by_role("status")).to_contain_text("已生效", timeout=180_000)


def _no_sideways_scroll(page) -> None:
    widths = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"


def _shot(page, name: str) -> None:
    """The window as the admin sees it, scrolled to ``name``'s section (not a whole-page strip)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"))


def _tab_order(page, form_selector: str) -> tuple[list[str], list[str]]:
    """(the ids Tab visits from the form's first control, the form's visible enabled controls in order)."""
    wanted = page.evaluate("""(sel) => Array.from(document.querySelector(sel).querySelectorAll(
        'input, select, textarea, button, a[href]')).filter((x) => !x.disabled && x.offsetParent !== null
        && x.tabIndex >= 0).map((x) => x.id || x.name + '=' + x.value)""", form_selector)
    page.locator(f"{form_selector} :is(input, select, textarea, button)").first.focus()
    seen = []
    for _ in range(len(wanted) * 8):  # a date-time input takes several Tabs (its parts)
        here = page.evaluate("(() => { const a = document.activeElement; return a.id || a.name + '=' + a.value; })()")
        if not seen or seen[-1] != here:
            seen.append(here)
        if len(seen) > len(wanted) or not page.evaluate(
                f"document.querySelector({json.dumps(form_selector)}).contains(document.activeElement)"):
            break
        page.keyboard.press("Tab")
    return [x for x in seen if x in wanted], wanted


@pytest.mark.parametrize("size", ["1366", "768"])
def test_given_a_1366_or_768_window_when_the_admin_works_then_no_sideways_scroll_and_the_diff_link_reads_in_a_line(
        system, chromium, size):
    context, page, errors = _admin_at(system, chromium, VIEWPORTS[size])
    token = _bearer(system)
    base_id = _live(system, token)["version"]
    try:
        _no_sideways_scroll(page)
        _shot(page, f"{size}-1-top")
        form = page.locator("#change-form")
        form.locator("#c-number").select_option("12369")
        form.locator("#c-greeting").fill(f"您好，12369环保举报热线（{size}窗口测试）。")
        form.locator("#c-comment").fill(f"浏览器测试：{size} 窗口")
        form.locator("#c-submit").click()
        _applied(page)
        _no_sideways_scroll(page)
        page.locator("#change-section").scroll_into_view_if_needed()
        _shot(page, f"{size}-2-change-form")
        summary = page.locator("#versions tbody tr").first.locator("details summary")
        summary.scroll_into_view_if_needed()
        box = summary.bounding_box()
        line_height = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#versions summary')).lineHeight)")
        assert box["width"] > 150 and box["height"] < 2.5 * line_height, box  # not one letter per line
        summary.click()
        expect(page.locator("#versions tbody tr").first.locator("details pre")).to_be_visible()
        _no_sideways_scroll(page)
        _shot(page, f"{size}-3-history")
        page.locator("#lines").scroll_into_view_if_needed()
        _shot(page, f"{size}-4-lines")
        page.locator("#prompts").scroll_into_view_if_needed()
        _shot(page, f"{size}-5-prompts")
        for table in ("#lines", "#versions", "#prompts"):  # the tables fit their cards: nothing hidden sideways
            fits = page.evaluate("(sel) => { const t = document.querySelector(sel); return [t.scrollWidth, t.clientWidth]; }",
                                 table)
            assert fits[0] <= fits[1] + 1, (table, fits)
        assert errors == [], errors
    finally:
        context.close()
        status_code, body = system.http(f"/api/admin/versions/{base_id}/rollback", method="POST", token=token,
                                        body={"comment": "browser test clean-up"})
        assert status_code in (201, 409), body


def test_given_a_line_retired_through_the_mode_list_then_the_notice_stays_on_and_the_admin_hears_it_first(
        system, chromium):
    context, page, errors = _admin_at(system, chromium, VIEWPORTS["1366"])
    token = _bearer(system)
    base_id = _live(system, token)["version"]
    default_notice = "您拨打的1 2 3 1 5已并入12345市民服务热线，现在为您转接。"
    try:
        form = page.locator("#change-form")
        form.locator("#c-number").select_option("12315")
        hear = form.locator("#c-hear")
        expect(hear).to_be_hidden()  # a dual-number line has no notice
        form.locator("#c-mode").select_option("retired")
        expect(form.locator("#c-announce")).to_be_checked()  # on unless the admin turns it off
        expect(hear).to_be_visible()
        expect(hear.locator(".says")).to_have_text(default_notice)
        form.locator("#c-hear-play").click()  # rendered now, in the voice callers will hear
        audio = hear.locator("audio")
        expect(audio).to_have_attribute("src", re.compile(r"^/api/admin/prompts/preview/[0-9a-f]{20}\.wav$"),
                                        timeout=120_000)
        wav = page.request.get(audio.get_attribute("src"))
        assert wav.ok and wav.headers["content-type"] == "audio/wav" and wav.body()[:4] == b"RIFF"
        page.locator("#change-section").scroll_into_view_if_needed()
        _shot(page, "retire-1-hear-before-applying")

        # switching it off shows that callers hear nothing; on again before applying
        form.locator("#c-announce").uncheck()
        expect(hear).to_have_class(re.compile(r"\boff\b"))
        expect(hear).to_contain_text("已关闭")
        form.locator("#c-announce").check()
        expect(hear).not_to_have_class(re.compile(r"\boff\b"))

        # the dry run of the change plays the notice first
        page.locator("#d-digits").fill("")
        form.locator("#c-dry").click()
        expect(page.locator("#dry-heard li").first).to_contain_text(default_notice)
        form.locator("#c-comment").fill("浏览器测试：经归并方式列表整体并入")
        form.locator("#c-submit").click()
        _applied(page)
        line = {ln["number"]: ln for ln in _live(system, token)["lines"]}["12315"]
        assert line["mode"] == "retired" and line["announce"] is True, line
        change = _versions(system, token)[0]["change"]
        assert change == {"op": "update_line", "number": "12315", "fields": {"mode": "retired"}}, change
        expect(page.locator('#lines tr[data-number="12315"] td.mode')).to_contain_text("播放并入提示 announce")
        expect(form.locator("#c-announce")).to_be_checked()

        # the Retire button's dialog shows the same, and follows the admin's own text
        form.locator("#c-number").select_option("12369")
        page.locator("#retire").click()
        dialog = page.locator("dialog#ask")
        expect(dialog.locator("#ask-hear .says")).to_have_text("您拨打的1 2 3 6 9已并入12345市民服务热线，现在为您转接。")
        dialog.locator("#ask-announcement").fill("环保热线已并入12345。")
        expect(dialog.locator("#ask-hear .says")).to_have_text("环保热线已并入12345。")
        _shot(page, "retire-2-dialog")
        dialog.get_by_role("button", name=re.compile("取消")).click()
        expect(dialog).to_be_hidden()
        assert errors == [], errors
    finally:
        context.close()
        system.http(f"/api/admin/versions/{base_id}/rollback", method="POST", token=token,
                    body={"comment": "browser test clean-up"})


def test_given_a_dry_run_on_screen_when_the_live_version_changes_then_it_is_computed_again_or_cleared(
        system, chromium):
    context, page, errors = _admin_at(system, chromium, VIEWPORTS["1366"])
    token = _bearer(system)
    base_id = _live(system, token)["version"]
    result = page.locator("#dry-result")
    try:
        # a plain dry run names the version it was computed against
        page.locator("#d-number").fill("12369")
        page.locator("#d-digits").fill("1")
        page.locator("#d-submit").click()
        expect(result).to_have_attribute("data-version", str(base_id))
        expect(result.locator("#dry-basis")).to_contain_text(f"v{base_id}")
        expect(result.locator("#dry-heard li").first).to_contain_text("您好，12369环保举报热线。")

        # a change: the same dry run is computed again on the new live version
        form = page.locator("#change-form")
        form.locator("#c-number").select_option("12369")
        greeting = "您好，12369环保举报热线（试运行测试）。"
        form.locator("#c-greeting").fill(greeting)
        form.locator("#c-comment").fill("浏览器测试：试运行随版本更新")
        form.locator("#c-submit").click()
        _applied(page)
        new_id = _live(system, token)["version"]
        assert new_id != base_id
        expect(result).to_have_attribute("data-version", str(new_id))
        expect(result.locator("#dry-basis")).to_contain_text(f"v{new_id}")
        expect(result.locator("#dry-heard li").first).to_contain_text(greeting)
        expect(result.locator("#dry-digits")).to_have_text("1")

        # "dry-run it" takes the digits the admin typed and says it is a proposed change
        page.locator("#d-digits").fill("2")
        form.locator("#c-greeting").fill("您好，这是尚未提交的问候语。")
        form.locator("#c-dry").click()
        expect(result).to_have_attribute("data-kind", "change")
        expect(result.locator("#dry-digits")).to_have_text("2")
        expect(result.locator("#dry-basis")).to_contain_text("proposed change")
        expect(result.locator("#dry-heard li").first).to_contain_text("您好，这是尚未提交的问候语。")
        _shot(page, "dry-1-proposed")

        # a rollback: the result of the proposed change is cleared, not left as if still true
        page.locator(f'#versions tr[data-version="{base_id}"] button[data-action="rollback"]').click()
        page.locator("#ask-comment").fill("浏览器测试：回滚")
        page.locator("#ask-ok").click()
        _applied(page)
        expect(result).to_have_attribute("data-kind", "cleared")
        expect(result.locator("#dry-cleared")).to_contain_text("run it again")
        expect(result.locator("#dry-heard")).to_have_count(0)
        page.locator("#dry-section").scroll_into_view_if_needed()
        _shot(page, "dry-2-cleared-after-rollback")
        assert errors == [], errors
    finally:
        context.close()
        if _live(system, token)["version"] not in (base_id,):
            system.http(f"/api/admin/versions/{base_id}/rollback", method="POST", token=token,
                        body={"comment": "browser test clean-up"})


def test_given_several_invalid_fields_when_submitted_then_every_problem_is_shown_marked_and_the_first_focused(
        system, chromium):
    context, page, errors = _admin_at(system, chromium, VIEWPORTS["768"])
    token = _bearer(system)
    before = len(_versions(system, token))
    try:
        form = page.locator("#change-form")
        problems = form.locator(".problems")
        # the page's own check: no comment
        form.locator("#c-number").select_option("12366")
        form.locator("#c-submit").click()
        expect(form.locator("#c-comment")).to_be_focused()
        expect(form.locator("#c-comment")).to_have_attribute("aria-invalid", "true")
        expect(problems).to_contain_text("请填写原因")

        # today's server: three bad fields of a sub-centre, every one reported at once
        form.locator("#c-queue").fill("q-nowhere")
        form.locator("#c-hours").fill("nights")
        form.locator("#c-overflow").fill("3")
        form.locator("#c-comment").fill("浏览器测试：三处错误 must be refused")
        form.locator("#c-submit").click()
        expect(problems.locator("li")).to_have_count(3)
        for field in ("#c-queue", "#c-hours", "#c-overflow"):
            expect(form.locator(field)).to_have_attribute("aria-invalid", "true")
        expect(form.locator("#c-comment")).not_to_have_attribute("aria-invalid", "true")
        expect(form.locator("#c-queue")).to_be_focused()  # the first invalid field in reading order
        expect(problems).to_contain_text("unknown queue")
        _no_sideways_scroll(page)
        problems.scroll_into_view_if_needed()
        _shot(page, "problems-1-server-today")
        problems.locator("a", has_text="服务时间 Hours").click()  # each problem links to its field
        expect(form.locator("#c-hours")).to_be_focused()
        assert len(_versions(system, token)) == before

        # the bilingual contract (details.problems[] with message_zh): Chinese first, then English
        answer = {"error": "invalid-config", "message": "2 configuration error(s)", "message_zh": "配置有 2 处错误",
                  "details": {"problems": [
                      {"file": "proposed/hotlines.yaml", "line": 77, "path": "lines[5].hours", "field": "lines[5].hours",
                       "message": "unknown schedule 'nights'", "message_zh": "未知的服务时间 'nights'"},
                      {"file": "proposed/hotlines.yaml", "line": 78, "path": "lines[5].overflow_seconds",
                       "field": "lines[5].overflow_seconds", "message": "expected a number from 5 to 600"}]}}
        page.route("**/api/admin/lines/12366", lambda route: route.fulfill(
            status=422, content_type="application/json", body=json.dumps(answer)))
        form.locator("#c-submit").click()
        expect(problems.locator("li")).to_have_count(2)
        first = problems.locator("li").first
        expect(first.locator(".zh")).to_have_text("未知的服务时间 'nights'")
        expect(first.locator(".en")).to_have_text("unknown schedule 'nights'")
        assert first.inner_text().index("未知的服务时间") < first.inner_text().index("unknown schedule")
        expect(problems.locator("li").nth(1)).to_contain_text("expected a number from 5 to 600")  # no zh: the en
        expect(form.locator("#c-hours")).to_be_focused()
        expect(form.locator("#c-queue")).not_to_have_attribute("aria-invalid", "true")
        expect(form.locator("#c-overflow")).to_have_attribute("aria-invalid", "true")
        problems.scroll_into_view_if_needed()
        _shot(page, "problems-2-bilingual")
        page.unroute("**/api/admin/lines/12366")
        assert errors == [], errors
    finally:
        context.close()


def test_given_the_admin_forms_when_tabbing_then_every_control_is_reached_in_reading_order(system, chromium):
    _add_admin(system)
    expect.set_options(timeout=20_000)
    context, page = _login_at(chromium, system, VIEWPORTS["768"])
    try:
        page.locator("#c-number").select_option("12366")  # a sub-centre shows the most fields
        for form in ("#change-form", "#dry-form", "#create-form", "#broadcast-form"):
            visited, wanted = _tab_order(page, form)
            assert visited == wanted, (form, visited, wanted)
            assert len(wanted) >= 4, (form, wanted)
    finally:
        context.close()
