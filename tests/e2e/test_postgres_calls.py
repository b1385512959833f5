"""The real system on PostgreSQL: sandbox Asterisk + ``gateway serve`` whose DATABASE_URL is
a private PostgreSQL 15 server (``System(database="postgresql")``, one for this file).

A representative path through every store: a keyed call reaches its queue with its ticket,
steps and recording; an agent's desk gets the pop and submits the ticket; an admin applies
a configuration change and rolls it back. Each outcome is also read straight from the
PostgreSQL database (psql), so the rows are known to be there and not in a SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway_dev.desk_socket import DeskSocket
from gateway_dev.simcall import CallScript, place_call
from gateway_dev.system import System, say_zh
from tests.e2e.conftest import running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def pg_system():
    # tell_number=False: the callers do not hear their ticket number read (12 s a call; the number is
    # still drawn, here from PostgreSQL; the reading is test_ticket_number.py's)
    sysm = System(prefix="gw-e2e-pg-", log_level="INFO", database="postgresql", tell_number=False)
    with running(sysm, logs=lambda s: [(s.log_path, "e2e-postgres-gateway.log")]):
        yield sysm


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return say_zh("建议在小区门口增加一个公交站", tmp_path_factory.mktemp("pg") / "caller.wav")


def _sql(system: System, query: str) -> list[list[str]]:
    """Rows of ``query`` read straight from the gateway's PostgreSQL database."""
    out = system.postgres.psql(query, "gateway")
    return [line.split("|") for line in out.splitlines() if line]


def test_given_postgresql_when_a_caller_chooses_complaint_then_ticket_steps_and_recording_are_in_it(
        pg_system, speech):
    assert pg_system.env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert not (pg_system.state / "var" / "gateway.db").exists()
    proc = pg_system.cli("call", "12345", "--from", "13800138000", "--digits", "41", "--say", str(speech), "--json")
    result = json.loads(proc.stdout)

    assert result["ticket_id"] is not None and result["hangup_cause"] == 16
    status, ticket = pg_system.http(f"/api/tickets/{result['ticket_id']}", token=pg_system.token())
    assert status == 200, ticket
    assert (ticket["status"], ticket["category"], ticket["queue"], ticket["confidential"]) == (
        "draft", "投诉", "q-complaint", True)
    assert [step["node"] for step in ticket["menu_path"]][:6] == [
        "hours", "greeting", "emergency_notice", "korean_hint", "hot_topics", "type_menu"]
    recording = Path(ticket["recording_path"])
    assert recording.is_file() and recording.stat().st_size > 8000
    assert ticket["recording_duration_ms"] > 1000
    status, call = pg_system.http(f"/api/calls/{result['uniqueid']}", token=pg_system.token())
    assert call["status"] == "ended" and call["queue"] == "q-complaint" and call["agent"]

    rows = _sql(pg_system, "SELECT t.id, t.category, t.queue, c.status, c.hangup_cause, t.recording_path "
                           "FROM tickets t JOIN calls c ON c.id = t.call_id "
                           f"WHERE c.uniqueid = '{result['uniqueid']}'")
    assert rows == [[str(result["ticket_id"]), "投诉", "q-complaint", "ended", "16", str(recording)]]
    steps = _sql(pg_system, f"SELECT json_array_length(menu_path::json) FROM calls "
                            f"WHERE uniqueid = '{result['uniqueid']}'")
    assert int(steps[0][0]) >= 6


async def _call_with_desk_open(system: System, token: str, script: CallScript) -> tuple[dict, list[dict]]:
    async with DeskSocket(f"http://127.0.0.1:{system.http_port}", token, since=0) as desk:
        popped = asyncio.ensure_future(desk.next("screen_pop", timeout=150))
        try:
            result = await place_call(system.settings, script)
            await popped
        finally:
            popped.cancel()
    return result, desk.events


def test_given_postgresql_when_an_agents_call_connects_then_the_desk_pops_and_the_submission_is_stored(
        pg_system, speech):
    agent = pg_system.login("pg-8002", "pg-8002-password", "agent")
    pg_system.cli("user", "agent", "pg-8002", "8002")
    # 2 = 建议 -> q-suggest, whose only member is agent 8002
    script = CallScript(number="12345", caller="13700000001", digits="22", say=speech)
    result, events = asyncio.run(_call_with_desk_open(pg_system, agent, script))
    pop = next(e for e in events if e["type"] == "screen_pop")
    ticket = pop["ticket"]
    assert ticket["id"] == result["ticket_id"] and pop["queue"] == "q-suggest" and ticket["category"] == "建议"

    body = {"version_id": ticket["version_id"], "category": "建议", "urgency": "normal", "place": "朝阳区",
            "summary": "建议在小区门口增加公交站", "dispatch_mode": "direct",
            "units": [{"id": "transport", "name": "市交通委", "kind": "city_department"}]}
    status, done = pg_system.http(f"/api/desk/tickets/{ticket['id']}/submit", method="POST", body=body, token=agent)
    assert status == 200 and done["status"] == "submitted" and done["decided_by"] == "pg-8002"
    status, again = pg_system.http(f"/api/desk/tickets/{ticket['id']}/close", method="POST",
                                   body={"version_id": ticket["version_id"], "answer": "已答复"},
                                   token=pg_system.token())
    assert status == 409, again  # the optimistic lock holds on PostgreSQL too

    assert _sql(pg_system, f"SELECT status, decided_by, summary FROM tickets WHERE id = {ticket['id']}") == [
        ["submitted", "pg-8002", "建议在小区门口增加公交站"]]
    actions = {row[0] for row in _sql(pg_system, "SELECT action FROM audit_events WHERE object_type = 'ticket' "
                                                 f"AND object_id = '{ticket['id']}'")}
    assert {"ticket.draft_created", "ticket.screen_pop", "ticket.submitted"} <= actions


def test_given_postgresql_when_an_admin_applies_and_rolls_back_a_change_then_both_versions_are_stored(pg_system):
    admin = pg_system.login("pg-admin", "correct horse battery", "admin")
    _, before = pg_system.http("/api/admin/overview", token=admin)
    status, version = pg_system.http("/api/admin/lines/12369", method="PATCH", token=admin,
                                     body={"fields": {"mode": "retired"}, "comment": "12369 并入 12345"})
    assert status == 201 and version["status"] == "applied", version
    _, applied = pg_system.http("/api/admin/overview", token=admin)
    assert applied["version"] == version["id"] and applied["content_hash"] != before["content_hash"]
    status, back = pg_system.http(f"/api/admin/versions/{before['version']}/rollback", method="POST", token=admin,
                                  body={"comment": "back"})
    assert status == 201, back
    _, after = pg_system.http("/api/admin/overview", token=admin)
    assert after["version"] == back["id"] and after["content_hash"] == before["content_hash"]

    rows = _sql(pg_system, "SELECT id, status, parent_id, comment FROM config_versions "
                           f"WHERE id >= {version['id']} ORDER BY id")
    assert rows == [[str(version["id"]), "applied", str(before["version"]), "12369 并入 12345"],
                    [str(back["id"]), "applied", str(version["id"]), "back"]]
