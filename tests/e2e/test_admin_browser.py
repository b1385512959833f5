"""The admin page in a real browser (Debian's Chromium driven by Playwright), against the real system."""

from __future__ import annotations

import re

import pytest

from gateway.devsystem import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_given_an_admin_in_the_browser_when_changing_a_line_then_history_dry_run_refusal_and_rollback_work(
        system, browser):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    token = system.login("admin-ui", "admin ui password", "admin")  # creates the user with the CLI
    _, before = system.http("/api/admin/versions", token=token)
    base = before["items"][0]["id"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    base_url = f"http://127.0.0.1:{system.http_port}"
    try:
        page.goto(f"{base_url}/admin")
        expect(page).to_have_url(re.compile(r"/login\?next=/admin"))
        page.fill("#username", "admin-ui")
        page.fill("#password", "admin ui password")
        page.click("button[type=submit]")
        expect(page.locator("#lines tbody tr")).to_have_count(7)
        expect(page.locator("#lines")).to_contain_text("双号并行 dual_number")
        expect(page.locator("#lines")).to_contain_text("设分中心 sub_centre")
        page.screenshot(path=str(ARTIFACTS / "admin-1-overview.png"), full_page=True)

        page.select_option("#c-number", "12369")
        page.fill("#c-greeting", "您好，这里是12369环保举报热线，欢迎监督。")
        page.fill("#c-comment", "新问候语 new greeting")
        page.click("#change-form button[type=submit]")
        expect(page.locator("#status")).to_contain_text("已生效 applied")
        first = page.locator("#versions tbody tr").first
        expect(first).to_contain_text("新问候语 new greeting")
        expect(first).to_contain_text("admin-ui")
        first.locator("summary").click()
        expect(first.locator("pre")).to_contain_text("欢迎监督")
        page.screenshot(path=str(ARTIFACTS / "admin-2-changed.png"), full_page=True)

        page.fill("#d-number", "12366")
        page.fill("#d-at", "2027-02-20T23:00")
        page.fill("#d-digits", "1")
        page.click("#dry-form button[type=submit]")
        expect(page.locator("#dry-result")).to_contain_text("非服务时间 closed")
        expect(page.locator("#dry-result .destination")).to_contain_text("q-consult")
        page.screenshot(path=str(ARTIFACTS / "admin-3-dry-run.png"), full_page=True)

        count = page.locator("#versions tbody tr").count()
        page.select_option("#c-number", "12315")
        page.fill("#c-greeting", "")
        page.fill("#c-queue", "q-nowhere")
        page.fill("#c-comment", "should be refused")
        page.click("#change-form button[type=submit]")
        expect(page.locator("#status")).to_contain_text("422")
        expect(page.locator("#status .problems")).to_contain_text("unknown queue 'q-nowhere'")
        expect(page.locator("#versions tbody tr")).to_have_count(count)
        page.screenshot(path=str(ARTIFACTS / "admin-4-refused.png"), full_page=True)

        page.once("dialog", lambda dialog: dialog.accept("回到原来的问候语"))
        page.locator(f"#versions button[data-version='{base}']").click()
        expect(page.locator("#status")).to_contain_text("已生效 applied")
        _, after = system.http("/api/admin/versions", token=token)
        assert after["items"][0]["change"] == {"op": "rollback", "to": base}
        assert after["items"][0]["created_by"] == "admin-ui"
    finally:
        page.close()
