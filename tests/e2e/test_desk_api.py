"""End to end, the desk API: a real call through the sandbox Asterisk pops on the agent's
WebSocket when Asterisk's queue connects it (AMI AgentConnect), a desk that was away gets
what it missed, and the decision rules hold over HTTP.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway_dev.desk_socket import DeskSocket
from gateway_dev.simcall import CallScript, place_call
from gateway_dev.system import desk_events, say_zh

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def speech_zh(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("desk") / "caller.wav"
    return say_zh("建议在小区门口增加一个公交站", path)


@pytest.fixture(scope="module")
def agent(system):
    token = system.login("desk-8002", "desk-8002-password", "agent")
    system.cli("user", "agent", "desk-8002", "8002")
    return token


async def _ws_events(system, token: str, since: int, *, want: int, timeout: float) -> list[dict]:
    return await desk_events(system, token, since, want=want, timeout=timeout)


async def _call_with_desk_open(system, token: str, since: int, script: CallScript) -> tuple[dict, list[dict]]:
    """Place the call once the agent's desk is connected (its hello came), then wait for its pop."""
    async with DeskSocket(f"http://127.0.0.1:{system.http_port}", token, since=since) as desk:
        popped = asyncio.ensure_future(desk.next("screen_pop", timeout=150))
        try:
            result = await place_call(system.settings, script)
            await popped
        finally:
            popped.cancel()  # when the call failed: no pop to wait for
    return result, desk.events


def test_given_an_agent_desk_when_its_call_connects_then_the_draft_pops_and_a_returning_desk_gets_it_too(
        system, agent, speech_zh):
    # 2 = 建议 -> q-suggest, whose only member is agent 8002
    script = CallScript(number="12345", caller="13700000001", digits="22", say=speech_zh)
    result, events = asyncio.run(_call_with_desk_open(system, agent, 0, script))
    assert events[0]["type"] == "hello" and events[0]["agent_id"] == "8002"
    pop = next(e for e in events if e["type"] == "screen_pop")
    ticket = pop["ticket"]
    assert ticket["id"] == result["ticket_id"] and pop["queue"] == "q-suggest"
    assert ticket["caller_number"] == "13700000001"  # the answering agent may call back
    assert ticket["line_number"] == "12345" and ticket["category"] == "建议" and ticket["merge_mode"] == "primary"
    assert [s["node"] for s in ticket["menu_path"]][:2] == ["hours", "greeting"]
    assert ticket["recording_url"] == f"/api/tickets/{ticket['id']}/recording"
    assert ticket["suggestions"]["request_type"]["category"] == "建议"

    # a desk that was away (reconnecting with the last number it saw) gets the pop again
    replay = asyncio.run(_ws_events(system, agent, pop["seq"] - 1, want=1, timeout=5))
    assert [e["type"] for e in replay] == ["hello", "screen_pop"] and replay[1]["seq"] == pop["seq"]
    assert asyncio.run(_ws_events(system, agent, pop["seq"], want=1, timeout=2))[1:] == []

    # the recording plays for the agent; the inbox has the draft
    status, inbox = system.http("/api/desk/inbox", token=agent)
    assert status == 200 and ticket["id"] in [t["id"] for t in inbox["items"]]
    req_status, body = system.http(ticket["recording_url"], token=agent)
    assert req_status == 200


def test_given_a_draft_when_others_try_it_then_locked_for_agents_and_409_with_who_once_decided(system, agent):
    other = system.login("desk-other", "desk-other-password", "agent")
    status, inbox = system.http("/api/desk/inbox", token=agent)
    ticket = inbox["items"][0]
    # another agent cannot open, type into or decide a draft of a call they did not answer
    for method, path, payload in (("GET", "", None), ("PUT", "/draft", {"data": {"summary": "x"}}),
                                  ("POST", "/close", {"version_id": ticket["version_id"], "answer": "好"})):
        status, locked = system.http(f"/api/desk/tickets/{ticket['id']}{path}", method=method, body=payload,
                                     token=other)
        assert status == 403 and locked["error"] == "locked", (path, locked)
    assert system.http(f"/api/tickets/{ticket['id']}/recording", token=other)[0] == 403
    body = {"version_id": ticket["version_id"], "category": "建议", "urgency": "normal", "place": "朝阳区",
            "summary": "建议在小区门口增加公交站", "dispatch_mode": "direct",
            "units": [{"id": "transport", "name": "市交通委", "kind": "city_department"}]}
    status, saved = system.http(f"/api/desk/tickets/{ticket['id']}/draft", method="PUT",
                                body={"data": {"summary": "建议在小区门口"}}, token=agent)
    assert status == 200
    status, won = system.http(f"/api/desk/tickets/{ticket['id']}/submit", method="POST", body=body, token=agent)
    assert status == 200 and won["status"] == "submitted" and won["decided_by"] == "desk-8002"
    status, lost = system.http(f"/api/desk/tickets/{ticket['id']}/close", method="POST",
                               body={"version_id": ticket["version_id"], "answer": "已答复"}, token=system.token())
    assert status == 409 and "desk-8002" in lost["message"]  # a supervisor arriving second is told who
    status, audit = system.http(f"/api/tickets/{ticket['id']}/audit", token=system.token())
    actions = [a["action"] for a in audit["items"]]
    assert "ticket.draft_created" in actions and "ticket.screen_pop" in actions and "ticket.submitted" in actions
    assert next(a for a in audit["items"] if a["action"] == "ticket.submitted")["actor"] == "desk-8002"
    status, view = system.http(f"/api/desk/tickets/{ticket['id']}", token=other)
    assert view["caller_number"] == "137****0001" and view["status"] == "submitted"  # not their call
    # decided or not, what the caller said stays with the agent who answered (and supervisors)
    assert "transcript" not in view and view["recording_url"] is None and view["spoken_withheld"] is True
    status, refused = system.http(f"/api/tickets/{ticket['id']}/recording", token=other)
    assert status == 403 and refused["error"] == "not-your-call"
    status, mine = system.http(f"/api/desk/tickets/{ticket['id']}", token=agent)
    assert "transcript_status" in mine and mine["recording_url"] and "spoken_withheld" not in mine
    assert system.http(mine["recording_url"], token=agent)[0] == 200
    assert system.http(mine["recording_url"], token=system.token())[0] == 200
    status, bad = system.http(f"/api/desk/tickets/{ticket['id']}/submit", method="POST",
                              body={**body, "dispatch_mode": "sideways"}, token=other)
    assert status == 400 and bad["details"]["field"] == "dispatch_mode"
    assert system.http("/admin", token=other)[0] == 403  # an agent cannot open the admin page
    assert system.http("/api/admin/overview", token=other)[0] == 403


def test_given_a_repeat_caller_when_the_second_call_pops_then_the_first_ticket_is_shown_and_linked(
        system, agent, speech_zh):
    script = CallScript(number="12345", caller="13700000001", digits="22", say=speech_zh)
    result, events = asyncio.run(_call_with_desk_open(system, agent, 10**6, script))
    ticket = next(e for e in events if e["type"] == "screen_pop")["ticket"]
    assert ticket["id"] == result["ticket_id"]
    earlier = ticket["suggestions"]["earlier"]
    first = earlier[0]
    assert first["status"] == "submitted" and first["reason"]  # the same number's ticket, with why
    body = {"version_id": ticket["version_id"], "category": "建议", "summary": "再次反映：小区门口增设公交站",
            "dispatch_mode": "direct", "units": [{"id": "transport", "name": "市交通委"}],
            "linked_ticket_id": first["ticket_id"]}
    status, done = system.http(f"/api/desk/tickets/{ticket['id']}/submit", method="POST", body=body, token=agent)
    assert status == 200 and done["linked_ticket_id"] == first["ticket_id"]


def test_given_a_supervisor_when_reading_the_overview_then_today_counts_calls_per_line_and_type(system, agent):
    status, overview = system.http("/api/supervisor/overview", token=system.token())
    assert status == 200
    assert overview["today"]["per_line"].get("12345", 0) >= 1 and overview["today"]["per_type"].get("建议", 0) >= 1
    assert {"in_ivr", "queues", "talking", "abandoned_since_start"} <= set(overview)
    assert system.http("/api/supervisor/overview", token=agent)[0] == 403
    assert system.http("/api/supervisor/overview")[0] == 401
