"""End to end, issue 9: what a real call leaves on disk is private, Asterisk's RTP listens
on loopback only, and the gateway's AMI user cannot originate or run CLI commands.

Real Asterisk (sandbox), real gateway, real SIPp (Debian's sip-tester) for the SIP call.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gateway.errors import PbxError
from gateway.pbx.ami import AmiClient
from gateway_dev import sandbox
from gateway_dev.eventually import eventually
from gateway_dev.simcall import CallScript, place_calls
from gateway_dev.system import free_ports, say_zh, sipp_media_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SIPP = shutil.which("sipp")
RTP_RANGE = range(20000, 30000)  # rtp.conf's rtpstart..rtpend

# INVITE 12345 (PCMU), ACK, hold for -d milliseconds, BYE: long enough to look at the sockets.
SHORT_CALL = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="e2e short call">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "e2e" <sip:13800000009@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:13800000009@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=e2e 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=sendrecv
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "e2e" <sip:13800000009@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:13800000009@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <pause/>
  <send retrans="500"><![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "e2e" <sip:13800000009@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:13800000009@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _udp_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every UDP socket process ``pid`` has, as ``ss -uapn`` shows them."""
    out = subprocess.run(["ss", "-uapnH"], capture_output=True, text=True, check=True, timeout=10).stdout
    found = []
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        local = line.split()[3]  # State Recv-Q Send-Q Local Peer Process
        host, _, port = local.rpartition(":")
        found.append((host.strip("[]"), int(port)))
    return found


def test_given_a_sip_call_when_it_is_up_then_asterisks_rtp_sockets_are_bound_to_loopback_only(system, tmp_path):
    if SIPP is None:
        pytest.skip("no sipp (apt-get install sip-tester)")
    pid = sandbox.running_pid(system.settings.instance_dir)
    assert pid is not None
    scenario = tmp_path / "short_call.xml"
    scenario.write_text(SHORT_CALL)
    (sip_local,) = free_ports(1, udp=True)
    media_port = sipp_media_port()
    cmd = [SIPP, f"127.0.0.1:{system.sip_port}", "-sf", str(scenario), "-s", "12345",
           "-i", "127.0.0.1", "-p", str(sip_local), "-mi", "127.0.0.1", "-mp", str(media_port),
           "-m", "1", "-l", "1", "-d", "8000", "-timeout", "60s", "-nostdin",
           "-trace_err", "-error_file", str(tmp_path / "errors.log")]
    before = set(_udp_sockets(pid))  # the SIP transport; PJSIP's DNS resolver (any address, no RTP)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        def call_sockets() -> list[tuple[str, int]] | None:
            found = [sock for sock in _udp_sockets(pid) if sock not in before]
            if len(found) >= 2:  # RTP and RTCP of this call
                return found
            if proc.poll() is not None:
                raise AssertionError(f"sipp ended ({proc.returncode}) before the call's RTP sockets were seen; "
                                     f"Asterisk's UDP sockets before it: {before}\n{proc.stdout.read()[-2000:]}")
            return None

        new = eventually(call_sockets, interval=0.1, retry_on=(), what="the call's RTP sockets")
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 0, output[-2000:]
    assert len(new) >= 2, f"no RTP socket of the call seen; Asterisk's UDP sockets before it: {before}"
    assert {host for host, _ in new} == {"127.0.0.1"}, new  # was *:port (every interface) before issue 9
    assert all(port in RTP_RANGE for _, port in new), new
    assert ("127.0.0.1", system.sip_port) in before


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "caller.wav"
    return say_zh("路灯坏了", path)


def test_given_a_call_with_a_recording_when_it_ends_then_the_recording_database_and_dirs_are_private(
        system, speech):
    (result,) = asyncio.run(place_calls(system.settings, [
        CallScript(number="12345", caller="13800000010", digits="41", say=speech)]))
    assert result["ticket_id"] is not None, result
    status, ticket = system.http(f"/api/tickets/{result['ticket_id']}", token=system.token())
    assert status == 200

    recording = Path(ticket["recording_path"])
    assert recording.is_file() and recording.stat().st_size > 0
    assert _mode(recording) == 0o600  # written by Asterisk (umask 077 in the sandbox)
    assert _mode(recording.parent) == 0o700
    var = system.gateway_settings.state_dir
    db = var / "gateway.db"
    assert (db.with_name("gateway.db-wal")).exists()
    assert [_mode(p) for p in (db, db.with_name("gateway.db-wal"), db.with_name("gateway.db-shm"))] == [0o600] * 3
    loose = [f"{p} {oct(_mode(p))}" for p in [var, *var.rglob("*")]
             if (p.is_dir() and not p.is_symlink() and _mode(p) != 0o700)
             or (stat.S_ISREG(os.lstat(p).st_mode) and _mode(p) != 0o600)]
    assert loose == []


def test_given_the_gateways_ami_user_when_it_asks_for_more_than_it_needs_then_asterisk_refuses(system):
    s = system.gateway_settings

    async def scenario():
        ami = AmiClient(host=s.ami_host, port=s.ami_port, username=s.ami_user, secret=s.ami_secret)
        await ami.start()
        try:
            assert await ami.wait_connected(10), ami.last_error
            refused = {}
            for fields in ({"Action": "Command", "Command": "core show uptime"},
                           # Originate is the gateway's since issue 13 (its calls to citizens);
                           # rewriting Asterisk's config files (class config) never is
                           {"Action": "UpdateConfig", "SrcFilename": "manager.conf", "DstFilename": "manager.conf",
                            "Action-000000": "NewCat", "Cat-000000": "intruder"}):
                try:
                    await ami.action(fields)
                except PbxError as exc:
                    refused[fields["Action"]] = str(exc)
            await ami.reload_module("pbx_config")  # what the gateway does use
            await ami.queue_reload()
            return refused
        finally:
            await ami.close()

    refused = asyncio.run(scenario())
    assert set(refused) == {"Command", "UpdateConfig"}
    assert all(re.search("permission denied", msg, re.I) for msg in refused.values()), refused
