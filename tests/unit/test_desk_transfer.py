"""Issue 11 item 7: the desk's emergency transfer (110/119/120/122) -- configuration, dialplan and
the service on a real, migrated SQLite database, with a recording stand-in for Asterisk's AMI."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from gateway.desk.access import NotYourCall, transfer_choices
from gateway.desk.service import DeskService
from gateway.errors import ConfigError, GatewayError, PbxError
from gateway.ivr_flows.model import EmergencyTransfer
from gateway.ivr_flows.validate import load_config
from gateway.pbx import dialplan
from gateway.ticketing.store import TicketStore
from gateway.auth.users import UserStore
from tests.unit.webapp import build_app, with_desk

CONFIG = Path(__file__).resolve().parents[2] / "config"
NOW = datetime(2027, 3, 3, 2, 0, tzinfo=timezone.utc)
TRANSFERS = {"110": EmergencyTransfer("110", "公安110指挥中心", dial="PJSIP/110@pstn"),
             "120": EmergencyTransfer("120", "120急救中心", queue="q-emergency")}
AGENT, OTHER, BOSS = ({"username": "a1", "role": "agent", "agent_id": "8001"},
                      {"username": "a2", "role": "agent", "agent_id": "8002"},
                      {"username": "boss", "role": "supervisor", "agent_id": None})


class RecordingAmi:
    """Answers like Asterisk's AMI: ``Response: Error`` (a PbxError) for a channel that is gone."""

    def __init__(self) -> None:
        self.actions: list[dict] = []
        self.gone: set[str] = set()

    async def action(self, fields: dict, **_):
        self.actions.append(dict(fields))
        if fields.get("Channel") in self.gone:
            raise PbxError(f"AMI {fields['Action']}: No such channel")
        return {"Response": "Success"}


# -- configuration -----------------------------------------------------------------------------
def _with_transfers(config_dir: Path, block: str) -> None:
    path = config_dir / "hotlines.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("emergency_transfers:")
    end = text.index("\n\n", start)
    path.write_text(text[:start] + block.strip() + text[end:], encoding="utf-8")


def test_given_the_shipped_config_when_loaded_then_every_emergency_service_has_a_destination():
    transfers = load_config(CONFIG).emergency_transfers
    assert sorted(transfers) == ["110", "119", "120", "122"]
    assert transfers["120"].queue == "q-emergency" and transfers["110"].dial
    assert all(t.name for t in transfers.values())
    assert [c["service"] for c in transfer_choices(transfers)] == ["110", "119", "120", "122"]
    assert "dial" not in transfer_choices(transfers)[0]  # the desk gets names, not dial strings


@pytest.mark.parametrize("block, field, message", [
    ('emergency_transfers:\n  "120": {name: 急救, queue: q-nosuch}', "queue", "unknown queue"),
    ('emergency_transfers:\n  "120": {name: 急救, queue: q-emergency, dial: PJSIP/120@pstn}', "120", "exactly one"),
    ('emergency_transfers:\n  "120": {name: 急救}', "120", "exactly one"),
    ('emergency_transfers:\n  "120": {name: 急救, dial: "PJSIP/120@pstn,,tT"}', "dial", "dial string"),
    ('emergency_transfers:\n  "120": {name: 急救, dial: "Local/1${EXTEN}@x"}', "dial", "dial string"),
    ('emergency_transfers:\n  "999": {name: 急救, dial: PJSIP/999@pstn}', "999", "unknown key"),
    ('emergency_transfers:\n  "120": {name: 急救, dial: PJSIP/120@pstn, timeout: 3}', "timeout", "unknown key"),
])
def test_given_a_bad_emergency_transfer_when_loaded_then_refused_naming_the_field(config_dir, block, field, message):
    _with_transfers(config_dir, block)
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    problems = [p.as_dict() for p in caught.value.problems]
    assert any(str(p.get("field", "")).endswith(field) and message in p["message"] for p in problems), problems


def test_given_unquoted_numbers_when_loaded_then_they_name_the_services(config_dir):
    _with_transfers(config_dir, "emergency_transfers:\n  120: {name: 急救, dial: PJSIP/120@pstn}")
    assert list(load_config(config_dir).emergency_transfers) == ["120"]


def test_given_transfers_when_rendered_then_the_dialplan_dials_or_queues_through_a_local_leg():
    config = load_config(CONFIG)
    text = "\n".join(dialplan._emergency_transfers(config))
    assert f"[{dialplan.EMERGENCY_CONTEXT}]" in text
    assert "exten => 110,1,NoOp(gateway: desk transfer to 110)" in text
    assert f" same => n,Dial({config.emergency_transfers['110'].dial},120)" in text
    # the queue through a Local channel: the call keeps its own queue and agent (who keeps the ticket)
    assert " same => n,Dial(Local/120@gw-emergency-queue/n,120)" in text
    assert "exten => 120,1,Queue(q-emergency,,,,${GW_QUEUE_WAIT})" in text


# -- the service -------------------------------------------------------------------------------
@pytest.fixture()
async def world(tmp_path, database_url):
    url = database_url  # migrated: SQLite and PostgreSQL (tests/dbfixtures.py)
    store = await TicketStore.open(url)
    ami = RecordingAmi()
    desk = DeskService(store=store, users=UserStore(store), recordings_dir=tmp_path / "rec", suggester=None,
                       clock=lambda: NOW, ami=ami, transfers=lambda: TRANSFERS)
    yield store, desk, ami
    await store.close()


async def _answered_call(store: TicketStore, uid: str, agent: str = "8001") -> int:
    await store.start_call(uniqueid=uid, channel="Local/x;1", caller_number="13800138000", dialled_number="12345",
                           line_number="12345", line_name="12345市民服务热线", merge_mode="primary", department=None,
                           flow_version="v1", started_at=NOW)
    ticket_id = await store.ensure_ticket(uid, category="求助", channel_kind=None, confidential=False,
                                          handled_by=None, queue="q-help", department=None)
    await store.mark_agent(uid, agent)
    return ticket_id


async def test_given_the_answering_agent_when_transferring_to_120_then_the_caller_is_redirected_and_audited(world):
    store, desk, ami = world
    ticket_id = await _answered_call(store, "u1")

    result = await desk.transfer(ticket_id, "120", AGENT)

    assert ami.actions == [{"Action": "Redirect", "Channel": "u1", "Context": "gw-emergency-transfer",
                            "Exten": "120", "Priority": "1"}]
    assert result["service"] == "120" and result["name"] == "120急救中心" and result["by"] == "a1"
    audit = [e for e in await store.list_audit("ticket", str(ticket_id)) if e["action"] == "ticket.transferred"]
    assert len(audit) == 1 and audit[0]["actor"] == "a1"
    assert audit[0]["details"]["service"] == "120" and audit[0]["details"]["queue"] == "q-emergency"
    assert audit[0]["details"]["uniqueid"] == "u1" and audit[0]["at"]
    assert desk.counters["transfers"] == 1
    # the supervisor's board: no longer talking to the agent who answered
    desk.board.ivr_started("u1", line="12345", caller="13800138000", now=0)
    desk.board.transferred("u1", "120", 5)
    assert [(t["uniqueid"], t["agent"]) for t in desk.board.snapshot(6)["talking"]] == [("u1", "120")]

    with pytest.raises(GatewayError) as again:  # one transfer per call
        await desk.transfer(ticket_id, "110", AGENT)
    assert again.value.status_code == 409 and again.value.error_id == "already-transferred"
    assert len(ami.actions) == 1


async def test_given_another_agent_when_transferring_then_refused_and_a_supervisor_may(world):
    store, desk, ami = world
    ticket_id = await _answered_call(store, "u1")
    with pytest.raises(NotYourCall):
        await desk.transfer(ticket_id, "110", OTHER)
    assert ami.actions == []
    result = await desk.transfer(ticket_id, "110", BOSS)
    assert result["kind"] == "dial" and ami.actions[0]["Exten"] == "110"
    audit = [e for e in await store.list_audit("ticket", str(ticket_id)) if e["action"] == "ticket.transferred"]
    assert audit[0]["actor"] == "boss" and audit[0]["details"]["dial"] == "PJSIP/110@pstn"


async def test_given_an_ended_call_when_transferring_then_refused_clearly_without_touching_asterisk(world):
    store, desk, ami = world
    ticket_id = await _answered_call(store, "u1")
    await store.finish_call("u1", hangup_cause=16, hangup_cause_txt="Normal Clearing", ended_at=NOW)
    with pytest.raises(GatewayError) as caught:
        await desk.transfer(ticket_id, "120", AGENT)
    assert caught.value.status_code == 409 and caught.value.error_id == "call-ended"
    assert "通话已结束" in caught.value.message and "ended" in caught.value.message
    assert ami.actions == []


async def test_given_a_channel_gone_meanwhile_when_transferring_then_call_ended_and_the_attempt_audited(world):
    store, desk, ami = world
    ticket_id = await _answered_call(store, "u1")
    ami.gone.add("u1")  # hung up a moment ago: Asterisk knows, the Hangup event is still on its way
    with pytest.raises(GatewayError) as caught:
        await desk.transfer(ticket_id, "120", AGENT)
    assert caught.value.error_id == "call-ended"
    actions = [e["action"] for e in await store.list_audit("ticket", str(ticket_id))]
    assert "ticket.transfer_failed" in actions and "ticket.transferred" not in actions


async def test_given_a_service_without_destination_when_transferring_then_400(world):
    store, desk, ami = world
    ticket_id = await _answered_call(store, "u1")
    with pytest.raises(GatewayError) as caught:
        await desk.transfer(ticket_id, "119", AGENT)
    assert caught.value.status_code == 400 and caught.value.details["configured"] == ["110", "120"]
    assert ami.actions == []


# -- over HTTP: the route, its body, CSRF; the pages' modules ------------------------------------
@pytest.fixture()
async def client(world):
    from aiohttp.test_utils import TestClient, TestServer

    store, desk, ami = world
    users = desk.users
    for name, role, agent in (("a1", "agent", "8001"), ("a2", "agent", "8002"), ("boss", "supervisor", None)):
        await users.create_user(name, f"{name}-password-1", role, agent_id=agent)

    async def health():
        return {"status": "ok"}

    app = with_desk(build_app(store=store, health=health, users=users), desk)
    async with TestClient(TestServer(app)) as c:
        yield c, store, ami


async def _login(c, name: str) -> str:
    resp = await c.post("/api/login", json={"username": name, "password": f"{name}-password-1"},
                        headers={"Origin": f"http://{c.host}:{c.port}"})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["csrf_token"]


async def test_given_the_desk_page_when_its_modules_load_then_each_is_served_as_javascript(client):
    c, _, _ = client
    for path in ("/static/desk/main.js", "/static/desk/transfer.js", "/static/common.js", "/static/labels.js",
                 "/static/supervisor.js", "/static/desk.css"):
        resp = await c.get(path)
        assert resp.status == 200, path
        assert resp.headers["Content-Type"].split(";")[0] in ("text/javascript", "text/css"), path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/static/desk.html", "/static/../desk/http.py", "/static/desk/../../desk/http.py",
                 "/static/nosuch.js", "/static/desk/a/b.js", "/static/desk.js"):
        assert (await c.get(path)).status == 404, path


async def test_given_http_when_transferring_then_csrf_body_and_who_are_checked(client):
    c, store, ami = client
    ticket_id = await _answered_call(store, "u9")
    url = f"/api/desk/tickets/{ticket_id}/transfer"
    csrf = await _login(c, "a2")  # not the agent who answered
    assert (await c.post(url, json={"service": "120"})).status == 403  # no CSRF token
    resp = await c.post(url, json={"service": "120"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 403 and (await resp.json())["error"] == "not-your-call"
    csrf = await _login(c, "a1")
    for body, field in (({"service": "911"}, "service"), ({"service": 120}, "service"), ({}, "service"),
                        ({"service": "120", "extra": 1}, "extra")):
        resp = await c.post(url, json=body, headers={"X-CSRF-Token": csrf})
        answer = await resp.json()
        assert resp.status == 400 and answer["details"]["field"] == field, body
        assert all(p["message_zh"] for p in answer["details"]["problems"]), answer
    assert ami.actions == []
    resp = await c.post(url, json={"service": "120"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 200 and (await resp.json())["service"] == "120"
    assert [a["Action"] for a in ami.actions] == ["Redirect"]
    inbox = await (await c.get("/api/desk/inbox")).json()
    assert inbox["transfers"] == [{"service": "110", "name": "公安110指挥中心", "kind": "dial"},
                                  {"service": "120", "name": "120急救中心", "kind": "queue"}]


async def test_given_a_transferred_caller_when_the_emergency_desk_answers_then_its_agent_is_told_whose_call(world):
    """The queue is reached through a Local leg: AgentConnect names the leg's uniqueid and the caller's
    linkedid. The emergency agent's desk gets a transferred_call notice, not "a call without a ticket"."""
    from gateway.pbx.ami_events import parse_event

    store, desk, _ = world
    await desk.users.create_user("e1", "e1-password-1", "agent", agent_id="8003")
    ticket_id = await _answered_call(store, "u1")
    await desk.transfer(ticket_id, "120", AGENT)
    await desk.on_ami_event(parse_event({
        "Event": "AgentConnect", "Uniqueid": "1796.5", "Linkedid": "u1", "Channel": "Local/120@gw-emergency-queue;2",
        "Queue": "q-emergency", "MemberName": "坐席三", "Interface": "Local/8003@gw-agents/n", "HoldTime": "0"}))
    events = desk.hub.missed("e1", 0)
    assert [(e["type"], e["ticket_id"], e["service"]) for e in events] == [("transferred_call", ticket_id, "120")]
    assert desk.counters["pops_without_ticket"] == 0
    assert (await store.get_call("u1"))["agent"] == "8001"  # the ticket stays with the agent who answered
