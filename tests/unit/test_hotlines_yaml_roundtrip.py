"""A text an admin sets through a change is read back as that text.

ruamel writes YAML 1.2 (``on``, ``yes``, ``1:30`` are plain text there) while the
configuration reader types plain values as YAML 1.1 does (``on`` is true, ``1:30`` is 90):
written plain, a greeting "yes" came back as a boolean and was refused, or worse, taken.
"""

from __future__ import annotations

import pytest

from gateway.hotlines import changes
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.validate import config_from_files, read_files
from tests.unit.test_config_validation import CONFIG

AMBIGUOUS = ["yes", "on", "Off", "1:30", "0777", "2027-01-01", "1.5", "~", "null", "0x1F"]


@pytest.mark.parametrize("text", AMBIGUOUS)
def test_given_a_text_yaml_1_1_would_type_when_dumped_then_it_is_quoted_and_read_back_as_text(text):
    assert not yamlsrc.reads_as_text(text)
    out = changes.dump({"greeting": text, "plain": "您好，12345", "number": 7, "flag": True})
    source = yamlsrc.parse(out, "hotlines.yaml")
    assert not source.problems
    assert source.data == {"greeting": text, "plain": "您好，12345", "number": 7, "flag": True}


@pytest.mark.parametrize("text", ["yes", "1:30"])
def test_given_a_line_greeting_changed_to_such_a_text_then_the_configuration_keeps_it(text):
    files = read_files(CONFIG)
    doc = changes.parse(files["hotlines.yaml"])
    number = next(n for n, line in ((str(x["number"]), x) for x in doc["lines"]) if line.get("greeting"))
    new = changes.apply_change(doc, {"op": "update_line", "number": number, "fields": {"greeting": text}})
    config = config_from_files({**files, "hotlines.yaml": changes.dump(new)})
    assert config.lines[number].greeting == text
