"""End to end, the follow-up call (回访, issue 13) on the real sandbox, the whole chain: tickets made
by real calls, submitted from the desk API with a dispatch to the water company, accepted and
replied 办结 by the company's own account over the unit API; then the gateway calls the simulated
citizens through its outbound calls:

* a citizen who presses 1 (solved) and 1 (satisfied) and says a comment: the answers and the
  comment's transcript (Whisper, live) on the follow-up, the ticket closed, its audit and its
  public event; what the citizen heard is transcribed too (the prompts are understood); a second
  办结 of the same ticket calls nobody again;
* a confidential caller who presses 2 (unsolved): the ticket on the review list;
* a citizen who never answers: retried, then unreachable (short retry settings);
* the desk's manual follow-up of that unreachable ticket in a real browser, at 1366 and 768 px.
* the citizen then asks progress by phone (option 7, the number keyed) and hears 已办结，并已完成回访.

One System for the file (short settings: any hour, no delay, 2 attempts 2 s apart, 1 s rounds).
"""

from __future__ import annotations

import asyncio
import json
import re
import wave
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from gateway.asr.menu_match import syllables
from gateway.asr.zh_text import cer
from gateway_dev.eventually import eventually
from gateway_dev.simcall import CallScript, answer_call, place_call, place_calls, set_citizen
from gateway_dev.system import ROOT, say_zh
from tests.e2e.conftest import own_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ARTIFACTS = ROOT / "test-artifacts"
SOLVED, UNSOLVED, SILENT = "13900000201", "13900000202", "13900000203"
COMMENT = "路面已经修好了，谢谢你们"
PASSWORD = "followup browser password 12345"
ENV = {"GATEWAY_FOLLOWUP_HOURS": "always", "GATEWAY_FOLLOWUP_DELAY": "0", "GATEWAY_FOLLOWUP_ATTEMPTS": "2",
       "GATEWAY_FOLLOWUP_RETRY_INTERVAL": "2", "GATEWAY_FOLLOWUP_RING_SECONDS": "4", "GATEWAY_FOLLOWUP_TICK": "1"}


@pytest.fixture(scope="module")
def system():
    # The callers do not hear their ticket number read (tell_number=False: 12 s a call; the reading is
    # test_ticket_number.py's); the number is drawn all the same and keyed at the end of the chain
    with own_system("followup", tell_number=False, extra_env=ENV) as sysm:
        yield sysm


@pytest.fixture(scope="module")
def boss(system) -> str:
    return system.login("fu-boss", PASSWORD, "supervisor")


def _db(system, work):
    from gateway.ticketing.store import TicketStore

    async def run():
        store = await TicketStore.open(system.gateway_settings.database_url)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _dispatched(system, boss: str, ticket_id: int) -> int:
    """Submitted from the desk API (直派 to the water company); returns the dispatch's id."""
    status, ticket = system.http(f"/api/desk/tickets/{ticket_id}", token=boss)
    assert status == 200, ticket
    body = {"version_id": ticket["version_id"], "category": "求助", "urgency": "normal", "place": "三里屯街道",
            "summary": "小区门口路面坏了，下雨积水", "dispatch_mode": "direct",
            "units": [{"id": "water", "name": "市自来水集团"}]}
    status, done = system.http(f"/api/desk/tickets/{ticket_id}/submit", method="POST", body=body, token=boss)
    assert status == 200 and done["handling"] == "dispatched", done
    unit = system.login("fu-water", PASSWORD, "unit", unit="water")
    status, mine = system.http("/api/unit/dispatches?state=all", token=unit)
    assert status == 200, mine
    return next(d["id"] for d in mine["items"] if d["ticket_id"] == ticket_id)


def _handled(system, dispatch_id: int, *, again: bool = False) -> None:
    """The water company's account accepts and replies 办结 (the unit API, as its own system would)."""
    unit = system.login("fu-water", PASSWORD, "unit", unit="water")
    if not again:
        status, out = system.http(f"/api/unit/dispatches/{dispatch_id}/accept", method="POST", body={}, token=unit)
        assert status == 200, out
    status, out = system.http(f"/api/unit/dispatches/{dispatch_id}/reply", method="POST",
                              body={"result": "已办结，路面已修复"}, token=unit)
    assert (status == 200) if not again else status in (200, 409), (status, out)


def _followup(system, token: str, ticket_id: int) -> dict:
    status, body = system.http(f"/api/followups/{ticket_id}", token=token)
    assert status == 200, body
    return body


def _ticket(system, token: str, ticket_id: int) -> dict:
    status, body = system.http(f"/api/tickets/{ticket_id}", token=token)
    assert status == 200, body
    return body


def _outbound_calls(system, number: str) -> list:
    from gateway.ticketing.models import OutboundCall

    async def work(store):
        async with store.read_session() as session:
            return list((await session.execute(sa.select(OutboundCall.uniqueid, OutboundCall.outcome).where(
                OutboundCall.number == number, OutboundCall.purpose == "followup"))).all())

    return _db(system, work)


def _events(system, ticket_id: int) -> list:
    from gateway.ticketing.models import TicketEvent

    async def work(store):
        async with store.read_session() as session:
            return list((await session.execute(sa.select(TicketEvent.kind, TicketEvent.text, TicketEvent.public)
                                                .where(TicketEvent.ticket_id == ticket_id))).all())

    return _db(system, work)


def _heard(system, ears: str) -> str:
    def closed() -> bool:
        path = Path(ears)
        if not path.is_file():
            return False
        with wave.open(str(path)) as w:
            return w.getnframes() > 0 and 44 + 2 * w.getnframes() == path.stat().st_size

    eventually(closed, timeout=20, retry_on=(OSError, EOFError, wave.Error), what=f"{ears} closed")
    proc = system.cli("transcribe", ears, "--lang", "zh", "--json", timeout=300)
    return re.sub(r"[，。、,.\s]", "", json.loads(proc.stdout).get("text", ""))


def _best_cer(expected: str, heard: str) -> float:
    n = len(expected)
    windows = [heard[i:i + w] for w in (n - 1, n, n + 1) for i in range(max(1, len(heard) - w + 1))]
    return min(cer(expected, window) for window in windows) if heard else 1.0


def _best_sound_error(expected: str, heard: str) -> float:
    """The smallest share of ``expected``'s syllables (toneless pinyin) wrong in any stretch of
    ``heard``: what a listener hears, whatever characters the recogniser picked for the sounds
    (it wrote 满意请按 as 满疫情案 in one run, 请按 as 请安 or 暗闪 in others). The gateway's own
    menu matcher compares callers' speech the same way (gateway.asr.menu_match)."""
    want, got = syllables(expected), syllables(heard)
    n = len(want)

    def distance(a: tuple, b: tuple) -> int:
        row = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, y in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
        return row[-1]

    windows = [got[i:i + w] for w in (n - 1, n, n + 1) for i in range(max(1, len(got) - w + 1))]
    return min(distance(want, window) for window in windows) / n if got else 1.0


@pytest.fixture(scope="module")
def world(system, boss, tmp_path_factory):
    """Three tickets by real calls (one confidential), handled at once; the citizens meanwhile."""
    folder = tmp_path_factory.mktemp("followup-voices")
    description = say_zh("小区门口的路面坏了很久，下雨天全是积水", folder / "describe.wav")
    comment = say_zh(COMMENT, folder / "comment.wav")
    system.wait_speech_ready("zh")
    scripts = [CallScript(number="12345", caller=SOLVED, digits="42", say=description, hash_after_say=True),
               CallScript(number="12345", caller=UNSOLVED, digits="41", say=description, hash_after_say=True),
               CallScript(number="12345", caller=SILENT, digits="42", say=description, hash_after_say=True)]
    calls = asyncio.run(place_calls(system.settings, scripts))
    tickets = {c: r["ticket_id"] for c, r in zip((SOLVED, UNSOLVED, SILENT), calls)}
    assert all(tickets.values()), calls
    dispatches = {c: _dispatched(system, boss, t) for c, t in tickets.items()}

    async def citizens():
        ready = [asyncio.Event(), asyncio.Event()]
        solved = asyncio.create_task(answer_call(
            system.settings, SOLVED, CallScript(number=SOLVED, digits="11", say=comment, hash_after_say=True,
                                                ears=True, key_delay=0.5), ready=ready[0], timeout=300))
        unsolved = asyncio.create_task(answer_call(
            system.settings, UNSOLVED, CallScript(number=UNSOLVED, digits="23", ears=True, key_delay=8.0),
            ready=ready[1], timeout=300))  # keys once each question was heard whole (its ears: the menus)
        await set_citizen(system.settings, SILENT, "noanswer")
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
        for dispatch_id in dispatches.values():  # the unit replied 办结: the follow-ups are due now
            await asyncio.to_thread(_handled, system, dispatch_id)
        heard_solved = await solved
        # The solved citizen asks progress by phone once its follow-up is done, while the other
        # citizen is still answering theirs (both calls mostly wait on prompts)
        await asyncio.to_thread(eventually, lambda: _followup(system, boss, tickets[SOLVED])["status"] == "done",
                                timeout=60, what="the follow-up done")
        number = (await asyncio.to_thread(_ticket, system, boss, tickets[SOLVED]))["ticket_no"]
        asked = await place_call(system.settings, CallScript(
            number="12345", caller=SOLVED, digits="7", numbers=(number + "#",), timeout=300))
        return heard_solved, await unsolved, asked

    heard_solved, heard_unsolved, asked = asyncio.run(citizens())
    return tickets, heard_solved, heard_unsolved, dispatches, asked


def test_given_a_handled_ticket_when_the_citizen_presses_1_1_and_comments_then_answers_on_ticket_and_closed(
        system, boss, world):
    tickets, heard, *_ = world
    tid = tickets[SOLVED]
    row = eventually(lambda: (f := _followup(system, boss, tid))["status"] == "done" and f, timeout=60,
                     what="the follow-up's answers stored")
    assert (row["solved"], row["satisfaction"], row["via"], row["attempts"]) == ("yes", "satisfied", "ivr", 1), row
    assert row["uniqueid"] == heard["uniqueid"] and heard["pressed"] == "11", heard
    assert row["comment_status"] == "done" and _best_cer(COMMENT.replace("，", ""),
                                                         row["comment_transcript"] or "") <= 0.4, row
    assert Path(row["comment_path"]).is_file()
    ticket = _ticket(system, boss, tid)
    assert (ticket["handling"], ticket["review_reason"]) == ("closed", None), ticket
    status, audit = system.http(f"/api/tickets/{tid}/audit", token=boss)
    followup = [a for a in audit["items"] if a["action"] == "ticket.followup"]
    assert len(followup) == 1 and followup[0]["details"]["solved"] == "yes" and followup[0]["details"]["comment"]
    assert ("followup", "回访：已解决，满意", True) in _events(system, tid)


def test_given_the_follow_up_call_then_the_citizen_heard_its_day_and_questions_in_mandarin(system, boss, world):
    tickets, heard, heard_menus, *_ = world
    assert "followup-solved_menu" in heard["heard"] and "followup-satisfaction_menu" in heard["heard"], heard
    said = _heard(system, heard["ears"])  # the greeting: the 12345 line and the day the citizen called
    created = datetime.fromisoformat(_ticket(system, boss, tickets[SOLVED])["created_at"]).astimezone(
        ZoneInfo("Asia/Shanghai"))
    assert f"{created.month}月{created.day}日" in said, said
    assert _best_cer("市民服务热线", said) <= 0.35, said
    assert _best_cer("反映的问题进行回访", said) <= 0.35, said
    menus = _heard(system, heard_menus["ears"])  # the questions, heard whole before each key
    for question in ("问题已解决请按", "未解决请按", "基本满意请按", "不满意请按"):
        assert _best_sound_error(question, menus) <= 0.35, (question, menus)


def test_given_a_second_banjie_of_the_same_ticket_then_nobody_is_called_again(system, boss, world):
    tickets, _, _, dispatches, _ = world
    tid = tickets[SOLVED]
    eventually(lambda: _followup(system, boss, tid)["status"] == "done", timeout=60, what="first follow-up done")
    before = _outbound_calls(system, SOLVED)
    assert len(before) == 1, before
    _handled(system, dispatches[SOLVED], again=True)  # a second 办结 (the unit replying again)
    status, metrics = system.http("/metrics?format=json", token=boss)
    rounds = metrics["followup"]["rounds"]
    eventually(lambda: system.http("/metrics?format=json", token=boss)[1]["followup"]["rounds"] >= rounds + 3,
               timeout=30, what="three more scheduler rounds")
    assert _outbound_calls(system, SOLVED) == before
    assert _followup(system, boss, tid)["attempts"] == 1


def test_given_a_confidential_caller_who_presses_2_then_the_ticket_is_on_the_review_list(system, boss, world):
    tickets, _, heard, *_ = world
    tid = tickets[UNSOLVED]
    assert _ticket(system, boss, tid)["confidential"] is True  # still called: the hotline knows the number
    row = eventually(lambda: (f := _followup(system, boss, tid))["status"] == "done" and f, timeout=60,
                     what="the unsolved follow-up stored")
    assert (row["solved"], row["satisfaction"]) == ("no", "unsatisfied") and heard["pressed"] == "23"
    ticket = _ticket(system, boss, tid)
    assert (ticket["handling"], ticket["review_reason"]) == ("review", "unsolved")
    status, review = system.http("/api/followups/review", token=boss)
    assert status == 200 and tid in [i["ticket_id"] for i in review["items"]]


def test_given_a_citizen_who_never_answers_then_retried_then_unreachable(system, boss, world):
    tickets, _, _, dispatches, _ = world
    tid = tickets[SILENT]
    row = eventually(lambda: (f := _followup(system, boss, tid))["status"] == "unreachable" and f, timeout=90,
                     what="two unanswered attempts")
    assert row["attempts"] == 2 and row["last_outcome"] == "no_answer", row
    assert [o for _, o in _outbound_calls(system, SILENT)] == ["no_answer", "no_answer"]
    assert _ticket(system, boss, tid)["handling"] == "closed"


def test_given_the_follow_up_done_when_the_citizen_asks_progress_by_phone_then_followed_up(system, boss, world):
    """The end of the chain: the citizen keys the ticket's number at 12345's option 7 and hears that
    the request was handled and followed up (a pure query: no ticket, no agent)."""
    tickets, *_, asked = world  # placed once the follow-up was done (the world fixture)
    tid = tickets[SOLVED]
    assert _followup(system, boss, tid)["status"] == "done"
    step = next(s for s in asked["menu_path"] if s.get("node") == "progress")
    assert (step["result"], step["ticket_id"], step["status"]) == ("found", tid, "followed_up"), asked["menu_path"]
    assert "main-progress_status_followed_up" in asked["heard"], asked["heard"]
    assert asked["ticket_id"] is None and asked["queue"] is None


# -- the desk's manual follow-up in a browser ----------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--headless=new", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def unreachable(system, boss, world) -> int:
    """The silent citizen's ticket once its follow-up is unreachable (waited before the browser starts:
    Playwright's sync API runs an event loop in this thread)."""
    tid = world[0][SILENT]
    eventually(lambda: _followup(system, boss, tid)["status"] == "unreachable", timeout=90, what="unreachable")
    return tid


def test_given_an_unreachable_follow_up_when_an_agent_phones_and_records_then_done_by_desk_at_1366_and_768(
        system, boss, unreachable, chromium):
    from playwright.sync_api import expect

    tid = unreachable
    system.login("fu-agent", PASSWORD, "agent")
    ARTIFACTS.mkdir(exist_ok=True)
    context = chromium.new_context(viewport={"width": 1366, "height": 768},
                                   base_url=f"http://127.0.0.1:{system.http_port}", locale="zh-CN",
                                   timezone_id="Asia/Shanghai")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/followups")
    page.fill("#username", "fu-agent")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name=re.compile("登录")).click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    row = page.locator(f'#fu-table tr[data-ticket-id="{tid}"]')
    expect(row).to_have_attribute("data-status", "unreachable")
    expect(row).to_contain_text("139****0203")  # masked in the list for agents
    row.get_by_role("button").click()
    expect(page.locator("#fu-number")).to_have_text(SILENT)  # whole once opened (audited)
    page.get_by_role("button", name=re.compile("保存回访结果")).click()  # nothing chosen yet
    summary = page.locator("#fu-errors")
    expect(summary).to_be_visible()
    expect(summary.locator("a")).to_have_count(2)
    expect(summary).to_be_focused()
    page.screenshot(path=str(ARTIFACTS / "followup-1-errors-1366.png"), full_page=True)
    summary.locator("a").first.click()
    page.keyboard.press("Space")  # the first radio of 是否解决, reached from the summary: 已解决
    page.get_by_label(re.compile("^ ?满意 satisfied")).check()
    page.fill("#f-comment", "坐席回访：已修好")
    page.get_by_role("button", name=re.compile("保存回访结果")).click()
    expect(page.locator("#status")).to_contain_text("已保存回访结果")
    row_api = _followup(system, boss, tid)
    assert (row_api["status"], row_api["via"], row_api["agent"]) == ("done", "desk", "fu-agent"), row_api
    assert (row_api["solved"], row_api["satisfaction"]) == ("yes", "satisfied")
    status, again = system.http(f"/api/followups/{tid}/answers", method="POST", token=boss,
                                body={"solved": "no", "satisfaction": "unsatisfied"})
    assert status == 409 and again["error"] == "followup-done"
    page.set_viewport_size({"width": 768, "height": 1024})
    page.select_option("#fu-filter", "done")
    expect(page.locator(f'#fu-table tr[data-ticket-id="{tid}"]')).to_have_attribute("data-status", "done")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.screenshot(path=str(ARTIFACTS / "followup-2-done-768.png"), full_page=True)
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px at 768 px"
    assert errors == []
    context.close()

