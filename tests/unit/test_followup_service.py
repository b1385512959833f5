"""The follow-up scheduler's rounds with a fake dialler and a scripted citizen (both databases)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.followup import policy
from gateway.followup.service import FollowupService, FollowupSettings
from gateway.followup.store import FollowupStore
from gateway.ivr_flows.validate import load_config
from gateway.ticketing.models import Ticket
from gateway.ticketing.store import TicketStore
from gateway_dev.handled import mark_handled
from tests.unit.scripted import ScriptedChannel

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")
# 2027-09-28 is a Tuesday: 10:00 in Beijing is inside the default window (working days 09:00-20:00).
T0 = datetime(2027, 9, 28, 2, 0, tzinfo=timezone.utc)


@dataclass
class Result:
    outcome: str
    uniqueid: str | None = None
    node: str = "pbx1"
    reason: str = ""


class FakePrompts:
    async def for_ticket(self, config, *, called_at):
        return {"followup-intro": "live/intro"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeDialler:
    """Each dial takes the next scripted answer: an outcome, or keys the citizen presses."""

    def __init__(self, service_ref: list, script: list) -> None:
        self.service_ref = service_ref
        self.script = list(script)
        self.calls: list[dict] = []

    async def dial(self, number, *, purpose, ref, timeout_s, caller_id, variables):
        self.calls.append({"number": number, "purpose": purpose, "ref": ref, "caller_id": caller_id})
        step = self.script.pop(0)
        uid = f"out-{len(self.calls)}"
        if isinstance(step, str):
            return Result(step, uid)
        channel = ScriptedChannel(step)
        await self.service_ref[0].on_session(type("S", (), {"uniqueid": uid})(), channel, ref)
        self.last_channel = channel
        return Result("answered", uid)


@pytest.fixture
def world(store):
    """The shared ``store`` fixture (tests/dbfixtures.py) under this file's name for it."""
    return store


async def handled_ticket(store: TicketStore, uid: str, **kw) -> int:
    await store.start_call(uniqueid=uid, channel="PJSIP/x", caller_number="13800138000", dialled_number="12345",
                           line_number="12345", line_name="市民服务热线", merge_mode="primary", department=None,
                           flow_version="v1", started_at=T0)
    tid = await store.ensure_ticket(uid, category="投诉", channel_kind=None, confidential=None, handled_by=None,
                                    queue="q-complaint", department=None)
    await mark_handled(store, tid, now=T0, **kw)
    return tid


def service(store, clock, script, single_instance=False, **settings) -> tuple[FollowupService, FakeDialler]:
    ref: list = []
    dialler = FakeDialler(ref, script)
    s = FollowupSettings(policy=policy.RetryPolicy(delay=timedelta(0), attempts=2, interval=timedelta(minutes=30)),
                         **settings)
    svc = FollowupService(store=FollowupStore(store), config=lambda: CONFIG, clock=clock, settings=s,
                          prompts=FakePrompts(), instance="gw-test", dialler=dialler, single_instance=single_instance)
    ref.append(svc)
    return svc, dialler


async def settle(svc: FollowupService) -> None:
    import asyncio

    await asyncio.gather(*list(svc.active.values()))


async def ticket(store, tid) -> Ticket:
    async with store.read_session() as session:
        return await session.get(Ticket, tid)


async def test_given_a_handled_ticket_when_the_citizen_answers_1_1_then_done_and_closed_and_never_called_again(world):
    clock = Clock()
    tid = await handled_ticket(world, "u1")
    svc, dialler = service(world, clock, [["1", "1"]])
    await svc.run_once()
    await settle(svc)
    assert [(c["purpose"], c["number"], c["caller_id"]) for c in dialler.calls] == [("followup", "13800138000", "12345")]
    row = await FollowupStore(world).of_ticket(tid)
    assert (row["status"], row["solved"], row["satisfaction"], row["uniqueid"]) == ("done", "yes", "satisfied", "out-1")
    assert (await ticket(world, tid)).handling == "closed"
    # a second 办结 of the same ticket: no second follow-up (不层层回访)
    await mark_handled(world, tid, now=T0 + timedelta(hours=1))
    clock.now += timedelta(hours=2)
    await svc.run_once()
    await settle(svc)
    assert len(dialler.calls) == 1


async def test_given_no_answer_then_retried_after_the_interval_then_unreachable(world):
    clock = Clock()
    tid = await handled_ticket(world, "u1")
    svc, dialler = service(world, clock, ["no_answer", "busy"])
    await svc.run_once()
    await settle(svc)
    row = await FollowupStore(world).of_ticket(tid)
    assert (row["status"], row["attempts"], row["last_outcome"]) == ("scheduled", 1, "no_answer")
    await svc.run_once()  # not due yet
    await settle(svc)
    assert len(dialler.calls) == 1
    clock.now += timedelta(minutes=31)
    await svc.run_once()
    await settle(svc)
    row = await FollowupStore(world).of_ticket(tid)
    assert (row["status"], row["attempts"], row["last_outcome"]) == ("unreachable", 2, "busy")
    assert (await ticket(world, tid)).handling == "closed"


async def test_given_unsolved_then_review_unsolved(world):
    clock = Clock()
    tid = await handled_ticket(world, "u1")
    svc, _ = service(world, clock, [["2", "2"]])
    await svc.run_once()
    await settle(svc)
    t = await ticket(world, tid)
    assert (t.handling, t.review_reason) == ("review", "unsolved")


async def test_given_silence_at_the_menus_then_counted_unanswered_and_retried(world):
    clock = Clock()
    tid = await handled_ticket(world, "u1")
    svc, _ = service(world, clock, [["", ""]])
    await svc.run_once()
    await settle(svc)
    row = await FollowupStore(world).of_ticket(tid)
    assert (row["status"], row["last_outcome"]) == ("scheduled", "no_input")


async def test_given_outside_the_window_then_scheduled_but_not_called(world):
    clock = Clock()
    clock.now = datetime(2027, 9, 28, 14, 0, tzinfo=timezone.utc)  # 22:00 in Beijing
    tid = await handled_ticket(world, "u1")
    svc, dialler = service(world, clock, [["1", "1"]])
    await svc.run_once()
    await settle(svc)
    row = await FollowupStore(world).of_ticket(tid)
    assert row["status"] == "scheduled" and dialler.calls == []
    assert row["next_at"] == datetime(2027, 9, 29, 1, 0, tzinfo=timezone.utc).isoformat()  # 09:00 next morning


async def test_given_opt_out_at_intake_then_refused_without_a_call(world):
    clock = Clock()
    tid = await handled_ticket(world, "u1", opt_out=True)
    svc, dialler = service(world, clock, [])
    await svc.run_once()
    assert (await FollowupStore(world).of_ticket(tid))["status"] == "refused" and dialler.calls == []


async def test_given_a_row_left_calling_by_a_previous_run_when_restarted_then_settled_as_an_attempt(world):
    clock = Clock()
    tid = await handled_ticket(world, "u1")
    fs = FollowupStore(world)
    await fs.create(tid, next_at=T0, now=T0)
    await fs.claim_due("gw-test", now=T0, limit=1)  # then the process died
    svc, dialler = service(world, clock, ["no_answer"])
    await svc.run_once()
    await settle(svc)
    row = await fs.of_ticket(tid)
    assert row["last_outcome"] == "lost" and row["status"] == "scheduled" and dialler.calls == []


async def test_given_one_instance_restarted_with_a_new_id_then_rows_left_calling_are_settled_at_once(world):
    clock = Clock()
    tid = await handled_ticket(world, "u1")
    fs = FollowupStore(world)
    await fs.create(tid, next_at=T0, now=T0)
    await fs.claim_due("gw-old-process", now=T0, limit=1)
    svc, dialler = service(world, clock, [], single_instance=True)
    await svc.run_once()
    row = await fs.of_ticket(tid)
    assert (row["status"], row["last_outcome"]) == ("scheduled", "lost")
