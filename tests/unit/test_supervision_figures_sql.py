"""The figures counted by the database (figures_sql) against the per-call tally (figures.compute).

Generated calls (a fixed seed) cover the edge cases: no queue leg (with and without a queue
and an agent), several legs (timed out then answered, two answered), legs without HoldTime,
abandoned in the IVR at different nodes, callbacks, steps that only mention a callback,
the gateway's callback calls (several attempts, some put into one or two queues, some a day later,
the answering agent written on the original call's row, a follow-up call in a queue: not counted),
after-call work known, negative, too late and unknown, lines whose name changed, calls outside
the period. Both paths must give the same figures, per line, per queue, per agent and per bucket.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from gateway.supervision.figures import FiguresConfig, compute, parse_period, trend
from gateway.supervision.figures_sql import abandoned_sql, compute_sql, trend_sql
from gateway.supervision.figures_store import FiguresStore
from gateway.supervision.queue_legs import QueueLeg
from gateway.ticketing.models import Call, Callback, OutboundCall, Ticket
from gateway.ticketing.store import TicketStore  # noqa: F401 (imported here: the store fixture imports it on the loop)

TZ = "Asia/Shanghai"
DAY1 = datetime(2026, 11, 29, 16, 0, tzinfo=timezone.utc)  # 30 November, 00:00 in Beijing
QUEUES = ("q-a", "q-b", "q-c")
LINES = (("12345", "市民服务热线"), ("12345", "市民热线"), ("12315", "市场监管热线"), ("", ""))
NODES = ("greeting", "type_menu", "describe", "confidential")
TRICKY = [  # steps whose exit a shortcut could misread
    [{"node": "greeting"}, {"node": "caller_hangup", "at": "type_menu"}], [{"node": "caller_hangup", "at": ""}],
    [{"node": "caller_hangup"}], [{"node": "caller_hangup", "at": 'a"b'}], [{"node": "caller_hangup", "at": "中文"}],
    [{"node": "caller_hangup", "at": "a\\b"}], [{"note": '{"node": "caller_hangup", "at": "z"}]'}],
    [{"node": "caller_hangup", "at": "x", "extra": 1}], [{"node": "caller_hangup", "at": "x"}, {"node": "end"}],
    [{"node": "caller_hangup", "at": "q"}, {"node": "callback_offer", "result": "callback"}],
    [{"node": "caller_hangup", "at": "a"}, {"node": "caller_hangup", "at": "b"}],
    [{"node": "caller_hangup", "at": "x"}, "caller_hangup"], [{"node": "Caller_Hangup", "at": "x"}],
    [{"node": "caller_hangup", "at": "CallBack"}], None, [], {"node": "caller_hangup", "at": "x"},
    [{"node": "offer", "result": "callback", "at": "t"}], [{"node": "x", "Result": "CallBack"}, {"note": "result"}],
    [{"node": "x", "result": "callback", "sub": {"a": 1}}], [{"node": "x", "sub": [{"result": "callback"}]}],
    [{"node": "x", "sub": {"result": "callback"}}], [{"note": '"result": "callback"'}],
    [{"node": "x", "result": "callback"}, {"node": "caller_hangup", "at": "y"}], ["\"result\": \"callback\""],
    [{"node": "x", "result": "callback", "why": "result"}], [{"node": "x", "result": "callbacks"}]]


def _path(rng: random.Random, kind: str) -> list | None:
    base = [{"node": "greeting"}, {"node": "type_menu", "key": "2"}]
    if kind == "hangup":
        return base + [{"node": "caller_hangup", "at": rng.choice(NODES)}]
    if kind == "hangup_no_node":
        return base + [{"node": "caller_hangup"}]
    if kind == "callback":
        return base + [{"node": "callback_offer", "result": "callback"}]
    if kind == "callback_declined":  # mentions a callback, took none: ended in the IVR
        return base + [{"node": "callback_offer", "result": "declined"}, {"node": "closed"}]
    if kind == "tricky":
        return rng.choice(TRICKY)
    if kind == "odd":  # not every step is a mapping
        return ["caller_hangup", 3, {"node": "self_service", "result": "played"}]
    return rng.choice([None, [], base + [{"node": "self_service", "result": "played"}]])


def _generate(seed: int, n: int, start: datetime, span: timedelta):
    """(calls, legs, tickets) rows with every edge case, seeded."""
    rng = random.Random(seed)
    calls, legs, tickets, callbacks, outbound = [], [], [], [], []
    for i in range(n):
        at = start + timedelta(microseconds=rng.randrange(int(span.total_seconds() * 1e6)))
        line, name = rng.choice(LINES)
        uid = f"g{seed}-{i}"
        status = rng.choices(["ended", "in_ivr", "queued"], [8, 1, 1])[0]
        row = {"id": i + 1, "uniqueid": uid, "channel": f"PJSIP/c{i}", "caller_number": "13800138000",
               "dialled_number": line or "0", "line_number": line, "line_name": name, "merge_mode": "primary",
               "status": status, "queue": None, "agent": None, "started_at": at, "menu_path": None}
        shape = rng.choice(["ivr", "ivr", "legs", "legs", "legs", "no_legs"])
        if shape == "ivr":
            row["menu_path"] = _path(rng, rng.choice(["hangup", "hangup", "hangup_no_node", "callback",
                                                      "callback_declined", "odd", "plain", "tricky"]))
            if rng.random() < 0.05:
                row["agent"] = ""  # an empty agent is no agent
        elif shape == "no_legs":  # a queue (or an agent) known, its legs not (before legs were kept)
            row["queue"] = rng.choice(QUEUES + ("",))
            row["agent"] = rng.choice([None, None, "8001", ""])
        else:
            queues = rng.sample(QUEUES, rng.choice([1, 1, 1, 2, 3]))
            new_legs, last_answer = _legs(rng, uid, at, queues)
            legs += new_legs
            if queues:
                row["queue"] = queues[-1]
            if last_answer is not None or rng.random() < 0.1:
                row["agent"] = (last_answer or {}).get("agent") or "8009"
            if last_answer is not None and rng.random() < 0.8:
                tickets.append(_ticket(rng, i + 1, row, last_answer))
        if shape == "ivr" and row["status"] == "ended" and "callback" in json.dumps(row["menu_path"]) \
                and rng.random() < 0.7:
            _called_back(rng, row, i + 1, legs, tickets, callbacks, outbound)
        calls.append(row)
    for j, steps in enumerate(TRICKY):  # each of them once, in every period asked
        calls.append({**calls[-1], "id": n + j + 1, "uniqueid": f"t{seed}-{j}", "status": "ended", "queue": None,
                      "agent": None, "menu_path": steps, "started_at": DAY1 + timedelta(hours=10, seconds=j)})
    for j, purpose in enumerate(("followup", "callback")):  # a follow-up put through to a queue: not a callback;
        uid = f"out-{seed}-other-{j}"  # a callback call whose callback row is gone: no line, no ticket
        outbound.append({"uniqueid": uid, "purpose": purpose, "ref": "T-1" if j == 0 else "999999", "number": "0",
                         "started_at": DAY1 + timedelta(hours=11, seconds=j), "ended_at": None, "outcome": "answered"})
        legs += _legs(rng, uid, DAY1 + timedelta(hours=11, seconds=j), ["q-a"], answer=1.0)[0]
    return calls, legs, tickets, callbacks, outbound


def _legs(rng: random.Random, uid: str, at: datetime, queues, answer: float = 0.6) -> tuple[list, dict | None]:
    """A call's queue legs (every shape: answered with or without times, abandoned, timed out, waiting)."""
    legs, last_answer = [], None
    for q in queues:
        joined = at + timedelta(seconds=rng.randrange(5, 60), microseconds=rng.randrange(1_000_000))
        answered = rng.random() < answer
        leg = {"uniqueid": uid, "queue": q, "joined_at": joined, "answered_at": None, "agent": None,
               "hold_s": None, "talk_s": None, "abandoned": False, "left_at": None}
        if answered:
            wait = rng.randrange(0, 50)
            leg.update(answered_at=joined + timedelta(seconds=wait, microseconds=rng.randrange(1_000_000)),
                       agent=rng.choice(["8001", "8002", "8003", "", None]),
                       hold_s=rng.choice([wait, wait, None]), talk_s=rng.choice([rng.randrange(1, 400), None]))
            if leg["talk_s"] is not None:
                last_answer = leg
        else:
            kind = rng.choice(["abandoned", "timeout", "timeout_no_left", "waiting"])
            if kind == "abandoned":
                leg.update(abandoned=True, hold_s=rng.choice([rng.randrange(0, 9), None]))
            if kind in ("abandoned", "timeout"):
                leg["left_at"] = joined + timedelta(seconds=rng.randrange(0, 90),
                                                    microseconds=rng.randrange(1_000_000))
            if rng.random() < 0.05:  # a clock step: left before it joined
                leg["left_at"] = joined - timedelta(seconds=1)
        legs.append(leg)
    return legs, last_answer


def _ticket(rng: random.Random, call_id: int, row: dict, last_answer: dict | None) -> dict:
    """The call's ticket, decided after the last answer's hang-up (or during it, much later, or not yet)."""
    decided = None
    if last_answer is not None:
        hang_up = last_answer["answered_at"] + timedelta(seconds=last_answer["talk_s"])
        decided = rng.choice([hang_up + timedelta(seconds=rng.randrange(0, 300), microseconds=rng.randrange(1_000_000)),
                              hang_up - timedelta(seconds=rng.randrange(1, 30)),  # during the call
                              hang_up + timedelta(seconds=900),  # later, from the drafts: unknown
                              None])  # still a draft
        if decided is not None and ((decided - hang_up) // timedelta(microseconds=1)) % 100_000 == 50_000:
            decided += timedelta(microseconds=1)  # no exact tie at x.x5 s (see figures_sql's rounding)
    return {"call_id": call_id, "status": "draft" if decided is None else "submitted",
            "caller_number": "13800138000", "dialled_number": row["line_number"] or "0",
            "line_number": row["line_number"], "line_name": row["line_name"], "merge_mode": "primary",
            "decided_at": decided, "version_id": 1}


def _called_back(rng: random.Random, row: dict, call_id: int, legs: list, tickets: list, callbacks: list,
                 outbound: list) -> None:
    """The call's callback row and the gateway's attempts (outbound calls, some put into a queue, some
    started hours later: another day); the agent who answered written on the original call's row."""
    cb_id = len(callbacks) + 1
    queue = rng.choice(QUEUES)
    callbacks.append({"id": cb_id, "call_uniqueid": row["uniqueid"], "queue": queue, "number": "13800138000",
                      "number_source": "caller_id", "requested_at": row["started_at"], "status": "waiting",
                      "attempts": 0, "created_at": row["started_at"], "updated_at": row["started_at"]})
    at, last_answer = row["started_at"], None
    for attempt in range(rng.choice([1, 1, 2, 3])):
        at += timedelta(minutes=rng.choice([2, 5, 30, 600]), microseconds=rng.randrange(1_000_000))
        uid = f"out-{row['uniqueid']}-{attempt}"
        reached = rng.random() < 0.8  # the citizen answered and was put into the queue
        outbound.append({"uniqueid": uid, "purpose": "callback", "ref": str(cb_id), "number": "13800138000",
                         "started_at": at, "outcome": "answered" if reached else "no_answer",
                         "ended_at": None if rng.random() < 0.1 else at + timedelta(minutes=10)})
        if reached:
            new_legs, answer = _legs(rng, uid, at, [queue] if rng.random() < 0.9 or queue == "q-c" else [queue, "q-c"], answer=0.7)
            legs += new_legs
            last_answer = answer or last_answer
    if last_answer is not None and rng.random() < 0.8:
        row["agent"] = last_answer["agent"] or "8009"  # as gateway.callback.store.agent_answered does
    if rng.random() < 0.8:
        tickets.append(_ticket(rng, call_id, row, last_answer))


async def _fill(store, seed: int, n: int, start: datetime, span: timedelta) -> None:
    calls, legs, tickets, callbacks, outbound = _generate(seed, n, start, span)
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(Call), calls)
        await conn.execute(sa.insert(QueueLeg), legs)
        await conn.execute(sa.insert(Ticket), tickets)
        await conn.execute(sa.insert(Callback), callbacks)
        await conn.execute(sa.insert(OutboundCall), outbound)


def _period(query: dict):
    return parse_period(query, today=date(2026, 12, 2), timezone=TZ)


@pytest.mark.parametrize("config", [FiguresConfig(), FiguresConfig(service_level_seconds=15, short_abandon_seconds=5,
                                                                   after_call_max_seconds=120)])
async def test_given_generated_calls_when_counted_by_sql_then_the_figures_equal_the_per_call_tally(store, config):
    await _fill(store, seed=22, n=1500, start=DAY1 - timedelta(hours=6), span=timedelta(days=2, hours=12))
    for query in ({"period": "day", "date": "2026-11-30"}, {"start": "2026-11-30", "end": "2026-12-01"},
                  {"period": "week", "date": "2026-11-30"}):
        period = _period(query)
        calls = await FiguresStore(store).calls(period.start, period.end)
        assert len(calls) > 300
        want = compute(calls, config, await FiguresStore(store).callback_calls(period.start, period.end))
        got = await compute_sql(store, period.start, period.end, config)
        assert got["totals"] == want["totals"]
        assert got["per_line"] == want["per_line"]
        assert got["per_queue"] == want["per_queue"]
        assert got["agents_load"] == want["agents_load"]
        assert got == want
        assert await trend_sql(store, period, config) == trend(calls, period, config)
        abandoned = await abandoned_sql(store, period.start, period.end, config)
        assert (abandoned["queue"], abandoned["ivr"]) == (want["totals"]["abandoned_queue"],
                                                          want["totals"]["abandoned_ivr"])


async def test_given_the_edge_cases_when_generated_then_each_one_is_there(store):
    """The comparison above is only worth its edge cases: check the generated calls hold them."""
    await _fill(store, seed=22, n=1500, start=DAY1 - timedelta(hours=6), span=timedelta(days=2, hours=12))
    period = _period({"period": "week", "date": "2026-11-30"})
    calls = await FiguresStore(store).calls(period.start, period.end)
    callbacks = await FiguresStore(store).callback_calls(period.start, period.end)
    got = compute(calls, FiguresConfig(), callbacks)
    t = got["totals"]
    assert 0 < t["callbacks_answered"] < t["callbacks_queued"]
    assert any(len(c.legs) == 2 for c in callbacks) and any(not c.legs for c in callbacks)
    assert any(c.decided_at is not None for c in callbacks) and any(c.status != "ended" for c in callbacks)
    assert any(c.agent and not c.queue and not c.legs and "callback" in json.dumps(c.menu_path) for c in calls)
    assert len({n["node"] for n in t["ivr_abandon_nodes"]}) >= 4  # several nodes, and "?"
    assert min(t["answered"], t["abandoned_queue"], t["queue_timeout"], t["callback"], t["ended_in_ivr"],
               t["in_progress"], t["answered_wait_unknown"], t["acw_unknown"]) > 0
    assert t["acw_s"] is not None
    assert any(not c.legs and c.queue for c in calls) and any(len(c.legs) == 3 for c in calls)
    assert any(a["agent"] == "?" for a in got["agents_load"])
    assert len({p["line_name"] for p in got["per_line"]}) == 3
    assert await FiguresStore(store).calls(period.start - timedelta(days=7), period.start)  # some outside


async def test_given_an_empty_period_when_counted_by_sql_then_the_figures_equal_the_per_call_tally(store):
    period = _period({"period": "day", "date": "2026-11-30"})
    config = FiguresConfig()
    assert await compute_sql(store, period.start, period.end, config) == compute([], config)
    assert await trend_sql(store, period, config) == trend([], period, config)


@pytest.mark.parametrize("steps", TRICKY)
def test_given_steps_as_text_when_their_exit_is_read_then_it_is_the_parsed_ones(steps):
    from gateway.supervision.figures_sql import _exit_of
    from gateway.supervision.outcomes import ivr_exit

    assert _exit_of(json.dumps(steps) if steps is not None else None) == ivr_exit(steps)
