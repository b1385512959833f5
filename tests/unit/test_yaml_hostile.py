"""Hostile YAML (alias bombs, deep nesting, oversized files) is refused fast, with file, line and field,
by both YAML readers: the validator's (ruamel's events) and the admin changes' (ruamel round trip)."""

from __future__ import annotations

import time

import pytest

from gateway.errors import ConfigError
from gateway.hotlines import changes
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.validate import config_from_files, read_files
from tests.unit.test_config_validation import CONFIG


def laughs(levels: int = 9, width: int = 9) -> str:
    """The classic "billion laughs": ``width ** levels`` (387 million) strings from ~300 bytes."""
    names = "abcdefghijklmnop"[:levels]
    rows = [f"a: &a [{','.join(['x'] * width)}]"]
    rows += [f"{n}: &{n} [{','.join([f'*{p}'] * width)}]" for p, n in zip(names, names[1:])]
    return "\n".join(rows) + "\n"


BOMBS = {
    "billion laughs": laughs(),
    "flow lists 50,000 deep": "[" * 50_000 + "]" * 50_000,
    "flow mappings 50,000 deep": "a: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n",
    "block mappings 600 deep": "".join(" " * i + "a:\n" for i in range(600)) + " " * 600 + "1\n",
    "oversized": "lines: []\n# " + "x" * (300 * 1024) + "\n",
    "too many values": "lines: [" + "1," * 60_000 + "1]\n",
}
REASONS = {
    "billion laughs": "anchors/aliases (&x, *x) are not allowed",
    "flow lists 50,000 deep": "nested deeper than 32 levels",
    "flow mappings 50,000 deep": "nested deeper than 32 levels",
    "block mappings 600 deep": "nested deeper than 32 levels",
    "oversized": "larger than 256 KiB",
    "too many values": "more than 50000 values",
}
# Seconds allowed, loose for a loaded CI machine: unguarded, the expanding ones ran out of memory or
# took 5-28 s; guarded they are refused within milliseconds. "too many values" expands nothing: its
# 50,001st value is refused after reading the 50,000 before it, which costs ruamel's pure-Python
# parser about 2 s on an idle machine (libyaml, before issue 11: 0.2 s).
SECONDS = dict.fromkeys(BOMBS, 3.0) | {"too many values": 15.0}


def test_given_the_bomb_then_it_is_about_300_bytes():
    assert 250 < len(laughs()) < 350


@pytest.mark.parametrize("name", BOMBS)
def test_given_a_hostile_document_when_the_validator_reads_it_then_refused_fast_naming_the_problem(name):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        config_from_files({**read_files(CONFIG), "hotlines.yaml": BOMBS[name]}, origin="proposed")
    elapsed = time.perf_counter() - started
    (problem,) = caught.value.problems
    assert problem.file == "proposed/hotlines.yaml" and REASONS[name] in problem.message, str(problem)
    assert elapsed < SECONDS[name], f"{name} took {elapsed:.2f} s"


@pytest.mark.parametrize("name", BOMBS)
def test_given_a_hostile_document_when_ruamel_would_read_it_then_refused_first_and_fast(name):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        changes.parse(BOMBS[name])
    assert REASONS[name] in str(caught.value)
    assert time.perf_counter() - started < SECONDS[name]


def test_given_an_anchor_when_read_then_the_problem_names_its_line_and_field():
    text = "lines:\n  - number: '12345'\n    name: &n 热线\n  - number: '12366'\n    name: *n\n"
    (problem,) = yamlsrc.parse(text, "hotlines.yaml").problems
    assert (problem.line, problem.field) == (3, "lines[0].name")
    assert "anchors/aliases (&x, *x) are not allowed" in problem.message


def test_given_an_alias_without_an_anchor_when_read_then_refused_as_well():
    (problem,) = yamlsrc.parse("a: 1\nb: *nowhere\n", "x.yaml").problems
    assert problem.line == 2 and ("anchors/aliases" in problem.message or "not valid YAML" in problem.message)


def test_given_nesting_at_the_limit_when_read_then_accepted_and_one_more_level_refused():
    at_limit = "[" * yamlsrc.MAX_DEPTH + "]" * yamlsrc.MAX_DEPTH
    assert yamlsrc.parse(at_limit, "x.yaml").problems == []
    (problem,) = yamlsrc.parse("[" + at_limit + "]", "x.yaml").problems
    assert "nested deeper than 32 levels" in problem.message


def test_given_a_huge_number_in_yaml_when_read_then_a_problem_with_its_line_not_a_crash():
    (problem,) = yamlsrc.parse("a: 1\nb: " + "9" * 5000 + "\n", "x.yaml").problems
    assert problem.line == 2 and problem.field == "b" and len(problem.message) < 400


def test_given_two_documents_when_read_then_refused_as_one_file_holds_one_document():
    (problem,) = yamlsrc.parse("a: 1\n---\nb: 2\n", "x.yaml").problems
    assert "single document" in problem.message


def test_given_the_shipped_configuration_then_it_uses_no_anchors_and_reads_as_plain_yaml():
    from ruamel.yaml import YAML

    for path in sorted(CONFIG.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        src = yamlsrc.parse(text, str(path))
        assert src.problems == [] and src.data == YAML(typ="safe", pure=True).load(text), path
