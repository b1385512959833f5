"""Early warnings (苗头性、风险性诉求预警): surges and repeated demands, as pure functions (no I/O but the loader).

Theory of operation
-------------------
**What is counted.** A decided ticket (``submitted`` or ``answered``) as resolved once for the
rates, the warnings and the reports by :mod:`gateway.supervision.places` (table
``ticket_places``): the **matter** — the first matter of the responsibility catalogue
(``config/catalogue.yaml``) its summary names, else its request type (``type:投诉``,
"投诉（未归入事项）"); the **place** — the street/township and district the
catalogue finds in the ticket's ``place`` field (what the agent typed or confirmed), its
dispatch units (a street or a district is a unit) and its summary, in that order; and the
**address**, the ``place`` text normalised (NFKC, no spaces or punctuation). The caller's words
(transcript) are not read: the agent's decision is what the hotline stands by. A ticket with no
place found counts for neither level. The time of a ticket is when its call came in
(``created_at``, kept as its ``hour``).

**Surges** (:func:`detect_surges`). For every key *matter × street* and *matter × district*,
the count ``c`` in the current window (the last ``window_hours``, default 24 h, ending at the
run) is compared with the same key's own baseline: the mean ``m`` of the counts in the
``baseline_windows`` windows of the same length before it (default 28: four weeks of days, so
the time of day is the same in every window). Under "nothing is happening" the count is taken as
Poisson with mean ``λ = max(m, baseline_floor)`` (the floor, default 0.2 a window, keeps a key
that was silent for four weeks from alarming on two tickets). The key **alerts** when all three
hold:

* ``P(X ≥ c | λ) < alpha / K`` — the Poisson upper tail, with ``alpha`` (default 0.001)
  shared Bonferroni-style over the ``K`` keys tested in the run (every key with a ticket in the
  current window or its baseline; ``bonferroni: false`` tests each key at ``alpha``);
* ``c ≥ min_count`` (default 5): a handful of tickets is no surge however rare the matter;
* ``c / λ ≥ min_ratio`` (default 3): large keys (hundreds a day) have tiny Poisson tails for
  ordinary swings; a surge must also be a multiple of the usual.

Why Poisson and not EWMA: counts per matter and street are small (0-10 a day), where a normal
approximation (EWMA/Shewhart limits) is badly wrong and a Poisson tail is exact; the baseline
is a plain mean over whole windows of the same length, so the daily cycle cancels, and the
weekly cycle (fewer requests at weekends) is a factor of 1.5-2 that ``min_ratio`` absorbs.
Each knob is in ``config/warnings.yaml``. Baseline windows that start before the first ticket
the gateway ever classified are left out (a new installation has no history), and a key is
tested only with at least ``min_baseline_windows`` (default 7) of them.

A district alert of a matter is dropped when a street of that district alerts for the same
matter in the same run: the street is the narrower place and says the same thing.

**Repeated demands** (:func:`detect_repeats`): at least ``min_tickets`` (default 3) tickets of
the same matter about the same address within ``days`` (default 7).

**Alerts are episodes.** A run returns *findings*; the store keeps one alert per subject (kind,
matter, place) while the subject keeps being found: a later run that finds it again updates it
(count, tickets, last seen) instead of making a new one; a run that no longer finds it ends the
episode (a new surge of the same subject later is a new alert). An episode that **grows**
(:func:`grown`: ``grown.min_more`` tickets more than at its last notice, and its count or ratio
``grown.factor`` × the notified one) is not updated silently: the supervisors are notified again
(``warning.grown`` by webhook, "增长" with the old and new counts on the page), an acknowledged
alert becomes open again, and a forwarded one's unit gets ``warning.grown`` by its webhook.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from gateway.desk.catalogue import Catalogue, PlaceHit
from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import Reader, kind_of
from gateway.pii import mask_personal
from gateway.supervision.places import HOUR, hour_of  # noqa: F401 - the detectors' time axis

FILE = "warnings.yaml"
KINDS = ("surge", "repeat")
LEVELS = ("street", "district")
TYPE_PREFIX = "type:"


# -- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SurgeSettings:
    window_hours: int = 24
    baseline_windows: int = 28
    min_baseline_windows: int = 7
    alpha: float = 0.001
    bonferroni: bool = True
    min_count: int = 5
    min_ratio: float = 3.0
    baseline_floor: float = 0.2


@dataclass(frozen=True)
class RepeatSettings:
    min_tickets: int = 3
    days: int = 7


@dataclass(frozen=True)
class GrownSettings:
    """When an open episode is notified again (see :func:`grown`)."""

    min_more: int = 2  # at least this many tickets more than when last notified ...
    factor: float = 1.5  # ... and its count or its ratio at least this multiple of the last notified


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str = ""

    def __repr__(self) -> str:  # never the secret in logs
        return f"Webhook({self.url!r})"


@dataclass(frozen=True)
class WarningSettings:
    enabled: bool = True
    run_every_minutes: float = 15.0
    surge: SurgeSettings = field(default_factory=SurgeSettings)
    repeat: RepeatSettings = field(default_factory=RepeatSettings)
    grown: GrownSettings = field(default_factory=GrownSettings)
    webhook: Webhook | None = None

    @property
    def lookback(self) -> timedelta:
        """How far back a run reads tickets."""
        s = self.surge
        return max(timedelta(hours=s.window_hours * (s.baseline_windows + 1)), timedelta(days=self.repeat.days))


DEFAULTS = WarningSettings()

_INT = {  # key -> (low, high)
    ("surge", "window_hours"): (1, 24 * 7), ("surge", "baseline_windows"): (2, 400),
    ("surge", "min_baseline_windows"): (1, 400), ("surge", "min_count"): (2, 100_000),
    ("repeat", "min_tickets"): (2, 1000), ("repeat", "days"): (1, 90), ("grown", "min_more"): (1, 100_000),
}
_FLOAT = {("surge", "alpha"): (1e-9, 0.1), ("surge", "min_ratio"): (1.0, 1000.0),
          ("surge", "baseline_floor"): (0.01, 100.0), ("run_every_minutes",): (1.0, 24 * 60.0),
          ("grown", "factor"): (1.0, 100.0)}


def _int(r: Reader, value: Any, path: tuple) -> int | None:
    low, high = _INT[path]
    if isinstance(value, bool) or not isinstance(value, int):
        r.src.problem(path, f"expected a whole number, got {kind_of(value)}")
        return None
    n = r.number(value, path, low=low, high=high)
    return None if n is None else int(n)


def _bool(r: Reader, value: Any, path: tuple) -> bool | None:
    if not isinstance(value, bool):
        r.src.problem(path, "expected true or false")
        return None
    return value


def settings_from_source(src: yamlsrc.Source, base_dir: Path | None = None) -> WarningSettings:
    if src.problems:
        raise ConfigError(src.problems)
    r = Reader(src)
    top = r.mapping(src.data if src.data is not None else {}, (),
                    optional=("version", "enabled", "run_every_minutes", "surge", "repeat", "grown",
                              "webhook")) or {}
    out: dict[str, Any] = {}
    if "enabled" in top:
        out["enabled"] = _bool(r, top["enabled"], ("enabled",))
    if "run_every_minutes" in top:
        v = r.number(top["run_every_minutes"], ("run_every_minutes",), low=1.0, high=24 * 60.0)
        out["run_every_minutes"] = None if v is None else float(v)
    for section, cls in (("surge", SurgeSettings), ("repeat", RepeatSettings), ("grown", GrownSettings)):
        if section not in top:
            continue
        names = tuple(cls.__dataclass_fields__)
        raw = r.mapping(top[section], (section,), optional=names) or {}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            path = (section, key)
            if key not in names:
                continue
            if path in _INT:
                values[key] = _int(r, value, path)
            elif path in _FLOAT:
                low, high = _FLOAT[path]
                v = r.number(value, path, low=low, high=high)
                values[key] = None if v is None else float(v)
            else:
                values[key] = _bool(r, value, path)
        out[section] = cls(**{k: v for k, v in values.items() if v is not None})
    if "webhook" in top:
        out["webhook"] = _webhook(r, top["webhook"], base_dir)
    if src.problems:
        raise ConfigError(src.problems)
    settings = WarningSettings(**{k: v for k, v in out.items() if v is not None})
    if settings.surge.min_baseline_windows > settings.surge.baseline_windows:
        src.problem(("surge", "min_baseline_windows"),
                    f"{settings.surge.min_baseline_windows} is out of range 1..{settings.surge.baseline_windows}")
        raise ConfigError(src.problems)
    return settings


def _webhook(r: Reader, raw: Any, base_dir: Path | None) -> Webhook | None:
    m = r.mapping(raw, ("webhook",), required=("url",), optional=("secret_file",))
    if not m or "url" not in m:
        return None
    url = r.text(m["url"], ("webhook", "url"), one_line=True)
    parts = urlsplit(url or "")
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        r.src.problem(("webhook", "url"), f"{url!r} is not an http(s) URL")
        return None
    secret = ""
    if "secret_file" in m:
        name = r.text(m["secret_file"], ("webhook", "secret_file"), one_line=True)
        if name is None:
            return None
        path = Path(name) if Path(name).is_absolute() or base_dir is None else Path(base_dir) / name
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            r.src.problem(("webhook", "secret_file"), f"cannot read: {exc.strerror or exc}")
            return None
        if len(secret) < 16 or not re.fullmatch(r"[\x21-\x7e]+", secret):
            r.src.problem(("webhook", "secret_file"), "the secret must be at least 16 printable characters")
            return None
    return Webhook(url, secret) if url else None


def parse_settings(text: str, file: str = FILE, base_dir: Path | None = None) -> WarningSettings:
    return settings_from_source(yamlsrc.parse(text, file), base_dir)


def load_settings(path: Path | str) -> WarningSettings:
    """``config/warnings.yaml`` validated (every problem with file, line and field); the
    defaults when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return DEFAULTS
    return settings_from_source(yamlsrc.read(path), path.parent)


# -- facts of a ticket ------------------------------------------------------------------------
# A ticket's matter, street, district, address and hour are resolved once, for the rates and the
# reports too, by :mod:`gateway.supervision.places` (table ``ticket_places``); a ticket whose
# summary names no catalogue matter counts under its request type (``type:<request type>``).


def matter_name(catalogue: Catalogue | None, matter: str) -> str:
    if matter.startswith(TYPE_PREFIX):
        return f"{matter[len(TYPE_PREFIX):]}（未归入事项）"
    for m in (catalogue.matters if catalogue else ()):
        if m.id == matter:
            return m.name
    return matter


def responsible_units(catalogue: Catalogue | None, matter: str, street: str | None,
                      district: str | None) -> list[dict]:
    """The units the catalogue would dispatch this matter at this place to (forward suggestions)."""
    if catalogue is None:
        return []
    units = catalogue.units
    d, s = units.get(district) if district else None, units.get(street) if street else None
    found = next((m for m in catalogue.matters if m.id == matter), None)
    targets = found.to if found else ("street",)
    out = []
    for target in targets:
        unit, _ = catalogue.resolve(target, PlaceHit(d, s, ()))
        if target == "street" and unit is None and not s:
            unit = d
        if unit is not None and unit.id not in [u["id"] for u in out]:
            out.append({"id": unit.id, "name": unit.name})
    return out


# -- surges -----------------------------------------------------------------------------------
Key = tuple  # (matter, level, place_id)


@dataclass(frozen=True)
class Surge:
    key: Key
    count: int
    baseline: float  # mean count in the baseline windows
    expected: float  # λ = max(baseline, floor)
    p_value: float
    threshold: float  # alpha / K
    windows: int  # baseline windows used

    @property
    def ratio(self) -> float:
        return self.count / self.expected

    @property
    def subject(self) -> str:
        matter, level, place = self.key
        return f"surge|{matter}|{level}|{place}"


def poisson_tail(count: int, mean: float) -> float:
    """``P(X >= count)`` for X ~ Poisson(mean), summed from ``count`` up (exact for small tails)."""
    if count <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    log_term = -mean + count * math.log(mean) - math.lgamma(count + 1)
    total, k, term = 0.0, count, math.exp(log_term)
    while term > 0 and (term > total * 1e-17 or k < count + mean):
        total += term
        k += 1
        term *= mean / k
        if k > count + 10_000:
            break
    return min(1.0, total)


def window_series(hourly: Iterable[tuple[Key, int, int]], now_hour: int, window_hours: int,
                  windows: int) -> dict[Key, list[int]]:
    """Counts per key in the current window (index 0: hours ``now_hour - W + 1`` .. ``now_hour``) and
    the ``windows`` windows before it (index k: ``k`` windows earlier); ``hourly`` is (key, hour, n)."""
    out: dict[Key, list[int]] = {}
    for key, hour, n in hourly:
        index = (now_hour - hour) // window_hours
        if 0 <= index <= windows:
            out.setdefault(key, [0] * (windows + 1))[index] += n
    return out


def usable_windows(now_hour: int, first_hour: int | None, window_hours: int, windows: int) -> int:
    """How many baseline windows lie wholly after the first ticket ever classified."""
    if first_hour is None:
        return 0
    # baseline window k covers hours now_hour - (k+1)W + 1 .. now_hour - kW
    return max(0, min(windows, (now_hour - first_hour + 1) // window_hours - 1))


def detect_surges(series: dict[Key, list[int]], usable: int, cfg: SurgeSettings,
                  district_of: dict[str, str] | None = None) -> list[Surge]:
    """The keys whose current count is a surge against their own baseline (module header);
    ``district_of`` (street id -> district id) drops a district alert that a street explains."""
    if usable < cfg.min_baseline_windows:
        return []
    tested = {k: v for k, v in series.items() if any(v[:usable + 1])}
    threshold = cfg.alpha / max(1, len(tested)) if cfg.bonferroni else cfg.alpha
    found: list[Surge] = []
    for key, counts in tested.items():
        count = counts[0]
        if count < cfg.min_count:
            continue
        base = sum(counts[1:usable + 1]) / usable
        expected = max(base, cfg.baseline_floor)
        if count / expected < cfg.min_ratio:
            continue
        p = poisson_tail(count, expected)
        if p < threshold:
            found.append(Surge(key, count, round(base, 4), expected, p, threshold, usable))
    explained = {(s.key[0], (district_of or {}).get(s.key[2])) for s in found if s.key[1] == "street"}
    return sorted((s for s in found if s.key[1] != "district" or (s.key[0], s.key[2]) not in explained),
                  key=lambda s: (s.p_value, s.key))


def districts_of(catalogue: Catalogue | None) -> dict[str, str]:
    """Street/township id -> its district's id."""
    return {u.id: u.district for u in catalogue.units.values() if u.district} if catalogue else {}


# -- repeated demands -------------------------------------------------------------------------
@dataclass(frozen=True)
class Repeat:
    matter: str
    address: str
    ticket_ids: tuple[int, ...]

    @property
    def subject(self) -> str:
        return f"repeat|{self.matter}|{self.address}"


def detect_repeats(rows: Iterable[tuple[int, str, str | None]], cfg: RepeatSettings) -> list[Repeat]:
    """``rows`` (ticket id, matter, address) of the last ``cfg.days``: every (matter, address)
    with at least ``cfg.min_tickets`` tickets."""
    groups: dict[tuple[str, str], list[int]] = {}
    for ticket_id, matter, address in rows:
        if address:
            groups.setdefault((matter, address), []).append(ticket_id)
    return [Repeat(m, a, tuple(sorted(ids))) for (m, a), ids in sorted(groups.items())
            if len(ids) >= cfg.min_tickets]


def grown(cfg: GrownSettings, *, notified: int | None, notified_ratio: float | None, count: int,
          ratio: float | None) -> bool:
    """Whether an open episode grew enough to notify the supervisors again: at least ``min_more``
    tickets more than at the last notice, and its count, or its ratio to the baseline (surges),
    at least ``factor`` × the last notified one. An episode never notified (``notified`` None:
    from before this rule) is not."""
    if notified is None or count < notified + cfg.min_more:
        return False
    if count >= notified * cfg.factor:
        return True
    return ratio is not None and notified_ratio is not None and ratio >= notified_ratio * cfg.factor


def mask_place(text: str) -> str:
    """A place as shown to supervisors and in notices: personal numbers masked."""
    return mask_personal(text)[:200]
