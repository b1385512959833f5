"""Reading and checking ``config/catalogue.yaml`` into a :class:`gateway.desk.catalogue.Catalogue`.

Loading is validated like the hotline configuration: every problem of the file
is collected with file, line and field (unknown keys get a "did you mean"),
then :class:`gateway.errors.ConfigError` is raised; a caller gets a whole
catalogue or an error. :func:`read_source`, :func:`parse_source`,
:func:`word_list` and :func:`as_date` serve the knowledge base's files too.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.desk.catalogue import (
    DISPATCH_MODES,
    ESCALATIONS,
    LOCAL_KINDS,
    PLACE_TARGETS,
    UNIT_KINDS,
    URGENT_WHEN,
    Catalogue,
    Escalation,
    Matter,
    Unit,
    normalize,
)
from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import Reader

_ID = re.compile(r"^[a-z][a-z0-9-]{0,47}$")
_MONTH_DAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")


def word_list(r: Reader, value: Any, path: tuple, *, what: str = "keywords") -> tuple[str, ...]:
    """A non-empty list of distinct, non-empty words."""
    if not isinstance(value, list) or not value:
        r.src.problem(path, f"expected a non-empty list of {what}")
        return ()
    out: list[str] = []
    for i, raw in enumerate(value):
        word = r.text(raw, path + (i,))
        if word is None:
            continue
        if normalize(word) in {normalize(w) for w in out}:
            r.src.problem(path + (i,), f"duplicate word {word!r}")
            continue
        out.append(word)
    return tuple(out)


def _unit(r: Reader, raw: Any, path: tuple, kinds: tuple) -> Unit | None:
    m = r.mapping(raw, path, required=("id", "name", "kind"), optional=("aliases",))
    if m is None:
        return None
    uid = r.text(m.get("id"), path + ("id",), pattern=_ID, what="unit id (lowercase letters, digits, -)")
    name = r.text(m.get("name"), path + ("name",))
    kind = r.choice(m.get("kind"), path + ("kind",), kinds)
    aliases = word_list(r, m["aliases"], path + ("aliases",), what="aliases") if "aliases" in m else ()
    return Unit(uid, name, kind, aliases) if uid and name and kind else None


def _place(r: Reader, raw: Any, path: tuple, *, district: str | None) -> list[tuple[tuple, Unit, Any]]:
    """A district with its streets (``district`` None), or one street; each as (path, unit, raw police ref)."""
    if district is None:
        required, optional = ("id", "name", "streets"), ("aliases", "landmarks", "police", "government")
    else:
        required, optional = ("id", "name", "kind"), ("aliases", "landmarks", "police")
    m = r.mapping(raw, path, required=required, optional=optional)
    if m is None:
        return []
    uid = r.text(m.get("id"), path + ("id",), pattern=_ID, what="place id (lowercase letters, digits, -)")
    name = r.text(m.get("name"), path + ("name",))
    kind = "district" if district is None else r.choice(m.get("kind"), path + ("kind",), LOCAL_KINDS)
    aliases = word_list(r, m["aliases"], path + ("aliases",), what="aliases") if "aliases" in m else ()
    landmarks = word_list(r, m["landmarks"], path + ("landmarks",), what="landmarks") if "landmarks" in m else ()
    government = r.text(m["government"], path + ("government",)) if "government" in m else None
    out = []
    if uid and name and kind:
        unit_name = government or (name + "政府" if kind == "district" else name)
        out.append((path, Unit(uid, unit_name, kind, aliases, district, None, landmarks, name), m.get("police")))
    if district is None:
        streets = m.get("streets")
        if not isinstance(streets, list) or not streets:
            r.src.problem(path + ("streets",), "expected a non-empty list of streets and townships")
            streets = []
        for i, item in enumerate(streets):
            out += _place(r, item, path + ("streets", i), district=uid)
    return out


def _matter(r: Reader, raw: Any, path: tuple, units: dict) -> Matter | None:
    m = r.mapping(raw, path, required=("id", "name", "keywords", "dispatch", "to"), optional=("with_any", "urgent"))
    if m is None:
        return None
    mid = r.text(m.get("id"), path + ("id",), pattern=_ID, what="matter id (lowercase letters, digits, -)")
    name = r.text(m.get("name"), path + ("name",))
    keywords = word_list(r, m.get("keywords"), path + ("keywords",))
    with_any = word_list(r, m["with_any"], path + ("with_any",)) if "with_any" in m else ()
    mode = r.choice(m.get("dispatch"), path + ("dispatch",), DISPATCH_MODES)
    to = _targets(r, m.get("to"), path + ("to",), units, mode)
    urgent = r.choice(m["urgent"], path + ("urgent",), URGENT_WHEN) if "urgent" in m else None
    if None in (mid, name, mode, to) or not keywords:
        return None
    return Matter(mid, name, keywords, mode, to, with_any, urgent)


def _targets(r: Reader, value: Any, path: tuple, units: dict, mode: str | None) -> tuple | None:
    if not isinstance(value, list) or not value:
        r.src.problem(path, "expected a list of units (unit ids, or street / district / police)")
        return None
    out = []
    for i, raw in enumerate(value):
        target = r.text(raw, path + (i,))
        if target is None:
            return None
        if target not in units and target not in PLACE_TARGETS:
            hint = difflib.get_close_matches(target, sorted(units) + list(PLACE_TARGETS), n=1)
            r.src.problem(path + (i,), f"unknown unit {target!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            return None
        if target in out:
            r.src.problem(path + (i,), f"{target!r} is listed twice")
            return None
        out.append(target)
    wanted = {"direct": 1, "dual": 2}.get(mode or "")
    if wanted and len(out) != wanted:
        r.src.problem(path, f"{mode} dispatch goes to {wanted} unit(s), not {len(out)}")
        return None
    return tuple(out)


def _month_day(r: Reader, value: Any, path: tuple) -> tuple[int, int] | None:
    text = r.text(value, path, pattern=_MONTH_DAY, what="month-day (MM-DD, quoted)")
    return (int(text[:2]), int(text[3:])) if text else None


def _catalogue(src: yamlsrc.Source) -> Catalogue | None:
    r = Reader(src)
    top = r.mapping(src.data, (), required=("city", "version", "police", "units", "places", "matters", "escalation"),
                    optional=("heating_season", "timezone"))
    if top is None:
        return None
    units: dict[str, Unit] = {}
    seen_at: dict[str, tuple] = {}

    def add(path: tuple, unit: Unit) -> None:
        if unit.id in PLACE_TARGETS:
            r.src.problem(path + ("id",), f"{unit.id!r} is reserved (matters use it for the request's place)")
            return
        if unit.id in units:
            r.src.problem(path + ("id",), f"duplicate id {unit.id!r} (also at line {src.line_of(seen_at[unit.id])})")
            return
        units[unit.id], seen_at[unit.id] = unit, path + ("id",)

    raw_units = top.get("units")
    if not isinstance(raw_units, list) or not raw_units:
        src.problem(("units",), "expected a non-empty list of units")
        raw_units = []
    for i, raw in enumerate(raw_units):
        unit = _unit(r, raw, ("units", i), tuple(k for k in UNIT_KINDS if k not in ("district",) + LOCAL_KINDS))
        if unit:
            add(("units", i), unit)
    raw_places = top.get("places")
    if not isinstance(raw_places, list) or not raw_places:
        src.problem(("places",), "expected a non-empty list of districts")
        raw_places = []
    police_refs = []
    for i, raw in enumerate(raw_places):
        for path, unit, police in _place(r, raw, ("places", i), district=None):
            add(path, unit)
            police_refs.append((path, unit, police))
    for path, unit, police in police_refs:  # after all units are known
        if police is not None and r.ref(police, path + ("police",), units, "unit"):
            if units[str(police)].kind != "police":
                src.problem(path + ("police",), f"{police!r} is not a police unit")
            else:
                units[unit.id] = replace(unit, police=str(police))
    _check_names(src, units, seen_at)
    police = r.ref(top.get("police"), ("police",), units, "unit")
    if police and units[police].kind != "police":
        src.problem(("police",), f"{police!r} is not a police unit")
    matters, ids = [], set()
    raw_matters = top.get("matters")
    if not isinstance(raw_matters, list) or not raw_matters:
        src.problem(("matters",), "expected a non-empty list of matters")
        raw_matters = []
    for i, raw in enumerate(raw_matters):
        matter = _matter(r, raw, ("matters", i), units)
        if matter and matter.id in ids:
            src.problem(("matters", i, "id"), f"duplicate matter id {matter.id!r}")
        elif matter:
            ids.add(matter.id)
            matters.append(matter)
    escalations, escalation_to = _escalation(r, top.get("escalation"), units)
    season = ((11, 15), (3, 15))
    if "heating_season" in top:
        hs = r.mapping(top["heating_season"], ("heating_season",), required=("start", "end"))
        if hs is not None:
            season = (_month_day(r, hs.get("start"), ("heating_season", "start")),
                      _month_day(r, hs.get("end"), ("heating_season", "end")))
    timezone = r.text(top.get("timezone", "Asia/Shanghai"), ("timezone",))
    try:
        ZoneInfo(timezone or "Asia/Shanghai")
    except (ValueError, LookupError):  # ZoneInfoNotFoundError is a KeyError
        src.problem(("timezone",), f"unknown time zone {timezone!r}")
    if src.problems:
        return None
    return Catalogue(str(top["city"]), str(top["version"]), units, tuple(matters), escalations, escalation_to,
                     police, season, timezone)


def _check_names(src: yamlsrc.Source, units: dict, seen_at: dict) -> None:
    """A name, alias or landmark must point to one unit, or matching would be a coin toss."""
    owner: dict[str, str] = {}
    for unit in units.values():
        for word in {normalize(w) for w in (unit.name, *unit.place_words)}:
            if word in owner and owner[word] != unit.id:
                src.problem(seen_at[unit.id][:-1], f"the name {word!r} is used by {owner[word]!r} and {unit.id!r}")
            owner.setdefault(word, unit.id)


def _escalation(r: Reader, raw: Any, units: dict) -> tuple[tuple, tuple]:
    path = ("escalation",)
    m = r.mapping(raw, path, required=("to", *ESCALATIONS))
    if m is None:
        return (), ()
    to = _targets(r, m.get("to"), path + ("to",), units, "dual") or ()
    out = []
    for kind, label in ESCALATIONS.items():
        if kind in m:
            words = word_list(r, m[kind], path + (kind,), what="words")
            if words:
                out.append(Escalation(kind, label, words))
    return tuple(out), to


def read_source(path: Path | str) -> yamlsrc.Source:
    """:func:`yamlsrc.read`, with a value the safe constructor cannot build (``2027-13-01``) reported, not raised."""
    try:
        return yamlsrc.read(Path(path))
    except ValueError as exc:
        return _unbuildable(str(path), exc)


def parse_source(text: str, file: str) -> yamlsrc.Source:
    try:
        return yamlsrc.parse(text, file)
    except ValueError as exc:
        return _unbuildable(file, exc)


def _unbuildable(file: str, exc: ValueError) -> yamlsrc.Source:
    src = yamlsrc.Source(file=file)
    src.problems.append(yamlsrc.ConfigProblem(file, None, "", f"a value is not valid ({exc}); quote it if it is text"))
    return src


def load_catalogue(path: Path | str) -> Catalogue:
    """Load and validate ``catalogue.yaml``; raise ConfigError listing every problem."""
    return _build(read_source(path))


def parse_catalogue(text: str, file: str = "catalogue.yaml") -> Catalogue:
    """Validate a catalogue given as text (an admin's proposed change); same errors as the loader."""
    return _build(parse_source(text, file))


def _build(src: yamlsrc.Source) -> Catalogue:
    catalogue = _catalogue(src) if not src.problems else None
    if src.problems or catalogue is None:
        raise ConfigError(src.problems or [yamlsrc.ConfigProblem(src.file, None, "", "invalid")])
    return catalogue


def as_date(value: Any) -> date | None:
    """A YAML date (unquoted 2027-01-10) or the same text quoted."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None
