"""The callbacks table on SQLite and PostgreSQL: request, one claim per callback, retries, audit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.callback.policy import RetryPolicy
from gateway.callback.store import CallbackNotOpen, CallbackStore
from gateway.ticketing.store import TicketStore
from tests.unit.test_ticket_store import T0, ensure, start


async def _requested(store: TicketStore, uid: str = "u-1", minutes: int = 0) -> tuple[CallbackStore, dict, int]:
    await start(store, uid)
    ticket_id = await ensure(store, uid, queue="q-general")
    callbacks = CallbackStore(store)
    row = await callbacks.request(call_uniqueid=uid, queue="q-general", number="13800138000",
                                  number_source="caller_id", requested_at=T0 + timedelta(minutes=minutes))
    return callbacks, row, ticket_id


async def test_given_call_with_ticket_when_callback_requested_then_waiting_on_the_same_ticket(store):
    callbacks, row, ticket_id = await _requested(store)
    assert (row["status"], row["ticket_id"], row["attempts"], row["number"]) == ("waiting", ticket_id, 0, "138****8000")
    assert (await callbacks.get(row["id"], masked=False))["number"] == "13800138000"
    assert [c["id"] for c in await callbacks.open(queue="q-general")] == [row["id"]]
    audit = await store.list_audit("ticket", str(ticket_id))
    requested = [a for a in audit if a["action"] == "callback.requested"]
    assert requested and "13800138000" not in str(requested[0]["details"])


async def test_given_two_instances_when_both_claim_then_exactly_one_gets_it(store):
    callbacks, row, _ = await _requested(store)
    got = await asyncio.gather(*(callbacks.claim(row["id"], instance=f"gw-{i}", now=T0) for i in range(4)))
    winners = [g for g in got if g is not None]
    assert len(winners) == 1 and winners[0]["status"] == "dialling" and winners[0]["attempts"] == 1
    assert winners[0]["number"] == "13800138000"  # the dialler needs the real number


async def test_given_no_answer_when_attempts_end_then_retry_later_then_give_up(store):
    callbacks, row, ticket_id = await _requested(store)
    policy = RetryPolicy(attempts=2, interval_s=60)
    await callbacks.claim(row["id"], instance="gw", now=T0)
    after = await callbacks.attempt_ended(row["id"], outcome="no_answer", reason="no answer in 30 s",
                                          policy=policy, now=T0)
    assert after["status"] == "waiting" and after["next_at"] == (T0 + timedelta(seconds=60)).isoformat()
    assert await callbacks.claim(row["id"], instance="gw", now=T0) is None  # not due yet
    assert await callbacks.claim(row["id"], instance="gw", now=T0 + timedelta(seconds=61)) is not None
    final = await callbacks.attempt_ended(row["id"], outcome="busy", reason="", policy=policy, now=T0)
    assert (final["status"], final["attempts"], final["last_result"]) == ("no_answer", 2, "busy")
    actions = [a["action"] for a in await store.list_audit("ticket", str(ticket_id))]
    assert actions.count("callback.waiting") == 1 and "callback.no_answer" in actions


async def test_given_answered_when_agent_takes_it_then_done_with_the_agent(store):
    callbacks, row, _ = await _requested(store)
    await callbacks.claim(row["id"], instance="gw", now=T0)
    await callbacks.dialled(row["id"], outbound_uniqueid="out-1", now=T0)
    assert (await callbacks.by_outbound("out-1"))["id"] == row["id"]
    assert (await callbacks.attempt_ended(row["id"], outcome="answered", reason="", policy=RetryPolicy(),
                                          now=T0))["status"] == "connected"
    done = await callbacks.agent_answered(row["id"], agent="8001", now=T0)
    assert (done["status"], done["agent"]) == ("done", "8001")
    with pytest.raises(CallbackNotOpen):
        await callbacks.cancel(row["id"], actor="sup", now=T0)


async def test_given_waiting_when_cancelled_then_never_claimed(store):
    callbacks, row, _ = await _requested(store)
    assert (await callbacks.cancel(row["id"], actor="sup", now=T0))["status"] == "cancelled"
    assert await callbacks.claim(row["id"], instance="gw", now=T0) is None
    assert await callbacks.open() == []
    assert [c["status"] for c in await callbacks.recent()] == ["cancelled"]


async def test_given_instance_died_while_dialling_when_released_then_waiting_again(store):
    callbacks, row, _ = await _requested(store)
    await callbacks.claim(row["id"], instance="gw-a", now=T0)
    assert await callbacks.release_stale(older_than=timedelta(minutes=5), now=T0 + timedelta(minutes=1)) == 0
    assert await callbacks.release_stale(older_than=timedelta(minutes=5), now=T0, instance="gw-a") == 1
    again = await callbacks.get(row["id"])
    assert again["status"] == "waiting" and again["attempts"] == 1
