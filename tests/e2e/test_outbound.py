"""End to end, calls the gateway places (issue 13): AMI Originate through the real sandbox
Asterisk to the simulated citizen, the answered call's FastAGI session routed by purpose (the
test-only purpose ``test-key`` of gateway_dev.test_routes: the greeting, one key), and the
``outbound_calls`` row every attempt leaves; a citizen who does not answer, one who is busy."""

from __future__ import annotations

import asyncio
import wave

import pytest

from gateway_dev.eventually import eventually
from gateway_dev.simcall import CallScript, answer_call, set_citizen

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def admin(system) -> str:
    return system.login("outbound-admin", "outbound-admin-pw-1", "admin")


def _dial(system, admin: str, number: str, ref: str, timeout_s: float) -> dict:
    status, result = system.http("/api/test/outbound", method="POST", token=admin, timeout=timeout_s + 30,
                                 body={"number": number, "ref": ref, "timeout_s": timeout_s})
    assert status == 200, result
    return result


def _row(system, admin: str, ref: str, uniqueid: str) -> dict:
    status, body = system.http(f"/api/test/outbound/{ref}", token=admin)
    assert status == 200, body
    rows = [r for r in body["calls"] if r["uniqueid"] == uniqueid]
    assert len(rows) == 1, body
    return {**rows[0], "keys": body["keys"]}


def test_given_a_citizen_who_answers_when_the_gateway_calls_then_the_route_runs_and_the_row_is_complete(
        system, admin):
    number, ref = "13900000101", "e2e-answer"

    async def scenario():
        ready = asyncio.Event()
        citizen = asyncio.create_task(answer_call(
            system.settings, number, CallScript(number=number, digits="7", ears=True, key_delay=2.0), ready=ready, timeout=90))
        await asyncio.wait_for(ready.wait(), 30)
        result = await asyncio.to_thread(_dial, system, admin, number, ref, 20)
        return result, await citizen

    result, heard = asyncio.run(scenario())
    assert result["outcome"] == "answered" and result["reason"] == "4", result
    assert result["node"] == "asterisk" and result["uniqueid"].startswith("out-")
    assert heard["uniqueid"] == result["uniqueid"]  # the citizen's call is the one dial() placed
    assert "main-greeting" in heard["heard"] and heard["pressed"] == "7", heard
    with wave.open(heard["ears"]) as w:  # what the citizen heard was recorded on their side
        assert w.getnframes() / w.getframerate() > 1.5  # the greeting until the key, 2 s in
    row = eventually(lambda: (r := _row(system, admin, ref, result["uniqueid"]))["ended_at"] and r, timeout=20,
                     what="the answered call's row closed by its Hangup")
    assert row["keys"] == [{"key": "7", "uniqueid": result["uniqueid"]}]  # the key reached the handler
    assert row["outcome"] == "answered" and row["purpose"] == "test-key" and row["number"] == number
    assert row["node"] == "asterisk" and row["started_at"] <= row["answered_at"] <= row["ended_at"]
    assert heard["outbound_call"]["uniqueid"] == result["uniqueid"]


def test_given_a_citizen_who_does_not_answer_when_called_then_no_answer_and_a_row(system, admin):
    number, ref = "13900000102", "e2e-noanswer"
    asyncio.run(set_citizen(system.settings, number, "noanswer"))
    result = _dial(system, admin, number, ref, 3)
    assert result["outcome"] == "no_answer", result
    row = _row(system, admin, ref, result["uniqueid"])
    assert row["outcome"] == "no_answer" and row["answered_at"] is None and row["ended_at"] is not None
    assert row["keys"] == []


def test_given_a_busy_citizen_when_called_then_busy_and_a_row(system, admin):
    number, ref = "13900000103", "e2e-busy"
    asyncio.run(set_citizen(system.settings, number, "busy"))
    result = _dial(system, admin, number, ref, 10)
    assert result["outcome"] == "busy" and result["reason"] == "5", result
    row = _row(system, admin, ref, result["uniqueid"])
    assert row["outcome"] == "busy" and row["answered_at"] is None and row["ended_at"] is not None


def test_given_a_purpose_nobody_registered_when_the_call_is_answered_then_hung_up_politely_and_recorded(
        system, admin):
    number, ref = "13900000104", "e2e-unknown"

    async def scenario():
        ready = asyncio.Event()
        citizen = asyncio.create_task(answer_call(system.settings, number, ready=ready, timeout=60))
        await asyncio.wait_for(ready.wait(), 30)
        status, result = await asyncio.to_thread(
            system.http, "/api/test/outbound", method="POST", token=admin, timeout=50,
            body={"number": number, "ref": ref, "timeout_s": 20, "purpose": "nobody-knows"})
        return status, result, await citizen

    status, result, heard = asyncio.run(scenario())
    assert status == 200 and result["outcome"] == "answered", result
    assert heard["uniqueid"] == result["uniqueid"] and heard["heard"] == []  # hung up without a word
    row = eventually(lambda: (r := _row(system, admin, ref, result["uniqueid"]))["ended_at"] and r, timeout=20,
                     what="the row of the call nobody took")
    assert row["purpose"] == "nobody-knows" and row["outcome"] == "answered"
    status, metrics = system.http("/metrics?format=json", token=admin)
    assert status == 200 and metrics["outbound"]["unknown_purpose"] >= 1 and metrics["outbound"]["answered"] >= 2
    assert metrics["outbound"]["busy"] >= 1 and metrics["outbound"]["no_answer"] >= 1
