"""End to end, the gateway killed with callers in the menu: the dialplan's fail-safe.

Real sandbox Asterisk, a real ``gateway serve``. Three simulated callers each choose a request
type (three different queues) and wait in the confidentiality menu; once the gateway has
recorded their choices (the database) and Asterisk runs their second menu, the test SIGKILLs
the gateway, then each caller presses a key (Asterisk finds the FastAGI session gone). Each
must hear the fail-safe notice (what they heard is recorded on their side and put through the
project's Mandarin recogniser) and reach the queue they chose, not the fallback queue; a call
placed while the gateway is down reaches the fallback queue, with the notice too. Asterisk logs
each fail-safe with the choice it kept (the same facts go into CDR(userfield) for
reconciliation) and no longer complains that there is no music on hold.

FastAGI failover runs in every call here: GATEWAY_AGI_PEERS lists a dead address first, so
Asterisk is refused there and goes on to the gateway's own address before the IVR starts;
once the IVR has started, a lost gateway means the fail-safe, never the menu again.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import wave
from pathlib import Path

import pytest

from gateway.asr.zh_text import cer
from gateway.pbx.prompts import FAILSAFE_NOTICE
from gateway_dev.eventually import aeventually, eventually
from gateway_dev.simcall import CallScript, place_call, sim_ami_client
from gateway_dev.system import System, free_ports
from tests.e2e.conftest import running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

CHOICES = {"1": "q-consult", "3": "q-report", "4": "q-complaint"}  # type-menu key -> its queue
NOTICE = re.sub(r"[，。、\s]", "", FAILSAFE_NOTICE[1])


@pytest.fixture(scope="module")
def system():
    sysm = System(prefix="gw-e2e-failsafe-", log_level="INFO")
    # Keys and recordings only (no recogniser in the gateway): the menus are GET DATA.
    sysm.env["GATEWAY_SPEECH"] = "off"
    (dead,) = free_ports(1)  # nothing listens there: refused, the next address is tried
    sysm.env["GATEWAY_AGI_PEERS"] = f"127.0.0.1:{dead},127.0.0.1:{sysm.env['GATEWAY_AGI_PORT']}"
    # The callers wait in the confidentiality menu until the test presses for them.
    flow = sysm.config_dir / "flows" / "main.yaml"
    text = flow.read_text(encoding="utf-8")
    menu = text.index("  confidential_menu:\n    type: menu")
    text = text[:menu] + text[menu:].replace("timeout: 4", "timeout: 60", 1)
    flow.write_text(text, encoding="utf-8")
    with running(sysm, logs=lambda s: [(s.log_path, "e2e-failsafe-gateway.log"),
                                       (s.console_log, "e2e-failsafe-asterisk.console.log")]):
        yield sysm


def _steps(system: System, uniqueid: str) -> list[dict]:
    db = system.gateway_settings.database_url.split("///", 1)[1]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT menu_path FROM calls WHERE uniqueid = ?", (uniqueid,)).fetchone()
    return json.loads(row[0]) if row and row[0] else []


def _closed(ears: str) -> bool:
    """Asterisk has closed the recording: its WAV header counts every byte of it."""
    path = Path(ears)
    if not path.is_file():
        return False
    with wave.open(str(path)) as w:
        frames = w.getnframes()
    return frames > 0 and 44 + 2 * frames == path.stat().st_size


def _heard(system: System, ears: str) -> str:
    eventually(lambda: _closed(ears), timeout=20, retry_on=(OSError, EOFError, wave.Error),
               what=f"{ears} closed")
    proc = system.cli("transcribe", ears, "--lang", "zh", "--json", timeout=300)
    return re.sub(r"[，。、,.\s]", "", json.loads(proc.stdout).get("text", ""))


def _notice_cer(heard: str) -> float:
    """The notice's character error rate against the best matching stretch of what was heard."""
    n = len(NOTICE)
    windows = [heard[i:i + w] for w in (n - 2, n, n + 2) for i in range(max(1, len(heard) - w + 1))]
    return min(cer(NOTICE, window) for window in windows) if heard else 1.0


@pytest.fixture(scope="module")
def calls(system):
    settings = system.settings
    uids = {key: f"fs-{key}-{n}" for n, key in enumerate(CHOICES)}

    async def run():
        watcher = sim_ami_client(settings)
        await watcher.start()
        in_second_menu: set[str] = set()
        callers: dict[str, str] = {}

        def on_event(h: dict) -> None:
            uid = h.get("Uniqueid", "")
            if h.get("Event") == "Newchannel" and uid.endswith("-c"):
                callers[uid[:-2]] = h.get("Channel", "")
            elif (h.get("Event") == "AGIExecStart" and h.get("Command", "").startswith("GET DATA")
                  and "confidential_menu" in h.get("Command", "")):
                in_second_menu.add(uid)

        watcher.subscribe_raw(on_event)
        try:
            await watcher.wait_connected(10)
            menu_calls = [asyncio.create_task(place_call(settings, CallScript(
                number="12345", caller=f"1390000004{n}", digits=key, uniqueid=uid, ears=True, timeout=240)))
                for n, (key, uid) in enumerate(uids.items())]
            # Deterministic moment: every caller's choice is in the database and Asterisk runs their
            # second menu (the gateway set GW_CHOICE_* before sending that GET DATA).
            await aeventually(lambda: set(uids.values()) <= in_second_menu, timeout=120, interval=0.1,
                              what="all three callers in the confidentiality menu")
            for key, uid in uids.items():
                steps = await asyncio.to_thread(_steps, system, uid)
                assert any(s.get("node") == "type_menu" and s.get("key") == key for s in steps), steps
            system.gateway.send_signal(signal.SIGKILL)
            await asyncio.to_thread(system.gateway.wait, 30)
            for uid in uids.values():  # the answer reaches Asterisk, the gateway is gone
                await watcher.action({"Action": "PlayDTMF", "Channel": callers[uid], "Digit": "1",
                                      "Duration": "120"})
            results = await asyncio.gather(*menu_calls)
            outage = await place_call(settings, CallScript(number="12345", caller="13900000049",
                                                           uniqueid="fs-outage", ears=True, timeout=120))
        finally:
            await watcher.close()
        return dict(zip(uids, results)), outage

    return asyncio.run(run())


def test_given_the_gateway_killed_in_the_menu_then_each_caller_reaches_the_queue_they_chose(calls):
    results, _outage = calls
    for key, result in results.items():
        assert result["queue"] == CHOICES[key], result
        assert result["agent"], result  # a person took the call


def test_given_the_gateway_killed_in_the_menu_then_each_caller_hears_the_notice(system, calls):
    results, _outage = calls
    for result in results.values():
        heard = _heard(system, result["ears"])
        assert _notice_cer(heard) <= 0.35, (result["uniqueid"], heard)


def test_given_the_gateway_down_when_a_call_comes_then_the_fallback_queue_with_the_notice(system, calls):
    _results, outage = calls
    assert outage["queue"] == "q-general" and outage["agent"], outage
    assert outage["heard"] == []  # no gateway: not one prompt of the flow
    heard = _heard(system, outage["ears"])
    assert _notice_cer(heard) <= 0.35, heard


def test_given_the_failsafe_then_asterisk_logs_the_kept_choice_and_has_music_on_hold(system, calls):
    results, outage = calls
    log = eventually(lambda: system.console_log.read_text(errors="replace"), timeout=10)
    for key, result in results.items():
        line = next((ln for ln in log.splitlines() if f"gateway fail-safe: call {result['uniqueid']} " in ln), "")
        assert f"path=type_menu:{key} -> {CHOICES[key]}" in line and "ivr=started" in line, line
    assert f"gateway fail-safe: call {outage['uniqueid']} AGISTATUS=FAILURE ivr= path= -> q-general" in log
    assert "No music on hold classes configured" not in log
    dead, alive = system.gateway_settings.agi_addresses
    assert f"FastAGI {dead} unreachable (AGISTATUS=FAILURE) - trying {alive}" in log  # failover, then the IVR
    assert Path(system.gateway_settings.instance_dir / "moh" / "gentle-tone.wav").is_file()
