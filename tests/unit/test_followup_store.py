"""The follow-ups' rows on SQLite and PostgreSQL: once per ticket, claims, retries, answers, review."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from gateway.followup.store import Answers, BadAnswer, FollowupCalling, FollowupDone, FollowupStore, NotHandled
from gateway.ticketing.models import AuditEvent, Ticket, TicketEvent
from gateway.ticketing.store import TicketStore
from gateway_dev.handled import mark_handled

T0 = datetime(2027, 9, 28, 2, 0, tzinfo=timezone.utc)


async def ticket(store: TicketStore, uid: str, *, caller="13800138000", raw=None, handled=True, opt_out=False) -> int:
    await store.start_call(uniqueid=uid, channel=f"PJSIP/x-{uid}", caller_number=caller, dialled_number="12345",
                           line_number="12345", line_name="市民服务热线", merge_mode="primary", department=None,
                           flow_version="v1", started_at=T0, **({"caller_id_raw": raw} if raw else {}))
    tid = await store.ensure_ticket(uid, category="投诉", channel_kind=None, confidential=True, handled_by=None,
                                    queue="q-complaint", department=None)
    if handled:
        await mark_handled(store, tid, now=T0, text="已清运", opt_out=opt_out)
    return tid


async def fetch(store: TicketStore, tid: int) -> Ticket:
    async with store.read_session() as session:
        return await session.get(Ticket, tid)


async def events(store: TicketStore, tid: int) -> list[tuple[str, str, bool]]:
    async with store.read_session() as session:
        rows = (await session.execute(sa.select(TicketEvent).where(TicketEvent.ticket_id == tid)
                                      .order_by(TicketEvent.id))).scalars()
        return [(e.kind, e.text, e.public) for e in rows]


async def actions(store: TicketStore, tid: int) -> list[str]:
    async with store.read_session() as session:
        rows = (await session.execute(sa.select(AuditEvent.action).where(AuditEvent.object_id == str(tid))
                                      .order_by(AuditEvent.id))).scalars()
        return list(rows)


async def test_given_a_handled_ticket_when_created_twice_then_one_followup_only(store):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1")
    other = await ticket(store, "u2", handled=False)
    assert [c["ticket_id"] for c in await fs.unscheduled()] == [tid]
    row = await fs.create(tid, next_at=T0 + timedelta(hours=1), now=T0)
    assert row["status"] == "scheduled" and row["attempts"] == 0
    assert await fs.create(tid, next_at=T0, now=T0) is None  # 不层层回访
    assert await fs.create(other, next_at=T0, now=T0) is None  # not handled
    assert await fs.unscheduled() == []


async def test_given_opt_out_or_no_number_when_created_then_refused_or_unreachable_and_ticket_closed(store):
    fs = FollowupStore(store)
    refused = await ticket(store, "u1", opt_out=True)
    hidden = await ticket(store, "u2", caller="", raw="anonymous")
    assert (await fs.create(refused, next_at=T0, now=T0))["status"] == "refused"
    assert (await fs.create(hidden, next_at=T0, now=T0))["status"] == "unreachable"
    for tid in (refused, hidden):
        assert (await fetch(store, tid)).handling == "closed"
        assert (await events(store, tid))[-1][0] == "closed"


async def test_given_due_rows_when_claimed_then_calling_once_and_not_yet_due_left(store):
    fs = FollowupStore(store)
    due, later = await ticket(store, "u1"), await ticket(store, "u2")
    await fs.create(due, next_at=T0, now=T0)
    await fs.create(later, next_at=T0 + timedelta(hours=3), now=T0)
    claimed = await fs.claim_due("gw-a", now=T0 + timedelta(minutes=1), limit=10)
    assert [c["ticket_id"] for c in claimed] == [due]
    assert claimed[0]["status"] == "calling" and claimed[0]["attempts"] == 1
    assert claimed[0]["ticket"]["caller_number"] == "13800138000"
    assert await fs.claim_due("gw-b", now=T0 + timedelta(minutes=1), limit=10) == []  # not twice


async def test_given_a_ticket_no_longer_handled_when_claimed_then_cancelled(store):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1")
    await fs.create(tid, next_at=T0, now=T0)

    async def objected(session):
        (await session.get(Ticket, tid)).handling = "review"

    await store.run_write(objected)
    assert await fs.claim_due("gw-a", now=T0, limit=10) == []
    assert (await fs.of_ticket(tid))["status"] == "cancelled"


async def test_given_unanswered_attempts_then_rescheduled_then_unreachable_and_closed(store):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1")
    row = await fs.create(tid, next_at=T0, now=T0)
    await fs.claim_due("gw-a", now=T0, limit=1)
    again = await fs.unanswered(row["id"], outcome="no_answer", uniqueid="out-1", status="scheduled",
                                next_at=T0 + timedelta(hours=2), now=T0)
    assert (again["status"], again["attempts"], again["claimed_by"]) == ("scheduled", 1, None)
    assert (await fetch(store, tid)).handling == "handled"
    await fs.claim_due("gw-a", now=T0 + timedelta(hours=2), limit=1)
    last = await fs.unanswered(row["id"], outcome="busy", uniqueid="out-2", status="unreachable", next_at=None,
                               now=T0 + timedelta(hours=2))
    assert (last["status"], last["attempts"], last["last_outcome"]) == ("unreachable", 2, "busy")
    assert (await fetch(store, tid)).handling == "closed"
    assert "followup.attempt" in await actions(store, tid)


@pytest.mark.parametrize(("solved", "satisfaction", "handling", "reason"), [
    ("yes", "satisfied", "closed", None),
    ("yes", "basic", "closed", None),
    ("no", "satisfied", "review", "unsolved"),
    ("yes", "unsatisfied", "review", "unsatisfied"),
])
async def test_given_answers_by_ivr_then_stored_on_followup_and_ticket_with_stage(store, solved, satisfaction,
                                                                                    handling, reason):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1")
    row = await fs.create(tid, next_at=T0, now=T0)
    await fs.claim_due("gw-a", now=T0, limit=1)
    done = await fs.answered(tid, Answers(solved, satisfaction, comment_transcript="谢谢", comment_status="done"),
                             via="ivr", now=T0, actor="followup", followup_id=row["id"], uniqueid="out-1")
    assert (done["status"], done["solved"], done["satisfaction"], done["via"]) == ("done", solved, satisfaction, "ivr")
    t = await fetch(store, tid)
    assert (t.handling, t.review_reason) == (handling, reason)
    kinds = [(k, public) for k, _, public in await events(store, tid)]
    assert ("followup", True) in kinds
    assert (("review", False) in kinds) == (reason is not None)
    assert "ticket.followup" in await actions(store, tid)


async def test_given_a_done_followup_when_the_desk_records_again_then_409(store):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1")
    desk = await fs.answered(tid, Answers("yes", "satisfied"), via="desk", now=T0, actor="agent1", agent="agent1")
    assert (desk["status"], desk["agent"], desk["attempts"]) == ("done", "agent1", 1)
    with pytest.raises(FollowupDone) as err:
        await fs.answered(tid, Answers("no", "unsatisfied"), via="desk", now=T0, actor="agent2", agent="agent2")
    assert err.value.status_code == 409 and err.value.details["agent"] == "agent1"
    assert (await fetch(store, tid)).handling == "closed"


async def test_given_a_call_in_progress_when_the_desk_records_then_409_calling(store):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1")
    await fs.create(tid, next_at=T0, now=T0)
    await fs.claim_due("gw-a", now=T0, limit=1)
    with pytest.raises(FollowupCalling):
        await fs.answered(tid, Answers("yes", "satisfied"), via="desk", now=T0, actor="a", agent="a")


async def test_given_an_unhandled_ticket_when_the_desk_records_then_409_not_handled(store):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1", handled=False)
    with pytest.raises(NotHandled):
        await fs.answered(tid, Answers("yes", "satisfied"), via="desk", now=T0, actor="a", agent="a")


async def test_given_refusal_by_key_9_then_refused_opt_out_and_closed(store):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1")
    row = await fs.create(tid, next_at=T0, now=T0)
    await fs.claim_due("gw-a", now=T0, limit=1)
    out = await fs.refused(row["id"], uniqueid="out-1", now=T0)
    assert out["status"] == "refused"
    t = await fetch(store, tid)
    assert (t.handling, t.followup_opt_out) == ("closed", True)
    with pytest.raises(FollowupDone):
        await fs.answered(tid, Answers("yes", "satisfied"), via="desk", now=T0, actor="a", agent="a")


async def test_given_a_stale_claim_when_released_then_listed_for_retry(store):
    fs = FollowupStore(store)
    tid = await ticket(store, "u1")
    await fs.create(tid, next_at=T0, now=T0)
    await fs.claim_due("gw-dead", now=T0, limit=1)
    assert await fs.release_stale(now=T0 + timedelta(minutes=1), older_than=timedelta(minutes=10)) == []
    stale = await fs.release_stale(now=T0 + timedelta(minutes=11), older_than=timedelta(minutes=10))
    assert [s["ticket_id"] for s in stale] == [tid]
    mine = await fs.release_stale(now=T0, older_than=timedelta(minutes=10), instance="gw-dead")
    assert [s["ticket_id"] for s in mine] == [tid]


def test_given_bad_answers_then_refused_naming_the_field():
    with pytest.raises(BadAnswer) as err:
        Answers("maybe", "satisfied")
    assert err.value.details == {"field": "solved"}
    with pytest.raises(BadAnswer):
        Answers("yes", "great")
