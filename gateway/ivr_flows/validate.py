"""Turn YAML sources into a :class:`GatewayConfig`, or every problem found.

All problems of all files are collected (not just the first), each with file,
line and field, and :class:`gateway.errors.ConfigError` is raised if there is
any. Nothing is half-built: the caller either gets a whole, consistent config
or an error, so a running gateway keeps its current config on a bad reload.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.emergency import emergency_transfers
from gateway.ivr_flows.model import (
    EMERGENCY_NUMBERS,
    Broadcast,
    BroadcastNode,
    MERGE_MODES,
    Agent,
    CalendarNode,
    EmergencyGuard,
    Flow,
    GotoFlowNode,
    GatewayConfig,
    HangupNode,
    Line,
    MenuNode,
    MenuOption,
    PlayNode,
    Queue,
    RecordNode,
    Schedule,
    TransferNode,
)

_ID = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
_NUMBER = re.compile(r"^[0-9]{3,20}$")
_KEY = re.compile(r"^[0-9*#]$")
_RANGE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # [0-9]: \d also matches "٢٠٢٧"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AFTER_HOURS = ("central", "hangup")
_LANG = re.compile(r"^[a-z]{2,3}$")
VOICES = ("cmn", "yue", "ko", "en")  # espeak-ng voices the prompts can be rendered in
# Control characters (NUL...) are refused in every text; names and labels are written into
# Asterisk's config files (``; <line name>``), so they must also be a single line.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\n\r\x85\u2028\u2029]")


def _show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut short: a message must not echo a 100 KB value back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class _Reader:
    """Field access on one source that records problems instead of raising."""

    def __init__(self, src: yamlsrc.Source) -> None:
        self.src = src

    def mapping(self, value: Any, path: tuple, *, required=(), optional=()) -> dict | None:
        if not isinstance(value, dict):
            self.src.problem(path, f"expected a mapping, got {_kind(value)}")
            return None
        allowed = set(required) | set(optional)
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                more = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(sorted(allowed))})"
                self.src.problem(path + (key,), f"unknown key{more}")
        for key in required:
            if key not in value:
                self.src.problem(path, f"missing required key {key!r}")
        return value

    def text(self, value: Any, path: tuple, *, pattern: re.Pattern | None = None, what: str = "",
             one_line: bool = False) -> str | None:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            self.src.problem(path, f"expected text, got {_kind(value)}")
            return None
        text = str(value).strip()
        if not text:
            self.src.problem(path, "must not be empty")
            return None
        if _CONTROL.search(text):
            self.src.problem(path, "contains control characters (such as NUL) / 含有控制字符")
            return None
        if one_line and _LINE_BREAK.search(text):
            self.src.problem(path, "must be a single line / 必须为单行文字")
            return None
        if pattern and not pattern.match(text):
            self.src.problem(path, f"{_show(text)} is not a valid {what or 'value'}")
            return None
        return text

    def zone(self, value: Any, path: tuple) -> str | None:
        """An IANA time zone name such as Asia/Shanghai."""
        name = self.text(value, path, pattern=re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"),
                         what="time zone (e.g. Asia/Shanghai)")
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.src.problem(path, f"{_show(name)} is not a known time zone (e.g. Asia/Shanghai)")
            return None
        return name

    def number(self, value: Any, path: tuple, *, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.src.problem(path, f"expected a number, got {_kind(value)}")
            return None
        if not low <= value <= high:
            self.src.problem(path, f"{_show(value)} is out of range {low}..{high}")
            return None
        return value

    def choice(self, value: Any, path: tuple, choices: tuple) -> str | None:
        text = self.text(value, path)
        if text is None:
            return None
        if text not in choices:
            hint = difflib.get_close_matches(text, choices, n=1)
            more = f"; did you mean {hint[0]!r}?" if hint else ""
            self.src.problem(path, f"{_show(text)} is not one of {', '.join(choices)}{more}")
            return None
        return text

    def ref(self, value: Any, path: tuple, known: dict, what: str) -> str | None:
        text = self.text(value, path)
        if text is not None and text not in known:
            self.src.problem(path, f"unknown {what} {_show(text)}")
            return None
        return text


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), type(value).__name__)


# -- flows ---------------------------------------------------------------------------------


def _flow(src: yamlsrc.Source, r: _Reader) -> Flow | None:
    top = r.mapping(src.data, (), required=("id", "language", "start", "prompts", "nodes"),
                    optional=("description", "speech", "emergency"))
    if top is None:
        return None
    fid = r.text(top.get("id"), ("id",), pattern=_ID, what="flow id")
    language = r.choice(top.get("language"), ("language",), VOICES)
    prompts = r.mapping(top.get("prompts"), ("prompts",), optional=tuple(top.get("prompts") or {})) or {}
    texts, voices = {}, {}
    for k, v in prompts.items():
        if isinstance(v, dict):  # {text: ..., language: ko}: a prompt in another voice
            if r.mapping(v, ("prompts", k), required=("text", "language")) is None:
                continue
            texts[k] = r.text(v.get("text"), ("prompts", k, "text"))
            voice = r.choice(v.get("language"), ("prompts", k, "language"), VOICES)
            if voice and voice != language:
                voices[k] = voice
        else:
            texts[k] = r.text(v, ("prompts", k))
    speech = None
    if top.get("speech") is not None:
        speech = r.text(top.get("speech"), ("speech",), pattern=_LANG, what="speech language (e.g. zh, ko)")
    raw_nodes = top.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        src.problem(("nodes",), "expected a non-empty mapping of nodes")
        return None
    nodes = {}
    for nid, raw in raw_nodes.items():
        path = ("nodes", nid)
        if not _ID.match(nid):
            src.problem(path, f"{nid!r} is not a valid node id")
        node = _node(nid, raw, path, r, texts)
        if node is not None:
            nodes[nid] = node
    start = r.text(top.get("start"), ("start",))
    if start and start not in raw_nodes:
        src.problem(("start",), f"unknown node {start!r}")
    for nid, node in nodes.items():
        for field_, target in _targets(node):
            if target not in raw_nodes:
                src.problem(("nodes", nid, *field_), f"unknown node {target!r}")
    guard = _guard(top.get("emergency"), r, texts, raw_nodes) if "emergency" in top else None
    if guard is not None and guard.key:
        for nid, node in nodes.items():
            if isinstance(node, MenuNode) and guard.key in node.options:
                src.problem(("nodes", nid, "options", guard.key),
                            f"key {guard.key!r} is the flow's emergency key (emergency.key)")
    if fid is None or start is None or language is None:
        return None
    return Flow(id=fid, language=language, start=start, prompts=texts, nodes=nodes, speech=speech,
                emergency=guard, prompt_languages=voices)


def _guard(raw: Any, r: _Reader, texts: dict, raw_nodes: dict) -> EmergencyGuard | None:
    path = ("emergency",)
    if r.mapping(raw, path, required=("node",), optional=("key", "key_prompt")) is None:
        return None
    node = r.text(raw.get("node"), path + ("node",))
    if node is not None and node not in raw_nodes:
        r.src.problem(path + ("node",), f"unknown node {node!r}")
    key = None
    if raw.get("key") is not None:
        key = r.text(raw.get("key"), path + ("key",), pattern=_KEY, what="phone key (0-9, * or #)")
    key_prompt = _prompt(r, raw.get("key_prompt"), path + ("key_prompt",), texts, optional=True)
    if key_prompt and not key:
        r.src.problem(path + ("key_prompt",), "a key prompt needs emergency.key")
    return None if node is None else EmergencyGuard(node, key, key_prompt)


def _targets(node) -> list:
    if isinstance(node, (PlayNode, RecordNode, BroadcastNode)):
        return [(("next",), node.next)]
    if isinstance(node, MenuNode):
        out = [(("on_failure",), node.on_failure)]
        out += [(("options", key, "next"), opt.next) for key, opt in node.options.items()]
        return out
    if isinstance(node, CalendarNode):
        return [(("open",), node.open)] + [(("closed", k), v) for k, v in node.closed.items()]
    return []


def _flow_links(flows: dict, sources: dict) -> list:
    """Every ``type: flow`` node must name a loaded flow (checked once all flows are read)."""
    out = []
    for fid, flow in flows.items():
        src = sources[fid]
        for nid, node in flow.nodes.items():
            if isinstance(node, GotoFlowNode) and node.flow not in flows:
                out.append(yamlsrc.ConfigProblem(src.file, src.line_of(("nodes", nid, "flow")),
                                                 yamlsrc.field_name(("nodes", nid, "flow")), f"unknown flow {node.flow!r}"))
    return out


def _prompt(r: _Reader, value, path, texts: dict, *, optional=False) -> str | None:
    if value is None and optional:
        return None
    text = r.text(value, path)
    if text is not None and text not in texts:
        r.src.problem(path, f"unknown prompt {text!r}")
    return text


def _node(nid: str, raw: Any, path: tuple, r: _Reader, texts: dict):
    if not isinstance(raw, dict):
        r.src.problem(path, f"expected a mapping, got {_kind(raw)}")
        return None
    kind = r.choice(raw.get("type"), path + ("type",),
                    ("play", "menu", "record", "transfer", "calendar", "hangup", "broadcast", "flow"))
    if kind is None:
        return None
    fields = {
        "play": (("type", "prompt", "next"), ("set", "interruptible")),
        "menu": (("type", "prompt", "options", "on_failure"),
                 ("timeout", "retries", "invalid_prompt", "no_input_prompt", "default", "speech")),
        "record": (("type", "prompt", "next"), ("beep_prompt", "max_seconds", "silence_seconds", "speech",
                                                "no_input_seconds", "no_input_prompt")),
        "transfer": (("type", "default_queue"), ("queue_from", "prompt")),
        "calendar": (("type", "open", "closed"), ()),
        "hangup": (("type",), ("prompt",)),
        "broadcast": (("type", "next"), ()),
        "flow": (("type", "flow"), ()),
    }[kind]
    if r.mapping(raw, path, required=fields[0], optional=fields[1]) is None:
        return None
    if any(k not in raw for k in fields[0]):
        return None
    p = lambda key, optional=False: _prompt(r, raw.get(key), path + (key,), texts, optional=optional)  # noqa: E731
    if kind == "play":
        return PlayNode(nid, p("prompt"), str(raw["next"]), _sets(r, raw.get("set"), path + ("set",)),
                        interruptible=_flag(r, raw.get("interruptible", True), path + ("interruptible",)))
    if kind == "record":
        return RecordNode(
            nid, p("prompt"), str(raw["next"]), p("beep_prompt", True),
            r.number(raw.get("max_seconds", 60), path + ("max_seconds",), low=1, high=600) or 60,
            r.number(raw.get("silence_seconds", 3), path + ("silence_seconds",), low=0.5, high=30) or 3,
            _flag(r, raw.get("speech", False), path + ("speech",)),
            r.number(raw.get("no_input_seconds", 6), path + ("no_input_seconds",), low=1, high=60) or 6,
            p("no_input_prompt", True),
        )
    if kind == "flow":
        return GotoFlowNode(nid, r.text(raw["flow"], path + ("flow",), pattern=_ID, what="flow id") or "")
    if kind == "transfer":
        qf = raw.get("queue_from", [])
        if not isinstance(qf, list) or not all(isinstance(x, str) for x in qf):
            r.src.problem(path + ("queue_from",), "expected a list of variable names")
            qf = []
        return TransferNode(nid, str(raw["default_queue"]), tuple(qf), p("prompt", True))
    if kind == "calendar":
        closed = r.mapping(raw["closed"], path + ("closed",), required=AFTER_HOURS) or {}
        return CalendarNode(nid, str(raw["open"]), {k: str(v) for k, v in closed.items() if k in AFTER_HOURS})
    if kind == "hangup":
        return HangupNode(nid, p("prompt", True))
    if kind == "broadcast":
        return BroadcastNode(nid, str(raw["next"]))
    options = {}
    raw_opts = raw["options"]
    if not isinstance(raw_opts, dict) or not raw_opts:
        r.src.problem(path + ("options",), "expected a non-empty mapping of keys")
        raw_opts = {}
    for key, opt in raw_opts.items():
        opath = path + ("options", key)
        if not _KEY.match(str(key)):
            r.src.problem(opath, f"{key!r} is not a phone key (0-9, * or #)")
            continue
        if r.mapping(opt, opath, required=("label", "next"), optional=("set", "say")) is None or "next" not in opt:
            continue
        say = opt.get("say", [])
        if not isinstance(say, list) or not all(isinstance(w, str) and w.strip() and len(w) <= 40 for w in say):
            r.src.problem(opath + ("say",), "expected a list of words a caller may say (non-empty, short)")
            say = []
        label = r.text(opt.get("label"), opath + ("label",), one_line=True) or ""
        options[str(key)] = MenuOption(str(key), label, str(opt["next"]),
                                       _sets(r, opt.get("set"), opath + ("set",)),
                                       tuple(w.strip() for w in say))
    default = raw.get("default")
    if default is not None and str(default) not in options:
        r.src.problem(path + ("default",), f"{default!r} is not one of the menu's keys")
    retries = r.number(raw.get("retries", 2), path + ("retries",), low=0, high=5)
    return MenuNode(
        nid, p("prompt"), options, str(raw["on_failure"]),
        r.number(raw.get("timeout", 5), path + ("timeout",), low=1, high=60) or 5,
        int(retries if retries is not None else 2), p("invalid_prompt", True), p("no_input_prompt", True),
        None if default is None else str(default),
        _flag(r, raw.get("speech", False), path + ("speech",)),
    )


def _flag(r: _Reader, value: Any, path: tuple) -> bool:
    if not isinstance(value, bool):
        r.src.problem(path, f"expected true or false, got {_kind(value)}")
        return False
    return value


def _sets(r: _Reader, raw, path) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        r.src.problem(path, "expected a mapping of variable: value")
        return {}
    out = {}
    for k, v in raw.items():
        if not re.match(r"^[a-z_][a-z0-9_]*$", k):
            r.src.problem(path + (k,), "not a valid variable name")
        elif v is not None and not isinstance(v, (str, int, bool)):
            r.src.problem(path + (k,), "expected text, a number or true/false")
        else:
            out[k] = v
    return out


# -- hotlines ------------------------------------------------------------------------------

_LINE_FIELDS = {
    "primary": (("number", "name", "mode"), ("flow", "hours")),
    "retired": (("number", "name", "mode", "department"), ("flow", "announcement", "announce")),
    "dual_number": (("number", "name", "mode", "department", "greeting", "queue"), ("flow",)),
    "sub_centre": (("number", "name", "mode", "department", "greeting", "queue"),
                   ("flow", "handled_by", "hours", "after_hours", "overflow_seconds")),
}
_MINUTES = lambda hh, mm: int(hh) * 60 + int(mm)  # noqa: E731


def _public_holidays(raw: Any, path: tuple, r: _Reader) -> dict:
    """``{"2027": {"holidays": [...], "workdays": [...]}}``: China's public holidays and the
    make-up working days (调休) announced each year; every office-hours schedule follows them."""
    out = {"holidays": set(), "workdays": set()}
    years = r.mapping(raw, path, optional=tuple(raw or {}) if isinstance(raw, dict) else ()) or {}
    for year, spec in years.items():
        ypath = path + (year,)
        if not re.fullmatch(r"20[0-9][0-9]", str(year)):
            r.src.problem(ypath, f"{year!r} is not a year")
            continue
        m = r.mapping(spec, ypath, optional=("holidays", "workdays")) or {}
        for key in ("holidays", "workdays"):
            items = m.get(key, [])
            if not isinstance(items, list):
                r.src.problem(ypath + (key,), "expected a list of dates YYYY-MM-DD")
                continue
            for i, day in enumerate(items):
                if not _DATE.match(str(day)) or not str(day).startswith(f"{year}-"):
                    r.src.problem(ypath + (key, i), f"{day!r} is not a date of {year} (YYYY-MM-DD)")
                else:
                    out[key].add(str(day))
    both = out["holidays"] & out["workdays"]
    if both:
        r.src.problem(path, f"dates both holiday and working day: {', '.join(sorted(both))}")
    return out


def _schedule(name: str, raw: Any, path: tuple, r: _Reader, public: dict) -> Schedule | None:
    if raw == "24x7":
        return Schedule(name, always_open=True)
    m = r.mapping(raw, path, required=("weekly",), optional=("holidays", "workdays", "timezone", "public_holidays"))
    if m is None or "weekly" not in m:
        return None
    weekly: dict = {}
    days = r.mapping(m["weekly"], path + ("weekly",), optional=_DAYS) or {}
    for day, ranges in days.items():
        if day not in _DAYS:
            continue
        if not isinstance(ranges, list):
            r.src.problem(path + ("weekly", day), "expected a list like ['08:30-12:00']")
            continue
        spans = []
        for i, item in enumerate(ranges):
            mt = _RANGE.match(str(item))
            if not mt:
                r.src.problem(path + ("weekly", day, i), f"{item!r} is not a range HH:MM-HH:MM (quote it)")
                continue
            start, end = _MINUTES(*mt.group(1, 2)), _MINUTES(*mt.group(3, 4))
            if end <= start:
                r.src.problem(path + ("weekly", day, i), f"{item!r} ends before it starts")
                continue
            spans.append((start, end))
        if spans:
            weekly[_DAYS.index(day)] = tuple(spans)
    if not weekly:
        r.src.problem(path + ("weekly",), "these hours never open")
    dates = {}
    for key in ("holidays", "workdays"):
        items = m.get(key, [])
        if not isinstance(items, list) or not all(_DATE.match(str(d)) for d in items):
            r.src.problem(path + (key,), "expected a list of dates YYYY-MM-DD")
            items = []
        dates[key] = frozenset(str(d) for d in items)
    follow = m.get("public_holidays", True)
    if not isinstance(follow, bool):
        r.src.problem(path + ("public_holidays",), "expected true or false")
        follow = True
    holidays = dates["holidays"] | (frozenset(public["holidays"]) if follow else frozenset())
    workdays = dates["workdays"] | (frozenset(public["workdays"]) if follow else frozenset())
    zone = r.zone(m.get("timezone", "Asia/Shanghai"), path + ("timezone",)) or "Asia/Shanghai"
    return Schedule(name, False, weekly, holidays, workdays, zone)


def _hotlines(src: yamlsrc.Source, r: _Reader, flows: dict) -> GatewayConfig | None:
    top = r.mapping(src.data, (), required=("lines", "queues"),
                    optional=("version", "timezone", "schedules", "agents", "public_holidays", "broadcasts",
                              "emergency_transfers"))
    if top is None:
        return None
    public = _public_holidays(top.get("public_holidays", {}), ("public_holidays",), r)
    schedules = {"always": Schedule("always", always_open=True)}
    for name, raw in (r.mapping(top.get("schedules", {}), ("schedules",), optional=tuple(top.get("schedules") or {})) or {}).items():
        sch = _schedule(name, raw, ("schedules", name), r, public)
        if sch:
            schedules[name] = sch
    agents = {}
    for i, raw in enumerate(top.get("agents") or []):
        m = r.mapping(raw, ("agents", i), required=("id", "name"))
        if m and "id" in m:
            aid = r.text(m["id"], ("agents", i, "id"), pattern=re.compile(r"^[0-9]{2,8}$"), what="agent id (2-8 digits)")
            if aid in agents:
                src.problem(("agents", i, "id"), f"duplicate agent {aid!r}")
            elif aid:
                agents[aid] = Agent(aid, r.text(m.get("name"), ("agents", i, "name"), one_line=True) or "")
    queues = {}
    raw_queues = r.mapping(top.get("queues"), ("queues",), optional=tuple(top.get("queues") or {})) or {}
    for name, raw in raw_queues.items():
        qpath = ("queues", name)
        if not re.match(r"^q-[a-z0-9-]{1,40}$", name):
            src.problem(qpath, f"{name!r} is not a valid queue name (q-<lowercase letters, digits, ->)")
            continue
        m = r.mapping(raw, qpath, required=("label",), optional=("members", "strategy", "timeout"))
        if m is None:
            continue
        members = m.get("members", [])
        if not isinstance(members, list):
            src.problem(qpath + ("members",), "expected a list of agent ids")
            members = []
        for j, member in enumerate(members):
            r.ref(str(member), qpath + ("members", j), agents, "agent")
        strategy = r.choice(m.get("strategy", "rrmemory"), qpath + ("strategy",), ("rrmemory", "ringall", "leastrecent", "fewestcalls", "random"))
        timeout = r.number(m.get("timeout", 15), qpath + ("timeout",), low=1, high=300)
        label = r.text(m["label"], qpath + ("label",), one_line=True) or ""
        queues[name] = Queue(name, label, tuple(str(x) for x in members), strategy or "rrmemory", int(timeout or 15))
    lines: dict = {}
    raw_lines = top.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        src.problem(("lines",), "expected a non-empty list of lines")
        raw_lines = []
    for i, raw in enumerate(raw_lines):
        line = _line(raw, ("lines", i), r, queues, schedules, flows)
        if line is None:
            continue
        if line.number in lines:
            src.problem(("lines", i, "number"), f"duplicate number {line.number!r}")
            continue
        lines[line.number] = line
    primaries = [ln for ln in lines.values() if ln.mode == "primary"]
    if len(primaries) != 1 and not src.problems:
        src.problem(("lines",), f"exactly one line must have mode 'primary' (found {len(primaries)})")
    for flow in flows.values():
        for node in flow.nodes.values():
            if isinstance(node, TransferNode) and node.default_queue not in queues:
                src.problem(("queues",), f"flow {flow.id!r} node {node.id!r} needs queue {node.default_queue!r}")
            if isinstance(node, (MenuNode,)):
                for opt in node.options.values():
                    q = opt.set.get("category_queue")
                    if q and q not in queues:
                        src.problem(("queues",), f"flow {flow.id!r} option {node.id}:{opt.key} needs queue {q!r}")
    tz = r.zone(top.get("timezone", "Asia/Shanghai"), ("timezone",)) or "Asia/Shanghai"
    broadcasts = _broadcasts(top.get("broadcasts", []), ("broadcasts",), r, lines, tz)
    transfers = emergency_transfers(top.get("emergency_transfers", {}), ("emergency_transfers",), r, queues)
    if src.problems:
        return None
    return GatewayConfig(lines, queues, agents, schedules, flows, tz, broadcasts, transfers)


def _when(value: Any, path: tuple, r: _Reader, tz: str):
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            r.src.problem(path, f"{value!r} is not a date and time like 2027-01-01T08:00:00+08:00")
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed


def _broadcasts(raw: Any, path: tuple, r: _Reader, lines: dict, tz: str) -> tuple:
    if not isinstance(raw, list):
        r.src.problem(path, "expected a list of broadcasts")
        return ()
    out, seen = [], set()
    for i, item in enumerate(raw):
        bpath = path + (i,)
        m = r.mapping(item, bpath, required=("id", "text", "start", "end"), optional=("lines",))
        if m is None or any(k not in m for k in ("id", "text", "start", "end")):
            continue
        bid = r.text(m["id"], bpath + ("id",), pattern=_ID, what="broadcast id (lowercase letters, digits, -)")
        if bid in seen:
            r.src.problem(bpath + ("id",), f"duplicate broadcast {bid!r}")
        seen.add(bid)
        text = r.text(m["text"], bpath + ("text",))
        start, end = _when(m["start"], bpath + ("start",), r, tz), _when(m["end"], bpath + ("end",), r, tz)
        if start and end and end <= start:
            r.src.problem(bpath + ("end",), "ends before it starts")
        targets = m.get("lines", ["all"])
        if not isinstance(targets, list) or not targets:
            r.src.problem(bpath + ("lines",), "expected a list of line numbers (or [all])")
            targets = []
        for j, number in enumerate(targets):
            if str(number) != "all" and str(number) not in lines:
                r.src.problem(bpath + ("lines", j), f"unknown line {number!r}")
        if bid and text and start and end:
            out.append(Broadcast(bid, text, start, end, tuple(str(t) for t in targets)))
    return tuple(out)


def _line(raw, path, r: _Reader, queues, schedules, flows) -> Line | None:
    if not isinstance(raw, dict):
        r.src.problem(path, f"expected a mapping, got {_kind(raw)}")
        return None
    mode = r.choice(raw.get("mode"), path + ("mode",), MERGE_MODES)
    if mode is None:
        return None
    required, optional = _LINE_FIELDS[mode]
    if r.mapping(raw, path, required=required, optional=optional) is None:
        return None
    number = r.text(raw.get("number"), path + ("number",), pattern=_NUMBER, what="phone number (3-20 digits)")
    if number in EMERGENCY_NUMBERS:
        r.src.problem(path + ("number",), f"{number} is an emergency number; 12345 takes non-emergency requests only")
        return None
    text = lambda key, one_line=False: r.text(raw[key], path + (key,), one_line=one_line) if key in raw else None  # noqa: E731
    queue = r.ref(raw["queue"], path + ("queue",), queues, "queue") if "queue" in raw else None
    hours = r.ref(raw.get("hours", "always"), path + ("hours",), schedules, "schedule") or "always"
    flow = r.ref(raw.get("flow", "main"), path + ("flow",), flows, "flow") or "main"
    after = r.choice(raw.get("after_hours", "central"), path + ("after_hours",), AFTER_HOURS) or "central"
    if mode == "primary" and hours != "always" and not schedules[hours].always_open:
        r.src.problem(path + ("hours",), "the primary line answers 7x24")
    if any(k not in raw for k in required) or number is None:
        return None
    announcement = text("announcement")
    if mode == "retired" and not announcement:
        announcement = f"您拨打的{' '.join(number)}已并入12345市民服务热线，现在为您转接。"
    name, department = text("name", True), text("department", True)
    handled_by = text("handled_by", True) or (department if mode == "sub_centre" else None)
    announce = raw.get("announce", True)
    if not isinstance(announce, bool):
        r.src.problem(path + ("announce",), "expected true or false")
        announce = True
    overflow = r.number(raw.get("overflow_seconds", 30), path + ("overflow_seconds",), low=5, high=600) or 30
    return Line(number, str(name), mode, flow, department, text("greeting"), announcement,
                queue, handled_by, hours, after, announce, int(overflow))


# -- entry point ---------------------------------------------------------------------------


def read_files(config_dir: Path) -> dict[str, str]:
    """The configuration files of ``config_dir`` as texts: ``hotlines.yaml`` and ``flows/*.yaml``.

    A file that cannot be read is left out here and reported by :func:`config_from_files`.
    """
    config_dir = Path(config_dir)
    files = {}
    for rel in ["hotlines.yaml"] + sorted(
        p.relative_to(config_dir).as_posix() for p in (config_dir / "flows").glob("*.yaml")
    ):
        try:
            files[rel] = (config_dir / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            files[rel] = exc
    return files


def config_from_files(files: dict, *, origin: str = "config") -> GatewayConfig:
    """Validate a whole configuration given as texts (``hotlines.yaml``, ``flows/<id>.yaml``).

    This is how a stored version or an admin's proposed change is checked: the
    same rules, the same file/line/field errors, no file written.
    """
    problems: list = []
    flows: dict = {}
    sources: dict = {}

    def source(rel: str) -> yamlsrc.Source:
        text = files.get(rel)
        if isinstance(text, str):
            return yamlsrc.parse(text, f"{origin}/{rel}")
        src = yamlsrc.Source(file=f"{origin}/{rel}")
        src.problems.append(yamlsrc.ConfigProblem(src.file, None, "", "file not found" if text is None
                                                  else f"cannot read: {text}"))
        return src

    flow_files = sorted(rel for rel in files if rel.startswith("flows/") and rel.endswith(".yaml"))
    if not flow_files:
        problems.append(yamlsrc.ConfigProblem(f"{origin}/flows", None, "", "no flow files (*.yaml)"))
    for rel in flow_files:
        src = source(rel)
        flow = _flow(src, _Reader(src)) if not src.problems else None
        problems += src.problems
        if flow is not None:
            if flow.id in flows:
                problems.append(yamlsrc.ConfigProblem(src.file, src.line_of(("id",)), "id", f"duplicate flow {flow.id!r}"))
            flows[flow.id] = flow
            sources[flow.id] = src
    problems += _flow_links(flows, sources)
    src = source("hotlines.yaml")
    config = _hotlines(src, _Reader(src), flows) if not src.problems else None
    problems += src.problems
    if problems or config is None:
        raise ConfigError(problems or [yamlsrc.ConfigProblem(src.file, None, "", "invalid")])
    return config


def load_config(config_dir: Path) -> GatewayConfig:
    """Load ``hotlines.yaml`` and ``flows/*.yaml`` from ``config_dir``; raise ConfigError on any problem."""
    return config_from_files(read_files(config_dir), origin=str(Path(config_dir)))
