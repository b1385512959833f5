"""The desk's manual follow-up over HTTP (both databases): lists, masking, answers, 409s, opt-out."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth.users import UserStore
from gateway.desk.service import DeskService
from gateway.followup.http import FOLLOWUP, add_followup_routes
from gateway.followup.ivr import LivePrompts
from gateway.followup.service import FollowupService, FollowupSettings
from gateway.followup.store import FollowupStore
from gateway.ivr_flows.validate import load_config
from gateway.ticketing.models import AuditEvent, Ticket
from gateway.ticketing.store import TicketStore
from gateway_dev.handled import mark_handled
from tests.unit.webapp import build_app, with_desk

NOW = datetime(2027, 9, 28, 2, 0, tzinfo=timezone.utc)
CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")


@pytest.fixture()
async def client(tmp_path, database_url):
    store = await TicketStore.open(database_url)
    users = UserStore(store)
    tokens = {}
    for name, role, agent in (("a1", "agent", "8001"), ("boss", "supervisor", None)):
        await users.create_user(name, f"{name}-password-1", role, agent_id=agent)
        uid = next(u["id"] for u in await users.list_users() if u["username"] == name)
        tokens[name] = {"Authorization": f"Bearer {(await users.create_session(uid))[0]}"}

    async def health():
        return {}

    app = with_desk(build_app(store=store, health=health, users=users),
                    DeskService(store=store, users=users, recordings_dir=tmp_path, suggester=None, clock=lambda: NOW))
    app[FOLLOWUP] = FollowupService(store=FollowupStore(store), config=lambda: CONFIG, clock=lambda: NOW,
                                    settings=FollowupSettings(), prompts=LivePrompts(prompts_dir=tmp_path,
                                                                                     cache_dir=tmp_path),
                                    instance="t")
    add_followup_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c, store, tokens
    await store.close()


async def handled(store, uid: str) -> int:
    await store.start_call(uniqueid=uid, channel="Local/x;1", caller_number="13800138000", dialled_number="12345",
                           line_number="12345", line_name="12345市民服务热线", merge_mode="primary", department=None,
                           flow_version="v1", started_at=NOW)
    tid = await store.ensure_ticket(uid, category="投诉", channel_kind=None, confidential=True, handled_by=None,
                                    queue="q-complaint", department=None)
    await mark_handled(store, tid, now=NOW)
    return tid


async def test_given_a_handled_ticket_when_an_agent_records_the_answers_then_done_and_a_second_is_409(client):
    c, store, tok = client
    tid = await handled(store, "u1")
    listed = await (await c.get("/api/followups", headers=tok["a1"])).json()
    assert [(i["ticket_id"], i["status"]) for i in listed["items"]] == [(tid, "pending")]
    assert listed["items"][0]["ticket"]["caller_number"] == "138****8000"  # agents: masked in the list
    boss = await (await c.get("/api/followups", headers=tok["boss"])).json()
    assert boss["items"][0]["ticket"]["caller_number"] == "13800138000"
    opened = await (await c.get(f"/api/followups/{tid}", headers=tok["a1"])).json()
    assert opened["ticket"]["caller_number"] == "13800138000"  # to phone the citizen; audited
    resp = await c.post(f"/api/followups/{tid}/answers", headers=tok["a1"],
                        json={"solved": "no", "satisfaction": "basic", "comment": "还有积水"})
    assert resp.status == 200, await resp.text()
    row = await resp.json()
    assert (row["status"], row["via"], row["agent"], row["solved"]) == ("done", "desk", "a1", "no")
    async with store.read_session() as session:
        ticket = await session.get(Ticket, tid)
        actions = (await session.execute(sa.select(AuditEvent.action, AuditEvent.actor)
                                         .where(AuditEvent.object_id == str(tid)))).all()
    assert (ticket.handling, ticket.review_reason) == ("review", "unsolved")
    assert ("followup.opened", "a1") in actions and ("ticket.followup", "a1") in actions
    again = await c.post(f"/api/followups/{tid}/answers", headers=tok["boss"],
                         json={"solved": "yes", "satisfaction": "satisfied"})
    body = await again.json()
    assert again.status == 409 and body["error"] == "followup-done" and "不重复回访" in body["message_zh"]
    done = await (await c.get("/api/followups?status=done", headers=tok["boss"])).json()
    assert [i["ticket_id"] for i in done["items"]] == [tid]


async def test_given_bad_answers_then_400_naming_every_field(client):
    c, store, tok = client
    tid = await handled(store, "u1")
    resp = await c.post(f"/api/followups/{tid}/answers", headers=tok["a1"], json={"solved": 1, "satisfaction": "ok"})
    body = await resp.json()
    assert resp.status == 400 and {p["field"] for p in body["details"]["problems"]} == {"solved", "satisfaction"}
    assert (await c.get("/api/followups?status=nope", headers=tok["a1"])).status == 400
    assert (await c.post(f"/api/followups/{tid}/answers", json={})).status == 401


async def test_given_not_yet_handled_when_answers_then_409_not_handled(client):
    c, store, tok = client
    await store.start_call(uniqueid="u9", channel="Local/x;1", caller_number="13800138000", dialled_number="12345",
                           line_number="12345", line_name="12345", merge_mode="primary", department=None,
                           flow_version="v1", started_at=NOW)
    tid = await store.ensure_ticket("u9", category="投诉", channel_kind=None, confidential=None, handled_by=None,
                                    queue="q-complaint", department=None)
    resp = await c.post(f"/api/followups/{tid}/answers", headers=tok["a1"],
                        json={"solved": "yes", "satisfaction": "satisfied"})
    assert resp.status == 409 and (await resp.json())["error"] == "not-handled"


async def test_given_the_desk_submits_with_no_followup_wanted_then_the_ticket_is_opted_out(client):
    c, store, tok = client
    await store.start_call(uniqueid="u2", channel="Local/x;1", caller_number="13800138000", dialled_number="12345",
                           line_number="12345", line_name="12345", merge_mode="primary", department=None,
                           flow_version="v1", started_at=NOW)
    tid = await store.ensure_ticket("u2", category="投诉", channel_kind=None, confidential=None, handled_by=None,
                                    queue="q-complaint", department=None)
    await store.mark_agent("u2", "8001")
    version = (await store.get_ticket(tid))["version_id"]
    resp = await c.post(f"/api/desk/tickets/{tid}/submit", headers=tok["a1"], json={
        "version_id": version, "category": "投诉", "summary": "噪音", "dispatch_mode": "direct",
        "units": [{"name": "三里屯街道办事处"}], "followup_opt_out": True})
    assert resp.status == 200, await resp.text()
    assert (await store.get_ticket(tid))["followup_opt_out"] is True
    bad = await c.post(f"/api/desk/tickets/{tid}/submit", headers=tok["a1"], json={
        "version_id": version, "category": "投诉", "summary": "噪音", "dispatch_mode": "direct",
        "units": [{"name": "x"}], "followup_opt_out": "yes"})
    assert bad.status == 400
