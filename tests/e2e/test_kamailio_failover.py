"""Issue 12: Kamailio's failover, made deterministic with two scripted SIP nodes.

A real Kamailio (``gateway_dev.kamailio``) in front of two UDP sockets this test plays:
node ``mute`` answers the OPTIONS probes (so the dispatcher thinks it is up) but never
answers an INVITE — an Asterisk that hangs; node ``live`` answers every INVITE. Whatever
node the round-robin picks first, every INVITE must end at ``live``: the one sent to
``mute`` times out (fr_timer, 408) and ``ds_next_dst()`` sends it on. No Asterisk needed:
seconds, not minutes.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import uuid

import pytest

from gateway_dev.eventually import eventually
from gateway_dev.kamailio import KAMAILIO, Destination, Kamailio
from gateway_dev.system import free_udp_tcp_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


class ScriptedNode:
    """A UDP SIP endpoint: 200 to OPTIONS; to INVITE 100 + 486 (``live``) or nothing (``mute``)."""

    def __init__(self, *, answers_invite: bool) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answers_invite = answers_invite
        self.invites: list[str] = []  # Call-IDs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ScriptedNode":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            text = data.decode(errors="replace")
            method = text.split(" ", 1)[0]
            if method == "OPTIONS":
                self.sock.sendto(_response(text, "200 OK"), peer)
            elif method == "INVITE":
                self.invites.append(_header(text, "Call-ID"))
                if self.answers_invite:
                    self.sock.sendto(_response(text, "100 Trying"), peer)
                    self.sock.sendto(_response(text, "486 Busy Here", to_tag=True), peer)


def _header(text: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(.*?)\r?$", text, re.M | re.I)
    return m.group(1) if m else ""


def _response(request: str, status: str, *, to_tag: bool = False) -> bytes:
    vias = re.findall(r"^Via:.*?\r?$", request, re.M | re.I)
    to = _header(request, "To") + (";tag=node1" if to_tag else "")
    lines = [f"SIP/2.0 {status}", *[v.rstrip("\r") for v in vias], f"From: {_header(request, 'From')}",
             f"To: {to}", f"Call-ID: {_header(request, 'Call-ID')}", f"CSeq: {_header(request, 'CSeq')}",
             "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _invite(proxy_port: int) -> tuple[str, int | None]:
    """One INVITE to the proxy; (Call-ID, final status) — waits for the final answer (ACKs a non-2xx)."""
    call_id = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        lport = s.getsockname()[1]
        branch = f"z9hG4bK{call_id[:12]}"
        head = (f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch}\r\n"
                f"From: <sip:13800000001@127.0.0.1:{lport}>;tag=c{call_id[:6]}\r\n"
                f"To: <sip:12345@127.0.0.1:{proxy_port}>\r\nCall-ID: {call_id}\r\n")
        s.sendto((f"INVITE sip:12345@127.0.0.1:{proxy_port} SIP/2.0\r\n{head}CSeq: 1 INVITE\r\n"
                  f"Contact: <sip:13800000001@127.0.0.1:{lport}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                  ).encode(), ("127.0.0.1", proxy_port))
        while True:
            try:
                data, _ = s.recvfrom(65535)
            except TimeoutError:
                return call_id, None
            code = int(data[8:11])
            if code >= 200:
                return call_id, code


@pytest.mark.skipif(shutil.which(KAMAILIO) is None, reason="kamailio not installed (apt-get install kamailio)")
def test_given_a_node_that_never_answers_invites_when_calls_come_then_kamailio_fails_over_to_the_other(tmp_path):
    with ScriptedNode(answers_invite=False) as mute, ScriptedNode(answers_invite=True) as live:
        proxy = Kamailio([Destination("mute", "127.0.0.1", mute.port), Destination("live", "127.0.0.1", live.port)],
                         port=free_udp_tcp_port(), state_dir=tmp_path / "kamailio")
        with proxy:
            states = eventually(lambda: (st := proxy.destination_states()) and all(
                f.startswith("A") for f in st.values()) and len(st) == 2 and st or None,
                timeout=15, interval=0.2, what="both nodes active")
            assert len(states) == 2
            results = [_invite(proxy.port) for _ in range(2)]  # round-robin: one of them goes to `mute` first

            assert [code for _cid, code in results] == [486, 486], proxy.log_tail()
            assert sorted(live.invites) == sorted(cid for cid, _ in results)  # every call reached `live`
            assert len(mute.invites) >= 1  # ... and at least one was tried on `mute` first
            # The timeout went through failure_route (marked down; it answers OPTIONS, so it comes back).
            assert re.search(rf"node sip:127.0.0.1:{mute.port} failed \(408\)", proxy.log_tail()), proxy.log_tail()
