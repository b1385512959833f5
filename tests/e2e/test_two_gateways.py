"""End to end, two gateway instances serving one sandbox Asterisk on one PostgreSQL database.

Gateway A is first in the dialplan's FastAGI list, gateway B second (``GATEWAY_AGI_PEERS``);
they talk through PostgreSQL ``LISTEN``/``NOTIFY`` (:mod:`gateway.bus`). In order:

1. an agent whose desk is connected to B gets the pop of a call whose IVR ran on A, and
   B's supervisor board shows that call in the IVR while A runs it (only the bus tells B);
2. a configuration change applied on A is live on B;
3. A is SIGKILLed while a call it took is with an agent (the moment is chosen by the test:
   after the call left A's IVR), and new calls are placed at once, simulated callers and
   SIPp callers over real SIP (bench/sipp/uac_12345.xml) together: they reach B (FastAGI
   failover), and every call, the one in progress included, has its row, ended, and its
   ticket. (Calls inside A's IVR when it dies are the fail-safe dialplan's and
   reconciliation's: tests of their own.)
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway_dev.desk_socket import DeskSocket
from gateway_dev.eventually import aeventually, eventually
from gateway_dev.simcall import CallScript, place_call, sim_ami_client
from gateway_dev.system import ROOT, System, free_ports, say_zh, sipp_media_port
from tests.e2e.conftest import running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def two():
    from gateway_dev.postgres import BIN_DIR

    if not (BIN_DIR / "postgres").is_file():
        pytest.skip(f"no PostgreSQL 15 in {BIN_DIR} (apt-get install -y postgresql)")
    sysm = System(prefix="gw-e2e-two-", log_level="INFO", gateways=2, database="postgresql",
                  extra_env={"GATEWAY_SPEECH": "false"})
    with running(sysm, logs=lambda s: [(g.log_path, f"e2e-two-{g.log_path.name}") for g in s.gateways]):
        yield sysm


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return say_zh("建议在小区门口增加一个公交站", tmp_path_factory.mktemp("two") / "caller.wav")


SIPP = shutil.which("sipp")
SIP_CALLS = 3


def _start_sipp(system: System, speech: Path, tmp: Path) -> subprocess.Popen:
    """SIPp callers of 12345 (key 1: 咨询, then the description), all placed at once."""
    silence, speech_ulaw = tmp / "silence.ulaw", tmp / "speech.ulaw"
    subprocess.run(["sox", "-D", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(silence), "trim", "0", "1"],
                   check=True, capture_output=True)
    subprocess.run(["sox", str(speech), "-r", "8000", "-c", "1", "-t", "ul", str(speech_ulaw),
                    "pad", "0", "6", "trim", "0", "6"], check=True, capture_output=True)
    (sip_local,) = free_ports(1, udp=True)
    media_port = sipp_media_port()
    cmd = [SIPP, f"127.0.0.1:{system.sip_port}", "-sf", str(ROOT / "bench" / "sipp" / "uac_12345.xml"),
           "-s", "12345", "-i", "127.0.0.1", "-p", str(sip_local), "-mi", "127.0.0.1", "-mp", str(media_port),
           "-key", "dtmf_pcap", "/usr/share/sip-tester/dtmf_2833_1.pcap",
           "-key", "speech", f"{speech_ulaw},1,0", "-key", "silence", f"{silence},-1,0",
           "-m", str(SIP_CALLS), "-l", str(SIP_CALLS), "-r", str(SIP_CALLS), "-rp", "1000",
           "-trace_err", "-error_file", str(tmp / "errors.log"), "-timeout", "240s", "-nostdin"]
    return subprocess.Popen(cmd, stdout=open(tmp / "sipp.out", "w"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=tmp, start_new_session=True)


def _tickets(gateway) -> list[dict]:
    status, body = gateway.http("/api/tickets?limit=200", token=gateway.token())
    assert status == 200, body
    return body["items"]


def _metrics(gateway) -> dict:
    status, body = gateway.http("/metrics?format=json", token=gateway.token())
    assert status == 200, body
    return body


def test_given_a_desk_on_b_when_a_runs_the_call_then_b_shows_it_in_the_ivr_and_the_desk_gets_the_pop(two, speech):
    a, b = two.gateways
    assert _metrics(b)["calls_started"] == 0
    agent = b.login("two-8002", "two-8002-password", "agent")
    b.cli("user", "agent", "two-8002", "8002")  # q-suggest's member
    script = CallScript(number="12345", caller="13700000002", digits="22", say=speech, uniqueid="two-pop-1")

    def on_b_board() -> bool:
        status, board = b.http("/api/supervisor/overview", token=b.token())
        return status == 200 and any(c["uniqueid"] == "two-pop-1" for c in board["in_ivr"])

    async def scenario():
        async with DeskSocket(f"http://127.0.0.1:{b.http_port}", agent) as desk:
            popped = asyncio.ensure_future(desk.next("screen_pop", timeout=150))
            call = asyncio.ensure_future(place_call(two.settings, script))
            try:
                await aeventually(lambda: asyncio.to_thread(on_b_board), timeout=60, interval=0.2,
                                  what="B's board shows A's call in the IVR")
                result = await call
                pop = await popped
            finally:
                popped.cancel()
                call.cancel()
        return result, pop

    result, pop = asyncio.run(scenario())
    assert result["ticket_id"] and result["queue"] == "q-suggest"
    assert pop["ticket"]["id"] == result["ticket_id"] and pop["uniqueid"] == "two-pop-1"
    assert _metrics(a)["calls_started"] == 1 and _metrics(b)["calls_started"] == 0  # A ran the IVR
    # one audit line for the pop, though both instances saw the AgentConnect
    status, audit = a.http(f"/api/tickets/{result['ticket_id']}/audit", token=a.token())
    assert [e["action"] for e in audit["items"]].count("ticket.screen_pop") == 1


def test_given_a_change_applied_on_a_when_b_is_asked_then_b_runs_the_new_version(two):
    a, b = two.gateways
    admin_a = a.login("two-admin", "two-admin-password-1", "admin")
    admin_b = b.login("two-admin", "two-admin-password-1", "admin")
    _, before = b.http("/api/admin/overview", token=admin_b)
    status, version = a.http("/api/admin/lines/12369", method="PATCH", token=admin_a,
                             body={"fields": {"greeting": "您好，这里是12369环保举报热线。"},
                                   "comment": "two gateways: the greeting reaches B"})
    assert status == 201 and version["status"] == "applied", version
    assert version["id"] != before["version"]

    def b_follows():
        _, overview = b.http("/api/admin/overview", token=admin_b)
        return overview if overview["version"] == version["id"] else None

    overview = eventually(b_follows, timeout=20, interval=0.2, what="B runs A's new version")
    line = next(item for item in overview["lines"] if item["number"] == "12369")
    assert line["greeting"] == "您好，这里是12369环保举报热线。"
    _, health_b = b.http("/healthz", token=b.token())
    assert health_b["config_version_id"] == version["id"] and health_b["bus"]["connected"] is True


def test_given_a_killed_with_a_call_at_an_agent_when_calls_come_then_b_takes_them_and_no_ticket_is_lost(
        two, speech, tmp_path):
    if SIPP is None or shutil.which("sox") is None:
        pytest.skip("sipp (sip-tester) and sox are needed: make test-tools")
    a, b = two.gateways
    started_b = _metrics(b)["calls_started"]
    tickets_before = {t["id"] for t in _tickets(b)}
    held = CallScript(number="12345", caller="13700000010", digits="22", say=speech, uniqueid="two-held")

    def with_agent() -> bool:  # the call left A's IVR and an agent answered it
        status, call = b.http("/api/calls/two-held", token=b.token())
        return status == 200 and bool(call.get("agent"))

    async def scenario():
        ami = sim_ami_client(two.settings)
        await ami.start()
        try:
            first = asyncio.ensure_future(place_call(two.settings, held, ami=ami))
            await aeventually(lambda: asyncio.to_thread(with_agent), timeout=90, interval=0.2,
                              what="the held call is with an agent")
            await asyncio.to_thread(a.kill_gateway)  # the moment: A dies with the call at the agent
            sipp = _start_sipp(two, speech, tmp_path)
            later = [CallScript(number="12345", caller=f"1370000002{n}", digits="22", say=speech,
                                uniqueid=f"two-after-{n}")
                     for n in range(3)]
            try:
                results = await asyncio.gather(*(place_call(two.settings, s, ami=ami) for s in later))
                rc = await asyncio.to_thread(sipp.wait, 300)
            finally:
                if sipp.poll() is None:
                    sipp.kill()
                    sipp.wait()
            return await first, results, rc
        finally:
            await ami.close()

    held_result, after, sipp_rc = asyncio.run(scenario())
    assert sipp_rc == 0, (tmp_path / "sipp.out").read_text()[-2000:]  # every SIP call completed
    assert a.gateway is None or a.gateway.poll() is not None
    assert _metrics(b)["calls_started"] - started_b == 3 + SIP_CALLS  # the new calls ran on B
    new = [t for t in _tickets(b) if t["id"] not in tickets_before]
    sip_tickets = [t for t in new if t["caller_number"].startswith("1380")]
    assert len(new) == 1 + 3 + SIP_CALLS and len(sip_tickets) == SIP_CALLS, new
    for ticket in sip_tickets:
        status, call = b.http(f"/api/calls/{ticket['uniqueid']}", token=b.token())
        assert status == 200 and call["status"] == "ended" and call["ticket_id"] == ticket["id"], call
    for result in [held_result, *after]:
        status, call = b.http(f"/api/calls/{result['uniqueid']}", token=b.token())
        assert status == 200 and call["status"] == "ended" and call["ticket_id"], (result["uniqueid"], call)
        assert result["queue"] == "q-suggest", result
    assert all(r["ticket_id"] for r in after) and held_result["ticket_id"]
    status, health = b.http("/healthz", token=b.token())
    assert health["bus"]["connected"] and health["bus"]["leader"] is True  # the lock moved to B
