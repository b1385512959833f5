"""The supervisor page's 报告 panel in Debian's Chromium (issue 14), on the real system: a supervisor
makes last week's analysis by keyboard only (Tab to the button, Enter), focus lands on the new
row's first link, the PDF downloads with its file name; a period that is not over yet gives the
error summary linked to the date field. No sideways scroll at 1366 and 768 px; screenshots go to
``test-artifacts/reports-*.png``."""

from __future__ import annotations

import re
import pytest

from gateway_dev.system import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
expect = playwright_api.expect

ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "reports e2e test password 12345"
SIZES = {"1366": {"width": 1366, "height": 768}, "768": {"width": 768, "height": 1024}}


def _page(chromium, system, size: str):
    context = chromium.new_context(viewport=SIZES[size], base_url=f"http://127.0.0.1:{system.http_port}",
                                   locale="zh-CN", timezone_id="Asia/Shanghai", accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/supervisor")
    expect(page).to_have_url(re.compile(r"/login\?next=/supervisor$"))
    page.fill("#username", "reports-lead")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name=re.compile("登录")).click()
    expect(page).to_have_url(re.compile(r"/supervisor$"))
    expect(page.locator("#reports-note")).to_contain_text("定时生成")
    return context, page, errors


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#reports-section").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"reports-{name}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{name}: sideways scroll ({width} px)"


def _tab_to(page, element_id: str, limit: int = 12) -> None:
    """Tab (keyboard only) until ``element_id`` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} not reached by Tab")


def test_given_a_supervisor_when_making_last_weeks_report_by_keyboard_then_listed_and_the_pdf_downloads(
        system, chromium):
    system.login("reports-lead", PASSWORD, "supervisor")
    context, page, errors = _page(chromium, system, "1366")
    try:
        page.locator("#report-kind").focus()
        page.keyboard.press("ArrowDown")  # 日报告 -> 周分析
        assert page.locator("#report-kind").input_value() == "weekly"
        _tab_to(page, "report-generate")
        page.keyboard.press("Enter")
        # focus on the new report's first link: its row need not be the list's first weekly one
        # (the shared system may hold reports of later weeks, made by other tests on its clock)
        focused = page.locator('#reports tbody tr[data-kind="weekly"]:has(a.report-html:focus)')
        expect(focused).to_have_count(1, timeout=60_000)
        expect(focused).to_contain_text("周分析")
        row = page.locator(f'#reports tbody tr[data-report-id="{focused.get_attribute("data-report-id")}"]')
        page.keyboard.press("Tab")
        expect(row.locator("a.report-pdf")).to_be_focused()
        with page.expect_download() as info:
            page.keyboard.press("Enter")
        download = info.value
        assert re.fullmatch(r"12345-weekly-\d{4}-\d{2}-\d{2}\.pdf", download.suggested_filename)
        with open(download.path(), "rb") as fh:
            assert fh.read(5) == b"%PDF-"
        _shot(page, "1366")
        assert errors == []
    finally:
        context.close()


def test_given_a_period_not_over_when_generated_then_the_error_summary_links_to_the_date_at_768(system, chromium):
    system.login("reports-lead", PASSWORD, "supervisor")
    context, page, errors = _page(chromium, system, "768")
    try:
        page.fill("#report-date", "2099-12-31")  # whatever the gateway's (test) clock says: not over
        page.locator("#report-generate").focus()
        page.keyboard.press("Enter")
        summary = page.locator("#reports-form .error-summary")
        expect(summary).to_be_focused()
        expect(summary).to_contain_text("尚未结束")
        summary.locator("a").first.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#report-date")).to_be_focused()
        expect(page.locator("#report-date")).to_have_attribute("aria-invalid", "true")
        _shot(page, "768")
        assert errors == []
    finally:
        context.close()
