"""The responsibility catalogue (接诉即办职责目录): who handles which matter, where.

``config/catalogue.yaml`` names the handling units (city departments, police,
public-service enterprises), the places (districts with their streets and
townships, each with a few landmark and community names; every district and
street is a unit too), the matters (keywords -> units and dispatch mode) and
the escalation rule: sudden, mass or extreme requests (突发性、群体性、极端性) go
to the police and the local government at once.

The file is read and checked by :mod:`gateway.desk.catalogue_load`. The lookups
below are pure text matching on normalised text (NFKC, no spaces, lower case):
what matched is always returned, so the desk can show why it suggests what it
suggests.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo


UNIT_KINDS = ("street", "township", "district", "city_department", "police", "enterprise")
LOCAL_KINDS = ("street", "township")
DISPATCH_MODES = ("direct", "dual")
# Targets resolved from the place of the request instead of naming a unit.
PLACE_TARGETS = ("street", "district", "police")
URGENT_WHEN = ("always", "heating_season")
ESCALATIONS = {"sudden": "突发性", "mass": "群体性", "extreme": "极端性"}
# "几十户", "上百人", "二十多户", "30户": a count of households or people makes a request mass (群体性).
_CROWD = re.compile(r"(?:(?:[几数上]|[二两三四五六七八九])?[十百千][几多来]?|\d{2,}多?)(?:户|个人|人|名|位|家)")


# -- text ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # catalogue words are normalised again and again
def normalize(text: str | None) -> str:
    """NFKC (full-width -> ASCII), whitespace removed (ASR puts spaces between words), lower case."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or "")).lower()


def find_all(text: str, words) -> list[str]:
    """The ``words`` found in normalised ``text``, in order of appearance.

    A word found only as part of a longer found word ("三里屯" in "三里屯街道") is left out.
    """
    found = {w: text.find(normalize(w)) for w in words if normalize(w) and normalize(w) in text}
    keep = [w for w in found if not any(normalize(w) != normalize(v) and normalize(w) in normalize(v) for v in found)]
    return sorted(keep, key=lambda w: (found[w], -len(w)))


# -- model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    district: str | None = None  # streets and townships: the district's unit id
    police: str | None = None  # districts and streets: the local police unit id
    landmarks: tuple[str, ...] = ()  # districts and streets: names that place a request here
    place_name: str | None = None  # districts and streets: the place as said ("朝阳区")

    @property
    def place_words(self) -> tuple[str, ...]:
        return tuple(w for w in (self.place_name, *self.aliases, *self.landmarks) if w)


@dataclass(frozen=True)
class Matter:
    id: str
    name: str
    keywords: tuple[str, ...]
    mode: str  # direct | dual
    to: tuple[str, ...]  # unit ids or place targets (street, district, police)
    with_any: tuple[str, ...] = ()  # if set, one of these must be said too ("施工" + "半夜")
    urgent: str | None = None  # always | heating_season


@dataclass(frozen=True)
class Escalation:
    kind: str  # sudden | mass | extreme
    label: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class PlaceHit:
    district: Unit | None
    street: Unit | None  # a street or township
    matched: tuple[str, ...]

    @property
    def label(self) -> str:
        return "".join(u.place_name or u.name for u in (self.district, self.street) if u)


@dataclass(frozen=True)
class MatterHit:
    matter: Matter
    matched: tuple[str, ...]


@dataclass(frozen=True)
class EscalationHit:
    escalation: Escalation
    matched: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    city: str
    version: str
    units: dict  # id -> Unit
    matters: tuple[Matter, ...]
    escalations: tuple[Escalation, ...]
    escalation_to: tuple[str, ...]
    police: str  # fallback police unit id
    heating_season: tuple[tuple[int, int], tuple[int, int]] = ((11, 15), (3, 15))
    timezone: str = "Asia/Shanghai"

    def unit(self, unit_id: str) -> Unit:
        return self.units[unit_id]

    def find_place(self, text: str) -> PlaceHit | None:
        """The district and street named in ``text`` (by name, alias, landmark or community)."""
        text = normalize(text)
        districts = [u for u in self.units.values() if u.kind == "district" and find_all(text, u.place_words)]
        streets = []
        for unit in self.units.values():
            if unit.kind in LOCAL_KINDS:
                words = find_all(text, unit.place_words)
                if words:
                    in_named = any(d.id == unit.district for d in districts)
                    streets.append((not in_named, -len(words), text.find(normalize(words[0])), unit, words))
        if not districts and not streets:
            return None
        street = min(streets, key=lambda s: s[:3])[3] if streets else None
        district = self.units[street.district] if street else min(districts, key=lambda d: _first(text, d))
        matched = find_all(text, district.place_words) + (find_all(text, street.place_words) if street else [])
        return PlaceHit(district, street, tuple(sorted(set(matched), key=lambda w: text.find(normalize(w)))))

    def find_matters(self, text: str) -> list[MatterHit]:
        """Matters whose keywords (and one of ``with_any``, if set) are in ``text``; most specific first."""
        text = normalize(text)
        hits = []
        for order, matter in enumerate(self.matters):
            words = find_all(text, matter.keywords)
            extra = find_all(text, matter.with_any) if matter.with_any else []
            if words and (extra or not matter.with_any):
                hits.append((-(len(words) + len(extra)), order, MatterHit(matter, tuple(words + extra))))
        return [hit for *_, hit in sorted(hits, key=lambda h: h[:2])]

    def find_escalations(self, text: str) -> list[EscalationHit]:
        text = normalize(text)
        out = []
        for esc in self.escalations:
            words = find_all(text, esc.words)
            if esc.kind == "mass":
                words += [m.group(0) for m in _CROWD.finditer(text) if m.group(0) not in words]
            if words:
                out.append(EscalationHit(esc, tuple(words)))
        return out

    def unit_for_department(self, name: str | None) -> Unit | None:
        """The unit a line's department names (by unit name or alias)."""
        key = normalize(name)
        if not key:
            return None
        for unit in self.units.values():
            if key in {normalize(w) for w in (unit.name, *unit.aliases)}:
                return unit
        return None

    def resolve(self, target: str, place: PlaceHit | None) -> tuple[Unit | None, str | None]:
        """A matter's target as a unit, and a note when it had to fall back (street -> district)."""
        if target not in PLACE_TARGETS:
            return self.units[target], None
        street, district = (place.street, place.district) if place else (None, None)
        if target == "street":
            if street:
                return street, None
            if district:
                return district, f"未识别街道乡镇，改派 {district.name}"
            return None, "地点未识别，请向来电人确认属地街道乡镇"
        if target == "district":
            if district:
                return district, None
            return None, "地点未识别，请向来电人确认所在区"
        local = next((u.police for u in (street, district) if u and u.police), None)
        return self.units[local or self.police], None if local else "未识别属地派出所，派 " + self.units[self.police].name

    def in_heating_season(self, when: datetime | date | None) -> bool:
        if when is None:
            return False
        if isinstance(when, datetime) and when.tzinfo is not None:
            when = when.astimezone(ZoneInfo(self.timezone))
        day = (when.month, when.day)
        start, end = self.heating_season
        return day >= start or day <= end if start > end else start <= day <= end


def _first(text: str, unit: Unit) -> int:
    return min(text.find(normalize(w)) for w in find_all(text, unit.place_words))
