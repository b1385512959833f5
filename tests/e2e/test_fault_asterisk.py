"""End to end, faults of the PBX side: the gateway's AMI link cut while agents answer calls, and
Asterisk killed (SIGKILL) mid-call and restarted with the project's own command.

One System for the file: the sandbox Asterisk and ``gateway serve`` (speech off, so the
caller's description is an Asterisk recording), the gateway's AMI through a TCP relay
(``gateway_dev.tcp_proxy``) that the test severs and restores. Simulated callers; every wait
polls with a deadline; each fault is injected once the calls' rows exist.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from gateway.calls.reconcile import CAUSE_CRASH, MIN_RECORDING_BYTES
from gateway_dev.eventually import aeventually
from gateway_dev.sandbox import running_pid
from gateway_dev.simcall import CallScript, place_call, sim_ami_client
from gateway_dev.system import System, desk_events
from gateway_dev.tcp_proxy import TcpProxy
from tests.e2e.conftest import running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROXY_HOST = "127.0.0.2"  # the gateway reaches AMI here; Asterisk listens on 127.0.0.1 only
AGENT_OF_KEY = {"2": "8002", "3": "8003", "6": "8001"}  # q-suggest, q-report, q-enterprise: one agent each


@pytest.fixture(scope="module")
def sysm():
    system = System(prefix="gw-e2e-fault-asterisk-", log_level="INFO")
    system.env["GATEWAY_SPEECH"] = "off"
    system.proxy = None

    def start(s) -> None:
        s.sandbox_up()
        port = int(s.env["GATEWAY_AMI_PORT"])
        s.proxy = TcpProxy((PROXY_HOST, port), ("127.0.0.1", port)).start()
        s.env["GATEWAY_AMI_HOST"] = PROXY_HOST  # for `gateway serve` only
        try:
            s.start_gateway()
        finally:
            s.env.pop("GATEWAY_AMI_HOST")  # the CLI and the simulated callers go direct

    def stop(s) -> None:
        if s.proxy is not None:
            s.proxy.close()
        s.down()

    with running(system, start=start, stop=stop, logs=lambda s: [(s.log_path, "e2e-fault-asterisk-gateway.log")]):
        yield system


async def _http(sysm, path, token=None):
    return await asyncio.to_thread(sysm.http, path, token=token or await asyncio.to_thread(sysm.token), timeout=10)


async def _call(sysm, uid):
    status, body = await _http(sysm, f"/api/calls/{uid}")
    return body if status == 200 else None


async def _ami_state(sysm) -> str:
    _status, body = await _http(sysm, "/healthz")
    return str(body.get("ami"))


async def _finish(tasks, timeout: float = 30):
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_given_the_ami_link_cut_when_agents_answer_three_calls_then_after_restore_rows_are_complete_and_desks_got_pops(
        sysm):
    tokens = {}
    for agent in AGENT_OF_KEY.values():
        tokens[agent] = await asyncio.to_thread(sysm.login, f"desk-{agent}", f"desk-{agent}-password", "agent")
        await asyncio.to_thread(sysm.cli, "user", "agent", f"desk-{agent}", agent)
    sim = sim_ami_client(sysm.settings)
    await sim.start()
    assert await sim.wait_connected(10)
    connected: dict[str, str] = {}
    sim.subscribe_raw(lambda h: connected.__setitem__(h.get("Uniqueid", ""), h.get("Interface", ""))
                      if h.get("Event") == "AgentConnect" else None)
    await sim.action({"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "120"})  # agents stay on
    uids = {key: f"cut-{key}-{os.getpid()}" for key in AGENT_OF_KEY}
    tasks = []
    try:
        sysm.proxy.sever()
        cut_at = time.monotonic()
        await aeventually(lambda: _ami_state(sysm), timeout=20, interval=0.2, what="gateway seeing AMI gone")
        assert (await _ami_state(sysm)).startswith("disconnected")
        tasks = [asyncio.create_task(place_call(sysm.settings, CallScript(number="12345", digits=key + "2",
                                                                          uniqueid=uid, timeout=240), ami=sim))
                 for key, uid in uids.items()]
        await aeventually(lambda: all(uid in connected for uid in uids.values()), timeout=120, interval=0.2,
                          what="three calls answered by agents while AMI is cut")
        blind_s = time.monotonic() - cut_at
        for uid in uids.values():  # the gateway saw none of it
            call = await _call(sysm, uid)
            assert call is not None and call["agent"] is None, call

        sysm.proxy.restore()
        restored_at = time.monotonic()
        await aeventually(lambda: _ami_state_is(sysm, "connected"), timeout=10, interval=0.05,
                          what="AMI back through the relay")
        print(f"\nAMI cut {blind_s:.1f} s; gateway logged in again {time.monotonic() - restored_at:.2f} s after restore")

        async def complete():
            calls = [await _call(sysm, uid) for uid in uids.values()]
            return calls if all(c and c["queue"] and c["agent"] for c in calls) else None

        calls = await aeventually(complete, timeout=30, interval=0.3, what="queue and agent filled by reconciliation")
        for (key, uid), call in zip(uids.items(), calls):
            assert call["agent"] == AGENT_OF_KEY[key], call
        pops = await asyncio.gather(*(desk_events(sysm, tokens[AGENT_OF_KEY[key]], 0, want=1, timeout=20,
                                                   kind="screen_pop") for key in uids))
        for key, events in zip(uids, pops):
            popped = [e for e in events if e["type"] == "screen_pop"]
            assert [e["uniqueid"] for e in popped] == [uids[key]], events
            assert popped[0]["ticket"]["id"]

        await sim.action({"Action": "Hangup", "Channel": "/^Local\\/8[0-9]+@gw-agents/"})

        async def ended():
            calls = [await _call(sysm, uid) for uid in uids.values()]
            return calls if all(c["status"] == "ended" and c["ended_at"] for c in calls) else None

        for call in await aeventually(ended, timeout=30, interval=0.3, what="every call ended"):
            assert call["queue"] and call["agent"] and call["hangup_cause_txt"] != CAUSE_CRASH
    finally:
        sysm.proxy.restore() if sysm.proxy._listener is None else None
        await sim.action({"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "1"})
        await _finish(tasks)
        await sim.close()


async def _ami_state_is(sysm, state: str) -> bool:
    return await _ami_state(sysm) == state


async def test_given_three_callers_recording_when_asterisk_is_killed_and_restarted_then_rows_close_as_a_crash_with_recordings(
        sysm):
    sim = sim_ami_client(sysm.settings)
    await sim.start()
    assert await sim.wait_connected(10)
    recordings = sysm.gateway_settings.recordings_dir
    uids = [f"crash-{n}-{os.getpid()}" for n in range(3)]
    tasks = [asyncio.create_task(place_call(sysm.settings, CallScript(number="12345", digits="42", uniqueid=uid,
                                                                      timeout=240), ami=sim)) for uid in uids]
    try:
        def recording_now() -> bool:
            sizes = [(recordings / f"{uid}.wav").stat().st_size if (recordings / f"{uid}.wav").exists() else 0
                     for uid in uids]
            return all(size > 4 * MIN_RECORDING_BYTES for size in sizes)

        await aeventually(recording_now, timeout=90, interval=0.1, what="three callers recording their description")
        for uid in uids:
            assert (await _call(sysm, uid))["status"] == "in_ivr"
        pid = running_pid(sysm.gateway_settings.instance_dir)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await aeventually(lambda: running_pid(sysm.gateway_settings.instance_dir) is None, timeout=10,
                          what="Asterisk gone")
    finally:
        await _finish(tasks, timeout=0.1)  # their calls died with Asterisk: nothing more will come
        await sim.close()

    up = await asyncio.to_thread(sysm.cli, "sandbox", "up", timeout=120)  # the project's own command
    answered_at = time.monotonic()  # `sandbox up` returns once AMI answers
    await aeventually(lambda: _ami_state_is(sysm, "connected"), timeout=15, interval=0.05,
                      what="gateway's AMI back after the restart")
    reconnect_s = time.monotonic() - answered_at
    print(f"\ngateway's AMI logged in {reconnect_s:.2f} s after `sandbox up` returned ({up.stderr.strip()[-80:]})")
    assert reconnect_s < 5  # loose: the probe interval is 0.25 s

    async def closed():
        calls = [await _call(sysm, uid) for uid in uids]
        return calls if all(c["status"] == "ended" for c in calls) else None

    calls = await aeventually(closed, timeout=30, interval=0.3, what="rows closed by reconciliation")
    attached = 0
    for call in calls:
        assert call["hangup_cause_txt"] == CAUSE_CRASH and call["hangup_cause"] is None, call
        assert call["ended_at"]
        wav = recordings / f"{call['uniqueid']}.wav"
        if wav.exists() and wav.stat().st_size >= MIN_RECORDING_BYTES:
            status, ticket = await _http(sysm, f"/api/tickets/{call['ticket_id']}")
            assert status == 200 and Path(ticket["recording_path"]) == wav.resolve(), ticket
            assert ticket["recording_duration_ms"] > 0
            attached += 1
    assert attached >= 1  # the calls were recording when Asterisk died
    _status, health = await _http(sysm, "/healthz")
    assert health["reconcile"]["totals"]["crashed"] >= 3, health["reconcile"]
