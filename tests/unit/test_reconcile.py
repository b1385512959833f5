"""Reconciliation: pure parsing and planning, then a Reconciler against a real migrated SQLite store,
a fake AMI client (canned CoreStatus / CoreShowChannels answers), a real CDR file and a real
recordings directory."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from gateway.calls.reconcile import (CAUSE_CRASH, CAUSE_LOST, CdrCall, CdrReader, Reconciler, agent_of_channel,
                                     asterisk_started_at, live_channels, parse_userfield, plan)
from gateway.pbx.ami_events import AgentConnect, Hangup
from gateway.pbx.dialplan import CDR_FIELDS, render_files
from gateway.ticketing import migrate

T0 = datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc)


# -- pure ---------------------------------------------------------------------------------------
def test_given_failsafe_userfield_when_parsed_then_queue_path_and_agi_status():
    assert parse_userfield("failsafe;queue=q-general;path=type_menu:4;agi=FAILURE") == {
        "failsafe": "1", "queue": "q-general", "path": "type_menu:4", "agi": "FAILURE"}
    assert parse_userfield("") == {} and parse_userfield("something else;queue=x") == {}


@pytest.mark.parametrize("channel,agent", [
    ("Local/8001@gw-agents-00000001;1", "8001"), ("PJSIP/8002-0000002a", "8002"), ("", "")])
def test_given_agent_channels_when_named_then_agent_ids(channel, agent):
    assert agent_of_channel(channel) == agent


def test_given_a_cdr_file_with_a_half_written_last_line_when_read_twice_then_each_record_once(tmp_path):
    path = tmp_path / "cdr.json"
    rec = {"uniqueid": "u1", "start": 1.0, "end": 2.0}
    path.write_text(json.dumps(rec) + "\n" + '{"uniqueid": "u2", "st')
    reader = CdrReader(path)

    first = reader.read_new()
    with open(path, "a") as fh:
        fh.write('art": 3.0}\nnot json\n')
    second = reader.read_new()

    assert [r["uniqueid"] for r in first] == ["u1"]
    assert [r["uniqueid"] for r in second] == ["u2"] and reader.bad_lines == 1
    assert reader.read_new() == []


def test_given_core_show_channels_when_parsed_then_queue_and_bridge_are_known():
    messages = [{"Response": "Success", "EventList": "start"},
                {"Event": "CoreShowChannel", "Uniqueid": "c1", "Linkedid": "c1", "Channel": "PJSIP/sipp-1",
                 "Application": "Queue", "ApplicationData": "q-general,,,,120", "BridgeId": "b1"},
                {"Event": "CoreShowChannel", "Uniqueid": "a1", "Linkedid": "c1",
                 "Channel": "Local/8001@gw-agents-00000001;1", "Application": "AppQueue", "BridgeId": "b1"},
                {"Event": "CoreShowChannelsComplete"}]

    channels = live_channels(messages)

    assert set(channels) == {"c1", "a1"} and channels["c1"].queue == "q-general"


def test_given_core_status_when_read_then_startup_is_an_aware_time():
    started = asterisk_started_at({"CoreStartupDate": "2026-03-01", "CoreStartupTime": "08:31:00"})
    assert started is not None and started.tzinfo is not None
    assert asterisk_started_at({}) is None


def _call(uid, **kw):
    return dict(uniqueid=uid, status="in_ivr", started_at=T0, ended_at=None, queue=None, agent=None, channel="x",
                ticket_id=None, ticket_status=None, recording_path=None) | kw


def test_given_a_call_gone_without_cdr_when_asterisk_started_after_it_then_it_is_closed_as_a_crash():
    repairs, suspects = plan([_call("u1")], {}, {}, started_at=T0 + timedelta(minutes=1), restarted=False,
                             suspects=set(), now=T0 + timedelta(minutes=2), ami_up_for=1.0)

    assert [(r.uniqueid, r.cause_txt, r.ended_at) for r in repairs] == [("u1", CAUSE_CRASH, T0 + timedelta(minutes=1))]
    assert suspects == set()


def test_given_a_call_gone_without_trace_when_seen_twice_then_lost_the_second_time():
    kwargs = dict(started_at=T0 - timedelta(days=1), restarted=False, now=T0 + timedelta(minutes=2), ami_up_for=99)
    first, suspects = plan([_call("u1")], {}, {}, suspects=set(), **kwargs)
    second, _ = plan([_call("u1")], {}, {}, suspects=suspects, **kwargs)

    assert first == [] and suspects == {"u1"}
    assert [(r.uniqueid, r.cause_txt) for r in second] == [("u1", CAUSE_LOST)]


# -- the service against a real store ---------------------------------------------------------
class FakeAmi:
    action_timeout = 5.0
    connected = True
    connected_at = None

    def __init__(self, started: datetime, channels: list[dict]) -> None:
        self.started, self.channels, self.sent = started, channels, []
        self.hooks = []

    def on_connected(self, hook) -> None:
        self.hooks.append(hook)

    async def action(self, fields, *, timeout=None, as_list=False):
        self.sent.append(fields["Action"])
        if fields["Action"] == "CoreStatus":
            local = self.started.astimezone()  # Asterisk reports its local time
            return {"Response": "Success", "CoreStartupDate": local.strftime("%Y-%m-%d"),
                    "CoreStartupTime": local.strftime("%H:%M:%S")}
        assert fields["Action"] == "CoreShowChannels" and as_list
        return [{"Response": "Success"}, *self.channels, {"Event": "CoreShowChannelsComplete"}]


@pytest.fixture
def database_url(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade(url)
    return url


async def _start(store, uid, started_at):
    await store.start_call(uniqueid=uid, channel=f"Local/s@gw-caller-sim-{uid};1", caller_number="13800138000",
                           dialled_number="12345", line_number="12345", line_name="热线", merge_mode="primary",
                           department=None, flow_version="v1", started_at=started_at)
    return await store.ensure_ticket(uid, category=None, channel_kind=None, confidential=None, handled_by=None,
                                     queue=None, department=None)


def _cdr(uid, start, end, **kw) -> str:
    rec = {"uniqueid": uid, "linkedid": uid, "channel": f"PJSIP/sipp-{uid}", "dstchannel": "", "src": "13900000000",
           "dst": "s", "dcontext": "did-12345", "lastapp": "Hangup", "lastdata": "", "start": start.timestamp(),
           "answer": start.timestamp(), "end": end.timestamp(), "duration": 1, "billsec": 1,
           "disposition": "ANSWERED", "userfield": "", "sequence": 1} | kw
    return json.dumps(rec) + "\n"


@pytest.fixture
def disk(tmp_path):
    """A recordings directory with one partial recording, and a CDR file (written before the test's loop)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    before = now - timedelta(minutes=10)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "crashed.wav").write_bytes(b"RIFF" + bytes(40) + bytes(16000))  # 1 s of audio
    cdr_file = tmp_path / "cdr.json"
    cdr_file.write_text(
        _cdr("ended", before, before + timedelta(minutes=1), lastapp="Queue", lastdata="q-help,,,,120",
             dstchannel="Local/8003@gw-agents-00000004;1")
        + _cdr("fs1", before, before + timedelta(minutes=2), userfield="failsafe;queue=q-general;path=type_menu:4;agi=HANGUP"))
    return now, before, recordings.resolve(), cdr_file


async def test_given_a_crash_a_cdr_a_blind_connect_and_a_failsafe_call_when_reconciled_twice_then_each_is_repaired_once(
        store, disk):
    now, before, recordings, cdr_file = disk
    for uid in ("crashed", "ended", "talking"):
        await _start(store, uid, before)
    channels = [
        {"Event": "CoreShowChannel", "Uniqueid": "talking", "Linkedid": "talking", "Channel": "PJSIP/sipp-7",
         "Application": "Queue", "ApplicationData": "q-complaint,,,,120", "BridgeId": "b7"},
        {"Event": "CoreShowChannel", "Uniqueid": "agent7", "Linkedid": "talking",
         "Channel": "Local/8001@gw-agents-00000009;1", "Application": "AppQueue", "BridgeId": "b7"}]
    ami = FakeAmi(now - timedelta(minutes=5), channels)  # Asterisk restarted after the calls started
    events = []

    async def dispatch(event):
        events.append(event)

    rec = Reconciler(ami=ami, store=store, node="n1", cdr_path=cdr_file, recordings_dir=recordings,
                     dispatch=dispatch, interval=0)

    first = await rec.run("test")
    second = await rec.run("test")

    assert first["crashed"] == 1 and first["closed"] == 2 and first["created"] == 1
    assert first["recordings"] == 1 and first["pops"] == 2 and first["completed"] == 2
    assert {k: v for k, v in second.items() if k not in ("checked", "live")} == dict.fromkeys(
        ("closed", "crashed", "lost", "completed", "created", "recordings", "pops"), 0)
    crashed = await store.get_call("crashed")
    assert crashed["status"] == "ended" and crashed["hangup_cause_txt"] == CAUSE_CRASH
    ticket = await store.get_ticket(crashed["ticket_id"])
    assert ticket["recording_path"] == str(recordings / "crashed.wav")
    assert ticket["recording_duration_ms"] == 1000
    ended = await store.get_call("ended")
    assert (ended["status"], ended["hangup_cause_txt"], ended["queue"], ended["agent"]) == (
        "ended", "cdr_answered", "q-help", "8003")
    talking = await store.get_call("talking")
    assert (talking["status"], talking["queue"], talking["agent"]) == ("queued", "q-complaint", "8001")
    pops = [e for e in events if isinstance(e, AgentConnect)]
    assert sorted((e.uniqueid, e.queue, e.interface) for e in pops) == [
        ("ended", "q-help", "Local/8003@gw-agents-00000004;1"),  # answered and over while blind: pops too
        ("talking", "q-complaint", "Local/8001@gw-agents-00000009;1")]
    assert [type(e).__name__ for e in events if e.uniqueid == "ended"] == ["AgentConnect", "Hangup"]
    assert {e.uniqueid for e in events if isinstance(e, Hangup)} == {"crashed", "ended"}
    made = await store.get_call("fs1")
    assert made["queue"] == "q-general" and made["status"] == "ended" and made["ticket_id"]
    assert made["menu_path"][0] == {"node": "failsafe", "queue": "q-general", "path": "type_menu:4", "agi": "HANGUP"}
    audit = await store.list_audit("ticket", str(made["ticket_id"]))
    assert any(a["actor"] == "reconcile" for a in audit)
    assert rec.health()["totals"]["created"] == 1


def test_given_the_sandbox_config_when_rendered_then_a_json_cdr_backend_is_loaded(tmp_path):
    from gateway.ivr_flows.validate import load_config
    from gateway.settings import load_settings
    from gateway_dev.system import ROOT

    settings = load_settings({"GATEWAY_STATE_DIR": str(tmp_path), "GATEWAY_CONFIG_DIR": str(ROOT / "config")})
    files = render_files(load_config(ROOT / "config"), settings)

    assert "load => cdr_custom.so" in files["modules.conf"] and "load => func_cdr.so" in files["modules.conf"]
    assert "format = json" in files["cdr_custom.conf"]
    assert all(f.split("(")[0] in files["cdr_custom.conf"] for f in CDR_FIELDS)
    assert "batch = no" in files["cdr.conf"]


@pytest.mark.parametrize("record,line", [
    ({"dcontext": "did-12345", "dst": "s"}, "12345"),
    ({"dcontext": "inbound", "dst": "12345"}, "12345"),  # a SIP call still in the entry context
    ({"dcontext": "gw-agents", "dst": "8001"}, ""),
    ({"dcontext": "gw-caller-sim", "dst": "s"}, ""),
])
def test_given_cdrs_of_several_contexts_when_merged_then_only_hotline_calls_have_a_line(record, line):
    cdr = CdrCall("u1")
    cdr.add({"uniqueid": "u1", "start": 10.0, "end": 20.0, **record})
    assert cdr.line == line


@pytest.fixture
def settle_disk(tmp_path):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    before = now - timedelta(minutes=10)
    cdr_file = tmp_path / "cdr.json"
    cdr_file.write_text(
        _cdr("done", before, before + timedelta(minutes=1))
        + _cdr("agentleg", before, before + timedelta(minutes=1), dcontext="gw-agents", dst="8001")
        + _cdr("open", before, before + timedelta(minutes=2))
        + _cdr("fresh", now - timedelta(seconds=2), now - timedelta(seconds=1)))  # within the grace period
    return now, before, cdr_file


async def test_given_cdrs_of_settled_and_unsettled_channels_when_reconciled_then_only_the_unsettled_are_kept(
        store, settle_disk):
    """The CDR map is bounded by what is still to reconcile, not by the 24 h look-back."""
    now, before, cdr_file = settle_disk
    await _start(store, "done", before)
    await store.finish_call("done", ended_at=before + timedelta(minutes=1), hangup_cause=16,
                            hangup_cause_txt="normal")
    await _start(store, "open", before)  # open in the database, its CDR closes it
    rec = Reconciler(ami=FakeAmi(now - timedelta(hours=1), []), store=store, node="n1", cdr_path=cdr_file,
                     recordings_dir=None, dispatch=None, interval=0)
    first = await rec.run("test")
    assert first["closed"] == 1  # "open" closed by its CDR, then forgotten
    assert set(rec.cdrs) == {"fresh"}
    assert (await store.get_call("open"))["status"] == "ended"
