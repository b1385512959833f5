"""``config/reports.yaml``: when the reports are made, where they are kept, for how long.

Strict like every file of config/: an unknown or misspelt key, a bad time or a number out of
range is a problem with file, line and field (:class:`gateway.errors.ConfigError`); a missing
file means :data:`DEFAULTS` (the values written out in the shipped file).

Times are the centre's local time (``hotlines.yaml``'s ``timezone``) and must be quoted
("01:30"): unquoted, YAML 1.1 reads 01:30 as the number 90.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path, PurePosixPath
from typing import Any

from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import Reader
from gateway.supervision.report_tables import REPORT_KINDS

FILE = "reports.yaml"
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_DIR = re.compile(r"^(?!/)(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9_./-]{1,200}$")
TIME_WHAT = "time of day (HH:MM, quoted)"
DIR_WHAT = "archive directory (a relative path without ..)"


@dataclass(frozen=True)
class ReportsConfig:
    enabled: bool = True
    # When each report is made (local time): the day after, on Mondays, on the 1st.
    schedule: dict = field(default_factory=lambda: {"daily": time(1, 0), "weekly": time(2, 0), "monthly": time(3, 0)})
    archive_dir: str = "reports"  # under the instance dir (Settings.instance_dir)
    # Days an archived report is kept (0: for ever); the job deletes older rows and files.
    retention_days: dict = field(default_factory=lambda: {"daily": 400, "weekly": 1100, "monthly": 3700})
    # How many missed periods the job makes up after a restart (never before the first call recorded).
    catch_up: dict = field(default_factory=lambda: {"daily": 7, "weekly": 4, "monthly": 3})
    top: int = 10  # rows of a ranking (districts, matters, hot spots)
    hot_spot_min: int = 2  # a matter × place needs this many tickets to be a hot spot (never one caller alone)
    overdue_max: int = 50  # overdue tickets listed (all are counted)
    comments_max: int = 30  # satisfaction comments quoted (confidential callers' never)

    def archive_path(self, instance_dir: Path) -> Path:
        return Path(instance_dir) / self.archive_dir


DEFAULTS = ReportsConfig()


def _per_kind(r: Reader, raw: Any, path: tuple, *, low: int, high: int, default: dict) -> dict:
    m = r.mapping(raw, path, optional=REPORT_KINDS) or {}
    out = dict(default)
    for kind in REPORT_KINDS:
        if kind in m:
            value = m[kind]
            if isinstance(value, float) or isinstance(value, bool):
                r.src.problem(path + (kind,), f"expected a whole number, got {type(value).__name__}")
                continue
            n = r.number(value, path + (kind,), low=low, high=high)
            if n is not None:
                out[kind] = int(n)
    return out


def _whole(r: Reader, top: dict, key: str, *, low: int, high: int, default: int) -> int:
    if key not in top:
        return default
    value = top[key]
    if isinstance(value, float) or isinstance(value, bool):
        r.src.problem((key,), f"expected a whole number, got {type(value).__name__}")
        return default
    n = r.number(value, (key,), low=low, high=high)
    return default if n is None else int(n)


def config_from_source(src: yamlsrc.Source) -> ReportsConfig:
    if src.problems:
        raise ConfigError(src.problems)
    r = Reader(src)
    keys = ("version", "enabled", "schedule", "archive_dir", "retention_days", "catch_up", "top", "hot_spot_min",
            "overdue_max", "comments_max")
    top = r.mapping(src.data if src.data is not None else {}, (), optional=keys) or {}
    d = DEFAULTS
    enabled = d.enabled
    if "enabled" in top:
        if isinstance(top["enabled"], bool):
            enabled = top["enabled"]
        else:
            r.src.problem(("enabled",), f"expected true or false, got {type(top['enabled']).__name__}")
    schedule = dict(d.schedule)
    for kind, raw in (r.mapping(top.get("schedule", {}), ("schedule",), optional=REPORT_KINDS) or {}).items():
        if kind in REPORT_KINDS:
            text = r.text(raw, ("schedule", kind), pattern=_TIME, what=TIME_WHAT)
            if text:
                schedule[kind] = time(int(text[:2]), int(text[3:]))
    archive_dir = d.archive_dir
    if "archive_dir" in top:
        text = r.text(top["archive_dir"], ("archive_dir",), pattern=_DIR, what=DIR_WHAT)
        if text:
            archive_dir = str(PurePosixPath(text))
    cfg = ReportsConfig(
        enabled=enabled, schedule=schedule, archive_dir=archive_dir,
        retention_days=_per_kind(r, top.get("retention_days", {}), ("retention_days",), low=0, high=36500,
                                 default=d.retention_days),
        catch_up=_per_kind(r, top.get("catch_up", {}), ("catch_up",), low=0, high=366, default=d.catch_up),
        top=_whole(r, top, "top", low=1, high=100, default=d.top),
        hot_spot_min=_whole(r, top, "hot_spot_min", low=2, high=1000, default=d.hot_spot_min),
        overdue_max=_whole(r, top, "overdue_max", low=0, high=1000, default=d.overdue_max),
        comments_max=_whole(r, top, "comments_max", low=0, high=500, default=d.comments_max),
    )
    if src.problems:
        raise ConfigError(src.problems)
    return cfg


def parse_reports_config(text: str, file: str = FILE) -> ReportsConfig:
    return config_from_source(yamlsrc.parse(text, file))


def load_reports_config(path: Path | str) -> ReportsConfig:
    """``config/reports.yaml`` validated; :data:`DEFAULTS` when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return DEFAULTS
    return config_from_source(yamlsrc.read(path))
