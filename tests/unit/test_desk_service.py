"""The desk's services on a real, migrated SQLite database: pops, who sees what, decisions."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from gateway.desk.live import LiveBoard
from gateway.desk.access import dispatch_document, ticket_view
from gateway.desk.hub import PopHub
from gateway.desk.service import DeskService
from gateway.errors import Conflict
from gateway.ivr_flows.model import CATEGORIES
from gateway.pbx.ami_events import parse_event
from gateway.desk.schemas import CloseBody, SubmitBody
from gateway.web.schema import RequestInvalid, validate
from gateway.ticketing.store import TicketStore
from gateway.auth.users import UserStore

NOW = datetime(2027, 3, 3, 2, 0, tzinfo=timezone.utc)
SUBMIT = {"category": "投诉", "urgency": "urgent", "place": "三里屯街道", "summary": "夜间施工噪音",
          "dispatch_mode": "direct", "units": [{"id": "sanlitun", "name": "三里屯街道办事处", "kind": "street"}]}


@pytest.fixture()
async def world(tmp_path, database_url):
    url = database_url  # migrated: SQLite and PostgreSQL (tests/dbfixtures.py)
    store = await TicketStore.open(url)
    users = UserStore(store)
    for name, role, agent in (("a1", "agent", "8001"), ("a2", "agent", "8002"), ("boss", "supervisor", None)):
        await users.create_user(name, f"{name}-password-1", role, agent_id=agent)
    desk = DeskService(store=store, users=users, recordings_dir=tmp_path / "rec", suggester=None, clock=lambda: NOW)
    yield store, users, desk
    await store.close()


async def _call(store: TicketStore, uid: str, *, caller="13800138000", confidential=False) -> int:
    await store.start_call(uniqueid=uid, channel="Local/x;1", caller_number=caller, dialled_number="12345",
                           line_number="12345", line_name="12345市民服务热线", merge_mode="primary", department=None,
                           flow_version="v1", started_at=NOW)
    return await store.ensure_ticket(uid, category="投诉", channel_kind=None, confidential=confidential,
                                     handled_by=None, queue="q-complaint", department=None)


def _connect(uid: str, member: str) -> dict:
    return {"Event": "AgentConnect", "Uniqueid": uid, "Channel": "Local/s@x;1", "Queue": "q-complaint",
            "MemberName": "坐席", "Interface": f"Local/{member}@gw-agents/n", "HoldTime": "3"}


async def test_given_an_agent_connect_when_the_agent_has_a_desk_then_only_that_agent_gets_the_pop(world):
    store, users, desk = world
    ticket_id = await _call(store, "u1")
    await store.mark_agent("u1", "8001")
    await desk.on_ami_event(parse_event(_connect("u1", "8001")))

    events = desk.hub.missed("a1", 0)
    assert [e["type"] for e in events] == ["screen_pop"] and events[0]["ticket"]["id"] == ticket_id
    assert events[0]["ticket"]["caller_number"] == "13800138000"  # the answering agent may call back
    assert desk.hub.missed("a2", 0) == [] and desk.counters["pops"] == 1
    assert desk.board.snapshot(0)["talking"][0]["agent"] == "8001"


async def test_given_viewers_when_showing_a_ticket_then_numbers_follow_the_role_and_the_call(world):
    store, _, _ = world
    ticket = await store.get_ticket(await _call(store, "u1"))
    agent, other, boss = ({"role": "agent", "agent_id": "8001"}, {"role": "agent", "agent_id": "8002"},
                          {"role": "supervisor"})
    assert ticket_view(ticket, agent, call_agent="8001")["caller_number"] == "13800138000"
    assert ticket_view(ticket, other, call_agent="8001")["caller_number"] == "138****8000"
    assert ticket_view(ticket, boss, call_agent=None)["caller_number_masked"] is False
    assert "recording_path" not in ticket_view(ticket, boss, call_agent=None)


async def test_given_a_confidential_caller_when_dispatched_then_the_unit_never_sees_the_number(world):
    store, _, _ = world
    secret = await store.get_ticket(await _call(store, "u1", confidential=True))
    open_ = await store.get_ticket(await _call(store, "u2"))
    assert dispatch_document(secret)["caller_number"] is None and "保密" in dispatch_document(secret)["caller"]
    assert dispatch_document(open_)["caller_number"] == "138****8000"


def test_given_bad_decisions_when_checked_then_each_names_its_field():
    cases = [
        ({**SUBMIT, "category": "闲聊"}, "category"),
        ({**SUBMIT, "dispatch_mode": "triple"}, "dispatch_mode"),
        ({**SUBMIT, "units": []}, "units"),
        ({**SUBMIT, "dispatch_mode": "dual"}, "units"),
        ({**SUBMIT, "summary": ""}, "summary"),
        ({**SUBMIT, "summary": "x" * 5000}, "summary"),
        ({**SUBMIT, "urgency": "now"}, "urgency"),
        ({**SUBMIT, "linked_ticket_id": "1; drop"}, "linked_ticket_id"),
        ({**SUBMIT, "owner": "me"}, None),
    ]
    for body, field in cases:
        with pytest.raises(RequestInvalid) as err:
            validate({"version_id": 1, **body}, SubmitBody)
        assert err.value.details.get("field") == (field or "owner")
    with pytest.raises(RequestInvalid):
        validate({"version_id": 1, "category": "咨询"}, CloseBody)  # an answer is required


async def test_given_two_agents_when_both_submit_the_same_ticket_then_one_wins_and_the_other_is_told_who(world):
    store, _, desk = world
    ticket_id = await _call(store, "u1")
    version = (await store.get_ticket(ticket_id))["version_id"]
    a1, a2 = {"username": "a1", "role": "agent", "agent_id": "8001"}, {"username": "a2", "role": "agent"}

    results = await asyncio.gather(
        desk.decide(ticket_id, "submitted", {**SUBMIT, "version_id": version}, a1, categories=CATEGORIES),
        desk.decide(ticket_id, "submitted", {**SUBMIT, "version_id": version}, a2, categories=CATEGORIES),
        return_exceptions=True)

    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, Conflict)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert wins[0]["status"] == "submitted" and wins[0]["units"][0]["name"] == "三里屯街道办事处"
    assert "已由" in losses[0].message and losses[0].details["decided_by"] == wins[0]["decided_by"]
    actions = [a["action"] for a in await store.list_audit("ticket", str(ticket_id))]
    assert actions.count("ticket.submitted") == 1


async def test_given_a_stale_version_when_deciding_then_409_and_nothing_changes(world):
    store, _, desk = world
    ticket_id = await _call(store, "u1")
    version = (await store.get_ticket(ticket_id))["version_id"]
    await store.ensure_ticket("u1", category="咨询", channel_kind=None, confidential=None, handled_by=None,
                              queue=None, department=None)  # the IVR updated it meanwhile
    with pytest.raises(Conflict):
        await desk.decide(ticket_id, "answered", {"answer": "已答复", "version_id": version},
                          {"username": "a1", "role": "agent"}, categories=CATEGORIES)
    assert (await store.get_ticket(ticket_id))["status"] == "draft"


async def test_given_a_draft_when_saved_then_it_comes_back_and_the_version_is_unchanged(world):
    store, _, desk = world
    ticket_id = await _call(store, "u1")
    before = (await store.get_ticket(ticket_id))["version_id"]
    await desk.desk.save_draft(ticket_id, "a1", {"summary": "半句话"}, now=NOW)
    await desk.desk.save_draft(ticket_id, "a1", {"summary": "一整句话"}, now=NOW)
    view = await desk.view(ticket_id, {"username": "a1", "role": "agent", "agent_id": "8001"})
    assert view["saved_draft"] == {"summary": "一整句话"} and view["version_id"] == before
    assert (await desk.view(ticket_id, {"username": "a2", "role": "agent"}))["saved_draft"] is None


def test_given_a_hub_when_a_desk_reconnects_then_it_gets_what_it_missed_or_a_resync():
    hub = PopHub(buffer=3)
    for n in range(5):
        hub.publish("a1", {"type": "screen_pop", "n": n})
    assert [e["n"] for e in hub.missed("a1", 3)] == [3, 4]
    missed = hub.missed("a1", 1)  # events 2 is gone from the buffer of 3
    assert missed[0]["type"] == "resync" and [e.get("n") for e in missed[1:]] == [2, 3, 4]
    queue = hub.subscribe("a1")
    hub.publish("a1", {"type": "screen_pop", "n": 5})
    assert queue.get_nowait()["n"] == 5 and hub.connections() == 1


def test_given_queue_events_when_the_board_is_read_then_waiting_and_talking_calls_show():
    board = LiveBoard()
    board.ivr_started("u1", line="12345", caller="13800138000", now=0)
    board.ivr_started("u2", line="12315", caller="13900000000", now=1)
    board.on_event(parse_event({"Event": "QueueCallerJoin", "Uniqueid": "u1", "Queue": "q-general"}), 5)
    board.on_event(parse_event({"Event": "QueueCallerJoin", "Uniqueid": "u3", "Queue": "q-general"}), 6)
    board.on_event(parse_event(_connect("u3", "8002")), 8)
    board.on_event(parse_event({"Event": "QueueCallerAbandon", "Uniqueid": "u9", "Queue": "q-help"}), 9)
    snap = board.snapshot(10)
    assert [c["uniqueid"] for c in snap["in_ivr"]] == ["u2"] and snap["in_ivr"][0]["caller"] == "139****0000"
    assert snap["queues"]["q-general"]["waiting"] == 1 and snap["queues"]["q-general"]["longest_wait_s"] == 5
    assert snap["talking"][0]["agent"] == "8002" and snap["abandoned_since_start"] == 1
    board.on_event(parse_event({"Event": "Hangup", "Uniqueid": "u3", "Cause": "16"}), 11)
    assert board.snapshot(12)["talking"] == []


async def test_given_the_whole_http_app_when_anonymous_then_every_api_route_but_login_says_401(world):
    from aiohttp.test_utils import TestClient, TestServer

    from tests.unit.webapp import build_app, with_admin, with_desk

    store, users, desk = world

    async def health():
        return {"status": "ok"}

    app = build_app(store=store, health=health, users=users)
    with_desk(with_admin(app), desk)
    open_routes = {"/api/login", "/api/logout", "/api/me"}
    checked = 0
    async with TestClient(TestServer(app)) as client:
        for route in app.router.routes():
            path = route.resource.canonical if route.resource else ""
            if not path.startswith("/api/") or path in open_routes or route.method == "HEAD":
                continue
            url = path.replace("{ticket_id}", "1").replace("{uniqueid}", "u1").replace("{number}", "12345") \
                .replace("{version_id}", "1").replace("{id}", "1")
            resp = await client.request(route.method, url, json={})
            assert resp.status == 401, (route.method, path, resp.status)
            checked += 1
    assert checked >= 20


def test_given_the_openapi_document_when_compared_with_the_routes_then_every_api_route_is_documented(world):
    from gateway.hotlines.openapi import openapi_document
    from tests.unit.webapp import build_app, with_admin, with_desk

    store, users, desk = world

    async def health():
        return {}

    app = build_app(store=store, health=health, users=users)
    with_desk(with_admin(app), desk)
    paths = openapi_document()["paths"]
    missing = [(r.method, r.resource.canonical) for r in app.router.routes()
               if r.resource and r.resource.canonical.startswith("/api/") and r.method != "HEAD"
               and r.method.lower() not in paths.get(r.resource.canonical, {})]
    assert missing == []


async def test_given_another_agents_draft_when_an_agent_opens_or_decides_it_then_locked_but_a_supervisor_may(world):
    from gateway.desk.access import DraftLocked

    store, _, desk = world
    ticket_id = await _call(store, "u1")
    await store.mark_agent("u1", "8001")
    version = (await store.get_ticket(ticket_id))["version_id"]
    a2 = {"username": "a2", "role": "agent", "agent_id": "8002"}
    for attempt in (desk.view(ticket_id, a2), desk.save_draft(ticket_id, a2, {"summary": "x"}),
                    desk.decide(ticket_id, "answered", {"answer": "好", "version_id": version}, a2,
                                categories=CATEGORIES)):
        with pytest.raises(DraftLocked, match="8001"):
            await attempt
    boss = {"username": "boss", "role": "supervisor"}
    assert (await desk.view(ticket_id, boss))["caller_number"] == "13800138000"
    done = await desk.decide(ticket_id, "answered", {"answer": "已答复", "version_id": version}, boss,
                             categories=CATEGORIES)
    assert done["status"] == "answered"
    assert (await desk.view(ticket_id, a2))["caller_number"] == "138****8000"  # decided: readable, masked


async def test_given_a_desk_websocket_when_it_closes_or_comes_back_after_a_restart_then_the_server_knows(world):
    from aiohttp.test_utils import TestClient, TestServer

    from tests.unit.webapp import build_app, with_desk

    store, users, desk = world

    async def health():
        return {}

    app = with_desk(build_app(store=store, health=health, users=users), desk)
    uid = next(u["id"] for u in await users.list_users() if u["username"] == "a1")
    token, _ = await users.create_session(uid)
    headers = {"Authorization": f"Bearer {token}"}
    desk.hub.publish("a1", {"type": "screen_pop", "n": 1})
    async with TestClient(TestServer(app)) as client:
        ws = await client.ws_connect("/api/desk/ws?since=0", headers=headers)
        hello = await ws.receive_json()
        assert hello["type"] == "hello" and hello["epoch"] == desk.hub.epoch
        assert (await ws.receive_json())["n"] == 1
        assert desk.hub.connections() == 1
        await ws.close()
        from gateway_dev.eventually import aeventually

        # at once, not after the session check (SESSION_CHECK, 30 s): well within 10 s
        await aeventually(lambda: desk.hub.connections() == 0, timeout=10, what="the desk's socket released")
        ws = await client.ws_connect("/api/desk/ws?since=7&epoch=beforeboot", headers=headers)
        events = [await ws.receive_json() for _ in range(3)]
        assert [e["type"] for e in events] == ["hello", "resync", "screen_pop"]
        await ws.close()
        import aiohttp

        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/api/desk/ws", headers={**headers, "Origin": "http://evil.example"})
        assert refused.value.status == 403


async def test_given_a_decided_ticket_when_another_agent_reads_it_then_nothing_the_caller_said_is_shown(world):
    """Probe: agent8003 read agent8002's submitted call's transcript and recording (issue 9, item 1)."""
    from gateway.desk.access import NotYourCall

    store, _, desk = world
    ticket_id = await _call(store, "u1")
    await store.set_transcript("u1", {"text": "我家楼下餐馆油烟很大", "words": [], "model": "m", "rtf": 0.1})
    await store.set_emergency("u1", ["着火"])
    await store.mark_agent("u1", "8001")
    answerer = {"username": "a1", "role": "agent", "agent_id": "8001"}
    other = {"username": "a2", "role": "agent", "agent_id": "8002"}
    boss = {"username": "boss", "role": "supervisor"}
    version = (await store.get_ticket(ticket_id))["version_id"]
    await desk.decide(ticket_id, "submitted", {**SUBMIT, "version_id": version}, answerer, categories=CATEGORIES)

    seen = await desk.view(ticket_id, other)
    assert seen["status"] == "submitted" and seen["summary"] == SUBMIT["summary"]
    assert not {"transcript", "transcript_words", "emergency_words"} & set(seen)
    assert seen["recording_url"] is None and seen["spoken_withheld"] is True
    assert seen["suggestions"]["available"] is False
    with pytest.raises(NotYourCall):
        await desk.check_hearing(ticket_id, other)
    for allowed in (answerer, boss):  # whatever the status
        view = await desk.view(ticket_id, allowed)
        assert view["transcript"] == "我家楼下餐馆油烟很大" and view["emergency_words"] == ["着火"]
        assert "spoken_withheld" not in view
        assert (await desk.check_hearing(ticket_id, allowed))["id"] == ticket_id


async def test_given_the_ticket_still_in_the_journal_when_the_agent_answers_then_the_pop_comes_once_it_is_written(
        world, tmp_path):
    import functools

    from sqlalchemy import exc as sa_exc

    from gateway.ticketing.journal import Journal, JournaledStore

    store, _, desk = world

    class Locked:  # the database says "locked" until opened
        def __init__(self) -> None:
            self.locked = True

        def __getattr__(self, name):
            attr = getattr(store, name)

            @functools.wraps(attr)  # the journal reads the store method's signature through it
            async def call(*args, **kwargs):
                if self.locked and name != "get_call":
                    raise sa_exc.OperationalError("x", {}, Exception("database is locked"))
                return await attr(*args, **kwargs)

            return call

    database = Locked()
    journal = Journal(database, tmp_path / "journal", lookup_timeout=0.2)
    await journal.start()
    desk.journal = journal
    try:
        writes = JournaledStore(journal)
        await writes.start_call(uniqueid="u9", channel="Local/x;1", caller_number="13800138000",
                                dialled_number="12345", line_number="12345", line_name="12345市民服务热线",
                                merge_mode="primary", department=None, flow_version="v1", started_at=NOW)
        await writes.ensure_ticket("u9", category="投诉", channel_kind=None, confidential=False, handled_by=None,
                                   queue="q-complaint", department=None)
        await writes.mark_agent("u9", "8001")
        await desk.on_ami_event(parse_event(_connect("u9", "8001")))
        assert desk.hub.missed("a1", 0) == []  # no pop without its ticket

        database.locked = False
        for _ in range(500):
            if desk.hub.missed("a1", 0):
                break
            await asyncio.sleep(0.02)
        events = desk.hub.missed("a1", 0)
        assert [e["type"] for e in events] == ["screen_pop"] and events[0]["ticket"]["category"] == "投诉"
        assert events[0]["ticket"]["call"]["agent"] == "8001"
    finally:
        await journal.stop()
