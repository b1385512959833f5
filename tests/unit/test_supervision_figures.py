"""Call-centre figures (issue 14, part 2) over generated calls on SQLite and PostgreSQL.

The calls are written the way the gateway writes them: the IVR's steps through the store, the
queue's AMI events (parsed from their headers) through the calls feature's handler and the
figures' queue-leg recorder. Then the figures of the period are read back and checked by hand.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth.users import UserStore
from gateway.calls.plugin import CallEvents
from gateway.callback.store import CallbackStore
from gateway.desk.service import DeskService
from gateway.errors import ConfigError
from gateway.pbx.ami import AmiClient
from gateway.pbx.ami_events import parse_event
from gateway.supervision.agent_states import agent_states, summary
from gateway.supervision.figures import BadFiguresQuery, FiguresConfig, load_figures, parse_period
from gateway.supervision.figures_http import FIGURES, add_figures_routes
from gateway.supervision.figures_service import FiguresService
from gateway.supervision.queue_legs import QueueLeg, QueueLegRecorder
from gateway.ticketing.desk_store import DeskStore
from tests.unit.webapp import build_app, with_desk

TZ = "Asia/Shanghai"
NOW = datetime(2026, 12, 2, 4, 0, tzinfo=timezone.utc)  # 12:00 in Beijing
NINE = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)  # 09:00 in Beijing
ELEVEN = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)  # 11:00 in Beijing
CONFIG = Path(__file__).resolve().parents[2] / "config"


class StepClock:
    """A clock the test moves by hand (a value holder: the figures read "now" from it)."""

    def __init__(self, now: datetime) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value

    __call__ = now


def _ami(name: str, uid: str, queue: str, **headers) -> dict:
    return {"Event": name, "Uniqueid": uid, "Channel": f"Local/{uid}", "Queue": queue, **headers}


class World:
    def __init__(self, store) -> None:
        self.store = store
        self.clock = StepClock(NOW)
        self.calls = CallEvents(store, self.clock)
        self.legs = QueueLegRecorder(store, self.clock)

    async def event(self, headers: dict, at: datetime) -> None:
        self.clock.value = at
        event = parse_event(headers)
        await self.calls(event)
        await self.legs(event)

    async def call(self, uid: str, *, at: datetime, line: str = "12345", path=(), end: bool = True) -> None:
        await self.store.start_call(uniqueid=uid, channel=f"Local/{uid}", caller_number="13800138000",
                                    dialled_number=line, line_number=line, line_name=f"line {line}",
                                    merge_mode="primary", department=None, flow_version="v1", started_at=at)
        for step in path:
            await self.store.record_step(uid, step)
        self.end = end

    async def queued(self, uid: str, queue: str, *, at: datetime, hold: int | None = None, talk: int | None = None,
                     agent: str = "8001", abandon: bool = False, timeout_after: int | None = None) -> None:
        await self.event(_ami("QueueCallerJoin", uid, queue, Position="1"), at)
        if abandon:
            await self.event(_ami("QueueCallerAbandon", uid, queue, HoldTime=str(hold)), at + timedelta(seconds=hold))
            await self.event(_ami("QueueCallerLeave", uid, queue), at + timedelta(seconds=hold))
        elif timeout_after is not None:
            await self.event(_ami("QueueCallerLeave", uid, queue), at + timedelta(seconds=timeout_after))
        else:
            answered = at + timedelta(seconds=hold)
            await self.event(_ami("QueueCallerLeave", uid, queue), answered)
            await self.event(_ami("AgentConnect", uid, queue, MemberName=f"agent {agent}",
                                  Interface=f"Local/{agent}@gw-agents", HoldTime=str(hold),
                                  DestUniqueid=f"{uid}-agent"), answered)
            if talk is not None:
                await self.event(_ami("AgentComplete", uid, queue, MemberName=f"agent {agent}",
                                      Interface=f"Local/{agent}@gw-agents", TalkTime=str(talk)),
                                 answered + timedelta(seconds=talk))

    async def hangup(self, uid: str, at: datetime) -> None:
        await self.event({"Event": "Hangup", "Uniqueid": uid, "Channel": f"Local/{uid}", "Cause": "16",
                          "Cause-txt": "Normal Clearing"}, at)


async def _generated_day(store) -> World:
    """Eleven calls today (and one yesterday); the expected figures are in the tests below."""
    w = World(store)
    minute = timedelta(minutes=1)
    # answered within 20 s, after 30 s, and abandoned after 40 s in q-general (line 12345)
    for uid, hold, talk in (("a1", 5, 60), ("a2", 30, 120)):
        await w.call(uid, at=NINE, path=[{"node": "type_menu", "key": "1"}, {"node": "to_agent", "queue": "q-general"}])
        await w.queued(uid, "q-general", at=NINE + minute, hold=hold, talk=talk)
        await w.hangup(uid, NINE + 5 * minute)
    await w.call("a3", at=NINE, path=[{"node": "to_agent", "queue": "q-general"}])
    await w.queued("a3", "q-general", at=NINE + minute, hold=40, abandon=True)
    await w.hangup("a3", NINE + 2 * minute)
    # in the IVR: two callers give up at the type menu, one at the greeting; one took the
    # callback offer; one heard the "closed" message; one is still in the menu
    for uid, node in (("i1", "type_menu"), ("i2", "type_menu"), ("i3", "greeting")):
        await w.call(uid, at=ELEVEN, path=[{"node": "hours", "result": "open"}, {"node": "caller_hangup", "at": node}])
        await w.hangup(uid, ELEVEN + minute)
    await w.call("cb", at=ELEVEN, path=[{"node": "to_agent", "callback_offer": 5, "key": "1", "result": "callback",
                                          "number_source": "caller_id"}])
    await w.hangup("cb", ELEVEN + minute)
    await w.call("e1", at=ELEVEN, path=[{"node": "hours", "result": "closed"}, {"node": "closed"}])
    await w.hangup("e1", ELEVEN + minute)
    await w.call("live", at=NOW - minute, path=[{"node": "greeting"}])
    # line 12315: one answered in 10 s; one timed out of q-12366 after 20 s and answered in q-general 3 s later
    await w.call("b1", at=NINE, line="12315")
    await w.queued("b1", "q-12315", at=NINE + minute, hold=10, talk=30, agent="8002")
    await w.hangup("b1", NINE + 3 * minute)
    await w.call("b2", at=ELEVEN, line="12315")
    await w.queued("b2", "q-12366", at=ELEVEN + minute, timeout_after=20)
    await w.queued("b2", "q-general", at=ELEVEN + minute + timedelta(seconds=20), hold=3, talk=90, agent="8002")
    await w.hangup("b2", ELEVEN + 5 * minute)
    # yesterday: not in today's figures
    await w.call("old", at=NINE - timedelta(days=1))
    await w.queued("old", "q-general", at=NINE - timedelta(days=1), hold=1, talk=10)
    await w.hangup("old", NINE - timedelta(days=1) + minute)
    return w


def _service(store, **config) -> FiguresService:
    return FiguresService(store=store, ami_nodes={"pbx1": AmiClient(host="127.0.0.1", port=1, username="x",
                                                                    secret="y")},
                          clock=lambda: NOW, timezone=lambda: TZ, config=FiguresConfig(**config))


def _today():
    return parse_period({}, today=date(2026, 12, 2), timezone=TZ)


async def test_given_a_generated_day_when_figures_are_read_then_every_outcome_is_counted(store):
    await _generated_day(store)
    got = await _service(store).figures(_today())
    t = got["totals"]
    assert (t["calls"], t["answered"], t["abandoned_queue"], t["abandoned_ivr"], t["callback"], t["ended_in_ivr"],
            t["in_progress"]) == (11, 4, 1, 3, 1, 1, 1)
    assert t["abandoned"] == 4 and t["offered"] == 5
    assert t["ivr_abandon_nodes"] == [{"node": "type_menu", "calls": 2}, {"node": "greeting", "calls": 1}]
    assert t["abandon_rate_queue"] == 0.2 and t["abandon_rate_ivr"] == round(3 / 11, 4)
    assert "13800138000" not in str(got)


async def test_given_a_generated_day_when_figures_are_read_then_service_level_asa_and_aht_are_right(store):
    await _generated_day(store)
    t = (await _service(store).figures(_today()))["totals"]
    # within 20 s: a1 (5 s) and b1 (10 s); a2 waited 30 s, b2 20 + 3 s; a3 abandoned: 2 of 5
    assert (t["answered_in_sl"], t["service_level"]) == (2, 0.4)
    assert t["asa_s"] == (5 + 30 + 10 + 23) / 4
    assert t["aht_s"] == (60 + 120 + 30 + 90) / 4
    assert t["longest_wait_s"] == 40


async def _decide(store, uid: str, at: datetime) -> None:
    """The agent submits the call's ticket on the desk at ``at`` (after-call work ends)."""
    import sqlalchemy as sa

    from gateway.ticketing.models import Ticket

    ticket_id = await store.ensure_ticket(uid, category="咨询", channel_kind=None, confidential=False, handled_by=None,
                                          queue="q-general", department=None)
    async with store.read_session() as session:
        version = (await session.execute(sa.select(Ticket.version_id).where(Ticket.id == ticket_id))).scalar()
    await DeskStore(store, timezone=TZ).decide(ticket_id, outcome="answered", version_id=version,
                                               fields={"summary": "咨询已答复"}, actor="8001", now=at)


async def test_given_tickets_decided_after_hang_up_when_figures_are_read_then_aht_is_talk_plus_after_call_work(store):
    await _generated_day(store)
    minute, s = timedelta(minutes=1), timedelta(seconds=1)
    # a1: answered at +5 s, talked 60 s: hung up at NINE + 1 min + 65 s, ticket submitted 45 s later
    await _decide(store, "a1", NINE + minute + 110 * s)
    # a2: submitted during the call (10 s before its hang-up at + 150 s): 0 s of after-call work
    await _decide(store, "a2", NINE + minute + 140 * s)
    # b1: decided an hour after the hang-up (from the drafts list): not after-call work, unknown
    await _decide(store, "b1", NINE + minute + 40 * s + timedelta(hours=1))
    # b2: its ticket is still a draft: unknown
    got = await _service(store).figures(_today())
    t = got["totals"]
    assert (t["talk_s"], t["acw_s"], t["acw_unknown"]) == ((60 + 120 + 30 + 90) / 4, 22.5, 2)
    assert t["aht_s"] == 75 + 22.5  # mean talk (holds inside it) + mean after-call work
    general = next(q for q in got["per_queue"] if q["queue"] == "q-general")
    assert (general["talk_s"], general["acw_s"], general["aht_s"], general["acw_unknown"]) == (90, 22.5, 112.5, 1)
    agents = {a["agent"]: a for a in got["agents"]["items"]}
    assert (agents["8001"]["talk_s"], agents["8001"]["acw_s"]) == (180, 45)
    nine = next(p for p in (await _service(store).trend(_today()))["points"] if p["label"] == "09:00")
    assert (nine["aht_s"], nine["talk_s"], nine["acw_s"]) == (92.5, 70, 22.5)  # a1, a2, b1 (b2 came at 11:00)
    # a tighter limit: a1's 45 s is no longer after-call work either
    tight = (await _service(store, after_call_max_seconds=30).figures(_today()))["totals"]
    assert (tight["acw_s"], tight["acw_unknown"], tight["aht_s"]) == (0, 3, 75)


async def test_given_a_configured_threshold_when_figures_are_read_then_the_service_level_follows_it(store):
    await _generated_day(store)
    t = (await _service(store, service_level_seconds=25).figures(_today()))["totals"]
    assert (t["answered_in_sl"], t["service_level"]) == (3, 0.6)
    t = (await _service(store, service_level_seconds=25, short_abandon_seconds=45).figures(_today()))["totals"]
    assert t["service_level"] == 0.75 and t["abandoned_queue"] == 1  # the 40 s abandon is left out of the SL only


async def test_given_a_generated_day_when_figures_are_read_then_per_line_and_per_queue_split_them(store):
    await _generated_day(store)
    got = await _service(store).figures(_today())
    lines = {x["line"]: x for x in got["per_line"]}
    assert (lines["12345"]["calls"], lines["12345"]["abandoned_ivr"], lines["12345"]["abandoned_queue"]) == (9, 3, 1)
    assert (lines["12315"]["calls"], lines["12315"]["answered"], lines["12315"]["service_level"]) == (2, 2, 0.5)
    queues = {x["queue"]: x for x in got["per_queue"]}
    general = queues["q-general"]
    assert (general["offered"], general["answered"], general["abandoned"], general["service_level"]) == (4, 3, 1, 0.5)
    assert general["asa_s"] == round((5 + 30 + 3) / 3, 1)
    assert (queues["q-12366"]["queue_timeout"], queues["q-12366"]["answered"]) == (1, 0)
    assert queues["q-12315"]["aht_s"] == 30
    assert "abandoned_ivr" not in general


async def test_given_a_generated_day_when_the_trend_is_read_then_each_hour_holds_its_calls(store):
    await _generated_day(store)
    got = await _service(store).trend(_today())
    assert got["bucket"] == "hour" and len(got["points"]) == 24
    by_label = {p["label"]: p for p in got["points"]}
    assert (by_label["09:00"]["calls"], by_label["09:00"]["answered"], by_label["09:00"]["abandoned_queue"]) == (4, 3, 1)
    assert (by_label["11:00"]["calls"], by_label["11:00"]["abandoned_ivr"], by_label["11:00"]["callback"]) == (7, 3, 1)
    assert by_label["09:00"]["service_level"] == 0.5 and by_label["10:00"]["calls"] == 0
    week = await _service(store).trend(parse_period({"period": "week", "date": "2026-12-02"}, today=date(2026, 12, 2),
                                                    timezone=TZ))
    assert [p["label"] for p in week["points"]][:3] == ["11-30", "12-01", "12-02"]
    assert [p["calls"] for p in week["points"]][:3] == [0, 1, 11]


async def test_given_two_instances_when_both_record_the_same_events_then_one_leg_with_asterisks_figures(store):
    one, two = QueueLegRecorder(store, lambda: NOW), QueueLegRecorder(store, lambda: NOW + timedelta(seconds=0.01))
    events = [_ami("QueueCallerJoin", "x1", "q-general"),
              _ami("AgentConnect", "x1", "q-general", Interface="Local/8003@gw-agents", HoldTime="7"),
              _ami("AgentComplete", "x1", "q-general", Interface="Local/8003@gw-agents", TalkTime="44")]
    for headers in events:
        await asyncio.gather(one(parse_event(headers)), two(parse_event(headers)))
    async with store.read_session() as session:
        import sqlalchemy as sa

        legs = (await session.execute(sa.select(QueueLeg))).scalars().all()
    assert [(leg.queue, leg.hold_s, leg.talk_s, leg.agent, leg.abandoned) for leg in legs] == [
        ("q-general", 7, 44, "8003", False)]
    assert one.counters["errors"] == two.counters["errors"] == 0


async def test_given_callbacks_and_drafts_when_figures_are_read_then_pending_counts_them(store):
    w = await _generated_day(store)
    await store.ensure_ticket("a1", category="投诉", channel_kind=None, confidential=True, handled_by=None,
                              queue="q-general", department=None)
    await store.ensure_ticket("cb", category="咨询", channel_kind=None, confidential=False, handled_by=None,
                              queue="q-general", department=None)
    await CallbackStore(store).request(call_uniqueid="cb", queue="q-general", number="13800138000",
                                       number_source="caller_id", requested_at=NOW - timedelta(minutes=10))
    got = await _service(store).figures(_today())
    pending = got["pending"]
    assert pending["callbacks"]["total"] == 1 and pending["callbacks"]["per_queue"][0]["queue"] == "q-general"
    assert pending["callbacks"]["oldest_s"] == 600
    assert pending["drafts"]["total"] == 2 and pending["drafts"]["per_queue"] == [{"queue": "q-general", "drafts": 2}]
    agents = {a["agent"]: a for a in got["agents"]["items"]}
    assert (agents["8001"]["answered"], agents["8001"]["talk_s"], agents["8001"]["drafts_open"]) == (2, 180, 1)
    assert got["agents"]["errors"] == ["pbx1: not connected"]  # AMI not connected: said, not hidden
    assert "13800138000" not in str(got) and w.clock.value


async def test_given_ivr_hangups_when_the_board_counts_today_then_abandoned_includes_them_apart(store):
    await _generated_day(store)
    today = await DeskStore(store, timezone=TZ).today_counts(datetime(2026, 12, 1, 16, 0, tzinfo=timezone.utc))
    assert (today["abandoned"], today["abandoned_queue"], today["abandoned_ivr"]) == (4, 1, 3)


def test_given_queue_status_when_agents_are_read_then_each_has_one_state():
    member = {"Event": "QueueMember", "Queue": "q-general", "Status": "1", "Paused": "0", "InCall": "0",
              "CallsTaken": "2", "LastCall": "0"}
    messages = [
        {**member, "Name": "8001", "Location": "Local/8001@gw-agents/n", "InCall": "1", "Status": "2"},
        {**member, "Name": "8001", "Location": "Local/8001@gw-agents/n", "Queue": "q-consult"},
        {**member, "Name": "8002", "Location": "Local/8002@gw-agents/n", "Paused": "1", "PausedReason": "lunch"},
        {**member, "Name": "8003", "Location": "Local/8003@gw-agents/n", "LastCall": "995"},
        {**member, "Name": "8004", "Location": "Local/8004@gw-agents/n", "LastCall": "995", "Wrapuptime": "10"},
        {**member, "Name": "8005", "Location": "Local/8005@gw-agents/n", "Status": "5"},
        {**member, "Name": "8006", "Location": "Local/8006@gw-agents/n", "Status": "6"},
        {"Event": "QueueParams", "Queue": "q-general"},
    ]
    agents = agent_states(messages, now_epoch=1000, wrapup_s=0)
    got = {a["agent"]: (a["state"], a["queues"], a["calls_taken"]) for a in agents}
    assert got == {"8001": ("talking", ["q-consult", "q-general"], 4), "8002": ("paused", ["q-general"], 2),
                   "8003": ("available", ["q-general"], 2), "8004": ("wrapup", ["q-general"], 2),
                   "8005": ("unavailable", ["q-general"], 2), "8006": ("ringing", ["q-general"], 2)}
    assert agents[1]["paused_reason"] == "lunch" and agents[1]["state_zh"] == "示忙"
    assert agent_states(messages, now_epoch=1000, wrapup_s=30)[2]["state"] == "wrapup"
    assert summary(agents) == {"talking": 1, "ringing": 1, "paused": 1, "unavailable": 1, "wrapup": 1, "available": 1}


@pytest.mark.parametrize("query, field", [
    ({"period": "year"}, "period"),
    ({"period": "day", "date": "2026-13-01"}, "date"),
    ({"period": "day", "date": "yesterday"}, "date"),
    ({"period": "day", "date": "2027-01-01"}, "date"),
    ({"start": "2026-12-01"}, "end"),
    ({"start": "2026-12-02", "end": "2026-12-01"}, "end"),
    ({"start": "2026-01-01", "end": "2026-12-01"}, "end"),
    ({"period": "today", "date": "2026-12-01"}, "date"),
    ({"period": "week", "start": "2026-12-01", "end": "2026-12-02"}, "start"),
    ({"period": "month", "bucket": "minute"}, "bucket"),
    ({"period": "month", "bucket": "hour"}, "bucket"),
    ({"period": "day", "line": "12345"}, "line"),
])
def test_given_a_bad_query_when_the_period_is_parsed_then_it_is_refused_naming_the_field(query, field):
    with pytest.raises(BadFiguresQuery) as err:
        parse_period(query, today=date(2026, 12, 2), timezone=TZ)
    assert err.value.status_code == 400 and err.value.details["field"] == field
    assert " / " in err.value.message  # English / 中文


def test_given_each_period_when_parsed_then_its_days_and_bucket_are_right():
    today = date(2026, 12, 2)

    def days(q):
        p = parse_period(q, today=today, timezone=TZ)
        return p.as_dict()["first_day"], p.as_dict()["last_day"], p.bucket

    assert days({}) == ("2026-12-02", "2026-12-02", "hour")
    assert days({"period": "day", "date": "2026-11-30"}) == ("2026-11-30", "2026-11-30", "hour")
    assert days({"period": "week"}) == ("2026-11-30", "2026-12-06", "day")
    assert days({"period": "month", "date": "2026-02"}) == ("2026-02-01", "2026-02-28", "day")
    assert days({"start": "2026-11-01", "end": "2026-11-02"}) == ("2026-11-01", "2026-11-02", "hour")
    assert days({"period": "custom", "start": "2026-11-01", "end": "2026-11-30"}) == ("2026-11-01", "2026-11-30", "day")
    p = parse_period({}, today=today, timezone=TZ)
    assert p.start == datetime(2026, 12, 1, 16, 0, tzinfo=timezone.utc)


def test_given_the_shipped_file_when_loaded_then_the_defaults(tmp_path):
    assert load_figures(CONFIG / "supervision.yaml") == FiguresConfig()
    assert load_figures(tmp_path / "absent.yaml") == FiguresConfig()


def test_given_a_misspelt_or_bad_key_when_loaded_then_every_problem_with_its_line(tmp_path):
    path = tmp_path / "supervision.yaml"
    path.write_text("figures:\n  service_levl_seconds: 20\n  wrapup_seconds: -1\n  max_days: 2.5\nfigurs: {}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_figures(path)
    problems = {p.as_dict()["field"]: p.as_dict() for p in err.value.problems}
    assert set(problems) == {"figures.service_levl_seconds", "figures.wrapup_seconds", "figures.max_days", "figurs"}
    assert problems["figures.service_levl_seconds"]["line"] == 2
    assert "service_level_seconds" in problems["figures.service_levl_seconds"]["message"]  # did you mean …
    assert all("暂无中文说明" not in p["message_zh"] for p in problems.values())


@pytest.fixture()
async def client(tmp_path, database_url):
    from gateway.ticketing.store import TicketStore

    store = await TicketStore.open(database_url)
    users = UserStore(store)
    tokens = {}
    for name, role in (("a1", "agent"), ("boss", "supervisor")):
        await users.create_user(name, f"{name}-password-1", role)
        uid = next(u["id"] for u in await users.list_users() if u["username"] == name)
        tokens[name] = {"Authorization": f"Bearer {(await users.create_session(uid))[0]}"}

    async def health():
        return {}

    app = with_desk(build_app(store=store, health=health, users=users),
                    DeskService(store=store, users=users, recordings_dir=tmp_path, suggester=None, clock=lambda: NOW))
    app[FIGURES] = _service(store)
    add_figures_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c, store, tokens
    await store.close()


async def test_given_the_api_when_a_supervisor_asks_then_figures_and_trend_and_others_are_refused(client):
    c, store, tokens = client
    await _generated_day(store)
    r = await c.get("/api/supervisor/figures?period=today", headers=tokens["boss"])
    assert r.status == 200
    body = await r.json()
    assert body["totals"]["abandoned_ivr"] == 3 and body["period"]["first_day"] == "2026-12-02"
    r = await c.get("/api/supervisor/figures/trend?period=week&date=2026-12-02", headers=tokens["boss"])
    assert r.status == 200 and len((await r.json())["points"]) == 7
    r = await c.get("/api/supervisor/figures", headers=tokens["a1"])
    assert r.status == 403
    r = await c.get("/api/supervisor/figures?period=day&date=2026-02-30", headers=tokens["boss"])
    body = await r.json()
    assert r.status == 400 and body["error"] == "bad-figures-query"
    assert body["details"]["problems"][0]["field"] == "date" and "不是有效日期" in body["message_zh"]


async def test_given_an_answered_call_without_queue_events_when_figures_are_read_then_it_is_left_out_of_the_sl(store):
    w = World(store)
    await w.call("r1", at=NINE)
    await store.repair_call("r1", queue="q-general", agent="8001", ended_at=NINE + timedelta(minutes=3),
                            hangup_cause=16, hangup_cause_txt="Normal Clearing")  # reconciliation, AMI was away
    await w.call("a1", at=NINE)
    await w.queued("a1", "q-general", at=NINE, hold=5, talk=10)
    t = (await _service(store).figures(_today()))["totals"]
    assert (t["answered"], t["answered_wait_unknown"], t["answered_in_sl"], t["service_level"], t["asa_s"]) == (
        2, 1, 1, 1.0, 5.0)


async def test_given_a_caller_abandoning_at_once_when_figures_are_read_then_it_counts_against_the_sl(store):
    w = World(store)
    for uid, hold, abandon in (("q1", 2, False), ("q2", 0, True)):
        await w.call(uid, at=NINE)
        await w.queued(uid, "q-general", at=NINE, hold=hold, talk=5, abandon=abandon)
        await w.hangup(uid, NINE + timedelta(minutes=1))
    assert (await _service(store).figures(_today()))["totals"]["service_level"] == 0.5
    assert (await _service(store, short_abandon_seconds=1).figures(_today()))["totals"]["service_level"] == 1.0


async def test_given_a_started_recorder_when_events_come_then_they_are_written_in_order_by_its_task(store):
    recorder = QueueLegRecorder(store, lambda: NOW)
    recorder.start()
    try:
        for headers in (_ami("QueueCallerJoin", "y1", "q-help"),
                        _ami("QueueCallerAbandon", "y1", "q-help", HoldTime="12"),
                        _ami("QueueCallerLeave", "y1", "q-help")):
            await recorder(parse_event(headers))  # returns at once: queued
        await recorder.idle()
    finally:
        await recorder.stop()
    async with store.read_session() as session:
        import sqlalchemy as sa

        leg = (await session.execute(sa.select(QueueLeg))).scalar_one()
    assert (leg.queue, leg.hold_s, leg.abandoned, leg.left_at is not None) == ("q-help", 12, True, True)
    assert recorder.counters["abandoned"] == 1 and recorder.counters["dropped"] == 0


async def _called_back(store, w: World) -> None:
    """The "cb" caller is called back twice: first hangs up in q-general after 8 s, then agent 8003
    answers after 4 s and talks 100 s; the ticket is submitted 30 s after that hang-up."""
    from gateway.callback.policy import RetryPolicy
    from gateway.calls.outbound import OutboundCalls

    minute = timedelta(minutes=1)
    callbacks, outbound, policy = CallbackStore(store), OutboundCalls(store), RetryPolicy(interval_s=0)
    await store.ensure_ticket("cb", category="咨询", channel_kind=None, confidential=False, handled_by=None,
                              queue="q-general", department=None)
    row = await callbacks.request(call_uniqueid="cb", queue="q-general", number="13800138000",
                                  number_source="caller_id", requested_at=ELEVEN)
    for uid, at in (("out-firstattemptab", ELEVEN + 10 * minute), ("out-secondattemptb", ELEVEN + 30 * minute)):
        await callbacks.claim(row["id"], instance="gw1", now=at)
        await outbound.started(uniqueid=uid, purpose="callback", ref=str(row["id"]), number="13800138000", node=None,
                               started_at=at)
        await callbacks.attempt_ended(row["id"], outcome="answered", reason="", policy=policy, now=at,
                                      outbound_uniqueid=uid)
        if uid.startswith("out-first"):
            await w.queued(uid, "q-general", at=at + minute, hold=8, abandon=True)
            await callbacks.left_unanswered(row["id"], policy=policy, now=at + minute)
        else:
            await w.queued(uid, "q-general", at=at + minute, hold=4, talk=100, agent="8003")
            await callbacks.agent_answered(row["id"], agent="8003", now=at + minute)
        await outbound.hung_up(uid, ended_at=at + 5 * minute)
    await _decide(store, "cb", ELEVEN + 31 * minute + timedelta(seconds=134))


async def test_given_a_callback_answered_when_figures_are_read_then_its_legs_count_in_the_queue_not_the_line(store):
    w = await _generated_day(store)
    await _called_back(store, w)
    got = await _service(store).figures(_today())
    t = got["totals"]
    # the caller's own call is still one callback, never offered, though the callback's agent is on its row
    assert (t["calls"], t["offered"], t["answered"], t["callback"]) == (11, 5, 4, 1)
    assert (t["callbacks_queued"], t["callbacks_answered"]) == (2, 1)
    assert all("callbacks_queued" not in line for line in got["per_line"])
    general = next(q for q in got["per_queue"] if q["queue"] == "q-general")
    # a1 5 s, a2 30 s, b2 3 s answered, a3 abandoned; the callback: abandoned after 8 s, answered after 4 s
    assert (general["offered"], general["answered"], general["abandoned"]) == (6, 4, 2)
    assert (general["callbacks_queued"], general["callbacks_answered"]) == (2, 1)
    assert (general["answered_in_sl"], general["service_level"]) == (3, 0.5)
    assert general["asa_s"] == round((5 + 30 + 3 + 4) / 4, 1) and general["acw_s"] == 30
    agents = {a["agent"]: a for a in got["agents"]["items"]}
    assert (agents["8003"]["answered"], agents["8003"]["talk_s"], agents["8003"]["acw_s"]) == (1, 100, 30)
    assert "13800138000" not in str(got)


async def test_given_a_callback_answered_when_tallied_per_call_then_the_same_as_the_sql(store):
    from gateway.supervision.figures import compute
    from gateway.supervision.figures_sql import compute_sql
    from gateway.supervision.figures_store import FiguresStore

    w = await _generated_day(store)
    await _called_back(store, w)
    period, cfg = _today(), FiguresConfig()
    rows = FiguresStore(store)
    calls, callbacks = await rows.calls(period.start, period.end), await rows.callback_calls(period.start, period.end)
    assert [c.uniqueid for c in callbacks] == ["out-firstattemptab", "out-secondattemptb"]
    assert callbacks[1].decided_at is not None and callbacks[1].line == "12345"
    assert compute(calls, cfg, callbacks) == await compute_sql(store, period.start, period.end, cfg)


def test_given_an_agent_on_a_call_that_took_the_callback_when_its_outcome_is_read_then_it_is_a_callback():
    from gateway.supervision.outcomes import call_outcome

    steps = [{"node": "to_agent", "result": "callback"}]
    assert call_outcome(status="ended", queue=None, agent="8003", menu_path=steps) == ("callback", None)
    # with a queue of its own, or a leg, or no callback taken, the agent answered it
    assert call_outcome(status="ended", queue="q-general", agent="8003", menu_path=steps)[0] == "answered"
    assert call_outcome(status="ended", queue=None, agent="8003", menu_path=steps, legs_abandoned=False)[0] == "answered"
    assert call_outcome(status="ended", queue=None, agent="8003", menu_path=[{"node": "x"}])[0] == "answered"
