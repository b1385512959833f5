"""After dispatch, on SQLite and PostgreSQL: dispatch on submit, the unit's transitions, who
sees what, objections and review, 办结 once, reminders once, webhooks signed and retried."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from gateway.auth.users import UserStore
from gateway.desk import schemas as _desk_schemas  # noqa: F401 - imported here, not on the loop
from gateway.desk.service import DeskService
from gateway.errors import Conflict, NotFound
from gateway.ticketing.models import AuditEvent, UnitHookDelivery
from gateway.ticketing.store import TicketStore
from gateway.units.hooks import MAX_ATTEMPTS, Hook, parse_hooks
from gateway.units.service import UnitService
from gateway.units.states import TRANSITIONS, ForbiddenTransition, ticket_stage, transition

NOW = datetime(2027, 3, 3, 2, 0, tzinfo=timezone.utc)  # a Wednesday, 10:00 in Beijing
UNITS = {"water": "市自来水集团", "sanlitun": "三里屯街道", "power": "市电力公司"}
SUBMIT = {"category": "求助", "urgency": "urgent", "place": "三里屯街道工体北路8号", "summary": "停水两天了",
          "dispatch_mode": "dual", "units": [{"id": "water", "name": "自来水"}, {"id": "sanlitun", "name": "x"}]}
SECRET = "s3cret-s3cret-s3cret"

STATES = ("sent", "accepted", "objected", "handled", "withdrawn")
ACTIONS = ("accept", "object", "note", "handle", "reject", "withdraw")


# -- the state table (pure) ------------------------------------------------------------------------
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_given_every_state_and_action_when_transition_then_the_table_decides_and_the_rest_raise(state, action):
    if (state, action) in TRANSITIONS:
        assert transition(state, action) == TRANSITIONS[(state, action)]
    else:
        with pytest.raises(ForbiddenTransition) as caught:
            transition(state, action)
        assert caught.value.status_code == 409 and caught.value.details == {"status": state, "action": action}


def test_given_handled_when_handled_again_then_the_refusal_says_so_in_both_languages():
    with pytest.raises(ForbiddenTransition, match="已办结.*already replied"):
        transition("handled", "handle")


@pytest.mark.parametrize("statuses, stage", [
    (["sent", "sent"], ("dispatched", None)),
    (["accepted", "sent"], ("dispatched", None)),
    (["accepted", "handled"], ("accepted", None)),
    (["handled", "handled"], ("handled", None)),
    (["handled", "withdrawn"], ("handled", None)),
    (["objected", "accepted"], ("review", "objection")),
    (["withdrawn"], ("review", "no_unit")),
    ([], ("review", "no_unit")),
])
def test_given_dispatch_statuses_when_staging_then_the_ticket_follows(statuses, stage):
    assert ticket_stage(statuses) == stage


# -- on a database ------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
async def world(tmp_path, database_url):
    store = await TicketStore.open(database_url)
    users = UserStore(store)
    await users.create_user("a1", "a1-password-123", "agent", agent_id="8001")
    clock = Clock()
    posted: list = []
    answers: list = []

    async def post(url, body, headers):
        posted.append((url, body, headers))
        return answers.pop(0) if answers else 200

    units = UnitService(store=store, clock=clock, units=UNITS, post=post,
                        hooks={"water": Hook("water", "https://water.example/hook", SECRET)})
    desk = DeskService(store=store, users=users, recordings_dir=tmp_path / "rec", suggester=None, clock=clock)
    desk.desk.on_submitted = units.store.dispatch_submitted
    yield store, desk, units, clock, posted, answers
    await store.close()


async def _submitted(store, desk, uid="u1", *, confidential=False, body=None) -> int:
    await store.start_call(uniqueid=uid, channel="Local/x;1", caller_number="13800138000", dialled_number="12345",
                           line_number="12345", line_name="12345市民服务热线", merge_mode="primary", department=None,
                           flow_version="v1", started_at=NOW)
    tid = await store.ensure_ticket(uid, category="求助", channel_kind=None, confidential=confidential,
                                    handled_by=None, queue="q-help", department=None)
    await store.mark_agent(uid, "8001")
    ticket = await store.get_ticket(tid)
    await desk.decide(tid, "submitted", {**(body or SUBMIT), "version_id": ticket["version_id"]},
                      {"username": "a1", "role": "agent", "agent_id": "8001"})
    return tid


async def _mine(units, unit_id, state="all"):
    return await units.store.list_for_unit(unit_id, state, units.clock())


async def test_given_a_submit_with_two_units_when_decided_then_one_dispatch_each_with_the_deadline(world):
    store, desk, units, clock, posted, _ = world
    tid = await _submitted(store, desk)
    ticket = await store.get_ticket(tid)
    assert ticket["status"] == "submitted" and ticket["handling"] == "dispatched"
    assert ticket["due_at"] == (NOW + timedelta(hours=24)).isoformat()  # urgent: 24 h (config/deadlines.yaml)
    water, street = await _mine(units, "water"), await _mine(units, "sanlitun")
    assert [d["unit_name"] for d in water + street] == ["市自来水集团", "三里屯街道"]  # names from the catalogue
    assert water[0]["status"] == "sent" and water[0]["seconds_left"] == 24 * 3600
    events = await units.store.events(tid)
    assert [e["kind"] for e in events] == ["dispatched", "dispatched"]
    # only the unit with a webhook gets a delivery queued, without any caller's number
    async with store.read_session() as session:
        rows = (await session.execute(sa.select(UnitHookDelivery))).scalars().all()
    assert [(r.unit_id, r.event) for r in rows] == [("water", "dispatched")]
    assert "13800138000" not in json.dumps(rows[0].payload, ensure_ascii=False)


async def test_given_units_outside_the_catalogue_when_submitted_then_the_ticket_stays_at_the_hotline(world):
    store, desk, units, *_ = world
    tid = await _submitted(store, desk, body={**SUBMIT, "dispatch_mode": "direct",
                                              "units": [{"name": "某个不存在的单位"}]})
    ticket = await store.get_ticket(tid)
    assert (ticket["handling"], ticket["review_reason"]) == ("review", "no_unit")
    review = await units.store.review_list(NOW)
    assert [t["id"] for t in review] == [tid]
    out = await units.store.review_action(tid, "redispatch", "boss", NOW, version_id=review[0]["version_id"],
                                          reason="派给自来水", units=["water"])
    assert out["handling"] == "dispatched" and [d["unit_id"] for d in out["dispatches"]] == ["water"]


async def test_given_another_units_dispatch_when_opened_or_acted_on_then_not_found(world):
    store, desk, units, *_ = world
    await _submitted(store, desk)
    water = (await _mine(units, "water"))[0]
    with pytest.raises(NotFound):
        await units.store.open_for_unit(water["id"], "power", NOW)
    with pytest.raises(NotFound):
        await units.store.unit_action(water["id"], "sanlitun", "accept", "x", NOW)
    with pytest.raises(NotFound):
        await units.store.open_for_unit(99999, "water", NOW)
    assert await _mine(units, "power") == []


async def test_given_a_confidential_caller_when_the_unit_opens_it_then_no_number_anywhere(world):
    store, desk, units, *_ = world
    await _submitted(store, desk, confidential=True,
                     body={**SUBMIT, "summary": "请回电 13912345678 停水", "dispatch_mode": "direct",
                           "units": [{"id": "water", "name": "x"}]})
    d = (await _mine(units, "water"))[0]
    view = await units.store.open_for_unit(d["id"], "water", NOW)
    text = json.dumps([view, d], ensure_ascii=False)
    assert "13800138000" not in text and "13912345678" not in text
    assert view["ticket"]["caller_number"] is None and "recording" not in json.dumps(view["ticket"])


async def test_given_both_units_when_they_accept_note_and_reply_then_the_ticket_is_handled_once(world):
    store, desk, units, *_ = world
    tid = await _submitted(store, desk)
    water, street = (await _mine(units, "water"))[0]["id"], (await _mine(units, "sanlitun"))[0]["id"]
    with pytest.raises(ForbiddenTransition, match="请先签收"):
        await units.store.unit_action(water, "water", "handle", "w1", NOW, text="修好了")
    await units.store.unit_action(water, "water", "accept", "w1", NOW)
    with pytest.raises(ForbiddenTransition, match="already accepted"):
        await units.store.unit_action(water, "water", "accept", "w1", NOW)
    await units.store.unit_action(water, "water", "note", "w1", NOW, text="抢修队已出发", public=True)
    await units.store.unit_action(water, "water", "note", "w1", NOW, text="内部：管线老化", public=False)
    await units.store.unit_action(street, "sanlitun", "accept", "s1", NOW)
    assert (await store.get_ticket(tid))["handling"] == "accepted"
    await units.store.unit_action(water, "water", "handle", "w1", NOW, text="已恢复供水")
    assert (await store.get_ticket(tid))["handling"] == "accepted"  # the street has not replied yet
    # the street sees the water company's public note, not its internal one
    seen = [e["text"] for e in (await units.store.open_for_unit(street, "sanlitun", NOW))["events"]]
    assert "抢修队已出发" in seen and "内部：管线老化" not in seen
    await units.store.unit_action(street, "sanlitun", "handle", "s1", NOW, text="已督促物业")
    ticket = await store.get_ticket(tid)
    assert ticket["handling"] == "handled" and ticket["handled_at"] == NOW.isoformat()
    with pytest.raises(ForbiddenTransition):
        await units.store.unit_action(street, "sanlitun", "handle", "s1", NOW, text="again")
    handled = [e for e in await units.store.events(tid) if e["kind"] == "handled"]
    assert len(handled) == 1 and handled[0]["public"] and "已恢复供水" in handled[0]["text"]
    async with store.read_session() as session:
        actions = (await session.execute(sa.select(AuditEvent.action, AuditEvent.details).where(
            AuditEvent.object_id == str(tid), AuditEvent.action.like("unit.%")))).all()
    assert [a for a, _ in actions].count("unit.handle") == 2 and len(actions) == 6  # refusals change nothing
    assert "已恢复供水" not in json.dumps([d for _, d in actions], ensure_ascii=False)  # who, not what


async def test_given_an_objection_when_reviewed_then_redispatch_withdraws_and_reject_sends_back(world):
    store, desk, units, clock, *_ = world
    tid = await _submitted(store, desk, body={**SUBMIT, "dispatch_mode": "direct",
                                              "units": [{"id": "sanlitun", "name": "x"}]})
    street = (await _mine(units, "sanlitun"))[0]["id"]
    await units.store.unit_action(street, "sanlitun", "object", "s1", NOW, text="供水问题应由自来水集团处理")
    ticket = await store.get_ticket(tid)
    assert (ticket["handling"], ticket["review_reason"]) == ("review", "objection")
    item = (await units.store.review_list(NOW))[0]
    with pytest.raises(Conflict):  # a stale version
        await units.store.review_action(tid, "reject", "boss", NOW, version_id=item["version_id"] - 1, reason="x")
    # rejected: back to the same unit, a new deadline
    clock.now = NOW + timedelta(hours=1)
    out = await units.store.review_action(tid, "reject", "boss", clock.now, version_id=item["version_id"],
                                          reason="属地管理，请街道先行处置")
    assert out["handling"] == "dispatched" and out["dispatches"][0]["status"] == "sent"
    assert out["dispatches"][0]["due_at"] == (clock.now + timedelta(hours=24)).isoformat()
    # objected again, then re-dispatched to the water company
    await units.store.unit_action(street, "sanlitun", "object", "s1", clock.now, text="仍非本单位职责")
    version = (await units.store.review_list(clock.now))[0]["version_id"]
    with pytest.raises(Exception, match="not a unit of the catalogue"):
        await units.store.review_action(tid, "redispatch", "boss", clock.now, version_id=version, reason="x",
                                        units=["nope"])
    out = await units.store.review_action(tid, "redispatch", "boss", clock.now, version_id=version,
                                          reason="改派自来水集团", units=["water"])
    assert [(d["unit_id"], d["status"]) for d in out["dispatches"]] == [("sanlitun", "withdrawn"), ("water", "sent")]
    assert out["handling"] == "dispatched"
    assert [e["kind"] for e in out["events"]] == ["dispatched", "objected", "rejected", "objected", "withdrawn",
                                                  "redispatched"]
    assert (await _mine(units, "sanlitun")) == []  # withdrawn: no longer on the street's list
    with pytest.raises(Conflict, match="not under review"):
        await units.store.review_action(tid, "close", "boss", clock.now, version_id=out["version_id"], reason="x")


async def test_given_deadlines_when_the_job_runs_on_two_services_then_each_notice_is_sent_once(world):
    store, desk, units, clock, posted, _ = world
    tid = await _submitted(store, desk, body={**SUBMIT, "dispatch_mode": "direct",
                                              "units": [{"id": "water", "name": "x"}]})
    other = UnitService(store=store, clock=clock, units=UNITS, hooks=units.hooks, post=units.sender.post)  # instance 2
    assert await units.run_jobs() == 0 and await other.run_jobs() == 0  # not yet
    clock.now = NOW + timedelta(hours=20)  # 80 % of 24 h passed
    assert await units.run_jobs() + await other.run_jobs() == 1
    clock.now = NOW + timedelta(hours=25)
    assert await other.run_jobs() + await units.run_jobs() == 1
    assert await units.run_jobs() + await other.run_jobs() == 0
    kinds = [e["kind"] for e in await units.store.events(tid)]
    assert kinds.count("reminder") == 1 and kinds.count("overdue") == 1
    late = await units.store.overdue_list(clock.now)
    assert [(d["ticket"]["id"], d["late_seconds"]) for d in late] == [(tid, 3600)]
    assert [h[2]["X-Gateway-Event"] for h in posted] == ["dispatched", "reminder", "overdue"]


async def test_given_a_webhook_when_delivered_then_signed_and_retried_with_backoff_until_given_up(world):
    store, desk, units, clock, posted, answers = world
    answers.extend([500] * MAX_ATTEMPTS)
    await _submitted(store, desk, body={**SUBMIT, "dispatch_mode": "direct", "units": [{"id": "water", "name": "x"}]})
    await units.run_jobs()
    url, body, headers = posted[0]
    assert headers["X-Gateway-Signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert json.loads(body)["event"] == "dispatched" and "13800138000" not in body.decode()
    await units.run_jobs()
    assert len(posted) == 1  # not due again before its backoff
    for _ in range(MAX_ATTEMPTS):
        clock.now += timedelta(hours=1, seconds=1)
        await units.sender.run_once(clock.now)
    assert len(posted) == MAX_ATTEMPTS
    problems = await units.sender.problems()
    assert problems[0]["attempts"] == MAX_ATTEMPTS and problems[0]["failed_at"] and problems[0]["last_error"] == "HTTP 500"


def test_given_a_bad_hooks_file_when_parsed_then_each_problem_names_the_field():
    from gateway.errors import ConfigError

    text = ("hooks:\n  water: {url: 'ftp://x', secret: short}\n  nowhere: {url: 'https://a.b', secret: "
            "'aaaaaaaaaaaaaaaaaaaa'}\n  power: {url: 'https://p.example'}\n")
    with pytest.raises(ConfigError) as caught:
        parse_hooks(text, UNITS)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"hooks.water.url", "hooks.water.secret", "hooks.nowhere", "hooks.power"}
    assert all(p.line for p in caught.value.problems)
    ok = parse_hooks("hooks:\n  water: {url: 'https://w.example/h', secret: '0123456789abcdef'}\n", UNITS)
    assert SECRET not in repr(ok) and "0123456789abcdef" not in repr(ok["water"])


def test_given_a_unit_id_when_checked_against_the_catalogue_then_unknown_ones_are_named_with_hints():
    from pathlib import Path

    from gateway.units.service import check_unit_id

    config = Path(__file__).resolve().parents[2] / "config"
    assert check_unit_id(config, "water") is None
    problem = check_unit_id(config, "watr")
    assert "unknown unit 'watr'" in problem and "water" in problem and "未知的承办单位" in problem
    assert "--unit" in check_unit_id(config, None)


async def test_given_a_unit_role_when_created_without_a_unit_then_refused_and_with_one_then_in_the_session(
        database_url):
    from gateway.auth.errors import ValidationError

    store = await TicketStore.open(database_url)
    try:
        users = UserStore(store)
        with pytest.raises(ValidationError, match="needs a unit id"):
            await users.create_user("w1", "w1-password-123", "unit")
        with pytest.raises(ValidationError):
            await users.create_user("a9", "a9-password-123", "agent", unit_id="water")
        uid = await users.create_user("w1", "w1-password-123", "unit", unit_id="water")
        token = await users.api_token("w1", days=30)
        me = await users.session_user(token)
        assert me["id"] == uid and me["unit_id"] == "water" and me["role"] == "unit"
        with pytest.raises(ValidationError):
            await users.api_token("w1", days=0)
    finally:
        await store.close()


async def test_given_two_replies_at_once_when_both_race_then_one_wins_and_one_handled_event(world):
    import asyncio

    store, desk, units, *_ = world
    tid = await _submitted(store, desk, body={**SUBMIT, "dispatch_mode": "direct", "units": [{"id": "water", "name": "x"}]})
    water = (await _mine(units, "water"))[0]["id"]
    await units.store.unit_action(water, "water", "accept", "w1", NOW)
    results = await asyncio.gather(
        units.store.unit_action(water, "water", "handle", "w1", NOW, text="第一次"),
        units.store.unit_action(water, "water", "handle", "w2", NOW, text="第二次"), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["ForbiddenTransition", "dict"], results
    handled = [e for e in await units.store.events(tid) if e["kind"] == "handled"]
    assert len(handled) == 1 and handled[0]["text"] in ("第一次", "第二次")
