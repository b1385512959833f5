"""Call-centre figures (pure): service level, speed of answer, handling time, abandonment.

Theory of operation
-------------------
The figures are computed from the database only (the call rows and their queue legs,
:mod:`gateway.supervision.queue_legs`), so every gateway instance shows the same numbers.
The service counts them with SQL aggregates (:mod:`gateway.supervision.figures_sql`, for periods
of any size); this module's per-call tally (:func:`compute`, :func:`trend` over the rows
:mod:`gateway.supervision.figures_store` reads) is the plain statement of the same definitions,
kept as the reference the aggregates are tested against. A call belongs to the period (and the
trend's bucket) in which it *started*, in the hotline's time zone.

Definitions (``config/supervision.yaml`` → ``figures:``; defaults in :class:`FiguresConfig`):

* **offered**: calls that reached a queue (per queue: the legs that joined it).
* **service level** = answered within ``service_level_seconds`` (default 20) ÷ (answered +
  abandoned in the queue after at least ``short_abandon_seconds``, default 0: every
  abandonment counts). Wait = Asterisk's ``HoldTime`` at ``AgentConnect``; a call that went
  through two queues (a sub-centre's overflow) waited in both. None when nothing was offered.
* **ASA** (average speed of answer) = the mean wait of the answered calls. An answered call whose
  wait is unknown (its queue events were missed, e.g. the AMI link was down and reconciliation
  filled the agent in) is left out of both and counted as ``answered_wait_unknown``.
* **AHT** (average handling time) = mean **talk** + mean **after-call work** (``talk_s`` +
  ``acw_s``, each the mean over the answered calls where it is known; without any ACW known,
  AHT is the talk alone). *Talk* is Asterisk's ``TalkTime`` at ``AgentComplete`` (connect to
  hang-up): any time the agent put the caller on hold is inside it — Asterisk's queue events do
  not split it out, and ``AgentComplete``'s ``HoldTime`` is the caller's wait *in the queue*
  before the answer (ASA's figure), not an in-call hold, so it is not added. *After-call work*
  (话后整理) is measured, not configured: from the agent leg's hang-up (``AgentConnect`` +
  ``TalkTime``) to the desk's decision on the call's ticket (``tickets.decided_at``: the agent
  submits or closes the ticket after the call); a ticket decided during the call is 0 s of ACW;
  one still undecided, or decided more than ``after_call_max_seconds`` (default 600) after the
  hang-up (taken up later from the drafts list, not wrap-up), leaves that call's ACW unknown
  (``acw_unknown``). The queue member's ``wrapuptime`` is a configured pause, the same for every
  call, so it is not used as the call's ACW (it only feeds the agents' ``wrapup`` state).
* **abandoned in the queue** ÷ offered; **abandoned in the IVR** ÷ all calls, and per menu
  node: where the callers gave up (:mod:`gateway.supervision.outcomes`).
* **callbacks** (virtual hold, :mod:`gateway.callback`): the caller's own call ends in the IVR
  with the outcome ``callback`` and counts once, as that, in the totals, lines and trend (never
  offered, even after the callback service wrote the answering agent on its row). The gateway's
  callback call (an ``outbound_calls`` row of purpose ``callback``, its own uniqueid) has queue
  legs like any caller's: they count in their queue's figures (offered, answered, service level,
  ASA, AHT, abandoned) and in the agents' load, in the period the callback call started, with the
  original call's ticket for the after-call work; each queue (and the totals) also says how many of
  its legs were callbacks: ``callbacks_queued``, ``callbacks_answered``.

No caller number is ever read or returned here: only counts, seconds, lines, queues, agent ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from gateway.errors import BadRequest, ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import Reader, kind_of
from gateway.supervision.outcomes import call_outcome

FILE = "supervision.yaml"
# The sections of config/supervision.yaml (each read by its own feature; this one reads figures).
SECTIONS = ("version", "figures", "rates")  # warnings and reports have files of their own


@dataclass(frozen=True)
class FiguresConfig:
    service_level_seconds: int = 20  # answered within this many seconds counts as in service level
    short_abandon_seconds: int = 0  # callers who abandon the queue sooner are left out of the service level
    wrapup_seconds: int = 0  # an agent is in wrap-up this long after a call (Asterisk's own wrapuptime wins if longer)
    after_call_max_seconds: int = 600  # a ticket decided later than this after the hang-up: not after-call work
    max_days: int = 92  # the longest period one request may ask for
    ami_timeout_seconds: float = 3.0  # how long the agents' states wait for each Asterisk node


DEFAULTS = FiguresConfig()
_FIELDS = {"service_level_seconds": (1, 600), "short_abandon_seconds": (0, 60), "wrapup_seconds": (0, 3600),
           "after_call_max_seconds": (10, 7200),
           "max_days": (1, 400), "ami_timeout_seconds": (0.5, 30)}


def figures_from_source(src: yamlsrc.Source) -> FiguresConfig:
    if src.problems:
        raise ConfigError(src.problems)
    r = Reader(src)
    top = r.mapping(src.data if src.data is not None else {}, (), optional=SECTIONS) or {}
    raw = top.get("figures")
    values: dict[str, Any] = {}
    if raw is not None:
        m = r.mapping(raw, ("figures",), optional=tuple(_FIELDS)) or {}
        for name, (low, high) in _FIELDS.items():
            if name not in m:
                continue
            value = m[name]
            if name != "ami_timeout_seconds" and (isinstance(value, bool) or not isinstance(value, int)):
                r.src.problem(("figures", name), f"expected a whole number, got {kind_of(value)}")
                continue
            number = r.number(value, ("figures", name), low=low, high=high)
            if number is not None:
                values[name] = float(number) if name == "ami_timeout_seconds" else int(number)
    if src.problems:
        raise ConfigError(src.problems)
    return FiguresConfig(**values)


def load_figures(path: Path | str) -> FiguresConfig:
    """The ``figures:`` section of ``config/supervision.yaml``, validated (file, line, field);
    the defaults when the file or the section is absent."""
    path = Path(path)
    if not path.exists():
        return DEFAULTS
    return figures_from_source(yamlsrc.read(path))


# -- the period asked for ----------------------------------------------------------------------
class BadFiguresQuery(BadRequest):
    """A period or parameter of /api/supervisor/figures that cannot be taken."""

    error_id = "bad-figures-query"


PERIODS = ("today", "day", "week", "month", "custom")
QUERY_KEYS = ("period", "date", "start", "end", "bucket")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


@dataclass(frozen=True)
class Period:
    kind: str
    start: datetime  # aware, local midnight (or the start of the day asked)
    end: datetime  # exclusive
    bucket: str  # hour or day: the trend's step
    timezone: str

    def as_dict(self) -> dict:
        return {"period": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "bucket": self.bucket, "timezone": self.timezone,
                "first_day": self.start.date().isoformat(), "last_day": (self.end - timedelta(seconds=1)).date().isoformat()}


def _bad(field_name: str, en: str, zh: str) -> BadFiguresQuery:
    return BadFiguresQuery(f"{en} / {zh}", details={"field": field_name})


def _day(text: str, field_name: str) -> date:
    if not _DAY.fullmatch(text):
        raise _bad(field_name, f"{field_name} must be a date YYYY-MM-DD", f"{field_name} 应为日期 YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(field_name, f"{field_name} {text} is not a calendar date", f"{field_name} {text} 不是有效日期") from None


def parse_period(query: Mapping[str, str], *, today: date, timezone: str, max_days: int = 92) -> Period:
    """The period of ``?period=today|day|week|month&date=…`` or ``?start=&end=`` (dates, end included).

    ``day`` takes ``date`` (default today); ``week`` the Monday-Sunday week of ``date``; ``month``
    ``date`` as YYYY-MM or a day of the month. ``start``/``end`` give a custom period (``period``
    then absent or ``custom``). A period in the future, reversed, or longer than ``max_days`` is refused.
    """
    unknown = sorted(set(query) - set(QUERY_KEYS))
    if unknown:
        raise _bad(unknown[0], f"unknown parameter {unknown[0]!r} (allowed: {', '.join(QUERY_KEYS)})",
                   f"不支持的参数 {unknown[0]}")
    custom = "start" in query or "end" in query
    kind = query.get("period") or ("custom" if custom else "today")
    if kind not in PERIODS:
        raise _bad("period", f"period must be one of {', '.join(PERIODS)}", f"period 只能是 {'、'.join(PERIODS)}")
    tz = ZoneInfo(timezone)
    if kind == "custom":
        if "date" in query:
            raise _bad("date", "date goes with period=day|week|month, not with start/end", "date 不能与 start/end 同用")
        if "start" not in query or "end" not in query:
            missing = "start" if "start" not in query else "end"
            raise _bad(missing, f"a custom period needs both start and end ({missing} is missing)",
                       f"自定义时段需要同时给出 start 和 end（缺少 {missing}）")
        first, last = _day(query["start"], "start"), _day(query["end"], "end")
        if last < first:
            raise _bad("end", "end is before start", "结束日期早于开始日期")
    else:
        if custom:
            raise _bad("start", f"start/end go with period=custom, not period={kind}", "start/end 只用于自定义时段")
        if kind == "today":
            if "date" in query:
                raise _bad("date", "period=today takes no date (use period=day&date=…)", "period=today 不带 date")
            first = last = today
        elif kind == "month":
            raw = query.get("date") or today.isoformat()
            if _MONTH.fullmatch(raw):
                raw += "-01"
            first = _day(raw, "date").replace(day=1)
            last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        else:
            anchor = _day(query["date"], "date") if query.get("date") else today
            if kind == "day":
                first = last = anchor
            else:
                first = anchor - timedelta(days=anchor.weekday())
                last = first + timedelta(days=6)
    if first > today:
        raise _bad("date" if kind != "custom" else "start", "the period has not begun yet", "所选时段尚未开始")
    days = (last - first).days + 1
    if days > max_days:
        raise _bad("end" if kind == "custom" else "period", f"at most {max_days} days at once ({days} asked)",
                   f"一次最多查询 {max_days} 天（请求了 {days} 天）")
    bucket = query.get("bucket") or ("hour" if days <= 2 else "day")
    if bucket not in ("hour", "day"):
        raise _bad("bucket", "bucket must be hour or day", "bucket 只能是 hour 或 day")
    if bucket == "hour" and days > 7:
        raise _bad("bucket", "hourly trends cover at most 7 days", "按小时的趋势最多 7 天")
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    return Period(kind=kind, start=start, end=end, bucket=bucket, timezone=timezone)


# -- from rows to figures -----------------------------------------------------------------------
@dataclass
class LegRow:
    uniqueid: str
    queue: str
    hold_s: float | None  # Asterisk's HoldTime, or joined→left for a leg that timed out
    talk_s: float | None
    answered: bool
    abandoned: bool
    agent: str | None = None
    ended_at: datetime | None = None  # the agent leg's hang-up: AgentConnect + TalkTime (answered and completed)


@dataclass
class CallRow:
    uniqueid: str
    line: str
    line_name: str
    status: str
    queue: str | None
    agent: str | None
    started_at: datetime
    menu_path: list | None = None  # only needed for calls that ended without a queue
    legs: list = field(default_factory=list)  # LegRow
    decided_at: datetime | None = None  # the desk's decision on the call's ticket (after-call work ends)


class Tally:
    """The figures of one group of calls (all, a line, a queue, a trend bucket)."""

    def __init__(self, cfg: FiguresConfig) -> None:
        self.cfg = cfg
        self.calls = 0
        self.outcomes: dict[str, int] = {}
        self.ivr_nodes: dict[str, int] = {}
        self.waits: list[float] = []  # answered: seconds waited
        self.talks: list[float] = []
        self.acws: list[float] = []  # answered: after-call work, where known
        self.acw_unknown = 0
        self.in_sl = 0
        self.wait_unknown = 0  # answered with no wait known (its queue events were missed): not in the SL
        self.abandoned_counted = 0  # abandoned after the short-abandon grace (they count against the SL)
        self.longest_wait = 0.0
        self.callbacks_queued = 0  # (queues) legs of the gateway's callback calls
        self.callbacks_answered = 0

    def add(self, outcome: str, node: str | None = None, *, wait: float | None = None, talk: float | None = None,
            acw: float | None = None, callback: bool = False) -> None:
        self.calls += 1
        if callback:
            self.callbacks_queued += 1
            self.callbacks_answered += outcome == "answered"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if node is not None:
            self.ivr_nodes[node] = self.ivr_nodes.get(node, 0) + 1
        if wait is not None:
            self.longest_wait = max(self.longest_wait, wait)
        if outcome == "answered":
            if wait is not None:
                self.waits.append(wait)
                self.in_sl += wait <= self.cfg.service_level_seconds
            else:
                self.wait_unknown += 1
            if talk is not None:
                self.talks.append(talk)
                if acw is not None:
                    self.acws.append(acw)
                else:
                    self.acw_unknown += 1
        elif outcome == "abandoned_queue" and (wait is None or wait >= self.cfg.short_abandon_seconds):
            self.abandoned_counted += 1

    def result(self) -> dict:
        o = self.outcomes
        answered, ab_q, ab_ivr = o.get("answered", 0), o.get("abandoned_queue", 0), o.get("abandoned_ivr", 0)
        offered = answered + ab_q + o.get("queue_timeout", 0) + o.get("in_queue", 0)
        sl_base = answered - self.wait_unknown + self.abandoned_counted
        # each ACW is whole tenths of a second: summed as such (exact, as the SQL sums do), not as floats
        acws = Means(sum(round(a * 10) for a in self.acws) / 10, len(self.acws))
        return {
            "calls": self.calls, "offered": offered, "answered": answered,
            "abandoned_queue": ab_q, "abandoned_ivr": ab_ivr, "abandoned": ab_q + ab_ivr,
            "queue_timeout": o.get("queue_timeout", 0), "callback": o.get("callback", 0),
            "ended_in_ivr": o.get("ended_in_ivr", 0), "in_progress": o.get("in_ivr", 0) + o.get("in_queue", 0),
            "answered_in_sl": self.in_sl, "answered_wait_unknown": self.wait_unknown,
            "service_level": _ratio(self.in_sl, sl_base),
            "asa_s": _mean(self.waits), "aht_s": _aht(self.talks, acws), "talk_s": _mean(self.talks),
            "acw_s": acws.mean(), "acw_unknown": self.acw_unknown, "longest_wait_s": round(self.longest_wait, 1),
            "abandon_rate_queue": _ratio(ab_q, offered), "abandon_rate_ivr": _ratio(ab_ivr, self.calls),
            "ivr_abandon_nodes": _ranked(self.ivr_nodes),
            "callbacks_queued": self.callbacks_queued, "callbacks_answered": self.callbacks_answered,
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class Means:
    """A sum and a count that :func:`_aht` can take like a list (``sum``, ``len``, truth)."""

    def __init__(self, total: float, n: int) -> None:
        self.total, self.n = float(total), n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter((self.total,) if self.n else ())

    def mean(self) -> float | None:
        return round(self.total / self.n, 1) if self.n else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _aht(talks: list[float], acws: list[float]) -> float | None:
    """Mean talk + mean after-call work (the talk alone while no ACW is known)."""
    if not talks:
        return None
    return round(sum(talks) / len(talks) + (sum(acws) / len(acws) if acws else 0.0), 1)


def after_call(leg_end: datetime | None, decided_at: datetime | None, cfg: FiguresConfig) -> float | None:
    """Seconds of after-call work: hang-up → the ticket's decision (0 when decided during the call);
    None when unknown (no hang-up or decision known, or decided too long after to be wrap-up)."""
    if leg_end is None or decided_at is None:
        return None
    seconds = (decided_at - leg_end).total_seconds()
    if seconds > cfg.after_call_max_seconds:
        return None
    return max(0.0, round(seconds, 1))


def _ranked(counts: dict[str, int]) -> list[dict]:
    return [{"node": k, "calls": v} for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _call_view(call: CallRow, cfg: FiguresConfig) -> tuple[str, str | None, float | None, float | None,
                                                            float | None]:
    """(outcome, node, wait, talk, after-call work) of one call from its row and legs."""
    legs = call.legs
    abandoned = None if not legs else any(leg.abandoned for leg in legs)
    outcome, node = call_outcome(status=call.status, queue=call.queue, agent=call.agent, menu_path=call.menu_path,
                                 legs_abandoned=abandoned)
    waits = [leg.hold_s for leg in legs if leg.hold_s is not None]
    wait = float(sum(waits)) if waits else None
    talked = [leg for leg in legs if leg.answered and leg.talk_s is not None]
    if not talked:
        return outcome, node, wait, None, None
    last = talked[-1]
    return outcome, node, wait, float(last.talk_s), after_call(last.ended_at, call.decided_at, cfg)


def compute(calls: Iterable[CallRow], cfg: FiguresConfig, callbacks: Iterable[CallRow] = ()) -> dict:
    """Totals, per line and per queue (a queue's figures are its legs'), for the period's calls;
    ``callbacks``: the gateway's callback calls started in the period (their legs count in the
    queues and the agents' load only; see the module's notes)."""
    total = Tally(cfg)
    lines: dict[str, Tally] = {}
    line_names: dict[str, str] = {}
    queues: dict[str, Tally] = {}
    agents: dict[str, dict] = {}
    for call in calls:
        outcome, node, wait, talk, acw = _call_view(call, cfg)
        total.add(outcome, node, wait=wait, talk=talk, acw=acw)
        lines.setdefault(call.line, Tally(cfg)).add(outcome, node, wait=wait, talk=talk, acw=acw)
        line_names.setdefault(call.line, call.line_name)
        _add_legs(call, acw, queues, agents, cfg)
        if not call.legs and call.queue:  # a queue reached with no leg known (before legs were kept)
            queues.setdefault(call.queue, Tally(cfg)).add(outcome, wait=wait, talk=talk, acw=acw)
    for call in callbacks:
        _add_legs(call, _last_acw(call, cfg), queues, agents, cfg, callback=True)
    per_queue = [{"queue": k, **_queue_part(t.result())} for k, t in sorted(queues.items())]
    return {
        "totals": _with_callbacks(total.result(), per_queue),
        "per_line": [{"line": k, "line_name": line_names.get(k, ""), **_line_part(t.result())}
                     for k, t in sorted(lines.items())],
        "per_queue": per_queue,
        "agents_load": sorted(agents.values(), key=lambda a: a["agent"]),
    }


def _last_acw(call: CallRow, cfg: FiguresConfig) -> float | None:
    """The after-call work of the call's last leg answered with a talk time (None without one)."""
    talked = [leg for leg in call.legs if leg.answered and leg.talk_s is not None]
    return after_call(talked[-1].ended_at, call.decided_at, cfg) if talked else None


def _add_legs(call: CallRow, acw: float | None, queues: dict, agents: dict, cfg: FiguresConfig, *,
              callback: bool = False) -> None:
    """The call's legs into their queues' tallies and the agents' load (``acw``: the call's)."""
    talked = [leg for leg in call.legs if leg.answered and leg.talk_s is not None]
    for leg in call.legs:
        leg_acw = acw if talked and leg is talked[-1] else None  # the ACW follows the leg that ended the talk
        if leg.answered:
            leg_outcome = "answered"
            load = agents.setdefault(leg.agent or "?", {"agent": leg.agent or "?", "answered": 0, "talk_s": 0,
                                                        "acw_s": 0})
            load["answered"] += 1
            load["talk_s"] += int(leg.talk_s or 0)
            load["acw_s"] += int(leg_acw or 0)
        elif leg.abandoned:
            leg_outcome = "abandoned_queue"
        elif call.status == "ended" or leg.hold_s is not None:
            leg_outcome = "queue_timeout"
        else:
            leg_outcome = "in_queue"
        queues.setdefault(leg.queue, Tally(cfg)).add(leg_outcome, wait=leg.hold_s,
                                                     talk=leg.talk_s if leg.answered else None, acw=leg_acw,
                                                     callback=callback)


def _queue_part(result: dict) -> dict:
    """A queue sees only callers who reached it: the IVR's figures do not apply."""
    for key in ("abandoned_ivr", "abandon_rate_ivr", "ivr_abandon_nodes", "callback", "ended_in_ivr"):
        result.pop(key, None)
    result["abandoned"] = result["abandoned_queue"]
    return result


CALLBACK_KEYS = ("callbacks_queued", "callbacks_answered")


def _line_part(result: dict) -> dict:
    """A line's figures are its callers' calls: the callback calls' legs are counted per queue."""
    for key in CALLBACK_KEYS:
        result.pop(key, None)
    return result


def _with_callbacks(result: dict, per_queue: list[dict]) -> dict:
    """The totals (the calls') with the callback calls' legs of every queue."""
    for key in CALLBACK_KEYS:
        result[key] = sum(q[key] for q in per_queue)
    return result


def bucket_of(started: datetime, period: Period) -> datetime:
    local = started.astimezone(ZoneInfo(period.timezone))
    if period.bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo)


def trend(calls: Iterable[CallRow], period: Period, cfg: FiguresConfig) -> list[dict]:
    """One point per hour or day of the period (empty ones too), each with the main figures."""
    tz = ZoneInfo(period.timezone)
    step = timedelta(hours=1) if period.bucket == "hour" else timedelta(days=1)
    tallies: dict[datetime, Tally] = {}
    cursor = period.start
    while cursor < period.end:  # wall-clock steps in the local zone (no DST in Asia/Shanghai)
        tallies[cursor] = Tally(cfg)
        cursor = (cursor.replace(tzinfo=None) + step).replace(tzinfo=tz)
    for call in calls:
        key = bucket_of(call.started_at, period)
        if key in tallies:
            outcome, node, wait, talk, acw = _call_view(call, cfg)
            tallies[key].add(outcome, node, wait=wait, talk=talk, acw=acw)
    return trend_points(tallies, period)


def trend_points(tallies: Mapping[datetime, Any], period: Period) -> list[dict]:
    """The trend's points from one tally per bucket start (anything with ``result()``)."""
    keys = ("calls", "offered", "answered", "abandoned_queue", "abandoned_ivr", "callback", "service_level",
            "asa_s", "aht_s", "talk_s", "acw_s")
    out = []
    for start, tally in tallies.items():
        r = tally.result()
        label = start.strftime("%H:00") if period.bucket == "hour" and period.end - period.start <= timedelta(days=1) \
            else start.strftime("%m-%d %H:00") if period.bucket == "hour" else start.strftime("%m-%d")
        out.append({"start": start.isoformat(), "label": label, **{k: r[k] for k in keys}})
    return out
