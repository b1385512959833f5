"""The supervision files that ``gateway config check`` validates beside hotlines.yaml and flows/.

Each file is read by the same loader the gateway uses at start, so the check refuses exactly what
the gateway would refuse (a misspelt key, a value out of range, broken YAML), every problem with
its file, line and key: ``config/warnings.yaml`` (early warnings), ``config/reports.yaml`` (the
scheduled reports) and ``config/supervision.yaml`` (``figures:`` and ``rates:``). A file that is
absent is fine: its documented defaults apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gateway.errors import ConfigError
from gateway.ivr_flows.yamlsrc import ConfigProblem
from gateway.supervision.figures import load_figures
from gateway.supervision.rates_config import load_rates
from gateway.supervision.report_config import load_reports_config
from gateway.supervision.warnings import load_settings

CHECKS: tuple[tuple[str, Callable], ...] = (
    ("warnings.yaml", load_settings),
    ("reports.yaml", load_reports_config),
    ("supervision.yaml", load_figures),
    ("supervision.yaml", load_rates),
)


def check(directory: Path | str) -> tuple[list[str], list[ConfigProblem]]:
    """(the files present and checked, every problem found in them)."""
    directory = Path(directory)
    files: list[str] = []
    problems: list[ConfigProblem] = []
    seen: set[tuple] = set()
    for name, load in CHECKS:
        path = directory / name
        if not path.exists():
            continue
        if name not in files:
            files.append(name)
        try:
            load(path)
        except ConfigError as exc:
            for p in exc.problems:  # a YAML error of supervision.yaml is found by both its readers: once
                key = (p.file, p.line, p.field, p.message)
                if key not in seen:
                    seen.add(key)
                    problems.append(p)
    return files, problems
