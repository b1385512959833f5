"""The supervisor page's 三率排名 panel in Debian's Chromium at 1366 and 768 px, by mouse and by
keyboard: the ranking with its bases, a figure's tickets one Enter away, confidential places masked.

No Asterisk: the page and its API run in-process (the desk's page and static routes, the rates
API) on a SQLite database with a generated month, in a thread of their own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.desk.catalogue_load import load_catalogue
from gateway.supervision.rates import period_bounds
from gateway.supervision.rates_http import RATES_SERVICE, RatesService, add_rates_routes
from gateway_dev.rates_data import generate, insert_async
from tests.e2e.browser_site import serve

CONFIG = Path(__file__).resolve().parents[2] / "config"
NOW = datetime(2026, 11, 25, 4, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    catalogue = load_catalogue(CONFIG / "catalogue.yaml")

    async def seed(store, app) -> dict:
        start_, end = period_bounds("month", "Asia/Shanghai", day="2026-11-01")
        await insert_async(store, list(generate(400, start_, end + timedelta(days=2), seed=3, now=NOW)))
        app[RATES_SERVICE] = RatesService(store=store, clock=lambda: NOW, catalogue=catalogue)
        add_rates_routes(app)
        return {}

    with serve(tmp_path_factory, "rates", seed, timeout=60) as ready:
        yield ready


@pytest.mark.parametrize("width", [1366, 768])
def test_given_a_month_of_tickets_when_a_supervisor_opens_the_rates_then_ranking_and_tickets_by_keyboard(
        chromium, site, width):
    ctx = chromium.new_context(viewport={"width": width, "height": 900}, locale="zh-CN",
                               extra_http_headers={"Authorization": f"Bearer {site['token']}"})
    page = ctx.new_page()
    try:
        page.goto(f"http://127.0.0.1:{site['port']}/supervisor")
        page.select_option("#rates-form [name=level]", "district")
        page.fill("#rates-form [name=date]", "2026-11-15")
        page.click("#rates-form button[type=submit]")
        page.wait_for_selector("#rates tbody tr[data-key=chaoyang]")
        row = page.locator("#rates tbody tr[data-key=chaoyang]")
        assert row.locator("th").inner_text() == "朝阳区"
        assert row.locator("td[data-field=satisfaction_rate]").inner_text().endswith("%")
        # the table scrolls inside its box; the page itself does not get wider than the window
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # keyboard: focus the 不满意 figure of 朝阳区 and press Enter
        button = row.locator("td[data-field=unsatisfied] button")
        expected = int(button.inner_text())
        button.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#rates-drill-title:has-text('张工单')")
        assert page.evaluate("document.activeElement.id") == "rates-drill-title"
        assert f"{expected} 张工单" in page.inner_text("#rates-drill-title")
        cells = page.locator("#rates-drill tbody tr").all_inner_texts()
        assert len(cells) == min(expected, 50) and all("不满意" in c for c in cells)
        assert not any("13912345678" in c or "13800138000" in c for c in cells)
        masked = [c for c in cells if "保密" in c]
        assert all("139****5678" in c for c in masked)
        page.screenshot(path=f"/tmp/rates-{width}.png", full_page=False)
        # the row of tickets whose place the catalogue does not know (key "") lists its tickets too
        unknown = page.locator("#rates tbody tr[data-key=''] td[data-field=tickets]")
        assert unknown.count() == 1
        page.locator("#rates tbody tr[data-key=''] td[data-field=due] button").click()
        page.wait_for_selector("#rates-drill-title:has-text('未识别 unknown · 应响应：')")
    finally:
        ctx.close()
