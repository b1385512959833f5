"""The call-centre figures counted by the database (SQL aggregates), for periods of any size.

:func:`gateway.supervision.figures.compute` and ``trend`` tally one Python object per call and
leg: exact and simple, but a month of 1 M calls took minutes and gigabytes. Here the same figures
(:mod:`gateway.supervision.figures` gives the definitions) come from ``GROUP BY`` queries that
return a few hundred rows whatever the period's size:

* **calls** (totals, per line, trend buckets): one row per call in a subquery (its outcome by
  :func:`gateway.supervision.outcomes.call_outcome`'s table in ``CASE``, its wait = the sum of
  its legs' waits, its talk and after-call work from its last leg answered with a talk time),
  grouped by line / bucket / outcome with counts, sums and ``CASE`` sums (service level,
  abandonments after the short-abandon grace, ACW known). Seconds are handled as whole
  microseconds (exact on SQLite and PostgreSQL alike); ACW is rounded to 0.1 s in SQL.
* **legs** (per queue, agents' load): one row per queue leg, grouped by queue / outcome / agent:
  the legs of the calls started in the period, and (``UNION ALL``, flagged) those of the gateway's
  callback calls started in it (``outbound_calls`` of purpose callback → ``callbacks`` → the
  original call's ticket, for the after-call work).
* **a callback answered**: a call with an agent but no queue nor leg whose steps mention a callback
  is first counted as ended in the IVR, then read with the IVR exits: a callback (the agent is the
  callback call's), else answered.
* **IVR exits** (callback, hung up in the IVR at which node, ended by the flow): only the calls
  that ended without a queue *and* whose steps (JSON text) mention ``callback`` or
  ``caller_hangup``, grouped by what the steps say where SQL can tell it exactly (a flat callback
  step, the last step a hang-up at a node); other steps are grouped by their text and parsed in
  Python (:func:`gateway.supervision.outcomes.ivr_exit`). The others ended in the IVR.

Trend buckets are the period's local hours or days, given to SQL as their UTC bounds (a binary
``CASE`` tree on ``started_at``), so the time zone needs no database support.

Rounding: an after-call work that falls exactly half-way between two tenths of a second (e.g.
12.25 s to the microsecond) is rounded up here; the per-call tally rounds the nearest binary
float, which may go either way. Nothing else differs; ``tests/unit/test_supervision_figures_sql.py``
compares both paths on generated calls.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from gateway.callback.service import PURPOSE as CALLBACK_PURPOSE
from gateway.supervision.figures import (FiguresConfig, Means, Period, _aht, _line_part, _queue_part, _ranked, _ratio,
                                         _with_callbacks, trend_points)
from gateway.supervision.outcomes import ivr_exit
from gateway.supervision.queue_legs import QueueLeg
from gateway.ticketing.models import Call, Callback, OutboundCall, Ticket

US = 1_000_000
C = Call.__table__
QL = QueueLeg.__table__
TK = Ticket.__table__
OB = OutboundCall.__table__
CB = Callback.__table__


class Sums:
    """A :class:`gateway.supervision.figures.Tally` kept as counts and sums (merged from SQL rows)."""

    def __init__(self, cfg: FiguresConfig) -> None:
        self.cfg = cfg
        self.calls = 0
        self.outcomes: dict[str, int] = {}
        self.ivr_nodes: dict[str, int] = {}
        self.wait_us = 0  # answered, wait known: the sum of their waits
        self.wait_n = 0
        self.talk_s = 0
        self.talk_n = 0
        self.acw_ds = 0  # tenths of a second
        self.acw_n = 0
        self.acw_unknown = 0
        self.in_sl = 0
        self.wait_unknown = 0
        self.abandoned_counted = 0
        self.longest_us = 0
        self.callbacks_queued = 0
        self.callbacks_answered = 0

    def add_row(self, outcome: str, r, *, callback: bool = False) -> None:
        """One grouped row (all its calls or legs had ``outcome``; ``callback``: legs of callback calls)."""
        n = int(r.n)
        self.calls += n
        if callback:
            self.callbacks_queued += n
            self.callbacks_answered += n if outcome == "answered" else 0
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n
        if r.longest_us is not None:
            self.longest_us = max(self.longest_us, int(r.longest_us))
        if outcome == "answered":
            wait_n = int(r.wait_n)
            self.wait_n += wait_n
            self.wait_us += int(r.wait_us or 0)
            self.in_sl += int(r.in_sl or 0)
            self.wait_unknown += n - wait_n
            talk_n, acw_n = int(r.talk_n), int(r.acw_n or 0)
            self.talk_n += talk_n
            self.talk_s += int(r.talk_sum or 0)
            self.acw_n += acw_n
            self.acw_ds += int(r.acw_ds or 0)
            self.acw_unknown += talk_n - acw_n
        elif outcome == "abandoned_queue":
            self.abandoned_counted += int(r.ab_counted or 0)

    def ivr(self, outcome: str, node: str | None, n: int = 1) -> None:
        """``n`` calls first counted as ended in the IVR that their steps show otherwise."""
        if outcome == "ended_in_ivr":
            return
        self.outcomes["ended_in_ivr"] -= n
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n
        if outcome == "answered":  # an agent on a call without queue nor leg: no wait known
            self.wait_unknown += n
        if node is not None:
            self.ivr_nodes[node] = self.ivr_nodes.get(node, 0) + n

    def merge(self, other: Sums) -> None:
        for name in ("calls", "wait_us", "wait_n", "talk_s", "talk_n", "acw_ds", "acw_n", "acw_unknown", "in_sl",
                     "wait_unknown", "abandoned_counted", "callbacks_queued", "callbacks_answered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.outcomes, other.outcomes), (self.ivr_nodes, other.ivr_nodes)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.longest_us = max(self.longest_us, other.longest_us)

    def result(self) -> dict:
        """The same dict as ``Tally.result``."""
        o = self.outcomes
        answered, ab_q, ab_ivr = o.get("answered", 0), o.get("abandoned_queue", 0), o.get("abandoned_ivr", 0)
        offered = answered + ab_q + o.get("queue_timeout", 0) + o.get("in_queue", 0)
        sl_base = answered - self.wait_unknown + self.abandoned_counted
        talks = _Means(self.talk_s, self.talk_n)
        acws = _Means(self.acw_ds / 10, self.acw_n)
        return {
            "calls": self.calls, "offered": offered, "answered": answered,
            "abandoned_queue": ab_q, "abandoned_ivr": ab_ivr, "abandoned": ab_q + ab_ivr,
            "queue_timeout": o.get("queue_timeout", 0), "callback": o.get("callback", 0),
            "ended_in_ivr": o.get("ended_in_ivr", 0), "in_progress": o.get("in_ivr", 0) + o.get("in_queue", 0),
            "answered_in_sl": self.in_sl, "answered_wait_unknown": self.wait_unknown,
            "service_level": _ratio(self.in_sl, sl_base),
            "asa_s": _Means(self.wait_us / US, self.wait_n).mean(), "aht_s": _aht(talks, acws),
            "talk_s": talks.mean(), "acw_s": acws.mean(), "acw_unknown": self.acw_unknown,
            "longest_wait_s": round(self.longest_us / US, 1),
            "abandon_rate_queue": _ratio(ab_q, offered), "abandon_rate_ivr": _ratio(ab_ivr, self.calls),
            "ivr_abandon_nodes": _ranked(self.ivr_nodes),
            "callbacks_queued": self.callbacks_queued, "callbacks_answered": self.callbacks_answered,
        }


_Means = Means


# -- SQL pieces ------------------------------------------------------------------------------
def _us(col, dialect: str):
    """A UTC timestamp column as whole microseconds since the epoch (exact)."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff'
        return (sa.cast(sa.func.strftime("%s", sa.func.substr(col, 1, 19)), sa.BigInteger) * US
                + sa.cast(sa.func.substr(col, 21, 6), sa.BigInteger))
    return sa.cast(sa.extract("epoch", col) * US, sa.BigInteger)


def _num(value: int):
    return sa.literal_column(str(int(value)), sa.BigInteger)


def _set(col):
    return sa.and_(col.is_not(None), col != "")


def _leg_wait_us(dialect: str):
    """A leg's wait: HoldTime, or joined → left for a leg left unanswered without one (timed out)."""
    span = _us(QL.c.left_at, dialect) - _us(QL.c.joined_at, dialect)
    return sa.case((QL.c.hold_s.is_not(None), sa.cast(QL.c.hold_s, sa.BigInteger) * _num(US)),
                   (sa.and_(QL.c.answered_at.is_(None), QL.c.left_at.is_not(None), QL.c.joined_at.is_not(None)),
                    sa.case((span < 0, _num(0)), else_=span)))


def _acw_raw(decided, answered_at, talk_s, dialect: str):
    """Microseconds from the agent leg's hang-up (answer + talk) to the ticket's decision (NULL if unknown)."""
    return _us(decided, dialect) - _us(answered_at, dialect) - sa.cast(talk_s, sa.BigInteger) * _num(US)


def _acw_known(raw, cfg: FiguresConfig):
    return sa.and_(raw.is_not(None), raw <= _num(cfg.after_call_max_seconds * US))


def _tenths(raw):
    """``max(0, round(seconds, 1))`` in tenths of a second (a tie rounded up)."""
    return sa.case((raw <= 0, _num(0)), else_=(raw + _num(US // 20)) // _num(US // 10))


def _in_period(start: datetime, end: datetime):
    return sa.and_(C.c.started_at >= start, C.c.started_at < end)


def _talked(legs=QL):
    return sa.and_(legs.c.answered_at.is_not(None), legs.c.talk_s.is_not(None))


def _bucket_case(edges: list[datetime]):
    """The bucket index of ``started_at`` (edges[i] <= started_at < edges[i + 1]): a binary CASE tree."""
    def tree(lo: int, hi: int):
        if hi - lo == 1:
            return _num(lo)
        mid = (lo + hi) // 2
        return sa.case((C.c.started_at < edges[mid], tree(lo, mid)), else_=tree(mid, hi))
    return tree(0, len(edges) - 1)


def _acw_tenths(talk, raw, cfg: FiguresConfig):
    """A call's (or leg's) after-call work in tenths of a second; NULL when unknown or without a talk."""
    return sa.case((sa.and_(talk.is_not(None), _acw_known(raw, cfg)), _tenths(raw)))


def _aggregates(wait, talk, acw, cfg: FiguresConfig) -> list:
    """Counts and sums of a group of calls or legs (columns of a subquery computed once per row)."""
    return [sa.func.count().label("n"), sa.func.count(wait).label("wait_n"), sa.func.sum(wait).label("wait_us"),
            sa.func.count(sa.case((wait <= _num(cfg.service_level_seconds * US), 1))).label("in_sl"),
            sa.func.count(sa.case((sa.or_(wait.is_(None), wait >= _num(cfg.short_abandon_seconds * US)), 1)))
            .label("ab_counted"),
            sa.func.max(wait).label("longest_us"), sa.func.count(talk).label("talk_n"),
            sa.func.sum(talk).label("talk_sum"), sa.func.count(acw).label("acw_n"), sa.func.sum(acw).label("acw_ds"),
            sa.func.sum(acw // _num(10)).label("acw_whole")]


async def _dialect(session) -> str:
    """The session's database. On PostgreSQL, for this transaction only: no JIT (the planner's cost
    of the rarely run subqueries made it compile them: a second or more of LLVM per query, for
    nothing) and 64 MB per sort (a month's one row per call sorts in memory, not on disk)."""
    name = (await session.connection()).dialect.name
    if name == "postgresql":
        await session.execute(sa.text("SET LOCAL jit = off"))
        await session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    return name


async def call_sums(session, start: datetime, end: datetime, cfg: FiguresConfig, *, by: str,
                    edges: list[datetime] | None = None) -> tuple[dict, dict, dict]:
    """Per group (``by`` = "line", "bucket" or "all"): :class:`Sums` of the calls started in [start, end).

    Returns (sums by group key, line names by line, sums of the calls that reached a queue but
    have no leg known, by that queue)."""
    dialect = await _dialect(session)
    talked = _talked()
    legs = sa.func.count(QL.c.id)
    ended = sa.func.coalesce(C.c.status, "") == "ended"
    outcome = sa.case(
        (_callback_answered(ended, legs == 0), "ivr_exit"),  # the agent may be the callback call's: read the steps
        (_set(C.c.agent), "answered"),
        (_set(C.c.queue), sa.case((sa.not_(ended), "in_queue"),
                                  (sa.and_(legs > 0, sa.func.max(sa.case((QL.c.abandoned, 1), else_=0)) == 0),
                                   "queue_timeout"),
                                  else_="abandoned_queue")),
        (sa.not_(ended), "in_ivr"), else_="ivr_exit")
    if by == "bucket":
        key = _bucket_case(edges)
    elif by == "line":
        key = sa.func.coalesce(C.c.line_number, "")
    else:
        key = sa.cast(sa.literal_column("''"), sa.String)
    # one row per call (grouped by started_at, id: the order of ix_calls_started_at, no sort on SQLite)
    per_call = (sa.select(key.label("key"), sa.func.coalesce(C.c.line_name, "").label("line_name"),
                          C.c.id.label("id"), outcome.label("outcome"),
                          sa.case((sa.and_(legs == 0, _set(C.c.queue)), C.c.queue)).label("noleg_queue"),
                          sa.func.sum(_leg_wait_us(dialect)).label("wait"),
                          sa.func.sum(sa.case((talked, 1), else_=0)).label("talked"),
                          sa.func.max(sa.case((talked, QL.c.talk_s))).label("talk1"),
                          sa.func.max(sa.case((sa.and_(TK.c.decided_at.is_not(None), talked),
                                               _acw_raw(TK.c.decided_at, QL.c.answered_at, QL.c.talk_s, dialect))))
                          .label("raw1"),
                          sa.func.max(sa.case((talked, QL.c.id))).label("talk_leg"),
                          sa.func.max(TK.c.decided_at).label("decided"))
                .select_from(C.outerjoin(QL, QL.c.uniqueid == C.c.uniqueid).outerjoin(TK, TK.c.call_id == C.c.id))
                .where(_in_period(start, end)).group_by(C.c.started_at, C.c.id).subquery("per_call"))
    p = per_call.c
    last = QL.alias("last_talk")  # a call with two legs talked: its last one (rare)
    talk = sa.case((p.talked == 1, p.talk1), (p.talked > 1, sa.select(last.c.talk_s).where(last.c.id == p.talk_leg)
                                                             .scalar_subquery()))
    raw = sa.case((p.talked == 1, p.raw1),
                  (p.talked > 1, sa.select(_acw_raw(p.decided, last.c.answered_at, last.c.talk_s, dialect))
                   .where(last.c.id == p.talk_leg).scalar_subquery()))
    # each call's figures once (OFFSET 0: not merged into the grouping query, which would repeat them)
    per_call_done = sa.select(p.key, p.line_name, p.id, p.outcome, p.noleg_queue, p.wait, talk.label("talk"),
                              _acw_tenths(talk, raw, cfg).label("acw")).offset(0).subquery("per_call_done")
    q = per_call_done.c
    groups = [q.key, q.outcome, q.noleg_queue] + ([q.line_name] if by == "line" else [])
    rows = (await session.execute(
        sa.select(*groups, sa.func.min(q.id).label("first_id"), *_aggregates(q.wait, q.talk, q.acw, cfg))
        .group_by(*groups))).all()
    sums: dict = {}
    names: dict[str, tuple[int, str]] = {}
    noleg: dict[str, Sums] = {}
    for r in rows:
        outcome_name = "ended_in_ivr" if r.outcome == "ivr_exit" else r.outcome
        key_value = int(r.key) if by == "bucket" else r.key
        sums.setdefault(key_value, Sums(cfg)).add_row(outcome_name, r)
        if r.noleg_queue is not None:
            noleg.setdefault(r.noleg_queue, Sums(cfg)).add_row(outcome_name, r)
        if by == "line" and (r.key not in names or r.first_id < names[r.key][0]):
            names[r.key] = (r.first_id, r.line_name)
    await _ivr_exits(session, start, end, sums, key, by, dialect)
    return sums, {k: v[1] for k, v in names.items()}, noleg


def _callback_answered(ended, no_leg):
    """A call with an agent but no queue nor leg, ended, whose steps mention a callback: the agent may
    be its callback call's (``outcomes.call_outcome``); counted by its steps (:func:`_ivr_exits`)."""
    return sa.and_(_set(C.c.agent), sa.not_(_set(C.c.queue)), ended, no_leg,
                   sa.cast(C.c.menu_path, sa.Text).like("%callback%"))


async def _ivr_exits(session, start: datetime, end: datetime, sums: dict, key, by: str, dialect: str) -> None:
    """The calls that ended without a queue and whose steps mention a callback or a hang-up, grouped by
    what their steps say (:func:`_ivr_exit_sql`): few rows, the others ended in the IVR. The calls of
    :func:`_callback_answered` are among them: a callback, else answered (no wait known)."""
    text = sa.cast(C.c.menu_path, sa.Text)
    ivr = _ivr_exit_sql(text, dialect)
    ended = sa.func.coalesce(C.c.status, "") == "ended"
    no_leg = ~sa.exists().where(QL.c.uniqueid == C.c.uniqueid)
    agent = sa.case((_set(C.c.agent), 1), else_=0)
    exits = (sa.select(key.label("key"), ivr.label("ivr"), agent.label("agent"))
             .where(_in_period(start, end), sa.not_(_set(C.c.queue)), ended,
                    sa.or_(sa.and_(sa.not_(_set(C.c.agent)),
                                   sa.or_(text.like("%callback%"), text.like("%caller_hangup%"))),
                           _callback_answered(ended, no_leg))).offset(0).subquery("exits"))
    rows = (await session.execute(sa.select(exits.c.key, exits.c.ivr, exits.c.agent, sa.func.count().label("n"))
                                  .group_by(exits.c.key, exits.c.ivr, exits.c.agent))).all()
    for key_value, steps, with_agent, n in rows:
        outcome, node = (("callback", None) if steps == "!" else ("abandoned_ivr", steps[1:] or "?")
                         if steps.startswith("#") else _exit_of(steps))
        if with_agent and outcome != "callback":
            outcome, node = "answered", None
        sums[int(key_value) if by == "bucket" else key_value].ivr(outcome, node, int(n))


_HANGUP = '{"node": "caller_hangup", "at": "'


def _ivr_exit_sql(steps, dialect: str):
    """The steps (JSON text) of a call that may have ended in the IVR other than by the flow:
    ``!`` for a callback taken (the flat steps as written), ``#<node>`` for the common hang-up (its last step ``{"node": "caller_hangup", "at": "<node>"}``,
    the only one naming ``caller_hangup``, no callback mentioned, a node without quote or
    backslash), else the steps' text, read in Python (:func:`_exit_of`). Few distinct values."""
    find = sa.func.instr if dialect == "sqlite" else sa.func.strpos
    at = find(steps, _HANGUP)
    node = sa.func.substr(steps, at + len(_HANGUP), sa.func.length(steps) - at - len(_HANGUP) - 2)
    def count(part: str):
        return (sa.func.length(steps) - sa.func.length(sa.func.replace(steps, part, ""))) / len(part)

    common = sa.and_(steps.not_like("%callback%"), steps.like('%"}]'), at > 0, count("caller_hangup") == 1,
                     find(node, '"') == 0, find(node, "\\") == 0)
    # a callback: '"result": "callback"' (case as written) in steps without nested arrays or objects
    # (one '[', no value opening one) and with one "result" only: a step's own result, not a string's
    callback = sa.and_(find(steps, '"result": "callback"') > 0, count("result") == 1, count("[") == 1,
                       *[steps.not_like(f"%{opening}%") for opening in (": {", ":{", ": [", ":[")])
    return sa.case((callback, sa.literal_column("'!'", sa.String)),
                   (common, sa.literal_column("'#'", sa.String) + node), else_=steps)


# The steps as the gateway writes them (json.dumps) when the caller hung up: the last step is
# {"node": "caller_hangup", "at": "<node>"}; unescaped quotes cannot be inside a JSON string, so
# this ending is the array's last element. Anything else is parsed.
_HANGUP_LAST = re.compile(r'\{"node": "caller_hangup", "at": "([^"\\]*)"\}\]\Z')


def _exit_of(steps: str | None) -> tuple[str, str | None]:
    """``outcomes.ivr_exit`` of the steps' JSON text (the common hang-up without parsing)."""
    if steps and "callback" not in steps and steps.count("caller_hangup") == 1:
        last = _HANGUP_LAST.search(steps)
        if last:
            return "abandoned_ivr", last.group(1) or "?"
    return ivr_exit(json.loads(steps) if steps else None)


async def leg_sums(session, start: datetime, end: datetime, cfg: FiguresConfig) -> tuple[dict, dict]:
    """Per queue: :class:`Sums` of its legs (of the calls started in [start, end), and of the gateway's
    callback calls started then: ``outbound_calls`` of purpose callback, their ticket the original
    call's); per agent: the load."""
    dialect = await _dialect(session)
    orig = C.alias("orig")  # a callback call's original call (its ticket)
    callers = _per_leg(dialect, cfg, 0, sa.func.coalesce(C.c.status, "") == "ended",
                       QL.join(C, C.c.uniqueid == QL.c.uniqueid).outerjoin(TK, TK.c.call_id == C.c.id),
                       _in_period(start, end))
    callbacks = _per_leg(dialect, cfg, 1, OB.c.ended_at.is_not(None),
                         QL.join(OB, OB.c.uniqueid == QL.c.uniqueid)
                         .outerjoin(CB, sa.cast(CB.c.id, sa.String) == OB.c.ref)
                         .outerjoin(orig, orig.c.uniqueid == CB.c.call_uniqueid)
                         .outerjoin(TK, TK.c.call_id == orig.c.id),
                         sa.and_(OB.c.purpose == CALLBACK_PURPOSE, OB.c.started_at >= start, OB.c.started_at < end))
    per_leg = sa.union_all(callers, callbacks).subquery("per_leg")
    p = per_leg.c
    rows = (await session.execute(
        sa.select(p.queue, p.outcome, p.agent, p.callback, *_aggregates(p.wait, p.talk, p.acw, cfg))
        .group_by(p.queue, p.outcome, p.agent, p.callback))).all()
    queues: dict[str, Sums] = {}
    agents: dict[str, dict] = {}
    for r in rows:
        queues.setdefault(r.queue, Sums(cfg)).add_row(r.outcome, r, callback=bool(r.callback))
        if r.outcome == "answered":
            load = agents.setdefault(r.agent, {"agent": r.agent, "answered": 0, "talk_s": 0, "acw_s": 0})
            load["answered"] += int(r.n)
            load["talk_s"] += int(r.talk_sum or 0)
            load["acw_s"] += int(r.acw_whole or 0)
    return queues, agents


def _per_leg(dialect: str, cfg: FiguresConfig, callback: int, ended, joined, where):
    """One row per leg of ``joined`` (queue legs with their call and its ticket ``TK``): queue, outcome,
    agent, wait, talk, after-call work, and ``callback`` (1: a callback call's leg)."""
    answered = QL.c.answered_at.is_not(None)
    wait = _leg_wait_us(dialect)
    outcome = sa.case((answered, "answered"), (sa.func.coalesce(QL.c.abandoned, sa.false()), "abandoned_queue"),
                      (sa.or_(ended, wait.is_not(None)), "queue_timeout"), else_="in_queue")
    later = QL.alias("later")  # the after-call work follows the call's last leg answered with a talk time
    is_last_talk = ~sa.exists().where(later.c.uniqueid == QL.c.uniqueid, later.c.id > QL.c.id, _talked(later))
    raw = sa.case((sa.and_(TK.c.decided_at.is_not(None), _talked(), is_last_talk),
                   _acw_raw(TK.c.decided_at, QL.c.answered_at, QL.c.talk_s, dialect)))
    return (sa.select(QL.c.queue.label("queue"), outcome.label("outcome"),
                      sa.case((answered, sa.func.coalesce(sa.func.nullif(QL.c.agent, ""), "?"))).label("agent"),
                      wait.label("wait"), sa.case((answered, QL.c.talk_s)).label("talk"),
                      _acw_tenths(QL.c.talk_s, raw, cfg).label("acw"), _num(callback).label("callback"))
            .select_from(joined).where(where))


# -- the figures -------------------------------------------------------------------------------
async def compute_sql(store, start: datetime, end: datetime, cfg: FiguresConfig) -> dict:
    """What :func:`gateway.supervision.figures.compute` gives for the calls started in [start, end)."""
    async def by_line():
        async with store.read_session() as session:
            return await call_sums(session, start, end, cfg, by="line")

    async def by_queue():
        async with store.read_session() as session:
            return await leg_sums(session, start, end, cfg)

    # two reads at once (two connections: SQLite's run in their own threads, PostgreSQL's in their
    # own backends); each is one snapshot: the calls' figures with their IVR exits, the legs' ones
    (lines, names, noleg), (queues, agents) = await asyncio.gather(by_line(), by_queue())
    total = Sums(cfg)
    for sums in lines.values():
        total.merge(sums)
    for queue, sums in noleg.items():
        queues.setdefault(queue, Sums(cfg)).merge(sums)
    per_queue = [{"queue": k, **_queue_part(s.result())} for k, s in sorted(queues.items())]
    return {
        "totals": _with_callbacks(total.result(), per_queue),
        "per_line": [{"line": k, "line_name": names.get(k, ""), **_line_part(s.result())}
                     for k, s in sorted(lines.items())],
        "per_queue": per_queue,
        "agents_load": sorted(agents.values(), key=lambda a: a["agent"]),
    }


def bucket_starts(period: Period) -> list[datetime]:
    """The period's trend buckets (local hours or days), as ``figures.trend`` steps them."""
    tz = ZoneInfo(period.timezone)
    step = timedelta(hours=1) if period.bucket == "hour" else timedelta(days=1)
    out, cursor = [], period.start
    while cursor < period.end:
        out.append(cursor)
        cursor = (cursor.replace(tzinfo=None) + step).replace(tzinfo=tz)
    return out


async def trend_sql(store, period: Period, cfg: FiguresConfig) -> list[dict]:
    """What :func:`gateway.supervision.figures.trend` gives for the period."""
    starts = bucket_starts(period)
    async with store.read_session() as session:
        sums, _, _ = await call_sums(session, period.start, period.end, cfg, by="bucket", edges=starts + [period.end])
    return trend_points({start: sums.get(i) or Sums(cfg) for i, start in enumerate(starts)}, period)


async def abandoned_sql(store, start: datetime, end: datetime, cfg: FiguresConfig) -> dict:
    """The calls started in [start, end) that were abandoned, in the queue and in the IVR."""
    async with store.read_session() as session:
        sums, _, _ = await call_sums(session, start, end, cfg, by="all")
    total = sums.get("") or Sums(cfg)
    queue, ivr = total.outcomes.get("abandoned_queue", 0), total.outcomes.get("abandoned_ivr", 0)
    return {"queue": queue, "ivr": ivr, "total": queue + ivr}


