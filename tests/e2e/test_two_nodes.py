"""End to end, issue 12: two Asterisk nodes behind Kamailio, one gateway with an AMI
connection to each node.

Real parts, all on loopback, each started by the project's own commands: Kamailio 5.6
(``gateway_dev.kamailio``: dispatcher, OPTIONS probing), two sandbox Asterisk nodes
(``gateway sandbox up`` with ``GATEWAY_ASTERISK_NODES``), ``gateway serve``, and SIPp
(Debian's sip-tester) placing real SIP calls at Kamailio with bench/sipp/uac_12345.xml
(the caller presses 1 in the type menu, talks, is recorded, reaches a simulated agent).

Which node took a call is read from the call's id: each node has its own ``systemname``
(``pbx1-…``, ``pbx2-…``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.pbx.ami import AmiClient
from gateway_dev.eventually import eventually
from gateway_dev.kamailio import KAMAILIO
from gateway_dev.system import ROOT, free_ports, sipp_bind_failed, sipp_media_port
from gateway_dev.topology import NodesSystem
from tests.e2e.conftest import running, skip_unless

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SIPP = shutil.which("sipp")
SOX = shutil.which("sox")
SCENARIO = ROOT / "bench" / "sipp" / "uac_12345.xml"
DTMF = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")  # "1": consultation, in the type menu
SIP_TOOLS = {"sipp (apt-get install sip-tester)": SIPP, "sox": SOX,
             "kamailio (apt-get install kamailio)": shutil.which(KAMAILIO), "SIPp's DTMF captures": DTMF.exists()}


@pytest.fixture(scope="module")
def topo():
    skip_unless(**SIP_TOOLS)
    topo = NodesSystem(prefix="gw-e2e-nodes-", log_level="INFO", test_clock=True)
    topo.env["GATEWAY_SPEECH"] = "off"  # keys and recordings only: the recogniser is not what is tested here
    with running(topo, start=lambda t: print(f"two nodes up: {t.up()}"),
                 logs=lambda t: [(t.log_path, "e2e-two-nodes-gateway.log"),
                                 (t.kamailio.log_path, "e2e-two-nodes-kamailio.log")]):
        yield topo


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("media")
    silence, speech = tmp / "silence.ulaw", tmp / "speech.ulaw"
    silence.write_bytes(b"\xff" * 8000)  # 1 s of u-law silence, looped
    subprocess.run([SOX, "-n", "-r", "8000", "-c", "1", "-t", "ul", str(speech), "synth", "6", "pinknoise",
                    "vol", "0.3"], check=True, capture_output=True, timeout=30)  # 6 s of "talking"
    return {"silence": silence, "speech": speech}


def _tickets(topo: NodesSystem) -> list[dict]:
    status, body = topo.http("/api/tickets?limit=200", token=topo.token())
    assert status == 200, body
    return body["items"]


def _node(uniqueid: str) -> str:
    return uniqueid.split("-", 1)[0]


def _sipp_calls(topo: NodesSystem, media: dict, n: int, tmp: Path) -> list[dict]:
    """``n`` SIPp calls at Kamailio, all at once; returns the tickets they left (asserting SIPp's success)."""
    before = {t["id"] for t in _tickets(topo)}
    for _ in range(3):  # a port SIPp binds may be taken between our check and its bind
        (sip_local,) = free_ports(1, udp=True)
        media_port = sipp_media_port()
        cmd = [SIPP, f"127.0.0.1:{topo.proxy_port}", "-sf", str(SCENARIO), "-s", "12345",
               "-i", "127.0.0.1", "-p", str(sip_local), "-mi", "127.0.0.1", "-mp", str(media_port),
               "-key", "dtmf_pcap", str(DTMF), "-key", "speech", f"{media['speech']},1,0",
               "-key", "silence", f"{media['silence']},-1,0",
               "-m", str(n), "-l", str(n), "-r", str(n), "-rp", "1000", "-timeout", "240s", "-nostdin",
               "-trace_err", "-error_file", str(tmp / "errors.log")]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        if not (proc.returncode and sipp_bind_failed(proc.stdout + proc.stderr)):
            break
    errors = (tmp / "errors.log").read_text(errors="replace")[-2000:] if (tmp / "errors.log").exists() else ""
    assert proc.returncode == 0, f"SIPp failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{errors}"

    def ours() -> list[dict] | None:
        new = [t for t in _tickets(topo) if t["id"] not in before]
        return new if len(new) >= n else None

    return eventually(ours, timeout=30, interval=0.2, what=f"{n} new tickets")


def _getvar(settings, variable: str) -> str:
    async def ask() -> str:
        ami = AmiClient(host=settings.ami_host, port=settings.ami_port, username=settings.ami_user,
                        secret=settings.ami_secret)
        await ami.start()
        try:
            assert await ami.wait_connected(10), ami.last_error
            return (await ami.action({"Action": "Getvar", "Variable": variable})).get("Value", "")
        finally:
            await ami.close()

    return asyncio.run(ask())


def _change_config(topo: NodesSystem, agent_name: str) -> None:
    """A real change to hotlines.yaml (the first agent's name), applied by SIGHUP as an operator does."""
    hotlines = topo.config_dir / "hotlines.yaml"
    text = hotlines.read_text(encoding="utf-8")
    changed = re.sub(r'\{id: "8001", name: [^}]*\}', f'{{id: "8001", name: {agent_name}}}', text, count=1)
    assert changed != text
    hotlines.write_text(changed, encoding="utf-8")
    topo.reload_gateway()


def _health(topo: NodesSystem) -> dict:
    return topo.http("/healthz", token=topo.token())[1]


def test_given_two_nodes_behind_kamailio_when_sipp_calls_then_the_calls_spread_and_each_left_its_ticket(
        topo, media, tmp_path):
    health = _health(topo)
    assert health["asterisk_nodes"] == {"pbx1": "connected", "pbx2": "connected"}

    tickets = _sipp_calls(topo, media, 4, tmp_path)

    assert len(tickets) == 4
    by_node = {}
    for t in tickets:
        by_node.setdefault(_node(t["uniqueid"]), []).append(t)
    assert set(by_node) == {"pbx1", "pbx2"}, [t["uniqueid"] for t in tickets]  # round-robin: both took calls
    for t in tickets:
        status, call = topo.http(f"/api/calls/{t['uniqueid']}", token=topo.token())
        assert status == 200, call
        assert call.get("agent"), call  # the intended path: a simulated agent answered
        assert any(s.get("node") == "type_menu" and s.get("key") == "1" for s in t["menu_path"]), t["menu_path"]
        assert (t.get("recording_duration_ms") or 0) > 0, t  # node 2 records where the gateway looks too
        assert Path(t["recording_path"]).is_file(), t["recording_path"]


def test_given_two_nodes_when_a_config_version_is_applied_then_every_node_reloads_it(topo):
    before = _health(topo)
    _change_config(topo, "坐席一号")

    def reloaded() -> dict | None:
        health = _health(topo)
        last = health.get("last_reload")
        return health if last and last != before.get("last_reload") else None

    health = eventually(reloaded, interval=0.1, what="the gateway reporting the reload")
    assert health["last_reload"]["ok"] is True, health["last_reload"]
    version = health["config_version"]
    assert version != before["config_version"]
    assert health["config_nodes"] == {"pbx1": "reloaded", "pbx2": "reloaded"}
    for name in topo.names:
        extensions = (topo.node_instance_dir(name) / "etc" / "extensions.conf").read_text()
        assert f"GW_CONFIG_VERSION={version}\n" in extensions, name
        assert _getvar(topo.node_sim_settings(name), "GW_CONFIG_VERSION") == str(version), name  # Asterisk took it


def test_given_two_nodes_when_one_is_killed_then_kamailio_marks_it_down_and_new_calls_succeed_on_the_other(
        topo, media, tmp_path):
    node2_uri = f"sip:127.0.0.1:{topo.node_ports['pbx2'][1]}"
    assert topo.kamailio.destination_states()[node2_uri].startswith("A")

    topo.kill_node("pbx2")

    def marked_down() -> str | None:
        flags = topo.kamailio.destination_states()[node2_uri]
        return flags if flags.startswith(("I", "T", "D")) else None

    flags = eventually(marked_down, timeout=30, interval=0.2, what="Kamailio marking pbx2 down (OPTIONS)")
    assert "P" in flags  # still probed: it comes back by itself when it answers again
    eventually(lambda: _health(topo)["asterisk_nodes"]["pbx2"].startswith("disconnected") or None,
               timeout=30, interval=0.2, what="the gateway seeing pbx2's AMI gone")

    tickets = _sipp_calls(topo, media, 2, tmp_path)

    assert sorted(_node(t["uniqueid"]) for t in tickets) == ["pbx1", "pbx1"]
    for t in tickets:
        status, call = topo.http(f"/api/calls/{t['uniqueid']}", token=topo.token())
        assert status == 200 and call.get("agent"), call

    # A version applied while pbx2 is away: pbx1 reloads it, pbx2 is reported (and its files written).
    previous = _health(topo).get("last_reload")
    _change_config(topo, "坐席一")
    health = eventually(lambda: (h := _health(topo)).get("last_reload") != previous and h or None,
                        interval=0.1, what="the reload while pbx2 is down")
    assert health["last_reload"]["ok"] is True, health["last_reload"]
    assert health["config_nodes"]["pbx1"] == "reloaded"
    assert health["config_nodes"]["pbx2"].startswith("down"), health["config_nodes"]
    version = health["config_version"]
    assert f"GW_CONFIG_VERSION={version}\n" in (topo.node_instance_dir("pbx2") / "etc" / "extensions.conf").read_text()
