"""Changes an admin makes to the hotline document (pure: dict in, dict out).

A change is a small JSON object, ``{"op": ..., ...}``; :func:`apply_change` returns
the new ``hotlines.yaml`` document without touching the old one. Whether the
result is a valid configuration is decided afterwards, as a whole, by
:func:`gateway.ivr_flows.validate.config_from_files`, so a change is refused
with the same file/field errors as a hand-edited file.
"""

from __future__ import annotations

import copy
import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from gateway.errors import ConfigError, GatewayError, NotFound
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.validate import LINE_FIELDS  # the keys each merge mode allows


class ChangeError(GatewayError):
    status_code = 400
    error_id = "bad-change"


class Conflict(GatewayError):
    status_code = 409
    error_id = "conflict"


OPS = ("create_line", "update_line", "retire_line", "upsert_queue", "upsert_schedule",
       "set_public_holidays", "add_broadcast", "remove_broadcast", "replace")


def _yaml() -> YAML:
    # Round-trip mode: comments, key order and flow style of the admin's file survive a change,
    # so the diff of a version shows only what changed and the export stays reviewable in git.
    y = YAML(typ="rt")
    y.width = 110
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def parse(text: str) -> dict:
    """``hotlines.yaml`` as ruamel's round-trip document.

    The text is first read by :func:`gateway.ivr_flows.yamlsrc.parse`, which refuses
    anchors/aliases, oversized and too deeply nested files with a line-numbered
    :class:`ConfigError` before ruamel (pure Python, recursive) builds anything.
    """
    if not isinstance(text, str):
        raise ChangeError("hotlines.yaml must be text")
    screened = yamlsrc.parse(text, "hotlines.yaml")
    if screened.problems:
        raise ConfigError(screened.problems)
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise ChangeError(f"hotlines.yaml is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise ChangeError("hotlines.yaml is not a mapping")
    return doc


def dump(doc: dict) -> str:
    """The document as text the configuration reader reads back the same: ruamel writes YAML
    1.2, where ``on``, ``yes`` or ``1:30`` are plain text, but the reader types values as YAML
    1.1 does (``gateway.ivr_flows.yamlsrc``), so such a text is written quoted."""
    out = io.StringIO()
    _yaml().dump(_quote_ambiguous(doc), out)
    return out.getvalue()


def _quote_ambiguous(node: Any) -> Any:
    """``node`` with every plain text value that YAML 1.1 would read as something else quoted
    (in place: round-trip containers keep their comments; the caller's copy is the new document)."""
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = _quote_ambiguous(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            node[index] = _quote_ambiguous(value)
    elif type(node) is str and not yamlsrc.reads_as_text(node):
        return DoubleQuotedScalarString(node)
    return node


def _field(change: dict, name: str, kind=str) -> Any:
    value = change.get(name)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise ChangeError(f"the change needs {name!r} ({getattr(kind, '__name__', kind)})", details={"field": name})
    return value


def _line_index(doc: dict, number: str) -> int:
    for i, line in enumerate(doc.get("lines") or []):
        if isinstance(line, dict) and str(line.get("number")) == number:
            return i
    raise NotFound(f"no line {number} / 没有线路 {number}", details={"field": "number", "number": number})


def _fit_mode(line: dict) -> dict:
    """Drop (in place) the keys the line's (new) mode does not take, e.g. a queue when retiring."""
    mode = line.get("mode")
    if isinstance(mode, str) and mode in LINE_FIELDS:
        required, optional = LINE_FIELDS[mode]
        for key in [k for k in line if k not in set(required) | set(optional)]:
            del line[key]
    return line


def apply_change(doc: dict, change: dict) -> dict:
    """The document after ``change``; raises ChangeError/NotFound/Conflict for a change that cannot apply."""
    if not isinstance(change, dict):
        raise ChangeError("a change is a JSON object with an 'op'")
    op = change.get("op")
    if op not in OPS:
        raise ChangeError(f"unknown op {op!r}; one of {', '.join(OPS)}", details={"field": "op"})
    new = copy.deepcopy(doc)
    lines = new.setdefault("lines", [])
    if op == "create_line":
        line = dict(_field(change, "line", dict))
        number = str(line.get("number", ""))
        try:
            _line_index(new, number)
        except NotFound:
            lines.append(line)
            return new
        raise Conflict(f"line {number} exists already / 线路 {number} 已存在",
                       details={"field": "line.number", "number": number})
    if op == "update_line":
        number = str(_field(change, "number"))
        i = _line_index(new, number)
        fields = _field(change, "fields", dict)
        if "number" in fields and str(fields["number"]) != number:
            raise ChangeError("a line's number cannot change; create a new line instead")
        line = lines[i]
        for key, value in fields.items():
            if value is None:
                line.pop(key, None)
            else:
                line[key] = value
        if "mode" in fields:
            _fit_mode(line)
        return new
    if op == "retire_line":
        number = str(_field(change, "number"))
        i = _line_index(new, number)
        lines[i]["mode"] = "retired"
        if change.get("announcement"):
            lines[i]["announcement"] = _field(change, "announcement")
        _fit_mode(lines[i])
        return new
    if op == "upsert_queue":
        new.setdefault("queues", {})[str(_field(change, "name"))] = _field(change, "queue", dict)
        return new
    if op == "upsert_schedule":
        new.setdefault("schedules", {})[str(_field(change, "name"))] = _field(change, "schedule", dict)
        return new
    if op == "set_public_holidays":
        year = str(_field(change, "year"))
        new.setdefault("public_holidays", {})[year] = {
            "holidays": list(change.get("holidays") or []), "workdays": list(change.get("workdays") or [])}
        return new
    if op == "add_broadcast":
        item = dict(_field(change, "broadcast", dict))
        broadcasts = new.setdefault("broadcasts", []) or []
        if any(isinstance(b, dict) and b.get("id") == item.get("id") for b in broadcasts):
            raise Conflict(f"broadcast {item.get('id')} exists already")
        new["broadcasts"] = broadcasts + [item]
        return new
    if op == "remove_broadcast":
        bid = _field(change, "id")
        broadcasts = [b for b in new.get("broadcasts") or [] if not (isinstance(b, dict) and b.get("id") == bid)]
        if len(broadcasts) == len(new.get("broadcasts") or []):
            raise NotFound(f"no broadcast {bid}")
        new["broadcasts"] = broadcasts
        return new
    # replace: a whole document (import); validated like any other change
    text = _field(change, "hotlines_yaml")
    return parse(text)
