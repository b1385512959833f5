"""The call handler on a real SQLite store with a scripted channel: what a call leaves behind."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.calls.handler import CallHandler, caller_id
from gateway.ivr_flows.validate import load_config
from gateway.ticketing.store import TicketStore
from tests.unit.scripted import ScriptedChannel

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")


@pytest.fixture()
async def store(tmp_path, database_url):
    url = database_url  # migrated: SQLite and PostgreSQL (tests/dbfixtures.py)
    store = await TicketStore.open(url)
    yield store
    await store.close()


def _session(uniqueid: str, number: str, caller: str):
    env = SimpleNamespace(uniqueid=uniqueid, args=[number], extension="s", callerid=caller, channel="Local/x;1")
    return SimpleNamespace(env=env, timings=[("SET VARIABLE", 0.001)])


def _handler(store, channel):
    return CallHandler(store=store, config_source=lambda: CONFIG, channel_factory=lambda session: channel,
                       recording_path=lambda rec: f"/var/rec/{Path(rec.path).name}.{rec.fmt}")


async def test_given_a_complete_call_when_handled_then_call_and_draft_ticket_are_stored(store):
    channel = ScriptedChannel(["4", "1"])
    await _handler(store, channel)(_session("u-1", "12315", "13800138000"))

    call = await store.get_call("u-1")
    ticket = await store.get_ticket(call["ticket_id"])
    assert ticket["category"] == "投诉" and ticket["confidential"] is True
    assert ticket["line_number"] == "12315" and ticket["merge_mode"] == "dual_number"
    assert ticket["recording_path"] == "/var/rec/u-1.wav" and ticket["queue"] == "q-12315"
    assert [s["node"] for s in call["menu_path"]][-1] == "to_queue"


async def test_given_an_unknown_number_when_handled_then_hang_up_and_store_nothing(store):
    channel = ScriptedChannel([])
    await _handler(store, channel)(_session("u-2", "99999", "13800138000"))
    assert channel.hung_up and await store.get_call("u-2") is None


async def test_given_a_hostile_caller_id_when_handled_then_kept_as_received_and_marked_not_a_number(store):
    hostile = "<script>1380013' OR 1=1" + "9" * 80
    await _handler(store, ScriptedChannel(["HANGUP"]))(_session("u-3", "12345", hostile))
    call = await store.get_call("u-3")
    assert call["caller_number"] == "" and call["caller_number_valid"] is False
    assert call["caller_id_raw"] == hostile[:80] and call["ticket_id"] is None


def test_given_caller_ids_when_stored_then_never_made_into_another_number():
    """Probe: ``1380000%3Cb%3E1%3C%2Fb%3E`` was stored as ``13800001``, a different real-looking number."""
    assert caller_id("1380000%3Cb%3E1%3C%2Fb%3E") == ("", "1380000%3Cb%3E1%3C%2Fb%3E")
    assert caller_id("13800138000") == ("13800138000", None)
    assert caller_id("+8613800138000") == ("+8613800138000", None)
    assert caller_id(" 010-12345678 ") == ("", "010-12345678")  # not silently joined into 01012345678
    assert caller_id("١٣٨٠٠١٣٨٠٠٠") == ("", "١٣٨٠٠١٣٨٠٠٠")  # non-ASCII digits are not a dialable number
    assert caller_id("") == ("", None) and caller_id(None) == ("", None)
    assert caller_id("138\x00\n\u202e1") == ("", "138\ufffd\ufffd\ufffd1")
    assert caller_id("1" * 40) == ("", "1" * 40)


async def test_given_a_replayed_session_when_the_call_id_exists_then_refused_and_the_ticket_untouched(store):
    """Probe: a second FastAGI session with a known call id rewrote a submitted, confidential ticket."""
    await _handler(store, ScriptedChannel(["4", "1"]))(_session("u-5", "12315", "13800138000"))
    before = await store.get_ticket((await store.get_call("u-5"))["ticket_id"])
    handler = _handler(store, replay := ScriptedChannel(["1", "1"]))
    await handler(_session("u-5", "12345", "13900000000"))

    assert handler.metrics.sessions_refused == 1 and replay.played == [] and not replay.hung_up
    assert await store.get_ticket(before["id"]) == before
    assert (await store.get_call("u-5"))["caller_number"] == "13800138000"


async def test_given_an_instance_id_when_a_call_is_handled_then_the_call_names_the_instance(store):
    """Two gateways share the calls (issue 12): the call's row says which one ran its IVR."""
    handler = CallHandler(store=store, config_source=lambda: CONFIG, channel_factory=lambda s: ScriptedChannel(["4", "1"]),
                          recording_path=lambda rec: f"/var/rec/{Path(rec.path).name}.{rec.fmt}", instance="gw-b")
    await handler(_session("u-inst", "12315", "13800138000"))
    await _handler(store, ScriptedChannel(["4", "1"]))(_session("u-noinst", "12315", "13800138000"))
    assert (await store.get_call("u-inst"))["instance"] == "gw-b"
    assert (await store.get_call("u-noinst"))["instance"] is None
