"""End to end, what a security probe found (issue 9), against the real sandbox Asterisk and gateway:
a forged FastAGI session replaying a real call id, and agents reading each other's calls.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway_dev.simcall import CallScript, place_call

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def _forged_session(port: int, uniqueid: str) -> tuple[list[bytes], float]:
    """A FastAGI peer on loopback (allowed) claiming to run the IVR of call ``uniqueid`` for 12345.

    Answers ``200 result=0`` to every command; returns the commands the gateway sent and how
    long the gateway took to end the session.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    env = {"agi_network": "yes", "agi_network_script": "ivr", "agi_request": f"agi://127.0.0.1:{port}/ivr",
           "agi_channel": "Local/s@forged-00000001;1", "agi_uniqueid": uniqueid, "agi_callerid": "13900000000",
           "agi_extension": "s", "agi_context": "gw-ivr", "agi_arg_1": "12345"}
    started = time.monotonic()
    writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
    await writer.drain()
    commands: list[bytes] = []
    async with asyncio.timeout(30):
        while line := await reader.readline():
            commands.append(line.strip())
            writer.write(b"200 result=0\n")  # press nothing, play everything
            await writer.drain()
            if len(commands) > 200:
                break
    writer.close()
    return commands, time.monotonic() - started


def test_given_a_decided_confidential_ticket_when_a_forged_session_replays_its_call_id_then_refused_and_unchanged(
        system):
    # 12315, 4 = 投诉 (complaint), 1 = confidential (保密)
    result = asyncio.run(place_call(system.settings, CallScript(number="12315", caller="13700000009", digits="41")))
    ticket_id = result["ticket_id"]
    status, ticket = system.http(f"/api/tickets/{ticket_id}", token=system.token())
    assert status == 200 and ticket["confidential"] is True and ticket["category"] == "投诉"
    body = {"version_id": ticket["version_id"], "category": "投诉", "urgency": "normal", "place": "朝阳区",
            "summary": "商家拒不退款", "dispatch_mode": "direct",
            "units": [{"id": "market", "name": "市市场监管局", "kind": "city_department"}]}
    status, decided = system.http(f"/api/desk/tickets/{ticket_id}/submit", method="POST", body=body,
                                  token=system.token())
    assert status == 200 and decided["status"] == "submitted"
    before = system.http(f"/api/tickets/{ticket_id}", token=system.token())[1]

    commands, took = asyncio.run(_forged_session(system.settings.agi_port, result["uniqueid"]))

    assert commands == [] and took < 5  # refused at once: not one IVR command for the forged session
    after = system.http(f"/api/tickets/{ticket_id}", token=system.token())[1]
    assert after == before
    status, document = system.http(f"/api/desk/tickets/{ticket_id}/dispatch", token=system.token())
    assert document["caller_number"] is None and "13700000009" not in str(document)
    status, audit = system.http(f"/api/tickets/{ticket_id}/audit", token=system.token())
    assert [a["action"] for a in audit["items"]][-1] == "ticket.submitted"  # nothing after the decision
    status, metrics = system.http("/metrics?format=json", token=system.token())
    assert status == 200 and metrics["sessions_refused"] >= 1

    # and the gateway still serves real calls after the forgery
    again = asyncio.run(place_call(system.settings, CallScript(number="12345", hangup_at_menu=1, timeout=300)))
    assert again["uniqueid"] != result["uniqueid"] and again["menu_path"][-1]["node"] == "caller_hangup"
