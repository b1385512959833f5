"""Calls the gateway places (gateway.pbx.outbound, gateway.calls.outbound): the pure parts, dial()
against a scripted AMI node, the FastAGI routing by purpose, the rows, the settings and dialplan."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.calls.outbound import OutboundCalls, OutboundRoutes, OutboundSessions
from gateway.errors import AmiNotConnected, ChannelHangup, SettingsError
from gateway.ivr_flows.validate import load_config
from gateway.pbx import dialplan
from gateway.pbx.agi import AgiEnvironment
from gateway.pbx.ami_pool import AmiPool
from gateway.pbx.outbound import (
    BadOutboundCall,
    Outbound,
    OutboundResult,
    check_call,
    check_number,
    new_uniqueid,
    originate_fields,
    outcome_of,
)
from gateway.settings import SANDBOX_OUTBOUND_DIAL, Settings, load_settings
from gateway.ticketing.store import TicketStore

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")
T0 = datetime(2027, 3, 3, 2, 0, tzinfo=timezone.utc)


def _settings(tmp_path, **changes) -> Settings:
    return Settings(state_dir=tmp_path / "var", config_dir=tmp_path / "cfg", cache_dir=tmp_path / "cache",
                    database_url="sqlite+aiosqlite:///:memory:", outbound_dial="PJSIP/{number}@trunk", **changes)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


# -- pure parts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("number", ["13800138000", "+8613800138000", "110", " 12345 "])
def test_given_a_number_of_digits_when_checked_then_it_is_kept(number):
    assert check_number(number) == number.strip()


@pytest.mark.parametrize("number", ["", "12", "138-0013-8000", "1380013800012345678901", "+", "１３８００１３８０００",
                                    "13800138000,1", "138001\n38000", None, 13800138000])
def test_given_a_bad_number_when_checked_then_a_clear_error_that_masks_it(number):
    with pytest.raises(BadOutboundCall) as err:
        check_number(number)
    assert "3 to 20 digits" in err.value.message and "0013800" not in err.value.message


def test_given_purpose_ref_and_variables_when_checked_then_purpose_and_ref_first_and_bad_ones_refused():
    assert check_call("callback", "cb-17", {"QUEUE_PRIO": "10"}, "12345") == {
        "GW_PURPOSE": "callback", "GW_REF": "cb-17", "QUEUE_PRIO": "10"}
    for purpose, ref, variables, caller in [("Callback", "r", None, "12345"), ("", "r", None, "12345"),
                                            ("callback", "a,b", None, "12345"), ("callback", "r" * 65, None, "1"),
                                            ("callback", "r", {"GW_REF": "x"}, "12345"),
                                            ("callback", "r", {"X": "a,b"}, "12345"),
                                            ("callback", "r", {"X": "${SHELL}"}, "12345"),
                                            ("callback", "r", {"bad name": "1"}, "12345"),
                                            ("callback", "r", None, "12345<x>")]:
        with pytest.raises(BadOutboundCall):
            check_call(purpose, ref, variables, caller)


def test_given_a_call_when_the_originate_is_built_then_async_into_gw_outbound_with_our_ids_and_variables():
    fields = originate_fields(channel="PJSIP/13800138000@trunk", uniqueid="out-abc", timeout_s=25,
                              variables={"GW_PURPOSE": "followup", "GW_REF": "1202", "QUEUE_PRIO": "5"},
                              caller_id="12345")
    assert fields == {
        "Action": "Originate", "Channel": "PJSIP/13800138000@trunk", "Context": "gw-outbound", "Exten": "s",
        "Priority": "1", "Timeout": "25000", "CallerID": "<12345>", "Async": "true", "ChannelId": "out-abc",
        "OtherChannelId": "out-abc-c", "ActionID": "out-abc-originate",
        "Variable": ["GW_PURPOSE=followup", "GW_REF=1202", "QUEUE_PRIO=5"]}


def test_given_one_or_several_nodes_when_an_id_is_chosen_then_unique_letters_and_the_node_prefix_with_several():
    ids = {new_uniqueid("asterisk", False) for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("out-") and not any(c.isdigit() for c in i) for i in ids)
    assert new_uniqueid("pbx2", True).startswith("pbx2-out-")


@pytest.mark.parametrize("event, expected", [
    ({"Response": "Success", "Reason": "4"}, ("answered", "4")),
    ({"Response": "Failure", "Reason": "5"}, ("busy", "5")),
    ({"Response": "Failure", "Reason": "3"}, ("no_answer", "3")),
    ({"Response": "Failure", "Reason": "1"}, ("no_answer", "1")),
    ({"Response": "Failure", "Reason": "8"}, ("failed", "8")),
    ({"Response": "Failure", "Reason": "0"}, ("failed", "0")),
    ({"Response": "Failure", "Reason": "42"}, ("failed", "42")),
    ({"Response": "Failure"}, ("failed", "no reason given")),
    (None, ("failed", "no OriginateResponse from Asterisk")),
])
def test_given_an_originate_response_when_mapped_then_the_outcome(event, expected):
    assert outcome_of(event) == expected


def test_given_a_bad_outcome_when_a_result_is_made_then_refused():
    with pytest.raises(ValueError):
        OutboundResult(outcome="maybe", uniqueid="out-x", node=None, reason="")


# -- dial() against a scripted node ------------------------------------------------------------------
class FakeNode:
    """An AMI client whose Originate is answered by an OriginateResponse (Response, Reason)."""

    def __init__(self, response: str = "Success", reason: str = "4", *, connected: bool = True,
                 refuse: Exception | None = None, silent: bool = False, by_uniqueid: bool = False) -> None:
        self.response, self.reason, self.connected = response, reason, connected
        self.refuse, self.silent, self.by_uniqueid = refuse, silent, by_uniqueid
        self.last_error = None if connected else "refused"
        self.sent: list[dict] = []
        self.raw: list = []

    def subscribe_raw(self, callback) -> None:
        self.raw.append(callback)

    def unsubscribe_raw(self, callback) -> None:
        self.raw.remove(callback)

    async def action(self, fields: dict, **_):
        self.sent.append(fields)
        if self.refuse is not None:
            raise self.refuse
        if not self.silent:
            event = {"Event": "OriginateResponse", "Response": self.response, "Reason": self.reason,
                     "Uniqueid": fields["ChannelId"], "Channel": fields["Channel"]}
            if not self.by_uniqueid:
                event["ActionID"] = fields["ActionID"]
            # the event comes right after the action's answer (and before dial() looks at it)
            asyncio.get_running_loop().call_soon(lambda: [cb(dict(event)) for cb in list(self.raw)])
        return {"Response": "Success", "Message": "Originate successfully queued"}


class Rows:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def started(self, **kwargs) -> None:
        self.calls.append(("started", kwargs))

    async def finished(self, uniqueid, **kwargs) -> None:
        self.calls.append(("finished", {"uniqueid": uniqueid, **kwargs}))

    async def hung_up(self, uniqueid, **kwargs) -> None:
        self.calls.append(("hung_up", {"uniqueid": uniqueid, **kwargs}))


@pytest.mark.parametrize("node, outcome", [
    (FakeNode(), "answered"), (FakeNode("Failure", "5"), "busy"), (FakeNode("Failure", "3"), "no_answer"),
    (FakeNode("Failure", "8"), "failed"), (FakeNode(by_uniqueid=True), "answered"),
])
async def test_given_a_node_when_dialled_then_the_outcome_rows_and_counts(tmp_path, node, outcome):
    rows = Rows()
    outbound = Outbound(_settings(tmp_path), node, clock=Clock(), recorder=rows)
    result = await outbound.dial("13800138000", purpose="followup", ref="0302123456", timeout_s=5)
    assert result.outcome == outcome and result.node == "asterisk" and result.uniqueid == node.sent[0]["ChannelId"]
    assert node.sent[0]["Channel"] == "PJSIP/13800138000@trunk" and node.raw == []  # unsubscribed
    assert [kind for kind, _ in rows.calls] == ["started", "finished"]
    started, finished = rows.calls[0][1], rows.calls[1][1]
    assert started["number"] == "13800138000" and started["purpose"] == "followup" and started["node"] == "asterisk"
    assert finished["outcome"] == outcome
    assert (finished["answered_at"] is not None) == (outcome == "answered")
    assert (finished["ended_at"] is None) == (outcome == "answered")
    assert outbound.counts["placed"] == 1 and outbound.counts[outcome] == 1
    assert outbound.is_ours(result.uniqueid) == (outcome == "answered")


async def test_given_an_answered_call_when_it_hangs_up_then_its_row_ends_once(tmp_path):
    rows = Rows()
    outbound = Outbound(_settings(tmp_path), FakeNode(), clock=Clock(), recorder=rows)
    result = await outbound.dial("13800138000", purpose="callback", ref="cb-1", timeout_s=5)
    await outbound.hung_up(result.uniqueid)
    await outbound.hung_up(result.uniqueid)
    await outbound.hung_up("someone-else")
    assert [kind for kind, _ in rows.calls] == ["started", "finished", "hung_up"]
    assert not outbound.is_ours(result.uniqueid)


@pytest.mark.parametrize("node, reason", [
    (FakeNode(connected=False), "AMI not connected"),
    (FakeNode(refuse=AmiNotConnected("AMI connection dropped: lost")), "AMI connection dropped"),
    (FakeNode(silent=True), "no OriginateResponse within"),
])
async def test_given_ami_trouble_when_dialled_then_failed_with_the_reason_and_a_row_never_retried(
        tmp_path, node, reason, monkeypatch):
    monkeypatch.setattr("gateway.pbx.outbound.ANSWER_MARGIN_S", 0.05)
    rows = Rows()
    outbound = Outbound(_settings(tmp_path), node, clock=Clock(), recorder=rows)
    result = await outbound.dial("13800138000", purpose="callback", ref="cb-1", timeout_s=1)
    assert result.outcome == "failed" and reason in result.reason
    assert len(node.sent) <= 1 and [k for k, _ in rows.calls] == ["started", "finished"]
    assert rows.calls[1][1]["ended_at"] is not None and not outbound.is_ours(result.uniqueid)


async def test_given_the_ami_link_lost_while_it_rings_when_dialled_then_failed_at_once(tmp_path):
    node = FakeNode(silent=True)
    outbound = Outbound(_settings(tmp_path), node, clock=Clock(), recorder=Rows())
    asyncio.get_running_loop().call_later(0.1, setattr, node, "connected", False)
    result = await asyncio.wait_for(outbound.dial("13800138000", purpose="callback", ref="r", timeout_s=30), 5)
    assert result.outcome == "failed" and "AMI connection lost" in result.reason


async def test_given_a_dial_cancelled_while_it_rings_then_the_row_says_so(tmp_path):
    rows = Rows()
    outbound = Outbound(_settings(tmp_path), FakeNode(silent=True), clock=Clock(), recorder=rows)
    task = asyncio.ensure_future(outbound.dial("13800138000", purpose="callback", ref="r", timeout_s=30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rows.calls[-1][1]["outcome"] == "failed" and rows.calls[-1][1]["reason"] == "dial() was cancelled"
    assert outbound.counts["failed"] == 1 and outbound.stats()["live"] == 0


async def test_given_no_outbound_dial_setting_when_dialled_then_failed_without_asking_asterisk(tmp_path):
    node = FakeNode()
    outbound = Outbound(_settings(tmp_path).with_(outbound_dial=""), node, clock=Clock(), recorder=Rows())
    result = await outbound.dial("13800138000", purpose="callback", ref="cb-1")
    assert result.outcome == "failed" and "GATEWAY_OUTBOUND_DIAL" in result.reason and node.sent == []


async def test_given_bad_arguments_when_dialled_then_refused_before_anything_is_placed_or_written(tmp_path):
    rows, node = Rows(), FakeNode()
    outbound = Outbound(_settings(tmp_path), node, clock=Clock(), recorder=rows)
    for kwargs in ({"number": "138-0013"}, {"purpose": "Bad Purpose"}, {"timeout_s": 0}, {"timeout_s": 10_000},
                   {"variables": {"GW_PURPOSE": "other"}}):
        with pytest.raises(BadOutboundCall):
            await outbound.dial(**{"number": "13800138000", "purpose": "callback", "ref": "r", **kwargs})
    assert node.sent == [] and rows.calls == [] and outbound.counts["placed"] == 0


async def test_given_a_recorder_that_fails_when_dialled_then_the_call_still_goes(tmp_path, caplog):
    class Broken(Rows):
        async def started(self, **kwargs) -> None:
            raise RuntimeError("database is locked for 13800138000")

    outbound = Outbound(_settings(tmp_path), FakeNode(), clock=Clock(), recorder=Broken())
    result = await outbound.dial("13800138000", purpose="callback", ref="r")
    assert result.outcome == "answered"
    assert "could not record started" in caplog.text and "13800138000" not in caplog.text


async def test_given_several_nodes_when_dialled_then_connected_ones_in_turn_with_node_prefixed_ids(tmp_path):
    from gateway.settings import AsteriskNode

    nodes = {"pbx1": FakeNode(), "pbx2": FakeNode(), "pbx3": FakeNode(connected=False)}
    settings = _settings(tmp_path, asterisk_nodes=tuple(AsteriskNode(n, "127.0.0.1", 5038 + i, 5060 + i)
                                                        for i, n in enumerate(nodes)))
    pool = AmiPool.__new__(AmiPool)  # only .clients is used for placing calls
    pool.clients = nodes
    outbound = Outbound(settings, pool, clock=Clock(), recorder=Rows())
    results = [await outbound.dial("13800138000", purpose="callback", ref=f"r{i}") for i in range(4)]
    assert [r.node for r in results] == ["pbx1", "pbx2", "pbx1", "pbx2"]  # round robin over the connected
    assert all(r.uniqueid.startswith(f"{r.node}-out-") for r in results)
    assert nodes["pbx3"].sent == []


# -- FastAGI routing ------------------------------------------------------------------------------------
class Session:
    def __init__(self, script: str = "outbound", args: tuple = ("followup", "0302123456")) -> None:
        raw = {"agi_uniqueid": "out-abc", "agi_network_script": script, "agi_request": f"agi://127.0.0.1/{script}"}
        raw.update({f"agi_arg_{i}": a for i, a in enumerate(args, 1)})
        self.env = AgiEnvironment(raw)


class Channel:
    def __init__(self) -> None:
        self.done: list = []
        self.remembered: dict = {}
        self.finished = None

    async def remember(self, values) -> None:
        self.remembered.update(values)

    async def hangup(self) -> None:
        self.done.append("hangup")
        self.finished = "hung up"


async def test_given_an_outbound_session_when_routed_then_its_purpose_handler_runs_and_the_call_ends():
    routes, seen = OutboundRoutes(), []

    async def followup(session, channel, ref) -> None:
        seen.append((session.env.uniqueid, ref))

    routes.register("followup", followup)
    channel, ivr = Channel(), []

    async def inbound(session) -> None:
        ivr.append(session)

    sessions = OutboundSessions(inbound, routes, channel_factory=lambda session: channel)
    await sessions(Session())
    assert seen == [("out-abc", "0302123456")] and channel.done == ["hangup"] and ivr == []
    assert channel.remembered == {"GW_IVR": "outbound"}  # a gateway took it: no failover to the next
    await sessions(Session(script="ivr", args=("12345",)))
    assert len(ivr) == 1 and routes.sessions == 1  # every other script is the inbound IVR


async def test_given_an_unknown_purpose_or_a_failing_handler_when_routed_then_logged_masked_and_hung_up(caplog):
    routes = OutboundRoutes()

    async def broken(session, channel, ref) -> None:
        raise RuntimeError("cannot read ticket of 13800138000")

    async def gone(session, channel, ref) -> None:
        raise ChannelHangup("citizen hung up")

    routes.register("broken", broken)
    routes.register("gone", gone)
    for purpose, hangups in (("nobody-knows", ["hangup"]), ("broken", ["hangup"]), ("gone", [])):
        channel = Channel()
        await routes.run(Session(args=(purpose, "r1")), channel)
        assert channel.done == hangups, purpose
    assert routes.counters() == {"sessions": 3, "unknown_purpose": 1, "handler_errors": 1}
    assert "no route for purpose 'nobody-knows'" in caplog.text and "handler failed" in caplog.text
    assert "13800138000" not in caplog.text


def test_given_a_purpose_when_registered_twice_or_badly_then_refused():
    routes = OutboundRoutes()

    async def handler(session, channel, ref) -> None: ...

    routes.register("callback", handler)
    with pytest.raises(ValueError):
        routes.register("callback", handler)
    with pytest.raises(ValueError):
        routes.register("Call Back", handler)
    assert routes.purposes == ("callback",)


# -- rows --------------------------------------------------------------------------------------------
async def test_given_attempts_when_recorded_then_rows_on_both_databases(database_url):
    store = await TicketStore.open(database_url)
    try:
        rows = OutboundCalls(store)
        clock = Clock()
        outbound = Outbound(Settings(state_dir=Path("/nonexistent"), config_dir=Path("."), cache_dir=Path("."),
                                     database_url=database_url, outbound_dial="PJSIP/{number}@trunk"),
                            FakeNode(), clock=clock, recorder=rows)
        answered = await outbound.dial("13800138000", purpose="followup", ref="0302123456")
        outbound.ami = FakeNode("Failure", "5")
        busy = await outbound.dial("13900139000", purpose="followup", ref="0302123456")
        await outbound.hung_up(answered.uniqueid)
        got = {r["uniqueid"]: r for r in await rows.list(ref="0302123456")}
        assert got[answered.uniqueid]["outcome"] == "answered" and got[busy.uniqueid]["outcome"] == "busy"
        a, b = got[answered.uniqueid], got[busy.uniqueid]
        assert a["started_at"] < a["answered_at"] < a["ended_at"] and a["number"] == "13800138000"
        assert b["answered_at"] is None and b["ended_at"] is not None and b["reason"] == "5"
        assert await rows.get("nope") is None
        assert [r["uniqueid"] for r in await rows.list(purpose="callback")] == []
    finally:
        await store.close()


# -- settings and dialplan -----------------------------------------------------------------------------------
def _load(tmp_path, **env):
    base = {"GATEWAY_STATE_DIR": str(tmp_path / "var"), "GATEWAY_CONFIG_DIR": str(tmp_path / "cfg"),
            "GATEWAY_CACHE_DIR": str(tmp_path / "cache"), "GATEWAY_AMI_SECRET": "s3cret"}
    return load_settings({**base, **env})


def test_given_outbound_dial_settings_when_loaded_then_kept_or_refused_naming_the_variable(tmp_path):
    assert _load(tmp_path).outbound_dial == ""  # no sandbox here: no outbound calls
    assert _load(tmp_path, GATEWAY_OUTBOUND_DIAL="PJSIP/{number}@trunk").outbound_dial == "PJSIP/{number}@trunk"
    for bad in ("PJSIP/trunk", "PJSIP/{number}@{number}", "{number}", "PJSIP/{number}@trunk,x", "PJSIP/{num}@t",
                "PJSIP/{number}@trunk\nAction: Command"):
        with pytest.raises(SettingsError, match="GATEWAY_OUTBOUND_DIAL"):
            _load(tmp_path, GATEWAY_OUTBOUND_DIAL=bad)


def test_given_the_sandbox_when_loaded_then_the_simulated_citizen_is_the_default(tmp_path):
    from gateway.settings import ensure_sim_ami_secret

    (tmp_path / "var").mkdir()
    ensure_sim_ami_secret(tmp_path / "var")
    assert _load(tmp_path).outbound_dial == SANDBOX_OUTBOUND_DIAL == "Local/{number}@gw-citizen-sim"


def _context(ext: str, name: str) -> list[str]:
    start = ext.index(f"[{name}]")
    return ext[start:ext.index("\n\n", start)].splitlines()


def test_given_two_agi_peers_when_rendered_then_gw_outbound_fails_over_and_only_a_callback_reaches_a_queue(tmp_path):
    s = _settings(tmp_path, agi_peers=("127.0.0.1:4573", "127.0.0.1:4574"))
    ext = dialplan.render_files(CONFIG, s)["extensions.conf"]
    lines = _context(ext, "gw-outbound")
    assert lines[1] == r"exten => s,1,Set(CDR(userfield)=outbound\;purpose=${GW_PURPOSE}\;ref=${GW_REF})"
    agi = [line for line in lines if "AGI(" in line]
    assert agi == [" same => n(agi1),AGI(agi://127.0.0.1:4573/outbound,${GW_PURPOSE},${GW_REF})",
                   " same => n(agi2),AGI(agi://127.0.0.1:4574/outbound,${GW_PURPOSE},${GW_REF})"]
    text = "\n".join(lines)
    assert '(failsafe),GotoIf($["${GW_PURPOSE}" = "callback"]?:done)' in text
    assert text.index("failsafe-notice") < text.index("(queue),Queue(${GW_QUEUE},,,,${GW_QUEUE_WAIT})")
    assert r"outbound\;purpose=${GW_PURPOSE}\;ref=${GW_REF}\;failsafe=1" in text and "\nfailsafe\\;" not in text
    assert text.count("(failsafe)") == 1 and lines[-1] == " same => n(done),Hangup()"
    # the inbound IVR is rendered as before
    assert " same => n(agi1),AGI(agi://127.0.0.1:4573/ivr,${ARG1})" in _context(ext, "gw-ivr")


def test_given_the_sandbox_when_rendered_then_the_simulated_citizen_answers_rings_or_is_busy(tmp_path):
    ext = dialplan.render_files(CONFIG, _settings(tmp_path))["extensions.conf"]
    text = "\n".join(_context(ext, "gw-citizen-sim"))
    for piece in ("exten => _X.,1,Set(GW_CIT=${FILTER(0-9,${EXTEN})})", "${GW_CITIZEN_${GW_CIT}}",
                  "n(busy),Busy(10)", "n(noanswer),Ringing()", "Goto(gw-caller-sim,s,wait)",
                  "MixMonitor(${GW_EARS})", "exten => _+X.,1,Goto(${EXTEN:1},1)"):
        assert piece in text, piece


def test_given_the_gateway_ami_user_when_rendered_then_it_may_originate():
    assert "originate" in dialplan.GATEWAY_AMI_WRITE and "call" in dialplan.GATEWAY_AMI_READ


# -- rows left open, completed from Asterisk's CDRs (reconciliation) ----------------------------------------
ANSWERED_CDR = {"uniqueid": "out-ogzarlvoyrjedckq", "channel": "Local/13900000401@gw-citizen-sim-00000000;1",
                "dcontext": "gw-outbound", "start": 1796199229.86, "answer": 1796199229.87, "end": 1796199230.36,
                "disposition": "ANSWERED", "userfield": "outbound;purpose=test-key;ref=a"}
BUSY_CDR = {"uniqueid": "pbx2-out-mfuunfdbvjgxegnx", "channel": "Local/13900000402@gw-citizen-sim-00000001;1",
            "dcontext": "gw-citizen-sim", "start": 1796199232.47, "answer": 0.0, "end": 1796199232.48,
            "disposition": "BUSY", "userfield": ""}
CITIZEN_HALF = {**ANSWERED_CDR, "uniqueid": "out-ogzarlvoyrjedckq-c", "userfield": ""}
INBOUND = {"uniqueid": "1796199229.12", "dcontext": "did-12345", "end": 1796199230.0, "disposition": "ANSWERED",
           "userfield": "failsafe;queue=q-general"}


def test_given_cdrs_when_filtered_then_only_the_gateways_own_calls_and_their_endings():
    from gateway.calls.outbound import cdr_endings, is_outbound_cdr

    records = [ANSWERED_CDR, BUSY_CDR, CITIZEN_HALF, INBOUND]
    assert [r["uniqueid"] for r in records if is_outbound_cdr(r)] == [ANSWERED_CDR["uniqueid"], BUSY_CDR["uniqueid"]]
    endings = cdr_endings([r for r in records if is_outbound_cdr(r)] + [{**BUSY_CDR, "end": 0}])
    answered, busy = endings[ANSWERED_CDR["uniqueid"]], endings[BUSY_CDR["uniqueid"]]
    assert answered["outcome"] == "answered" and answered["answered_at"].timestamp() == pytest.approx(1796199229.87)
    assert busy == {"ended_at": datetime.fromtimestamp(1796199232.48, timezone.utc), "answered_at": None,
                    "outcome": "busy"}


async def test_given_rows_left_open_when_their_cdrs_are_read_then_completed_once(database_url):
    store = await TicketStore.open(database_url)
    try:
        rows = OutboundCalls(store)
        # a restart: one call answered (its Hangup never seen), one dialled when the gateway died
        await rows.started(uniqueid=ANSWERED_CDR["uniqueid"], purpose="test-key", ref="a", number="13900000401",
                           node="asterisk", started_at=T0)
        await rows.finished(ANSWERED_CDR["uniqueid"], outcome="answered", reason="4", answered_at=T0, ended_at=None)
        await rows.started(uniqueid=BUSY_CDR["uniqueid"], purpose="callback", ref="b", number="13900000402",
                           node="pbx2", started_at=T0)
        assert await rows.close_from_cdr([ANSWERED_CDR, BUSY_CDR]) == 2
        answered, busy = await rows.get(ANSWERED_CDR["uniqueid"]), await rows.get(BUSY_CDR["uniqueid"])
        assert answered["outcome"] == "answered" and answered["reason"] == "4" and answered["ended_at"]
        assert answered["answered_at"] == T0.isoformat()  # what the gateway saw stays
        assert busy["outcome"] == "busy" and "CDR" in busy["reason"] and busy["ended_at"] and not busy["answered_at"]
        assert await rows.close_from_cdr([ANSWERED_CDR, BUSY_CDR]) == 0  # nothing left open
    finally:
        await store.close()


async def test_given_a_cdr_file_when_reconciled_then_outbound_records_go_to_the_hook_and_no_call_is_created(
        tmp_path):
    import json

    from gateway.calls.reconcile import Reconciler
    from gateway.ticketing import migrate

    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    cdr_file = tmp_path / "cdr.json"
    await asyncio.to_thread(cdr_file.write_text, "".join(json.dumps(r) + "\n" for r in
                                                           (ANSWERED_CDR, BUSY_CDR, CITIZEN_HALF)))

    class Ami:
        action_timeout, connected, connected_at = 5.0, True, None

        async def action(self, fields, *, timeout=None, as_list=False):
            if fields["Action"] == "CoreStatus":
                return {"Response": "Success", "CoreStartupDate": "2026-12-01", "CoreStartupTime": "08:00:00"}
            return [{"Response": "Success"}, {"Event": "CoreShowChannelsComplete"}]

    seen = []

    async def hook(records):
        seen.append([r["uniqueid"] for r in records])
        return len(records)

    store = await TicketStore.open(url)
    try:
        rec = Reconciler(ami=Ami(), store=store, node="asterisk", cdr_path=cdr_file, interval=0, outbound=hook,
                         clock=lambda: datetime.fromtimestamp(1796199300, timezone.utc))
        first, second = await rec.run("test"), await rec.run("test")
        assert seen == [[ANSWERED_CDR["uniqueid"], BUSY_CDR["uniqueid"]]]  # each record once
        assert first["outbound"] == 2 and second["outbound"] == 0 and first["created"] == 0
    finally:
        await store.close()
