"""Turn YAML sources into a :class:`GatewayConfig`, or every problem found.

This module checks ``hotlines.yaml`` (lines, queues, schedules, broadcasts) and the
configuration as a whole; one flow file is checked by :mod:`gateway.ivr_flows.flowcheck`,
fields are read by :class:`gateway.ivr_flows.fields.Reader`.

All problems of all files are collected (not just the first), each with file,
line and field, and :class:`gateway.errors.ConfigError` is raised if there is
any. Nothing is half-built: the caller either gets a whole, consistent config
or an error, so a running gateway keeps its current config on a bad reload.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.emergency import emergency_transfers
from gateway.ivr_flows.fields import ID, Reader, kind_of
from gateway.ivr_flows.flowcheck import AFTER_HOURS, check_flow, flow_links
from gateway.ivr_flows.model import (
    EMERGENCY_NUMBERS,
    Broadcast,
    MERGE_MODES,
    Agent,
    GatewayConfig,
    Line,
    MenuNode,
    Queue,
    Schedule,
    TransferNode,
)

_NUMBER = re.compile(r"^[0-9]{3,20}$")
_RANGE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # [0-9]: \d also matches "٢٠٢٧"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# -- hotlines ------------------------------------------------------------------------------

LINE_FIELDS = {
    "primary": (("number", "name", "mode"), ("flow", "hours")),
    "retired": (("number", "name", "mode", "department"), ("flow", "announcement", "announce")),
    "dual_number": (("number", "name", "mode", "department", "greeting", "queue"), ("flow",)),
    "sub_centre": (("number", "name", "mode", "department", "greeting", "queue"),
                   ("flow", "handled_by", "hours", "after_hours", "overflow_seconds")),
}
_MINUTES = lambda hh, mm: int(hh) * 60 + int(mm)  # noqa: E731


def _public_holidays(raw: Any, path: tuple, r: Reader) -> dict:
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


def _schedule(name: str, raw: Any, path: tuple, r: Reader, public: dict) -> Schedule | None:
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


def _hotlines(src: yamlsrc.Source, r: Reader, flows: dict) -> GatewayConfig | None:
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


def _when(value: Any, path: tuple, r: Reader, tz: str):
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


def _broadcasts(raw: Any, path: tuple, r: Reader, lines: dict, tz: str) -> tuple:
    if not isinstance(raw, list):
        r.src.problem(path, "expected a list of broadcasts")
        return ()
    out, seen = [], set()
    for i, item in enumerate(raw):
        bpath = path + (i,)
        m = r.mapping(item, bpath, required=("id", "text", "start", "end"), optional=("lines",))
        if m is None or any(k not in m for k in ("id", "text", "start", "end")):
            continue
        bid = r.text(m["id"], bpath + ("id",), pattern=ID, what="broadcast id (lowercase letters, digits, -)")
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


def _line(raw, path, r: Reader, queues, schedules, flows) -> Line | None:
    if not isinstance(raw, dict):
        r.src.problem(path, f"expected a mapping, got {kind_of(raw)}")
        return None
    mode = r.choice(raw.get("mode"), path + ("mode",), MERGE_MODES)
    if mode is None:
        return None
    required, optional = LINE_FIELDS[mode]
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
        flow = check_flow(src, Reader(src)) if not src.problems else None
        problems += src.problems
        if flow is not None:
            if flow.id in flows:
                problems.append(yamlsrc.ConfigProblem(src.file, src.line_of(("id",)), "id", f"duplicate flow {flow.id!r}"))
            flows[flow.id] = flow
            sources[flow.id] = src
    problems += flow_links(flows, sources)
    src = source("hotlines.yaml")
    config = _hotlines(src, Reader(src), flows) if not src.problems else None
    problems += src.problems
    if problems or config is None:
        raise ConfigError(problems or [yamlsrc.ConfigProblem(src.file, None, "", "invalid")])
    return config


def load_config(config_dir: Path) -> GatewayConfig:
    """Load ``hotlines.yaml`` and ``flows/*.yaml`` from ``config_dir``; raise ConfigError on any problem."""
    return config_from_files(read_files(config_dir), origin=str(Path(config_dir)))
