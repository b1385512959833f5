"""The HTTP edge on a real SQLite store: reads, and hostile requests answered with clear 4xx."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.ticketing.store import TicketStore
from gateway.auth.users import UserStore
from tests.unit.webapp import build_app


@pytest.fixture()
async def client(tmp_path, database_url):
    url = database_url  # migrated: SQLite and PostgreSQL (tests/dbfixtures.py)
    store = await TicketStore.open(url)
    await store.start_call(uniqueid="u-1", channel="Local/x;1", caller_number="13800138000", dialled_number="12315",
                           line_number="12315", line_name="消费者投诉举报热线", merge_mode="dual_number",
                           department="市市场监督管理局", flow_version="v1", started_at=datetime.now(timezone.utc))
    await store.record_step("u-1", {"node": "type_menu", "key": "4"})
    await store.ensure_ticket("u-1", category="投诉", channel_kind=None, confidential=True, handled_by=None,
                              queue="q-12315", department="市市场监督管理局")

    async def health():
        return {"status": "ok" if await store.ping() else "degraded"}

    users = UserStore(store)
    user_id = await users.create_user("sup", "supervisor-pw-123", "supervisor")
    token, _csrf = await users.create_session(user_id)
    agent_id = await users.create_user("ag", "agent-pw-12345", "agent", agent_id="8001")
    agent_token, _csrf = await users.create_session(agent_id)
    app = build_app(store=store, health=health, users=users)
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {token}"}) as c:
        c.agent_token = agent_token
        yield c
    await store.close()


async def test_given_a_ticket_when_listed_and_read_then_it_carries_the_call(client):
    resp = await client.get("/api/tickets?line=12315")
    body = await resp.json()
    assert resp.status == 200 and body["total"] == 1
    ticket = body["items"][0]
    assert ticket["category"] == "投诉" and ticket["status"] == "draft" and ticket["confidential"] is True
    resp = await client.get(f"/api/tickets/{ticket['id']}")
    assert (await resp.json())["menu_path"] == [{"node": "type_menu", "key": "4"}]
    resp = await client.get("/api/calls/u-1")
    assert (await resp.json())["ticket_id"] == ticket["id"]


async def test_given_the_health_route_when_the_database_is_up_then_ok(client):
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"


@pytest.mark.parametrize("path,status,error", [
    ("/api/tickets/999", 404, "not-found"),
    ("/api/tickets/abc", 400, "bad-request"),
    ("/api/tickets/\u0661", 400, "bad-request"),  # probe: Arabic-Indic digits served ticket 1 (int() takes them)
    ("/api/tickets/1%20OR%201=1", 400, "bad-request"),
    ("/api/tickets?limit=-5", 400, "bad-request"),
    ("/api/tickets?limit=9999999999999", 400, "bad-request"),
    ("/api/tickets?sort=evil", 400, "bad-request"),
    ("/api/calls/..%2F..%2Fetc", 400, "bad-request"),
    ("/api/calls/nosuch", 404, "not-found"),
])
async def test_given_a_hostile_request_when_served_then_a_clear_4xx(client, path, status, error):
    resp = await client.get(path)
    assert resp.status == status
    assert (await resp.json())["error"] == error


async def test_given_a_huge_body_when_posted_then_refused_and_the_server_keeps_serving(client):
    resp = await client.post("/api/login", data=b"x" * (1024 * 1024), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await client.get("/healthz")).status == 200


async def test_given_a_limit_above_the_cap_when_listed_then_it_is_clamped(client):
    body = await (await client.get("/api/tickets?limit=5000")).json()
    assert body["limit"] == 200


async def test_given_no_session_when_reading_tickets_or_calls_then_401(client):
    for path in ("/api/tickets", "/api/tickets/1", "/api/calls/u-1"):
        resp = await client.get(path, headers={"Authorization": ""})
        assert resp.status == 401, path


async def test_given_an_agent_when_reading_tickets_then_numbers_are_masked(client):
    headers = {"Authorization": f"Bearer {client.agent_token}"}
    ticket = (await (await client.get("/api/tickets", headers=headers)).json())["items"][0]
    assert ticket["caller_number"] == "138****8000" and ticket["caller_number_masked"] is True
    full = (await (await client.get("/api/tickets")).json())["items"][0]  # the supervisor
    assert full["caller_number"] == "13800138000"
