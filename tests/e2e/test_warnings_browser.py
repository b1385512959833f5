"""The supervisor page's 预警 panel in Debian's Chromium at 1366 and 768 px, by keyboard: a generated
month with one injected surge (停水 in 望京) and one repeated demand (停水 at one address in 双井)
listed with matter and place; the surge's tickets one Tab/Enter away, without callers' numbers;
签收 (at 1366) and 转交 to the suggested unit, then 再次转交 (at 768) by keyboard, seen on the page, in the API and in
the unit's own list. No sideways scroll, no page errors; screenshots ``test-artifacts/warnings-*.png``.

No Asterisk: the page and its API run in-process (the supervisor page and static routes, the
warnings API) on a SQLite database, in a thread of their own; the detection runs once at start."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest

from gateway.supervision.warnings_http import add_warning_routes
from gateway.supervision.warnings_service import WARNINGS, WarningService
from tests.e2e.browser_site import ARTIFACTS, CATALOGUE, UNITS, serve, supervisor_tab
from tests.unit import warnings_data as data

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
expect = playwright_api.expect

DAY = 28  # the month's last day: the surge's (history before it: the baseline)
NOW = data.START + timedelta(days=DAY, hours=14)  # 14:00 in Beijing
REPEAT_PLACE = "富力城8号院3号楼"
CALLER = re.compile(r"1[3-9][0-9]{9}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    async def seed(store, app) -> dict:
        made = data.month(seed=11, days=DAY + 1)
        rng = random.Random(5)
        day = data.START + timedelta(days=DAY)
        surge = [data.Made(day + timedelta(hours=6, minutes=rng.randint(0, 300)), "water-outage", "wangjing",
                           data.address(rng, "wangjing"), "家里停水了，整栋楼都没水") for _ in range(16)]
        repeat = [data.Made(day - timedelta(days=d, hours=2), "water-outage", "shuangjing", REPEAT_PLACE,
                            "家里又停水了", confidential=d == 1) for d in (3, 2, 1)]
        await data.insert(store, made + surge + repeat)
        service = WarningService(store=store, clock=lambda: NOW, catalogue=CATALOGUE, unit_names=lambda: UNITS)
        run = await service.run_once()
        app[WARNINGS] = service
        add_warning_routes(app)
        alerts = {a["kind"]: a for a in await service.store.list_alerts("all")}
        return {"run": run, "alerts": alerts}

    with serve(tmp_path_factory, "warnings", seed,
               users=(("boss", "supervisor", None), ("water", "unit", "water"))) as ready:
        yield ready


def _tab_to(page, locator, limit: int = 30) -> None:
    """Tab (keyboard only) until ``locator`` has the focus, which must then be visible."""
    handle = locator.element_handle()
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(el) => document.activeElement === el", handle):
            assert page.evaluate("(el) => el.matches(':focus-visible') && getComputedStyle(el).outlineStyle !== 'none'",
                                 handle), "the keyboard focus is not visible"
            return
    raise AssertionError(f"{locator} not reached by Tab")


# scroll the panel's title just below the page's sticky header (where the page puts it after an action)
SHOW_TITLE = """() => {
  const header = document.querySelector("body > header"), section = document.querySelector("#warnings-section");
  window.scrollTo(0, section.getBoundingClientRect().top + scrollY - header.getBoundingClientRect().height - 8);
}"""


def _title_clear(page) -> bool:
    """The 预警 title is in the window and not under the sticky header."""
    return page.evaluate("""() => {
      const header = document.querySelector("body > header").getBoundingClientRect();
      const title = document.querySelector("#warnings-title").getBoundingClientRect();
      return title.top >= header.bottom && title.bottom <= innerHeight;
    }""")


def _api(ctx, site, path: str, who: str = "boss") -> dict:
    resp = ctx.request.get(f"http://127.0.0.1:{site['port']}{path}",
                           headers={"Authorization": f"Bearer {site['tokens'][who]}"})
    assert resp.ok, (path, resp.status, resp.text())
    return resp.json()


def test_given_the_generated_month_when_the_detection_ran_then_one_surge_and_one_repeated_demand(site):
    assert site["run"]["classified"] > 4000 and len(site["run"]["created"]) == 2
    surge, repeat = site["alerts"]["surge"], site["alerts"]["repeat"]
    assert (surge["matter"], surge["level"], surge["place_id"], surge["place_name"]) == (
        "water-outage", "street", "wangjing", "朝阳区望京街道")
    assert surge["count"] >= 16 and (repeat["matter"], repeat["count"]) == ("water-outage", 3)


@pytest.mark.parametrize("width,action", [(1366, "acknowledge"), (768, "forward")])
def test_given_a_surge_and_a_repeated_demand_when_the_supervisor_works_the_panel_by_keyboard_then_state_changes(
        chromium, site, width, action):
    surge, repeat = site["alerts"]["surge"], site["alerts"]["repeat"]
    with supervisor_tab(chromium, site, width, 900, ready="warnings") as (ctx, page, errors):
        box = page.locator(f"#warnings article[data-warning='{surge['id']}']")
        other = page.locator(f"#warnings article[data-warning='{repeat['id']}']")
        expect(box.locator("h3")).to_have_text("激增 Surge · 停水 · 朝阳区望京街道")
        expect(other.locator("h3")).to_have_text(f"重复诉求 Repeated demand · 停水 · {REPEAT_PLACE}")
        expect(page.locator("#warnings-empty")).to_be_hidden()
        # keyboard: from 立即检测 Tab to the surge's 查看工单 and press Enter
        show = box.get_by_role("button", name=re.compile("查看工单"))
        expect(show).to_have_text(f"查看工单 Tickets ({surge['tickets']})")
        page.locator("#warnings-run").focus()
        _tab_to(page, show)
        page.keyboard.press("Enter")
        expect(show).to_have_attribute("aria-expanded", "true")
        rows = box.locator("table.warning-tickets tbody tr")
        expect(rows).to_have_count(surge["tickets"])
        assert all("停水" in r for r in rows.all_inner_texts())
        text = page.inner_text("body")
        assert not CALLER.search(text), CALLER.search(text)
        # the repeated demand's confidential ticket without its place and summary
        other.get_by_role("button", name=re.compile("查看工单")).click()
        expect(other.locator("table.warning-tickets tbody tr")).to_have_count(3)
        expect(other.locator("tbody tr", has_text="confidential")).to_have_count(1)
        expect(other.locator("tbody tr", has_text=REPEAT_PLACE)).to_have_count(2)
        assert not CALLER.search(page.inner_text("body"))
        ARTIFACTS.mkdir(exist_ok=True)
        page.evaluate(SHOW_TITLE)
        assert _title_clear(page)
        page.screenshot(path=str(ARTIFACTS / f"warnings-{width}.png"))
        assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), \
            page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")

        if action == "acknowledge":  # 签收 the surge: Tab on from its tickets' button
            show.focus()
            _tab_to(page, box.locator("button[data-action=acknowledge]"))
            page.keyboard.press("Enter")
            box = page.locator(f"#warnings article[data-warning='{surge['id']}']")
            expect(box).to_have_attribute("data-status", "acknowledged")
            expect(box.locator("p.hint")).to_contain_text("已签收 acknowledged")
            expect(box.locator("button[data-action=acknowledge]")).to_have_count(0)
            expect(page.locator("#warnings-section")).to_be_focused()
            assert _title_clear(page), "the focused section's title is under the sticky header"
            got = _api(ctx, site, f"/api/supervisor/warnings/{surge['id']}")
            assert (got["status"], got["acknowledged_by"]) == ("acknowledged", "boss")
        else:  # 转交 the repeated demand to its suggested unit
            form = other.locator("form")
            expect(form.locator("select[name=unit_id]")).to_have_value("water")
            other.get_by_role("button", name=re.compile("查看工单")).focus()
            _tab_to(page, form.locator("button[data-action=forward]"))
            page.keyboard.press("Enter")
            expect(other).to_have_count(0)  # no longer open or acknowledged: gone from the default view
            expect(page.locator("#warnings-section")).to_be_focused()
            assert _title_clear(page), "the focused section's title is under the sticky header"
            page.select_option("#warnings-status", "forwarded")
            moved = page.locator(f"#warnings article[data-warning='{repeat['id']}']")
            expect(moved).to_have_attribute("data-status", "forwarded")
            expect(moved.locator("p.hint")).to_contain_text("已转交 forwarded → 市自来水集团")
            again = moved.locator("button[data-action=forward]")  # 再次转交: forwarded alerts may be sent again
            expect(again).to_have_text("再次转交 Forward again")
            expect(moved.locator("select[name=unit_id]")).to_have_value("water")
            expect(moved.locator("button[data-action=acknowledge]")).to_have_count(0)
            moved.get_by_role("button", name=re.compile("查看工单")).focus()
            _tab_to(page, again)
            page.evaluate("document.querySelector('#status').textContent = ''")  # the first forward's message
            page.keyboard.press("Enter")
            expect(page.locator("#status")).to_contain_text("已转交 forwarded")
            got = _api(ctx, site, f"/api/supervisor/warnings/{repeat['id']}")
            assert (got["status"], got["forwarded_unit_id"]) == ("forwarded", "water")
            assert [f["unit_id"] for f in got["forwards"]] == ["water", "water"]
            mine = _api(ctx, site, "/api/unit/warnings", who="water")
            assert [i["id"] for i in mine["items"]] == [repeat["id"]]
        assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
        assert errors == []
