"""The callback service over a real database with a scripted AMI and outbound dialler: the
estimate the IVR gets, the dispatcher placing only when the place is reached, retries, done."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import pytest

from gateway.callback.policy import RetryPolicy
from gateway.callback.service import CallbackService
from gateway.callback.store import CallbackStore
from gateway.pbx.ami_events import AgentConnect, Hangup
from tests.unit.test_ticket_store import T0, ensure, start


class FakeAmi:
    connected = True

    def __init__(self) -> None:
        self.members = [{"Status": "2", "Paused": "0", "InCall": "1"}]
        self.entries: list[dict] = []

    async def action(self, fields, *, as_list=False, timeout=None):
        assert fields == {"Action": "QueueStatus", "Queue": "q-report"}
        out = [{"Event": "QueueParams", "Queue": "q-report", "Holdtime": "0", "TalkTime": "100"}]
        out += [{"Event": "QueueMember", "Queue": "q-report", "Name": f"m{i}", **m} for i, m in enumerate(self.members)]
        out += [{"Event": "QueueEntry", "Queue": "q-report", "Position": str(i + 1), **e}
                for i, e in enumerate(self.entries)]
        return out


@dataclass
class Result:
    outcome: str
    uniqueid: str
    node: str | None = "asterisk"
    reason: str = ""


class FakeOutbound:
    def __init__(self, outcomes) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[dict] = []

    async def dial(self, number, *, purpose, ref, timeout_s, variables=None, caller_id="12345"):
        self.calls.append({"number": number, "purpose": purpose, "ref": ref, "variables": variables})
        return Result(self.outcomes.pop(0), f"out-{len(self.calls)}")


@dataclass
class State:
    uniqueid: str


def service(store, ami, outbound, now):
    return CallbackService(store=CallbackStore(store), ami=ami, ami_nodes={}, clock=lambda: now[0], instance="gw-t",
                           policy=RetryPolicy(attempts=2, interval_s=30), over_seconds=60, talk_seconds=180,
                           ring_seconds=20, priority=10, check_seconds=1, outbound=outbound)


async def _settle(svc):
    while svc._placing:
        await asyncio.gather(*svc._placing.values())


async def test_given_busy_agent_when_estimated_then_long_and_place_kept_then_placed_when_free(store):
    await start(store, "u-b")
    ticket_id = await ensure(store, "u-b", queue="q-report")
    ami, outbound, now = FakeAmi(), FakeOutbound(["answered"]), [T0]
    svc = service(store, ami, outbound, now)
    assert await svc.expected_wait(State("u-b"), "q-report") == (100.0, 60)
    await svc.callback_requested(State("u-b"), "q-report", "13800138000", "caller_id")
    assert await svc.check() == 0 and outbound.calls == []  # the agent is busy
    now[0] = T0 + timedelta(seconds=30)
    ami.members = [{"Status": "1", "Paused": "0", "InCall": "0"}]
    ami.entries = [{"Uniqueid": "u-early", "Wait": "40"}]  # joined 10 s before the kept place
    assert await svc.check() == 0
    ami.entries = [{"Uniqueid": "u-late", "Wait": "10"}]  # joined after it: the callback goes first
    assert await svc.check() == 1
    await _settle(svc)
    assert outbound.calls == [{"number": "13800138000", "purpose": "callback", "ref": outbound.calls[0]["ref"],
                               "variables": {"QUEUE_PRIO": "10"}}]
    row = (await svc.store.open())[0]
    assert row["status"] == "connected" and row["outbound_uniqueid"] == "out-1" and row["ticket_id"] == ticket_id
    # AMI events run as tasks of their own; the agent's AgentConnect and a hang-up just after it
    # must not be taken as "hung up in the queue before an agent answered"
    connect = asyncio.ensure_future(svc.on_ami_event(AgentConnect(
        "AgentConnect", "out-1", "Local/x", "q-report", "坐席三", "Local/8003@gw-agents/n", 3, "agent-leg")))
    hangup = asyncio.ensure_future(svc.on_ami_event(Hangup("Hangup", "out-1", "Local/x", 16, "Normal Clearing")))
    await asyncio.gather(connect, hangup)
    done = await svc.store.get(row["id"])
    assert done["status"] == "done" and done["agent"] == "8003"
    assert (await store.get_call("u-b"))["agent"] == "8003"  # the original call is the agent's now
    assert (await svc.overview())["callbacks"] == []


async def test_given_no_answer_twice_when_dispatched_then_retried_after_interval_then_no_answer(store):
    await start(store, "u-c")
    await ensure(store, "u-c", queue="q-report")
    ami, outbound, now = FakeAmi(), FakeOutbound(["no_answer", "busy"]), [T0]
    ami.members = [{"Status": "1", "Paused": "0", "InCall": "0"}]
    svc = service(store, ami, outbound, now)
    await svc.callback_requested(State("u-c"), "q-report", "01062345678", "keyed")
    assert await svc.check() == 1
    await _settle(svc)
    assert await svc.check() == 0  # waiting out the retry interval
    now[0] = T0 + timedelta(seconds=31)
    assert await svc.check() == 1
    await _settle(svc)
    rows = await svc.store.recent()
    assert (rows[0]["status"], rows[0]["attempts"], rows[0]["last_result"]) == ("no_answer", 2, "busy")
    assert len(outbound.calls) == 2
