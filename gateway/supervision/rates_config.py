"""``config/supervision.yaml`` → ``rates:``: how the three rates (三率) are counted.

The file belongs to several supervision features; this module reads and checks only its
``rates:`` section (strictly: a misspelt key is an error with file, line and field) and
leaves the other top-level sections to their owners. Without the file or the section, the
documented defaults below apply. No official formula is claimed (see ../shared/DOMAIN.md):
these are the working definitions centres use, with their weights in configuration::

    响应率 response     = dispatches responded to in time ÷ dispatches due
                          in time: the unit accepted (签收) at or before the dispatch's deadline
                          (gateway/units/deadlines.py), or, with ``within: hours``, within
                          ``hours`` of the dispatch; due: accepted, or its limit has passed
    解决率 resolution   = Σ weight(solved answer) ÷ follow-ups answered (回访 done)
                          default weights: solved 1, unsolved 0
    满意率 satisfaction = Σ weight(satisfaction answer) ÷ follow-ups answered
                          default weights: satisfied (满意) 1, basic (基本满意) 0.8,
                          unsatisfied (不满意) 0

``rank_by`` names the rate a ranking is ordered by (default ``satisfaction``).
``timezone`` is the centre's (periods are local days); default: the hotline configuration's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import Reader

FILE = "supervision.yaml"
RATES = ("response", "resolution", "satisfaction")
RESPONSE_WITHIN = ("deadline", "hours")
SOLVED_KEYS = ("solved", "unsolved")
SATISFACTION_KEYS = ("satisfied", "basic", "unsatisfied")


@dataclass(frozen=True)
class RatesConfig:
    response_within: str = "deadline"  # deadline | hours
    response_hours: float = 2.0  # only with response_within == "hours"
    resolution_weights: dict = field(default_factory=lambda: {"solved": 1.0, "unsolved": 0.0})
    satisfaction_weights: dict = field(default_factory=lambda: {"satisfied": 1.0, "basic": 0.8, "unsatisfied": 0.0})
    rank_by: str = "satisfaction"
    timezone: str | None = None  # None: the hotline configuration's time zone

    def describe(self) -> dict[str, Any]:
        """The formulas as the page and reports show them."""
        s, r = self.satisfaction_weights, self.resolution_weights
        within = ("签收不晚于办理时限 accepted by the deadline" if self.response_within == "deadline"
                  else f"派单后 {self.response_hours:g} 小时内签收 accepted within {self.response_hours:g} h")
        return {
            "response": f"响应率 = 按时响应派单 ÷ 应响应派单（{within}）",
            "resolution": f"解决率 = (已解决×{r['solved']:g} + 未解决×{r['unsolved']:g}) ÷ 有效回访",
            "satisfaction": (f"满意率 = (满意×{s['satisfied']:g} + 基本满意×{s['basic']:g} + 不满意×{s['unsatisfied']:g})"
                             " ÷ 有效回访"),
            "rank_by": self.rank_by,
        }


DEFAULTS = RatesConfig()


def _weights(r: Reader, raw: Any, path: tuple, keys: tuple, defaults: dict) -> dict:
    m = r.mapping(raw, path, optional=keys)
    out = dict(defaults)
    for key, value in (m or {}).items():
        if key in keys:
            n = r.number(value, path + (key,), low=0, high=1)
            if n is not None:
                out[key] = float(n)
    return out


def rates_from_source(src: yamlsrc.Source) -> RatesConfig:
    if src.problems:
        raise ConfigError(src.problems)
    if src.data is None:
        return DEFAULTS
    r = Reader(src)
    if not isinstance(src.data, dict):
        r.mapping(src.data, ())
        raise ConfigError(src.problems)
    if "rates" not in src.data or src.data["rates"] is None:
        return DEFAULTS
    top = r.mapping(src.data["rates"], ("rates",),
                    optional=("response", "resolution", "satisfaction", "rank_by", "timezone")) or {}
    within, hours = DEFAULTS.response_within, DEFAULTS.response_hours
    resp = r.mapping(top.get("response") or {}, ("rates", "response"), optional=("within", "hours")) or {}
    if "within" in resp:
        within = r.choice(resp["within"], ("rates", "response", "within"), RESPONSE_WITHIN) or within
    if "hours" in resp:
        h = r.number(resp["hours"], ("rates", "response", "hours"), low=0.25, high=24 * 30)
        hours = float(h) if h is not None else hours
        if within != "hours":
            path = ("rates", "response", "hours")
            src.problems.append(yamlsrc.ConfigProblem(src.file, src.line_of(path), yamlsrc.field_name(path),
                                                      "hours is only used with within: hours",
                                                      message_zh="仅在 within: hours 时使用 hours"))
    res = r.mapping(top.get("resolution") or {}, ("rates", "resolution"), optional=("weights",)) or {}
    sat = r.mapping(top.get("satisfaction") or {}, ("rates", "satisfaction"), optional=("weights",)) or {}
    res_w = _weights(r, res.get("weights") or {}, ("rates", "resolution", "weights"), SOLVED_KEYS,
                     DEFAULTS.resolution_weights)
    sat_w = _weights(r, sat.get("weights") or {}, ("rates", "satisfaction", "weights"), SATISFACTION_KEYS,
                     DEFAULTS.satisfaction_weights)
    rank_by = DEFAULTS.rank_by
    if "rank_by" in top:
        rank_by = r.choice(top["rank_by"], ("rates", "rank_by"), RATES) or rank_by
    tz = r.zone(top["timezone"], ("rates", "timezone")) if "timezone" in top else None
    if src.problems:
        raise ConfigError(src.problems)
    return RatesConfig(response_within=within, response_hours=hours, resolution_weights=res_w,
                       satisfaction_weights=sat_w, rank_by=rank_by, timezone=tz)


def parse_rates(text: str, file: str = FILE) -> RatesConfig:
    return rates_from_source(yamlsrc.parse(text, file))


def load_rates(path: Path | str) -> RatesConfig:
    """The ``rates:`` section of ``config/supervision.yaml``, validated; the defaults when the
    file or the section is absent."""
    path = Path(path)
    if not path.exists():
        return DEFAULTS
    return rates_from_source(yamlsrc.read(path))
