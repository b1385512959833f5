"""AmiClient against a fake AMI server on a real socket, plus pure ``parse_event`` tests.

The fake server speaks just enough AMI (greeting, ``Key: Value`` blocks, ActionID echo,
Login, Ping, FullyBooted) and logs every action it receives on each connection, so the
tests assert on what went over the wire: logins, reconnect times, pings, and that a
dropped ``Originate`` is never sent again. Waits poll with a deadline; assertions are in
the test bodies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import pytest

from gateway.errors import AmiNotConnected, AmiTimeout, PbxError
from gateway.pbx.ami import AmiClient
from gateway.pbx.ami_events import (
    AgentConnect,
    FullyBooted,
    Hangup,
    NewChannel,
    QueueCallerAbandon,
    QueueCallerJoin,
    parse_event,
)
from gateway_dev.eventually import aeventually

USER, SECRET = "gateway", "s3cret-ami"
GREETING = b"Asterisk Call Manager/11.0.0\r\n"
PONG = {"Response": "Success", "Ping": "Pong", "Timestamp": "1700000000.123456"}
ORIGINATE = {
    "Action": "Originate",
    "Channel": "Local/13800138000@callback",
    "Context": "hotline",
    "Exten": "12345",
    "Priority": "1",
    "Async": "true",
}


# -- fake AMI server ---------------------------------------------------------------------
@dataclass
class AmiConn:
    """One client connection as the server saw it."""

    writer: asyncio.StreamWriter
    opened_at: float
    ping_reply: dict | None
    actions: list[dict] = field(default_factory=list)
    logged_in: bool = False
    closed_at: float | None = None
    killed: bool = False

    def names(self) -> list[str]:
        return [a.get("Action", "") for a in self.actions]

    def count(self, name: str) -> int:
        return sum(1 for n in self.names() if n.lower() == name.lower())

    def send(self, fields: dict) -> None:
        block = "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.writer.write(block.encode())

    def kill(self) -> None:
        self.killed = True
        self.writer.close()


class FakeAmi:
    def __init__(self, *, username: str = USER, secret: str = SECRET) -> None:
        self.username, self.secret = username, secret
        self.ping_reply: dict | None = dict(PONG)  # for new connections; None: never answer
        self.unanswered: set[str] = set()  # action names the server never answers
        self.errors: dict[str, list[str]] = {}  # action name -> error messages answered first, in turn
        self.answer_login = True
        self.hang_up_after_refused_login = True  # what Asterisk does
        self.conns: list[AmiConn] = []
        self.handler_tasks: set[asyncio.Task] = set()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in self.conns:
            conn.writer.transport.abort()
        await self._server.wait_closed()
        if self.handler_tasks:
            await asyncio.wait(self.handler_tasks, timeout=2)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handler_tasks.add(asyncio.current_task())
        conn = AmiConn(writer, time.monotonic(), None if self.ping_reply is None else dict(self.ping_reply))
        self.conns.append(conn)
        writer.write(GREETING)
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                action = {}
                for line in raw.decode().split("\r\n"):
                    if ": " in line:
                        key, value = line.split(": ", 1)
                        action[key] = value
                conn.actions.append(action)
                if not self._answer(conn, action):
                    break
        finally:
            conn.closed_at = time.monotonic()
            writer.close()

    def _answer(self, conn: AmiConn, action: dict) -> bool:
        """Reply to one action; False ends the session."""
        name, aid = action.get("Action", ""), action.get("ActionID", "")
        if name in self.unanswered:
            return True
        if name.lower() == "login":
            if not self.answer_login:
                return True
            if action.get("Username") == self.username and action.get("Secret") == self.secret:
                conn.logged_in = True
                conn.send({"Response": "Success", "ActionID": aid, "Message": "Authentication accepted"})
                conn.send({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"})
                return True
            conn.send({"Response": "Error", "ActionID": aid, "Message": "Authentication failed"})
            return not self.hang_up_after_refused_login
        if name.lower() == "ping":
            if conn.ping_reply is not None:
                conn.send({"Response": conn.ping_reply.get("Response", "Success"), "ActionID": aid,
                           **{k: v for k, v in conn.ping_reply.items() if k != "Response"}})
            return True
        if self.errors.get(name):
            conn.send({"Response": "Error", "ActionID": aid, "Message": self.errors[name].pop(0)})
            return True
        conn.send({"Response": "Success", "ActionID": aid, "Message": "ok"})
        return True


# -- helpers and fixtures -------------------------------------------------------------------
@pytest.fixture
async def server():
    fake = FakeAmi()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def make_client(server):
    clients: list[AmiClient] = []

    def _make(**overrides) -> AmiClient:
        options = dict(host="127.0.0.1", port=server.port, username=USER, secret=SECRET,
                       action_timeout=0.3, ping_interval=0.2, backoff_initial=0.05, backoff_max=0.4)
        options.update(overrides)
        client = AmiClient(**options)
        clients.append(client)
        return client

    yield _make
    for client in clients:
        await client.close()


async def started(client: AmiClient) -> AmiClient:
    await client.start()
    assert await client.wait_connected(2.0), f"client did not connect: {client.last_error}"
    return client


# -- 1. login and reconnect backoff -----------------------------------------------------
async def test_given_right_credentials_when_started_then_logs_in_and_is_connected(server, make_client):
    client = make_client()

    await client.start()

    assert await client.wait_connected(2.0)
    assert client.connected and client.connects == 1 and client.last_error is None
    login = server.conns[0].actions[0]
    assert (login["Action"], login["Username"], login["Secret"]) == ("Login", USER, SECRET)
    assert server.conns[0].logged_in


async def test_given_not_started_when_action_then_raises_not_connected(make_client):
    client = make_client()

    with pytest.raises(AmiNotConnected):
        await client.action({"Action": "CoreSettings"})


async def test_given_wrong_secret_when_started_then_stays_disconnected_and_retries_with_growing_delays(
        server, make_client):
    client = make_client(secret="wrong", backoff_initial=0.1, backoff_max=10.0)

    await client.start()
    await aeventually(lambda: sum(c.count("Login") for c in server.conns) >= 4, timeout=3.0,
                     what="four login attempts")

    assert not client.connected and client.connects == 0
    assert "Authentication failed" in (client.last_error or "")
    assert all(c.names() == ["Login"] and not c.logged_in for c in server.conns[:4])
    times = [c.opened_at for c in server.conns[:4]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.1 * 0.8 - 0.01, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps


async def test_given_repeated_failures_when_backing_off_then_delays_are_capped_by_backoff_max(server, make_client):
    client = make_client(secret="wrong", backoff_initial=0.05, backoff_max=0.1)

    await client.start()
    await aeventually(lambda: sum(c.count("Login") for c in server.conns) >= 6, timeout=3.0,
                     what="six login attempts")

    times = [c.opened_at for c in server.conns[:6]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) <= 0.1 * 1.2 + 0.1, gaps


async def test_given_refused_login_and_server_keeps_socket_open_when_retrying_then_client_hangs_up_itself(
        server, make_client):
    server.hang_up_after_refused_login = False
    client = make_client(secret="wrong")

    await client.start()
    await aeventually(lambda: len(server.conns) >= 3, what="three login attempts")
    await aeventually(lambda: all(c.closed_at for c in server.conns[:2]), timeout=1.0,
                     what="refused connections closed by the client")

    assert not any(c.killed for c in server.conns)


# -- 2. keep-alive -------------------------------------------------------------------------
async def test_given_half_open_link_when_ping_gets_no_answer_then_client_drops_and_reconnects(server, make_client):
    client = await started(make_client(ping_interval=0.2, action_timeout=0.3))
    first = server.conns[0]
    await aeventually(lambda: first.count("Ping") >= 1, what="a first ping")

    first.ping_reply = None  # socket stays open, nothing comes back
    silenced_at = time.monotonic()
    await aeventually(lambda: first.closed_at, timeout=2.0, what="client dropping the silent link")

    assert first.closed_at - silenced_at <= 0.2 + 0.3 + 0.3
    assert not first.killed
    await aeventually(lambda: len(server.conns) >= 2 and server.conns[1].logged_in and client.connected,
                     what="reconnection")
    assert client.connects == 2


@pytest.mark.parametrize("bad_reply", [
    {"Response": "Success", "Ping": "Ping"},
    {"Response": "Success"},
    {"Response": "Error", "Message": "Permission denied"},
], ids=["wrong-ping-header", "no-ping-header", "error"])
async def test_given_connected_when_ping_answer_is_not_pong_then_client_reconnects(server, make_client, bad_reply):
    client = await started(make_client())
    first = server.conns[0]

    first.ping_reply = bad_reply
    await aeventually(lambda: first.closed_at, timeout=2.0, what="client dropping the link")

    assert first.count("Ping") == 1 and not first.killed
    await aeventually(lambda: len(server.conns) >= 2 and server.conns[1].logged_in and client.connected,
                     what="reconnection")
    await aeventually(lambda: server.conns[1].count("Ping") >= 2, what="pings on the new link")
    assert client.connected and len(server.conns) == 2


# -- 3. action deadlines ------------------------------------------------------------------
async def test_given_unanswered_action_when_awaited_then_raises_ami_timeout_after_action_timeout(
        server, make_client):
    client = await started(make_client(action_timeout=0.3))
    server.unanswered.add("QueueStatus")

    begun = time.monotonic()
    with pytest.raises(AmiTimeout):
        await client.action({"Action": "QueueStatus"})
    elapsed = time.monotonic() - begun

    assert 0.3 * 0.95 <= elapsed <= 0.3 + 0.3
    assert server.conns[0].count("QueueStatus") == 1
    response = await client.action({"Action": "CoreSettings"})  # the link itself is fine
    assert response.get("Response") == "Success" and len(server.conns) == 1


async def test_given_explicit_timeout_when_action_unanswered_then_that_deadline_applies(server, make_client):
    client = await started(make_client(action_timeout=2.0))
    server.unanswered.add("QueueStatus")

    begun = time.monotonic()
    with pytest.raises(AmiTimeout):
        await client.action({"Action": "QueueStatus"}, timeout=0.1)

    assert time.monotonic() - begun < 0.5


# -- 4. no replay ------------------------------------------------------------------------
async def test_given_pending_originate_when_server_kills_link_then_fails_fast_and_is_never_resent(
        server, make_client):
    client = await started(make_client(action_timeout=2.0))
    server.unanswered.add("Originate")
    first = server.conns[0]
    pending = asyncio.create_task(client.action(dict(ORIGINATE)))
    await aeventually(lambda: first.count("Originate") == 1, what="originate on the wire")

    first.kill()
    killed_at = time.monotonic()
    with pytest.raises(AmiNotConnected):
        await asyncio.wait_for(pending, 3.0)

    assert time.monotonic() - killed_at < 0.5  # long before the 2 s action deadline
    await aeventually(lambda: len(server.conns) >= 2 and server.conns[1].logged_in and client.connected,
                     what="reconnection")
    second = server.conns[1]
    await aeventually(lambda: second.count("Ping") >= 3, what="three pings on the new link")
    assert all(c.count("Originate") == 0 for c in server.conns[1:])
    assert first.count("Originate") == 1


async def test_given_ping_in_flight_when_link_drops_then_pending_actions_fail_at_once_and_client_reconnects(
        server, make_client):
    client = await started(make_client(action_timeout=2.0, ping_interval=0.1))
    server.unanswered.add("Originate")
    first = server.conns[0]
    first.ping_reply = None
    pending = asyncio.create_task(client.action(dict(ORIGINATE)))
    await aeventually(lambda: "Ping" in first.names()[first.names().index("Originate"):] if first.count("Originate")
                     else False, what="a ping sent after the originate")

    first.kill()
    killed_at = time.monotonic()
    with pytest.raises(AmiNotConnected):
        await asyncio.wait_for(pending, 3.0)

    assert time.monotonic() - killed_at < 0.5
    await aeventually(lambda: len(server.conns) >= 2 and client.connected, timeout=1.0, what="quick reconnection")
    assert server.conns[1].count("Originate") == 0


# -- 5. typed events --------------------------------------------------------------------
CALLER_UID, AGENT_UID = "1700000000.11", "1700000000.12"
CALLER_CHAN = "PJSIP/trunk-00000007"
EVENTS = [
    {"Event": "Newchannel", "Channel": CALLER_CHAN, "Uniqueid": CALLER_UID, "Linkedid": CALLER_UID,
     "CallerIDNum": "13800138000", "Context": "from-trunk", "Exten": "12345"},
    {"Event": "QueueCallerJoin", "Channel": CALLER_CHAN, "Uniqueid": CALLER_UID, "Queue": "hotline",
     "Position": "1", "Count": "1"},
    {"Event": "AgentConnect", "Channel": CALLER_CHAN, "Uniqueid": CALLER_UID, "DestChannel": "PJSIP/agent101-0008",
     "DestUniqueid": AGENT_UID, "Queue": "hotline", "MemberName": "Agent Li", "Interface": "PJSIP/agent101",
     "HoldTime": "12", "RingTime": "3"},
    {"Event": "QueueCallerAbandon", "Channel": "PJSIP/trunk-00000009", "Uniqueid": "1700000000.13",
     "Queue": "hotline", "Position": "2", "OriginalPosition": "2", "HoldTime": "30"},
    {"Event": "Hangup", "Channel": CALLER_CHAN, "Uniqueid": CALLER_UID, "Cause": "16",
     "Cause-txt": "Normal Clearing"},
    {"Event": "PeerStatus", "Peer": "PJSIP/agent101", "PeerStatus": "Reachable"},  # not typed: skipped
]
EXPECTED = [
    NewChannel("Newchannel", CALLER_UID, CALLER_CHAN, "13800138000", "12345", "from-trunk", CALLER_UID),
    QueueCallerJoin("QueueCallerJoin", CALLER_UID, CALLER_CHAN, "hotline", 1),
    AgentConnect("AgentConnect", CALLER_UID, CALLER_CHAN, "hotline", "Agent Li", "PJSIP/agent101", 12, AGENT_UID),
    QueueCallerAbandon("QueueCallerAbandon", "1700000000.13", "PJSIP/trunk-00000009", "hotline", 30),
    Hangup("Hangup", CALLER_UID, CALLER_CHAN, 16, "Normal Clearing"),
]


async def test_given_subscribers_when_server_sends_events_then_each_gets_typed_events_despite_a_failing_one(
        server, make_client, caplog):
    client = make_client()
    sync_seen, async_seen, raw_seen = [], [], []

    def failing(event):
        raise RuntimeError("subscriber bug")

    async def failing_async(event):
        raise RuntimeError("async subscriber bug")

    async def collect_async(event):
        async_seen.append(event)

    client.subscribe(failing)
    client.subscribe(failing_async)
    client.subscribe(lambda event: sync_seen.append(event))
    client.subscribe(collect_async)
    client.subscribe_raw(lambda headers: raw_seen.append(headers.get("Event")))
    await started(client)
    await aeventually(lambda: any(isinstance(e, FullyBooted) for e in sync_seen), what="FullyBooted")

    with caplog.at_level(logging.ERROR, logger="gateway.pbx.ami"):
        for event in EVENTS:
            server.conns[0].send(event)
        await aeventually(lambda: len(async_seen) >= 1 + len(EXPECTED) and "PeerStatus" in raw_seen,
                         what="all events delivered")

    typed = [e for e in sync_seen if not isinstance(e, FullyBooted)]
    assert typed == EXPECTED
    assert [e for e in async_seen if not isinstance(e, FullyBooted)] == EXPECTED
    assert raw_seen[-len(EVENTS):] == [e["Event"] for e in EVENTS]
    assert "AMI subscriber failed" in caplog.text
    assert client.connected and len(server.conns) == 1


# -- 6. close -------------------------------------------------------------------------------
def _leftover_tasks(server: FakeAmi) -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t not in server.handler_tasks
            and not t.done()}


async def test_given_connected_client_with_pending_action_when_closed_then_supervisor_ends_and_no_task_is_left(
        server, make_client):
    client = await started(make_client(action_timeout=2.0))
    server.unanswered.add("QueueStatus")
    pending = asyncio.create_task(client.action({"Action": "QueueStatus"}))
    await aeventually(lambda: server.conns[0].count("QueueStatus") == 1, what="action on the wire")
    supervisor = client._task

    await client.close()

    assert supervisor is not None and supervisor.done() and client._task is None
    assert not client.connected
    with pytest.raises(AmiNotConnected):
        await pending
    assert _leftover_tasks(server) == set()
    await aeventually(lambda: server.conns[0].closed_at, timeout=1.0, what="server seeing the hang-up")
    assert len(server.conns) == 1


async def test_given_login_in_flight_when_closed_then_the_half_open_socket_is_closed_too(server, make_client):
    server.answer_login = False
    client = make_client(action_timeout=2.0)
    await client.start()
    await aeventually(lambda: server.conns and server.conns[0].count("Login") == 1, what="login on the wire")

    await client.close()

    assert _leftover_tasks(server) == set()
    await aeventually(lambda: server.conns[0].closed_at, timeout=1.0, what="server seeing the hang-up")


async def test_given_client_backing_off_when_closed_then_close_is_prompt(server, make_client):
    client = make_client(secret="wrong", backoff_initial=5.0)
    await client.start()
    await aeventually(lambda: client.last_error, what="first refused login")

    begun = time.monotonic()
    await client.close()

    assert time.monotonic() - begun < 0.2
    assert _leftover_tasks(server) == set()
    assert len(server.conns) == 1


# -- 5. fast reconnect to an Asterisk that comes back; hooks -----------------------------------
async def test_given_asterisk_down_for_a_while_when_it_answers_again_then_client_logs_in_within_a_probe_interval(
        server, make_client):
    client = await started(make_client(backoff_initial=2.0, backoff_max=30.0, probe_interval=0.05,
                                       stable_after=0.0))
    port = server.port

    await server.stop()  # Asterisk gone: connects are refused
    await aeventually(lambda: not client.connected and "cannot connect" in (client.last_error or ""),
                      what="client seeing Asterisk gone")
    await asyncio.sleep(1.0)  # the outage itself (a backoff would have grown meanwhile)
    await server.start(port)
    back_at = time.monotonic()
    await aeventually(lambda: client.connected, timeout=3.0, what="login after Asterisk came back")

    assert time.monotonic() - back_at < 0.5  # a probe interval and a login, not the 2 s backoff
    assert client.connects == 2
    assert client.last_outage_s is not None and client.last_outage_s >= 1.0


async def test_given_nobody_listening_when_started_then_probes_at_the_probe_interval_without_backoff(make_client):
    probe = FakeAmi()
    await probe.start()
    port = probe.port
    await probe.stop()
    client = make_client(port=port, backoff_initial=1.0, probe_interval=0.05)

    await client.start()
    await aeventually(lambda: "cannot connect" in (client.last_error or ""), what="a refused connect")
    await asyncio.sleep(0.6)
    await probe.start(port)
    try:
        await aeventually(lambda: client.connected, timeout=1.0, what="login once a server listens")
        assert probe.conns[0].logged_in and len(probe.conns) == 1
    finally:
        await client.close()
        await probe.stop()


async def test_given_a_relay_whose_asterisk_is_down_when_it_closes_before_the_greeting_then_probed_without_backoff(
        make_client):
    opened: list[float] = []

    async def closes_at_once(reader, writer):  # accepts, says nothing, hangs up (a proxy with no upstream)
        opened.append(time.monotonic())
        writer.close()

    relay = await asyncio.start_server(closes_at_once, "127.0.0.1", 0)
    port = relay.sockets[0].getsockname()[1]
    client = make_client(port=port, backoff_initial=1.0, probe_interval=0.05)
    try:
        await client.start()
        await aeventually(lambda: len(opened) >= 5, timeout=3.0, what="five probes through the relay")
    finally:
        await client.close()
        relay.close()
        await relay.wait_closed()

    gaps = [b - a for a, b in zip(opened, opened[1:5])]
    assert max(gaps) < 0.5, gaps  # the probe interval, never the 1 s backoff
    assert "greeting" in (client.last_error or "")


async def test_given_an_on_connected_hook_when_the_link_drops_and_comes_back_then_it_runs_after_each_login(
        server, make_client):
    client = make_client(stable_after=0.0)
    seen: list[tuple[int, bool]] = []

    async def hook() -> None:
        response = await client.action({"Action": "CoreStatus"})  # hooks may talk to Asterisk
        seen.append((client.connects, response.get("Response") == "Success"))

    client.on_connected(hook)
    await started(client)
    await aeventually(lambda: len(seen) == 1, what="the hook after the first login")
    server.conns[0].kill()
    await aeventually(lambda: len(seen) == 2, what="the hook after the reconnect")

    assert seen == [(1, True), (2, True)]
    assert [c.count("CoreStatus") for c in server.conns[:2]] == [1, 1]


async def test_given_a_failing_hook_when_connected_then_the_link_stays_up(server, make_client):
    client = make_client()

    def broken() -> None:
        raise RuntimeError("hook bug")

    client.on_connected(broken)
    await started(client)
    await aeventually(lambda: server.conns[0].count("Ping") >= 2, what="pings on the first link")

    assert client.connected and client.connects == 1


async def test_given_a_peer_that_drops_each_link_at_once_when_reconnecting_then_delays_grow(server, make_client):
    client = make_client(backoff_initial=0.1, backoff_max=10.0, stable_after=5.0)
    client.on_connected(lambda: server.conns[-1].kill())

    await client.start()
    await aeventually(lambda: len(server.conns) >= 4, timeout=5.0, what="four short-lived links")

    times = [c.opened_at for c in server.conns[:4]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.1 * 0.8 - 0.01 and gaps[0] < gaps[1] < gaps[2], gaps


# -- parse_event (pure) -----------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    {"Event": "PeerStatus", "Peer": "PJSIP/agent101"},
    {"Event": "VarSet", "Uniqueid": CALLER_UID, "Variable": "X", "Value": "1"},
    {"Event": "hangup", "Uniqueid": CALLER_UID},  # AMI event names are case-sensitive
    {"Response": "Success", "Message": "ok"},
    {},
], ids=["peerstatus", "varset", "lowercase-name", "response", "empty"])
def test_given_unknown_or_non_event_headers_when_parsed_then_none(headers):
    assert parse_event(headers) is None


def test_given_bad_numeric_fields_when_parsed_then_numbers_are_none_and_text_kept():
    hangup = parse_event({"Event": "Hangup", "Uniqueid": "u1", "Channel": "c1", "Cause": "sixteen",
                          "Cause-txt": "Normal Clearing"})
    join = parse_event({"Event": "QueueCallerJoin", "Uniqueid": "u1", "Queue": "q", "Position": ""})
    agent = parse_event({"Event": "AgentConnect", "Uniqueid": "u1", "Queue": "q", "HoldTime": "12s",
                         "MemberName": "Agent Li"})
    abandon = parse_event({"Event": "QueueCallerAbandon", "Uniqueid": "u1", "Queue": "q"})

    assert hangup == Hangup("Hangup", "u1", "c1", None, "Normal Clearing")
    assert join == QueueCallerJoin("QueueCallerJoin", "u1", "", "q", None)
    assert agent.hold_time is None and agent.member_name == "Agent Li" and agent.agent_uniqueid == ""
    assert abandon.hold_time is None


def test_given_lowercase_header_keys_when_parsed_then_fields_are_found():
    event = parse_event({"Event": "Hangup", "uniqueid": "u1", "CHANNEL": "c1", "cause": "17", "CAUSE-TXT": "Busy"})

    assert event == Hangup("Hangup", "u1", "c1", 17, "Busy")


# -- reloads without the Command action (issue 9: the gateway's AMI user has no `command`) ------
async def test_given_a_reload_in_progress_when_reloading_the_dialplan_then_retried_until_asterisk_takes_it(
        server, make_client):
    server.errors["Reload"] = ["A reload is in progress", "A reload is in progress"]
    client = await started(make_client(ping_interval=30))

    await client.reload_module("pbx_config", busy_for=2.0)

    reloads = [a for a in server.conns[0].actions if a.get("Action") == "Reload"]
    assert [a.get("Module") for a in reloads] == ["pbx_config"] * 3
    assert "Command" not in server.conns[0].names()


async def test_given_an_unknown_module_when_reloading_then_the_error_is_raised_at_once(server, make_client):
    server.errors["Reload"] = ["No such module"]
    client = await started(make_client(ping_interval=30))

    with pytest.raises(PbxError, match="No such module"):
        await client.reload_module("pbx_nothing", busy_for=2.0)

    assert server.conns[0].count("Reload") == 1


async def test_given_a_queue_reload_when_sent_then_it_is_one_queuereload_of_everything(server, make_client):
    client = await started(make_client(ping_interval=30))

    await client.queue_reload()

    (action,) = [a for a in server.conns[0].actions if a.get("Action") == "QueueReload"]
    assert not {"Members", "Rules", "Parameters", "Queue"} & set(action)  # no header: members, rules, parameters
