"""common.js's helpers for polled lists, in Debian's Chromium over the static files on disk (no server,
no Asterisk: here beside the browser tests because Playwright's own event loop is not for the unit
tests' blockbuster).

A poll that redraws a list must not drop the keyboard focus of someone tabbing through it, and a slow
answer must not draw over a newer one: a unit's filter click and its 15 s poll overlapped in CI and the
row button the keyboard was on was thrown away before Enter reached it.
"""
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

STATIC = Path(__file__).resolve().parents[2] / "gateway" / "web" / "static"
ORIGIN = "http://static.test"

PAGE = """<!doctype html><html><body><table id="list"><tbody></tbody></table><button id="away">x</button>
<script type="module">
import {el, latestWins, redrawKeepingFocus} from "/common.js";
const body = document.querySelector("#list tbody");
function rows(ids) {
  return ids.map((id) => {
    const tr = el("tr", null, {"data-row": id});
    const td = el("td");
    td.append(el("button", `open ${id}`, {type: "button"}), el("a", `pdf ${id}`, {href: `#${id}`}));
    tr.append(td);
    return tr;
  });
}
window.draw = (ids) => redrawKeepingFocus(body, "data-row", () => body.replaceChildren(...rows(ids)));
window.focusOn = (sel) => document.querySelector(sel).focus();
window.active = () => {
  const a = document.activeElement;
  return a && a.isConnected ? `${a.tagName}:${a.textContent}` : "";
};
window.loads = latestWins();
window.ready = true;
</script></body></html>"""


@pytest.fixture(scope="module")
def page(chromium):
    context = chromium.new_context()
    try:
        page = context.new_page()

        def serve(route):
            name = route.request.url.removeprefix(ORIGIN + "/")
            if name == "":
                route.fulfill(body=PAGE, content_type="text/html")
            elif "/" not in name and (STATIC / name).is_file():
                route.fulfill(body=(STATIC / name).read_bytes(), content_type="text/javascript")
            else:
                route.fulfill(status=404, body="")
        page.route(f"{ORIGIN}/**", serve)
        page.goto(ORIGIN + "/")
        page.wait_for_function("window.ready === true")
        yield page
    finally:
        context.close()


def test_given_the_focus_on_a_rows_link_when_the_list_is_redrawn_reordered_then_the_same_rows_link_has_it(page):
    page.evaluate("draw(['1', '2', '3'])")
    page.evaluate("focusOn('tr[data-row=\"2\"] a')")
    page.evaluate("draw(['3', '2', '1'])")
    assert page.evaluate("active()") == "A:pdf 2"
    page.evaluate("focusOn('tr[data-row=\"3\"] button')")
    page.evaluate("draw(['4', '3'])")
    assert page.evaluate("active()") == "BUTTON:open 3"


def test_given_the_focused_row_gone_or_the_focus_outside_when_redrawn_then_the_focus_is_not_moved_into_the_list(page):
    page.evaluate("draw(['1', '2'])")
    page.evaluate("focusOn('tr[data-row=\"1\"] button')")
    page.evaluate("draw(['2'])")  # row 1 went (answered elsewhere): nothing in the list takes the focus
    assert not page.evaluate("active()").startswith(("BUTTON:open", "A:pdf"))
    page.evaluate("focusOn('#away')")
    page.evaluate("draw(['2', '1'])")
    assert page.evaluate("active()") == "BUTTON:x"


def test_given_overlapping_loads_then_only_the_latest_is_latest(page):
    assert page.evaluate("""() => {
      const first = loads.next(), second = loads.next();
      return [loads.isLatest(first), loads.isLatest(second)];
    }""") == [False, True]
