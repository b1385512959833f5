"""End to end, the ticket number (issue 13): real sandbox Asterisk, real gateway, the Kokoro
prompts, the project's Mandarin recogniser as the caller's ear, a real HTTP SMS sink.

1. A caller on a mobile describes a problem, hears "工单号是 …" digit by digit, presses * once
   and hears it again, then reaches the queue: what the caller heard (recorded on their side)
   is transcribed; the digits played are the ticket's number in the database, twice, and the
   better reading heard is recognisably that number. The SMS with the number reaches the sink.
2. While the caller talks to an agent, the desk's "向来电人播报工单号" reads the number into
   the live call, twice: the caller hears it, the call stays up; once the call has ended the same
   request is a clear 409.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import pytest
from aiohttp import web

from gateway_dev.eventually import aeventually, eventually
from gateway_dev.heard import heard_digits, number_cer
from gateway_dev.simcall import CallScript, place_call, sim_ami_client
from gateway_dev.system import System, say_zh

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


class Sink:
    """The SMS provider: a small aiohttp server on its own thread and loop."""

    def __init__(self) -> None:
        self.got: list[dict] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.got.append(await request.json())
        return web.json_response({"message_id": f"sink-{len(self.got)}"})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/sms", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/sms"

    def __enter__(self) -> "Sink":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def sink():
    with Sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def system(sink):
    sysm = System(prefix="gw-e2e-ticketno-", log_level="INFO")
    sysm.env.update({"GATEWAY_SPEECH": "off", "GATEWAY_SMS_WEBHOOK_URL": sink.url, "GATEWAY_SMS_POLL_SECONDS": "0.5"})
    try:
        sysm.up()
        yield sysm
    finally:
        sysm.down()
        if sysm.log_path.exists():
            print(sysm.log_path.read_text(errors="replace")[-3000:])
        shutil.rmtree(sysm.state, ignore_errors=True)


@pytest.fixture(scope="module")
def description(tmp_path_factory) -> Path:
    return say_zh("小区门口的路灯坏了，晚上很黑", tmp_path_factory.mktemp("tn") / "describe.wav")


def _closed(ears: str) -> bool:
    path = Path(ears)
    if not path.is_file():
        return False
    with wave.open(str(path)) as w:
        frames = w.getnframes()
    return frames > 0 and 44 + 2 * frames == path.stat().st_size


def _ticket(system: System, ticket_id: int) -> dict:
    status, body = system.http(f"/api/tickets/{ticket_id}", token=system.token())
    assert status == 200, body
    return body


def _clip(ears: str, start_s: float, end_s: float | None, name: str) -> str:
    """A stretch of what the caller heard (the recogniser hears a short clip far better than a whole call)."""
    out = str(Path(ears).with_suffix(f".{name}.wav"))
    subprocess.run(["sox", ears, out, "trim", f"{max(0.0, start_s):.2f}"] + ([f"={end_s:.2f}"] if end_s else []),
                   check=True)
    return out


@pytest.fixture(scope="module")
def told(system, description):
    """One call: describe, hear the number, press * once (the third menu), reach the queue. Returns
    the result and the transcript of each reading (clipped from the intro to the next prompt)."""
    settings = system.settings
    uid = "tn-told-1"

    async def run():
        watcher = sim_ami_client(settings)
        await watcher.start()
        plays: list[tuple[float, str]] = []  # (seconds since the call was placed, prompt) as the IVR starts it
        spelled: list[str] = []  # the digits of each reading, from the files Asterisk was told to play

        def on_event(h: dict) -> None:
            command = h.get("Command", "")
            if h.get("Event") == "AGIExecStart" and h.get("Uniqueid") == uid and command.startswith(("STREAM", "GET")):
                plays.append((time.monotonic() - started, command.split()[2].rsplit("/", 1)[-1]))
            elif h.get("Event") == "AGIExecStart" and h.get("Uniqueid") == uid and command.startswith("EXEC Playback"):
                plays.append((time.monotonic() - started, "number"))  # the intro and the digits, one command
                spelled.append("".join(re.findall(r"digit-([0-9])(?![0-9])", command)))

        watcher.subscribe_raw(on_event)
        await aeventually(lambda: watcher.connected, timeout=10, what="AMI")
        started = time.monotonic()
        try:
            result = await place_call(settings, CallScript(number="12345", caller="13900000051", digits="42*",
                                                           say=description, ears=True, uniqueid=uid, timeout=240))
        finally:
            await watcher.close()
        return result, plays, spelled

    result, plays, spelled = asyncio.run(run())
    eventually(lambda: _closed(result["ears"]), timeout=20, retry_on=(OSError, EOFError, wave.Error), what="ears")
    intros = [at for at, prompt in plays if prompt == "number"]
    ends = [at for at, prompt in plays if prompt in ("main-ticket_repeat", "main-to_queue")]
    readings = []
    for n, at in enumerate(intros):
        end = next(e for e in ends if e > at)
        # generous margins (the recording's clock is not the AMI's): the prompts around hold no digit
        clip = _clip(result["ears"], at - 1.0, end + 2.5, f"reading{n}")
        readings.append(json.loads(system.cli("transcribe", clip, "--lang", "zh", "--json", timeout=300).stdout)
                        .get("text", ""))
    return result, readings, spelled


def test_given_a_caller_who_presses_star_then_the_number_heard_twice_is_the_ticket_number(system, told):
    result, texts, spelled = told
    ticket = _ticket(system, result["ticket_id"])
    number = ticket["ticket_no"]
    assert re.fullmatch(r"[0-9]{11}", number or ""), ticket
    assert spelled == [number, number], spelled  # exactly what Asterisk played: the number, twice
    assert result["queue"] == "q-complaint" and result["agent"], result
    step = next(s for s in result["menu_path"] if s["node"] == "tell_number")
    assert step["times"] == 2
    heard = [heard_digits(text) for text in texts]
    print(f"ticket {number}; heard {heard}; transcripts {texts}; queue reached after {result['queues'][0]['at_s']} s")
    # What a Mandarin listener heard: each reading transcribed by the project's recogniser from the
    # caller's side of the call. Whisper base drops or swaps digits of a number read digit by digit
    # (bench/ticket_no.py: CER mean 0.17, p90 0.27 on a quiet machine; a doubled digit heard once,
    # the first digit after "是" lost, 1 number in 20 heard as no digits at all), and under CI's load
    # the caller-side recording itself loses frames (seen in CI: one reading 6 of 11 digits astray;
    # another transcribed as the intro alone). The exact digits are asserted above from what was
    # played, twice; here the number must be recognisably there in what the caller heard: the better
    # of the two readings at most four digits astray. The figure belongs to bench/ticket_no.py.
    best = min(number_cer(number, digits) for digits in heard)
    assert len(heard) == 2 and best <= 4 / 11, (number, heard, texts)


def test_given_a_mobile_caller_then_the_sms_with_the_number_reaches_the_sink(system, sink, told):
    result, _, _ = told
    number = _ticket(system, result["ticket_id"])["ticket_no"]
    got = eventually(lambda: next((m for m in sink.got if m["ticket_id"] == result["ticket_id"]), None),
                     timeout=30, what="the SMS at the sink")
    assert got["to"] == "13900000051" and got["kind"] == "ticket_no"
    assert " ".join([number[:4], number[4:7], number[7:]]) in got["body"] and "拨打12345按7查询" in got["body"]
    status, health = system.http("/healthz", token=system.token())
    assert health["sms"]["sender"] == "webhook" and health["sms"]["dead"] == 0


def test_given_a_caller_with_an_agent_when_the_desk_reads_the_number_then_heard_and_the_call_stays_up(
        system, description):
    settings = system.settings

    async def run():
        sim = sim_ami_client(settings)
        await sim.start()
        events: list[dict] = []
        sim.subscribe_raw(lambda h: events.append({**h, "at": time.monotonic()}))
        await aeventually(lambda: sim.connected, timeout=10, what="AMI")
        await sim.action({"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "90"})  # the agent stays on
        uid = "tn-desk-1"
        started = time.monotonic()
        call = asyncio.create_task(place_call(settings, CallScript(
            number="12345", caller="13900000052", digits="42", say=description, ears=True, uniqueid=uid,
            timeout=240)))
        try:
            connect = await aeventually(lambda: next((e for e in events if e.get("Event") == "AgentConnect"
                                                      and e.get("Uniqueid") == uid), None),
                                        timeout=180, what="the agent connected")
            ticket_id = await aeventually(lambda: _call_ticket(system, uid), timeout=30, what="the call's ticket")
            # the agent reads the number twice (a second click is the "repeat"): each reading is heard alone
            readings_at = []
            for n in (1, 2):
                readings_at.append(time.monotonic() - started)
                seen = len(events)  # the announcement's own Local channel hangs up when it has been read
                status, body = await asyncio.to_thread(system.http, f"/api/desk/tickets/{ticket_id}/announce-number",
                                                       method="POST", token=system.token())
                assert status == 200, body
                spy = await aeventually(lambda: next((e["Channel"] for e in events[seen:] if e.get("Event") == "Newchannel"
                                                      and e.get("Channel", "").startswith("Local/spy@gw-announce")),
                                                     None), timeout=30, what=f"announcement {n} started")
                await aeventually(lambda: any(e.get("Event") == "Hangup" and e.get("Channel") == spy
                                              for e in events[seen:]), timeout=60, what=f"announcement {n} finished")
            await asyncio.sleep(2.0)  # pacing: the end of the second reading stays in the caller's recording
            readings_at.append(time.monotonic() - started)
            # the caller is still in the call with the agent
            alive = await sim.action({"Action": "Getvar", "Channel": uid, "Variable": "BRIDGEPEER"})
            assert alive.get("Value"), alive
            assert not any(e.get("Event") == "Hangup" and e.get("Uniqueid") == uid for e in events)
            await sim.action({"Action": "Hangup", "Channel": uid})
            hung_at = time.monotonic() - started
            result = await call
        finally:
            await sim.action({"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "1"})
            if not call.done():
                call.cancel()
            await sim.close()
        return result, ticket_id, body, readings_at, hung_at

    result, ticket_id, body, readings_at, hung_at = asyncio.run(run())
    number = _ticket(system, ticket_id)["ticket_no"]
    assert body["ticket_no"] == number
    eventually(lambda: _closed(result["ears"]), timeout=20, retry_on=(OSError, EOFError, wave.Error), what="ears")
    with wave.open(result["ears"]) as w:
        late = max(0.0, hung_at - w.getnframes() / w.getframerate())  # the recording began after we placed the call
    texts = []
    for n in (0, 1):
        # from the click to the end of that reading, on the recording's clock
        clip = _clip(result["ears"], readings_at[n] - late - 0.3, readings_at[n + 1] - late + 0.3, f"desk{n}")
        texts.append(json.loads(system.cli("transcribe", clip, "--lang", "zh", "--json", timeout=300).stdout)
                     .get("text", ""))
    heard = [heard_digits(text) for text in texts]
    print(f"desk read {number}; heard {heard}; transcripts {texts}")
    # as above: recognisably the number in the better of the two readings
    assert min(number_cer(number, digits) for digits in heard) <= 4 / 11, (number, texts)
    status, audit = system.http(f"/api/tickets/{ticket_id}/audit", token=system.token())
    assert any(a["action"] == "ticket.number_announced" for a in audit["items"]), audit
    # the call is over now: a clear refusal
    status, body = system.http(f"/api/desk/tickets/{ticket_id}/announce-number", method="POST",
                               token=system.token())
    assert status == 409 and body["error"] == "call-ended" and "通话已结束" in body["message_zh"], body


def _call_ticket(system: System, uid: str) -> int | None:
    status, call = system.http(f"/api/calls/{uid}", token=system.token())
    return call.get("ticket_id") if status == 200 and call.get("agent") else None
