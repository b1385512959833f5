"""The supervisor page's sticky header never hides what has the keyboard focus (Debian's Chromium, 1366
and 768 px, where the header wraps onto more lines): a section or title focused by the page's
scripts, by Tab/Shift+Tab, or reached by a jump link (``/supervisor#warnings-section``) has its
title below the header. Also the 预警 panel's "grown" line (an alert that grew since its notice)
and the 话务指标 panel's AHT with its parts (talk + after-call work). Screenshots
``test-artifacts/supervisor-focus-*.png`` and ``supervisor-aht-*.png``.

No Asterisk: the page, its static files, the warnings and figures APIs run in-process on SQLite,
in a thread of their own (the other panels' APIs answer 404 and say so in their panels); the
calls are the figures' unit test's generated day, their queue events replayed as AMI messages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.supervision.figures_http import FIGURES, add_figures_routes
from gateway.supervision.warnings_http import add_warning_routes
from gateway.supervision.warnings_service import WARNINGS, WarningService
from tests.e2e.browser_site import ARTIFACTS, CATALOGUE, UNITS, serve, supervisor_tab
from tests.unit import test_supervision_figures as calls
from tests.unit import warnings_data as data

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
expect = playwright_api.expect

AT = data.START + timedelta(days=3)
PLACE = "望京西园3区2号楼"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    async def seed(store, app) -> dict:
        clock = {"now": AT + timedelta(days=2)}
        service = WarningService(store=store, clock=lambda: clock["now"], catalogue=CATALOGUE,
                                 unit_names=lambda: UNITS)
        await data.insert(store, [data.Made(AT + timedelta(hours=h), "water-outage", "wangjing", PLACE, "家里停水了")
                                  for h in (1, 5, 30)])
        await service.run_once()  # a repeated demand of 3 tickets ...
        await data.insert(store, [data.Made(AT + timedelta(hours=40 + h), "water-outage", "wangjing", PLACE, "又停水了")
                                  for h in (1, 2)], first_id=4)
        run = await service.run_once()  # ... that grew to 5: notified again
        await calls._generated_day(store)  # figures: 4 answered calls, two tickets decided after hang-up
        second = timedelta(seconds=1)
        await calls._decide(store, "a1", calls.NINE + timedelta(minutes=1) + 110 * second)  # 45 s after
        await calls._decide(store, "a2", calls.NINE + timedelta(minutes=1) + 140 * second)  # during the call
        app[WARNINGS] = service
        add_warning_routes(app)
        app[FIGURES] = calls._service(store)
        add_figures_routes(app)
        return {"run": run}

    with serve(tmp_path_factory, "focus", seed) as ready:
        yield ready


# Where the focused element's section title is, against the sticky header (its bottom edge).
PLACES = """(el) => {
  const header = document.querySelector("body > header").getBoundingClientRect();
  const section = el.closest("section");
  const title = section ? section.querySelector("h2") : null;
  const box = (title || el).getBoundingClientRect(), own = el.getBoundingClientRect();
  return {header: header.bottom, title: box.top, titleBottom: box.bottom, own: own.top, height: innerHeight,
          what: (section && section.id) || el.id || el.tagName};
}"""
TARGETS = "main section[tabindex='-1'], main h2[tabindex='-1']"  # where the page's scripts put the focus


def _shot_without_sideways_scroll(page, errors: list[str], name: str) -> None:
    """Screenshot ``test-artifacts/<name>.png``; the page no wider than the window, no page errors."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    assert errors == []


@pytest.mark.parametrize("width", [1366, 768])
def test_given_the_sticky_header_when_a_section_gets_the_focus_then_its_title_is_visible(chromium, site, width):
    with supervisor_tab(chromium, site, width, 800, ready="warnings") as (_, page, errors):
        header = page.evaluate("document.querySelector('body > header').getBoundingClientRect().height")
        if width == 768:
            assert header > 50, header  # the header wraps here: the padding must follow it
        # 1. focused by the page's scripts (after an action) while the page is scrolled past them
        targets = page.locator(TARGETS)
        assert targets.count() >= 4
        for i in range(targets.count()):
            target = targets.nth(i)
            if not target.is_visible():
                continue
            page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight)")
            target.evaluate("(el) => el.focus()")
            where = target.evaluate(PLACES)
            assert target.evaluate("(el) => document.activeElement === el"), where
            assert where["title"] >= where["header"] - 0.5 and where["titleBottom"] <= where["height"], where
        # 2. by keyboard, backwards from the page's end: nothing focused is under the header
        page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight)")
        page.locator("main").locator("button, a[href], select, input, textarea, [tabindex='0']").last.focus()
        for _ in range(80):
            page.keyboard.press("Shift+Tab")
            where = page.evaluate(f"({PLACES})(document.activeElement)")
            if page.evaluate("!document.querySelector('main').contains(document.activeElement)"):
                break
            assert where["own"] >= where["header"] - 0.5, where
        # 3. a jump link to a section
        page.goto(f"http://127.0.0.1:{site['port']}/supervisor#warnings-section")
        expect(page.locator("body")).to_have_attribute("data-warnings-ready", "true")
        page.evaluate("location.hash = ''; location.hash = '#warnings-section'")
        where = page.locator("#warnings-section").evaluate(PLACES)
        assert where["title"] >= where["header"] - 0.5, where
        # the alert that grew: the old and new counts, in red, on its item
        grown = page.locator("#warnings article .warning-grown")
        expect(grown).to_have_count(1)
        expect(grown).to_contain_text("增长 Grown")
        expect(grown).to_contain_text("3 → 5 件")
        page.locator("#warnings-section").evaluate("(el) => el.focus()")
        _shot_without_sideways_scroll(page, errors, f"supervisor-focus-{width}")


@pytest.mark.parametrize("width", [1366, 768])
def test_given_answered_calls_when_the_figures_show_then_aht_is_talk_plus_after_call_work(chromium, site, width):
    with supervisor_tab(chromium, site, width, 900, ready="figures") as (_, page, errors):
        card = page.locator("#figures-cards [data-key=aht]")
        # talk (60 + 120 + 30 + 90) / 4 = 75 s; after-call work: a1 45 s, a2 0 s (b1, b2 undecided)
        expect(card.locator(".n")).to_have_text("97.5 秒")
        expect(card.locator(".l")).to_contain_text("通话 talk 75.0 秒")
        expect(card.locator(".l")).to_contain_text("话后整理 after-call work 22.5 秒")
        expect(card.locator(".l")).to_contain_text("2 通未知 unknown")
        general = page.locator('#figures-queues tr[data-queue="q-general"]')
        expect(general).to_contain_text("112.5 秒（通话 90.0 秒 + 话后 22.5 秒）")
        expect(page.locator('#figures-agents tr[data-agent="8001"]')).to_contain_text("0:45")
        page.locator("#figures-cards").evaluate("(el) => el.focus()")
        where = page.locator("#figures-cards").evaluate(PLACES)
        assert where["title"] >= where["header"] - 0.5, where
        _shot_without_sideways_scroll(page, errors, f"supervisor-aht-{width}")
