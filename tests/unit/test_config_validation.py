"""Broken configurations are refused whole, with file, line and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.ivr_flows.validate import load_config

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _break(config_dir: Path, old: str, new: str, file: str = "hotlines.yaml") -> None:
    path = config_dir / file
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(config_dir: Path, needle: str, file: str = "hotlines.yaml", nth: int = 1) -> int:
    hits = [number for number, line in enumerate((config_dir / file).read_text(encoding="utf-8").splitlines(), 1)
            if needle in line]
    assert len(hits) >= nth, needle
    return hits[nth - 1]


def _problems(config_dir: Path):
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    return caught.value.problems


def test_given_the_shipped_config_when_loaded_then_it_has_every_merge_mode():
    config = load_config(CONFIG)
    modes = {line.mode for line in config.lines.values()}
    assert modes == {"primary", "retired", "dual_number", "sub_centre"}
    assert len([n for n in config.lines if n != "12345"]) >= 6


def test_given_an_unknown_key_when_loaded_then_refused_with_line_and_field(config_dir):
    _break(config_dir, "    department: 市城市管理委员会\n", "    department: 市城市管理委员会\n    queu: q-general\n")
    (problem,) = _problems(config_dir)
    assert problem.file.endswith("hotlines.yaml")
    assert problem.field == "lines[1].queu" and problem.line == _line_of(config_dir, "queu: q-general")
    assert "unknown key" in problem.message


def test_given_a_duplicate_number_when_loaded_then_refused(config_dir):
    _break(config_dir, '  - number: "12358"', '  - number: "12319"')
    (problem,) = _problems(config_dir)
    assert problem.field == "lines[2].number" and "duplicate number '12319'" in problem.message
    assert problem.line == _line_of(config_dir, '- number: "12319"', nth=2)  # the second occurrence


@pytest.mark.parametrize("number", ["110", "119", "120", "122"])
def test_given_an_emergency_number_as_a_line_when_loaded_then_refused(config_dir, number):
    _break(config_dir, '  - number: "12360"', f'  - number: "{number}"')
    (problem,) = _problems(config_dir)
    assert problem.field == "lines[6].number" and "emergency number" in problem.message
    assert problem.line == _line_of(config_dir, f'- number: "{number}"')


def test_given_a_misspelt_mode_when_loaded_then_refused_with_a_suggestion(config_dir):
    _break(config_dir, "    mode: sub_centre\n", "    mode: sub_center\n")
    (problem,) = _problems(config_dir)
    assert problem.field == "lines[5].mode" and "did you mean 'sub_centre'" in problem.message
    assert problem.line == _line_of(config_dir, "mode: sub_center")


def test_given_several_errors_when_loaded_then_all_are_reported(config_dir):
    _break(config_dir, "    mode: retired\n", "    mode: retird\n")
    _break(config_dir, "    queue: q-12369\n", "    queue: q-nowhere\n")
    _break(config_dir, '  - number: "12360"', '  - number: "122"')
    fields = sorted(p.field for p in _problems(config_dir))
    assert fields == ["lines[1].mode", "lines[4].queue", "lines[6].number"]


@pytest.mark.parametrize("old,new,field,message", [
    ("    queue: q-12315\n", "", "lines[3]", "missing required key 'queue'"),
    ('      mon: ["08:30-12:00", "13:00-17:30"]\n', '      mon: ["08:30-32:00"]\n', "schedules.office.weekly.mon[0]", "not a range"),
    ('  q-help: {label: 求助, members: ["8002", "8003"]}', '  q-help: {label: 求助, members: ["9999"]}', "queues.q-help.members[0]", "unknown agent"),
    ("    hours: office\n", "    hours: nights\n", "lines[5].hours", "unknown schedule"),
    ("timezone: Asia/Shanghai\n", "timezone: Asia/Shanghai\nlines: []\n", "lines", "duplicate key"),
])
def test_given_a_broken_field_when_loaded_then_refused_naming_it(config_dir, old, new, field, message):
    _break(config_dir, old, new)
    problems = _problems(config_dir)
    assert any(p.field == field and message in p.message for p in problems), [str(p) for p in problems]


def test_given_hours_that_never_open_when_loaded_then_refused(config_dir):
    text = (config_dir / "hotlines.yaml").read_text(encoding="utf-8")
    start = text.index("  office:")
    end = text.index("\n\n", start)
    (config_dir / "hotlines.yaml").write_text(text[:start] + "  office:\n    weekly: {}" + text[end:], encoding="utf-8")
    problems = _problems(config_dir)
    assert any(p.field == "schedules.office.weekly" and "never open" in p.message for p in problems)


def test_given_a_flow_with_a_dangling_node_when_loaded_then_refused(config_dir):
    _break(config_dir, "    next: to_queue\n", "    next: to_nowhere\n", file="flows/main.yaml")
    (problem,) = _problems(config_dir)
    assert problem.file.endswith("main.yaml") and problem.field == "nodes.tell_number.next"
    assert "unknown node 'to_nowhere'" in problem.message


@pytest.mark.parametrize("text,message", [
    ("lines: [\n", "not valid YAML"),
    ("", "empty"),
    ("!!python/object/apply:os.system ['true']\n", "not allowed"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_given_garbage_yaml_when_loaded_then_refused_without_executing_anything(config_dir, text, message):
    (config_dir / "hotlines.yaml").write_text(text, encoding="utf-8")
    problems = _problems(config_dir)
    assert any(message in p.message for p in problems), [str(p) for p in problems]


def test_given_the_cli_when_config_is_broken_then_it_exits_1_and_names_file_line_field(config_dir):
    _break(config_dir, "    mode: dual_number\n", "    mode: dual\n")
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "config", "check", str(config_dir), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    (error,) = json.loads(proc.stdout)["errors"]
    assert error["field"] == "lines[3].mode" and error["line"] == _line_of(config_dir, "mode: dual")
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "config", "check", str(config_dir)],
                          capture_output=True, text=True, timeout=60)
    assert f"hotlines.yaml:{error['line']}: lines[3].mode:" in proc.stderr


def test_given_the_cli_when_config_is_good_then_it_exits_0():
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "config", "check", str(CONFIG)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "OK" in proc.stdout


def test_given_an_impossible_unquoted_date_when_parsed_then_a_problem_with_its_line_not_a_crash():
    from gateway.ivr_flows import yamlsrc

    src = yamlsrc.parse("a: 1\nholidays: [2027-13-01]\n", "x.yaml")
    assert len(src.problems) == 1 and src.problems[0].line == 2 and "2027-13-01" in src.problems[0].message


def test_given_an_empty_value_when_parsed_then_it_is_null_not_an_error():
    from gateway.ivr_flows import yamlsrc

    src = yamlsrc.parse("workers:\nname: x\n", "x.yaml")
    assert src.problems == [] and src.data == {"workers": None, "name": "x"}
