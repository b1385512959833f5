"""Two gateway instances on one database (gateway.bus): a desk connected to one gets the pop of
an AgentConnect the other saw, once; the board shows the other's IVR calls; a configuration
version applied by one is followed by the other. The database is one real SQLite file; the
PostgreSQL server between the two buses is the in-memory stand-in of test_bus."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from gateway.auth.users import UserStore
from gateway.bus import PgBus
from gateway.desk.service import DeskService
from gateway.pbx.ami_events import parse_event
from gateway.ticketing import migrate
from gateway.ticketing.store import TicketStore
from gateway_dev.eventually import aeventually
from tests.unit.test_bus import PG_URL, FakeServer
from tests.unit.test_desk_service import NOW, _call, _connect


@pytest.fixture()
async def two(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    await asyncio.to_thread(migrate.upgrade, url)
    store = await TicketStore.open(url)
    users = UserStore(store)
    await users.create_user("a1", "a1-password-1", "agent", agent_id="8001")
    server = FakeServer()
    desks, buses = [], []
    for name in ("a", "b"):
        bus = PgBus(PG_URL, name, connect=server.connect, keepalive=0.05, backoff=(0.01, 0.05))
        desks.append(DeskService(store=store, users=users, recordings_dir=tmp_path, suggester=None,
                                 clock=lambda: NOW, bus=bus))
        buses.append(bus)
        await bus.start()
    await aeventually(lambda: buses[0].leader, timeout=5)  # A started first: it writes the audit lines
    yield store, desks, buses, server
    for bus in buses:
        await bus.close()
    await store.close()


def _types(desk, user="a1"):
    return [e["type"] for e in desk.hub.missed(user, 0)]


async def test_given_b_missed_the_agent_connect_when_a_saw_it_then_b_pops_once(two):
    store, (a, b), (bus_a, bus_b), _ = two
    ticket_id = await _call(store, "u1")
    await store.mark_agent("u1", "8001")
    queue_b = b.hub.subscribe("a1")  # the agent's desk is connected to instance B
    await a.on_ami_event(parse_event(_connect("u1", "8001")))  # B's AMI was down: only A saw it
    pop = await asyncio.wait_for(queue_b.get(), 5)
    assert pop["type"] == "screen_pop" and pop["ticket"]["id"] == ticket_id
    await b.on_ami_event(parse_event(_connect("u1", "8001")))  # B's AMI delivers it late: no second pop
    await bus_a.drain()
    await bus_b.drain()
    assert _types(b) == ["screen_pop"] and _types(a) == ["screen_pop"]
    audits = [e for e in await store.list_audit("ticket", str(ticket_id)) if e["action"] == "ticket.screen_pop"]
    assert len(audits) == 1  # written by the leader (A) only


async def test_given_a_pop_without_ticket_when_the_ticket_arrives_then_the_ticket_pops_too(two):
    store, (a, b), _, _ = two
    await a.pop_everywhere("u9", "8001", "q-complaint")  # the ticket is not in the database yet
    await aeventually(lambda: _types(b) == ["call_without_ticket"], timeout=5)
    await _call(store, "u9")
    await a.pop_everywhere("u9", "8001", "q-complaint")  # e.g. after a journal replay
    await aeventually(lambda: _types(b) == ["call_without_ticket", "screen_pop"], timeout=5)
    await a.pop_everywhere("u9", "8001", "q-complaint")  # a third time: nothing new anywhere
    await a.bus.drain()
    await b.bus.drain()
    assert _types(a) == ["call_without_ticket", "screen_pop"] == _types(b)


async def test_given_a_call_in_a_ivr_when_b_shows_the_board_then_it_is_there_until_it_leaves(two):
    _, (a, b), _, _ = two
    a.board.ivr_started("u2", line="12345", caller="13800138000", now=1.0)
    await aeventually(lambda: [c["uniqueid"] for c in b.overview_live()["in_ivr"]] == ["u2"], timeout=5)
    assert b.overview_live()["in_ivr"][0]["caller"] == "138****8000"
    a.board.ivr_left("u2", "hangup", 2.0)
    await aeventually(lambda: b.overview_live()["in_ivr"] == [], timeout=5)


async def test_given_b_lost_the_bus_when_it_is_back_then_it_learns_a_calls_again_and_desks_resync(two):
    _, (a, b), (_bus_a, bus_b), server = two
    queue_b = b.hub.subscribe("a1")
    server.refuse = True
    bus_b._conn.cut()
    await aeventually(lambda: not bus_b.connected, timeout=5)
    a.board.ivr_started("u3", line="12345", caller="13800138000", now=1.0)  # B does not hear it
    await a.bus.drain()
    assert b.overview_live()["in_ivr"] == []
    server.refuse = False
    await aeventually(lambda: [c["uniqueid"] for c in b.overview_live()["in_ivr"]] == ["u3"], timeout=5)
    event = await asyncio.wait_for(queue_b.get(), 5)
    assert event["type"] == "resync"


async def test_given_two_instances_when_both_record_the_same_hangup_and_queue_then_the_call_has_them_once(
        database_url):
    """Both instances get every AMI event from their own connection and write it: the call's row
    is locked while written, so the second writer sees the first's result."""
    stores = [await TicketStore.open(database_url) for _ in range(2)]
    try:
        await _call(stores[0], "u-twice")
        await stores[0].mark_queued("u-twice", "q-12366")
        for _round in range(3):
            await asyncio.gather(*(s.mark_queued("u-twice", "q-complaint") for s in stores),
                                 *(s.mark_agent("u-twice", "8001") for s in stores))
        await asyncio.gather(*(s.finish_call("u-twice", hangup_cause=16, hangup_cause_txt="Normal Clearing",
                                             ended_at=NOW) for s in stores))
        call = await stores[1].get_call("u-twice")
        assert (call["status"], call["queue"], call["agent"]) == ("ended", "q-complaint", "8001")
        ended = [e for e in await stores[1].list_audit("call", "u-twice") if e["action"] == "call.ended"]
        overflowed = [e for e in await stores[1].list_audit("ticket", str(call["ticket_id"]))
                      if e["action"] == "call.overflowed"]
        assert len(ended) == 1 and len(overflowed) == 1
    finally:
        for store in stores:
            await store.close()
