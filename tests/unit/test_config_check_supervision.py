"""``gateway config check`` validates the supervision files too (warnings.yaml, reports.yaml,
supervision.yaml): each broken one refused with its file, line and key, all at once, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway.supervision import config_check

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _replace(path: Path, old: str, new: str) -> int:
    """Replace ``old`` once; the 1-based line it is on."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[:text.index(old)].count("\n") + 1


def _cli(config_dir: Path, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "config", "check", str(config_dir), *more],
                          capture_output=True, text=True, timeout=60)


def test_given_the_shipped_config_when_checked_then_ok_and_the_supervision_files_named():
    assert config_check.check(CONFIG) == (["warnings.yaml", "reports.yaml", "supervision.yaml"], [])
    proc = _cli(CONFIG, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["supervision_files"] == ["warnings.yaml", "reports.yaml", "supervision.yaml"]


def test_given_broken_supervision_files_when_checked_then_exit_1_with_file_line_and_key_of_each(config_dir):
    lines = {
        "warnings.yaml": _replace(config_dir / "warnings.yaml", "  window_hours: 24", "  window_hour: 24"),
        "reports.yaml": _replace(config_dir / "reports.yaml", "top: 10", "top: many"),
        "supervision.yaml": _replace(config_dir / "supervision.yaml", "  service_level_seconds: 20",
                                     "  service_level_second: 20"),
    }
    rates_line = _replace(config_dir / "supervision.yaml", "  rank_by: satisfaction", "  rank_by: speed")
    proc = _cli(config_dir, "--json")
    assert proc.returncode == 1
    errors = {(Path(e["file"]).name, e["field"]): e for e in json.loads(proc.stdout)["errors"]}
    assert set(errors) == {("warnings.yaml", "surge.window_hour"), ("reports.yaml", "top"),
                           ("supervision.yaml", "figures.service_level_second"), ("supervision.yaml", "rates.rank_by")}
    assert errors[("warnings.yaml", "surge.window_hour")]["line"] == lines["warnings.yaml"]
    assert errors[("reports.yaml", "top")]["line"] == lines["reports.yaml"]
    assert errors[("supervision.yaml", "figures.service_level_second")]["line"] == lines["supervision.yaml"]
    assert errors[("supervision.yaml", "rates.rank_by")]["line"] == rates_line
    assert all(e["message_zh"] for e in errors.values())
    text = _cli(config_dir)
    assert text.returncode == 1 and "4 error(s); configuration refused" in text.stderr
    assert f"warnings.yaml:{lines['warnings.yaml']}: surge.window_hour: unknown key" in text.stderr, text.stderr


def test_given_a_supervision_file_that_is_not_yaml_when_checked_then_one_problem_not_two(config_dir):
    (config_dir / "supervision.yaml").write_text("figures: [\n", encoding="utf-8")
    files, problems = config_check.check(config_dir)
    assert "supervision.yaml" in files and len(problems) == 1 and "not valid YAML" in problems[0].message


def test_given_a_broken_hotlines_file_and_a_broken_warnings_file_then_both_are_reported(config_dir):
    _replace(config_dir / "warnings.yaml", "  days: 7", "  days: 0")
    _replace(config_dir / "hotlines.yaml", "    mode: dual_number\n", "    mode: dual\n")
    proc = _cli(config_dir, "--json")
    assert proc.returncode == 1
    fields = {(Path(e["file"]).name, e["field"]) for e in json.loads(proc.stdout)["errors"]}
    assert ("warnings.yaml", "repeat.days") in fields and any(f[0] == "hotlines.yaml" for f in fields)
