"""Early warnings over HTTP (both databases): list, detail without callers' numbers, 签收, 转交 to a
unit (its webhook and its list), bad input as 400s in both languages, 409s, the audit, and the
supervisors' webhook delivered to a real local aiohttp server (signed, retried, failures listed)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth.users import UserStore
from gateway.desk.catalogue_load import load_catalogue
from gateway.supervision.warnings import WarningSettings, Webhook
from gateway.supervision.warnings_http import add_warning_routes
from gateway.supervision.warnings_service import WARNINGS, WarningService
from gateway.ticketing.models import AuditEvent, UnitHookDelivery
from gateway.units.hooks import MAX_ATTEMPTS
from gateway_dev.eventually import aeventually
from tests.unit import warnings_data as data
from tests.unit.webapp import build_app

CATALOGUE = load_catalogue(Path(__file__).resolve().parents[2] / "config" / "catalogue.yaml")
UNITS = {u.id: u.name for u in CATALOGUE.units.values()}
SECRET = "warnings-secret-0123456789"
AT = data.START + timedelta(days=3)


class Receiver:
    """A real HTTP server on 127.0.0.1 standing in for the supervisors' system."""

    def __init__(self) -> None:
        self.got: list[tuple[dict, bytes]] = []
        self.answers: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(status=self.answers.pop(0) if self.answers else 204)


@pytest.fixture()
async def world(database_url):
    receiver = Receiver()
    hook_app = web.Application()
    hook_app.router.add_post("/hook", receiver.handle)
    hook_server = TestServer(hook_app, host="127.0.0.1")
    await hook_server.start_server()
    from gateway.ticketing.store import TicketStore

    store = await TicketStore.open(database_url)
    users = UserStore(store)
    tokens = {}
    for name, role, unit in (("boss", "supervisor", None), ("a1", "agent", None), ("water", "unit", "water")):
        await users.create_user(name, f"{name}-password-1", role, unit_id=unit)
        uid = next(u["id"] for u in await users.list_users() if u["username"] == name)
        tokens[name] = {"Authorization": f"Bearer {(await users.create_session(uid))[0]}"}

    async def health():
        return {}

    clock = {"now": AT + timedelta(days=2)}
    service = WarningService(store=store, clock=lambda: clock["now"], catalogue=CATALOGUE,
                             unit_names=lambda: UNITS, unit_hooked=lambda uid: uid == "water",
                             settings=WarningSettings(webhook=Webhook(str(hook_server.make_url("/hook")), SECRET)))
    app = build_app(store=store, health=health, users=users)
    app[WARNINGS] = service
    add_warning_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield client, store, tokens, service, receiver, clock
    await store.close()
    await hook_server.close()


async def _repeat_alert(store, service) -> int:
    made = [data.Made(AT + timedelta(hours=h), "water-outage", "wangjing", "望京西园3区2号楼", "家里停水了")
            for h in (1, 5, 30)]
    made.append(data.Made(AT + timedelta(hours=9), "water-outage", "wangjing", "望京西园3区2号楼", "停水",
                          confidential=True))
    await data.insert(store, made)
    (alert_id,) = (await service.run_once())["created"]
    return alert_id


async def test_given_an_alert_when_listed_opened_acknowledged_and_forwarded_then_each_step_shows_and_is_audited(world):
    c, store, tok, service, receiver, clock = world
    alert_id = await _repeat_alert(store, service)
    listed = await (await c.get("/api/supervisor/warnings", headers=tok["boss"])).json()
    assert [(i["id"], i["kind"], i["status"], i["tickets"]) for i in listed["items"]] == [(alert_id, "repeat", "open", 4)]
    detail = await (await c.get(f"/api/supervisor/warnings/{alert_id}", headers=tok["boss"])).json()
    assert detail["units"] == [{"id": "water", "name": "市自来水集团"}] and detail["matter_name"] == "停水"
    assert "13800138000" not in json.dumps(detail, ensure_ascii=False)
    assert [t["summary"] for t in detail["ticket_list"] if t["confidential"]] == [None]

    resp = await c.post(f"/api/supervisor/warnings/{alert_id}/acknowledge", headers=tok["boss"], json={"note": "已知悉"})
    assert resp.status == 200 and (await resp.json())["status"] == "acknowledged"
    active = await (await c.get("/api/supervisor/warnings?status=active", headers=tok["boss"])).json()
    assert [(i["id"], i["status"], i["acknowledged_by"]) for i in active["items"]] == [(alert_id, "acknowledged", "boss")]
    again = await c.post(f"/api/supervisor/warnings/{alert_id}/acknowledge", headers=tok["boss"])
    body = await again.json()
    assert again.status == 409 and body["error"] == "warning-state" and "签收" in body["message_zh"]
    resp = await c.post(f"/api/supervisor/warnings/{alert_id}/forward", headers=tok["boss"],
                        json={"unit_id": "water", "note": "请排查望京西园供水管网"})
    forwarded = await resp.json()
    assert resp.status == 200 and (forwarded["status"], forwarded["forwarded_unit_name"]) == ("forwarded", "市自来水集团")
    assert [i["id"] for i in (await (await c.get("/api/supervisor/warnings?status=forwarded",
                                                 headers=tok["boss"])).json())["items"]] == [alert_id]
    mine = await (await c.get("/api/unit/warnings", headers=tok["water"])).json()
    assert [i["id"] for i in mine["items"]] == [alert_id]
    assert (await c.get(f"/api/unit/warnings/{alert_id}", headers=tok["water"])).status == 200
    async with store.read_session() as session:
        actions = (await session.execute(sa.select(AuditEvent.action, AuditEvent.actor).where(
            AuditEvent.object_type == "warning", AuditEvent.object_id == str(alert_id)).order_by(AuditEvent.id))).all()
        unit_hook = (await session.execute(sa.select(UnitHookDelivery))).scalars().all()
    assert actions == [("warning.created", "warnings"), ("warning.acknowledged", "boss"), ("warning.forwarded", "boss")]
    assert [(d.unit_id, d.event) for d in unit_hook] == [("water", "warning")]  # sent by the units' own job
    assert "13800138000" not in json.dumps(unit_hook[0].payload, ensure_ascii=False)


async def test_given_bad_input_then_400s_in_both_languages_and_roles_are_enforced(world):
    c, store, tok, service, receiver, clock = world
    alert_id = await _repeat_alert(store, service)
    cases = [
        ("GET", "/api/supervisor/warnings?status=nope", None, "status"),
        ("GET", "/api/supervisor/warnings/x1", None, "warning_id"),
        ("POST", f"/api/supervisor/warnings/{alert_id}/forward", {"unit_id": "nowhere"}, "unit_id"),
        ("POST", f"/api/supervisor/warnings/{alert_id}/forward", {}, "unit_id"),
        ("POST", f"/api/supervisor/warnings/{alert_id}/forward", {"unit_id": "water", "colour": 1}, "colour"),
        ("POST", f"/api/supervisor/warnings/{alert_id}/acknowledge", {"note": 5}, "note"),
    ]
    for method, path, body, field in cases:
        resp = await c.request(method, path, headers=tok["boss"], json=body)
        answer = await resp.json()
        assert resp.status == 400, (path, answer)
        assert answer["message_zh"] and field in {p["field"] for p in answer["details"]["problems"]}, answer
    assert (await c.get("/api/supervisor/warnings/999", headers=tok["boss"])).status == 404
    assert (await c.get("/api/supervisor/warnings", headers=tok["a1"])).status == 403
    assert (await c.get("/api/supervisor/warnings")).status == 401
    assert (await c.get(f"/api/unit/warnings/{alert_id}", headers=tok["water"])).status == 404  # not forwarded to it


async def test_given_the_webhook_when_an_alert_opens_then_a_real_server_gets_it_signed_and_failures_are_retried(world):
    c, store, tok, service, receiver, clock = world
    receiver.answers.extend([503])
    alert_id = await _repeat_alert(store, service)  # the run queues the notice and sends it at once: 503
    assert len(receiver.got) == 1
    failing = await (await c.get("/api/supervisor/warnings/deliveries", headers=tok["boss"])).json()
    assert [(d["alert_id"], d["attempts"], d["last_error"]) for d in failing["items"]] == [(alert_id, 1, "HTTP 503")]
    clock["now"] += timedelta(seconds=31)
    await service.tick()
    await aeventually(lambda: len(receiver.got) == 2)
    headers, body = receiver.got[1]
    assert headers["X-Gateway-Signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    sent = json.loads(body)
    assert sent["event"] == "warning.created" and sent["alert"]["id"] == alert_id and len(sent["tickets"]) == 4
    assert "13800138000" not in body.decode() and headers["X-Gateway-Event"] == "warning.created"
    assert (await (await c.get("/api/supervisor/warnings/deliveries", headers=tok["boss"])).json())["items"] == []
    # a receiver that stays down: given up after MAX_ATTEMPTS, and listed
    receiver.answers.extend([500] * MAX_ATTEMPTS)
    await c.post(f"/api/supervisor/warnings/{alert_id}/forward", headers=tok["boss"], json={"unit_id": "water"})
    for _ in range(MAX_ATTEMPTS):
        await service.sender.run_once(clock["now"])
        clock["now"] += timedelta(hours=1, seconds=1)
    failing = await (await c.get("/api/supervisor/warnings/deliveries", headers=tok["boss"])).json()
    assert failing["items"][0]["failed_at"] and failing["items"][0]["attempts"] == MAX_ATTEMPTS
    assert failing["failed"] == 1


async def test_given_a_run_on_demand_then_it_answers_what_it_did(world):
    c, store, tok, service, receiver, clock = world
    resp = await c.post("/api/supervisor/warnings/run", headers=tok["boss"])
    assert resp.status == 200 and (await resp.json())["created"] == []


async def test_given_an_acknowledged_alert_when_a_later_run_finds_more_tickets_then_it_is_notified_again_as_grown(world):
    c, store, tok, service, receiver, clock = world
    alert_id = await _repeat_alert(store, service)  # 4 tickets, notified at 4
    await c.post(f"/api/supervisor/warnings/{alert_id}/acknowledge", headers=tok["boss"])
    more = [data.Made(AT + timedelta(hours=40 + h), "water-outage", "wangjing", "望京西园3区2号楼", "又停水了")
            for h in (1, 2)]
    await data.insert(store, more, first_id=5)
    run = await service.run_once()
    assert run["created"] == [] and run["grown"] == [alert_id]
    listed = await (await c.get("/api/supervisor/warnings?status=open", headers=tok["boss"])).json()
    (item,) = listed["items"]
    assert item["status"] == "open" and item["count"] == 6  # acknowledged when smaller: open again
    assert (item["grown"]["from_count"], item["grown"]["to_count"]) == (4, 6) and item["grown"]["at"]
    await aeventually(lambda: any(json.loads(b)["event"] == "warning.grown" for _, b in receiver.got))
    sent = next(json.loads(b) for _, b in receiver.got if json.loads(b)["event"] == "warning.grown")
    assert sent["alert"]["grown"]["from_count"] == 4 and sent["alert"]["count"] == 6 and len(sent["tickets"]) == 6
    # one ticket more is not enough (grown.min_more = 2): updated, not notified again
    await data.insert(store, [data.Made(AT + timedelta(hours=44), "water-outage", "wangjing", "望京西园3区2号楼",
                                        "停水")], first_id=7)
    run = await service.run_once()
    assert run["grown"] == [] and run["updated"] == 1
    async with store.read_session() as session:
        grown = (await session.execute(sa.select(AuditEvent.details).where(
            AuditEvent.action == "warning.grown", AuditEvent.object_id == str(alert_id)))).scalars().all()
    assert [(g["from"], g["to"], g["reopened"]) for g in grown] == [(4, 6, True)]


async def test_given_a_forwarded_alert_when_forwarded_again_then_the_new_unit_holds_it_and_each_is_audited(world):
    c, store, tok, service, receiver, clock = world
    alert_id = await _repeat_alert(store, service)
    other = next(u for u in UNITS if u != "water")
    for unit in ("water", other, "water"):
        resp = await c.post(f"/api/supervisor/warnings/{alert_id}/forward", headers=tok["boss"],
                            json={"unit_id": unit, "note": f"转 {unit}"})
        body = await resp.json()
        assert resp.status == 200 and (body["status"], body["forwarded_unit_id"]) == ("forwarded", unit), body
        mine = await (await c.get("/api/unit/warnings", headers=tok["water"])).json()
        assert [i["id"] for i in mine["items"]] == ([alert_id] if unit == "water" else [])
    detail = await (await c.get(f"/api/supervisor/warnings/{alert_id}", headers=tok["boss"])).json()
    assert [(f["unit_id"], f["unit_name"], f["by"]) for f in detail["forwards"]] == [
        ("water", UNITS["water"], "boss"), (other, UNITS[other], "boss"), ("water", UNITS["water"], "boss")]
    assert "forwards" not in await (await c.get(f"/api/unit/warnings/{alert_id}", headers=tok["water"])).json()
    async with store.read_session() as session:
        audits = (await session.execute(sa.select(AuditEvent.details).where(
            AuditEvent.action == "warning.forwarded", AuditEvent.object_id == str(alert_id))
            .order_by(AuditEvent.id))).scalars().all()
        unit_hook = (await session.execute(sa.select(UnitHookDelivery.unit_id, UnitHookDelivery.event))).all()
    assert [(a["again"], a["from_unit_id"]) for a in audits] == [(False, None), (True, "water"), (True, other)]
    assert unit_hook == [("water", "warning"), ("water", "warning")]  # the other unit has no webhook
    assert await service.sender.run_once(clock["now"]) == 3  # the supervisors' webhook: each forwarding
    assert [json.loads(b)["alert"]["forwarded_unit_id"] for _, b in receiver.got
            if json.loads(b)["event"] == "warning.forwarded"] == ["water", other, "water"]


async def test_given_a_forwarded_alert_when_it_grows_then_it_stays_forwarded_and_the_unit_is_told_too(world):
    c, store, tok, service, receiver, clock = world
    alert_id = await _repeat_alert(store, service)
    await c.post(f"/api/supervisor/warnings/{alert_id}/forward", headers=tok["boss"], json={"unit_id": "water"})
    more = [data.Made(AT + timedelta(hours=40 + h), "water-outage", "wangjing", "望京西园3区2号楼", "又停水了")
            for h in (1, 2)]
    await data.insert(store, more, first_id=5)
    assert (await service.run_once())["grown"] == [alert_id]
    mine = await (await c.get("/api/unit/warnings", headers=tok["water"])).json()
    (item,) = mine["items"]
    assert item["status"] == "forwarded" and (item["grown"]["from_count"], item["grown"]["to_count"]) == (4, 6)
    async with store.read_session() as session:
        unit_hook = (await session.execute(sa.select(UnitHookDelivery.unit_id, UnitHookDelivery.event,
                                                     UnitHookDelivery.payload).order_by(UnitHookDelivery.id))).all()
    assert [(u, e) for u, e, _ in unit_hook] == [("water", "warning"), ("water", "warning.grown")]
    assert unit_hook[1][2]["alert"]["count"] == 6 and "13800138000" not in json.dumps(unit_hook[1][2])
