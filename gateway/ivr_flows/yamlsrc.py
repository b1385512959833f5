"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with marks; we turn them into plain Python
values and a table ``path -> line`` so validation errors can name the file,
the line and the field. Duplicate keys (which PyYAML silently overwrites) and
non-string keys are reported as problems instead of being accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple  # a field path such as ("lines", 2, "mode")


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(document)'}: {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


def field_name(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class Source:
    """A parsed YAML document with line numbers, collecting problems."""

    file: str
    data: Any = None
    lines: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, self.line_of(path), field_name(path), message))


_SAFE_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
}


def _convert(node: yaml.Node, path: Path_, src: Source) -> Any:
    src.lines[path] = node.start_mark.line + 1
    if node.tag not in _SAFE_TAGS:
        src.problem(path, f"the tag {node.tag} is not allowed")
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                src.problems.append(
                    ConfigProblem(src.file, key_node.start_mark.line + 1, field_name(path), "keys must be plain strings")
                )
                continue
            key = yaml.safe_load(yaml.serialize(key_node)) if key_node.tag != "tag:yaml.org,2002:str" else key_node.value
            key = str(key)
            if key in out:
                src.problems.append(
                    ConfigProblem(src.file, key_node.start_mark.line + 1, field_name(path + (key,)), "duplicate key")
                )
                continue
            out[key] = _convert(value_node, path + (key,), src)
            src.lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), src) for i, item in enumerate(node.value)]
    # Scalars: resolve with the safe constructor, so "08:30" stays a string only when quoted.
    if node.tag == "tag:yaml.org,2002:str":
        return node.value
    if node.tag == "tag:yaml.org,2002:null":
        return None  # "key:" with nothing after it
    try:
        return yaml.SafeLoader(yaml.serialize(node)).get_single_data()
    except ValueError as exc:  # e.g. an impossible date such as 2027-13-01
        src.problem(path, f"{node.value!r} is not a valid value: {exc}")
        return None


def parse(text: str, file: str) -> Source:
    src = Source(file=file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        src.problems.append(ConfigProblem(file, line, "", f"not valid YAML: {reason}"))
        return src
    if node is None:
        src.problems.append(ConfigProblem(file, 1, "", "the file is empty"))
        return src
    try:
        src.data = _convert(node, (), src)
    except yaml.YAMLError as exc:  # e.g. an unknown tag such as !!python/object
        mark = getattr(exc, "problem_mark", None)
        src.problems.append(ConfigProblem(file, mark.line + 1 if mark else None, "", f"not allowed: {exc}"))
    return src


def read(path: Path) -> Source:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        src = Source(file=str(path))
        src.problems.append(ConfigProblem(str(path), None, "", "file not found"))
        return src
    except (UnicodeDecodeError, OSError) as exc:
        src = Source(file=str(path))
        src.problems.append(ConfigProblem(str(path), None, "", f"cannot read: {exc}"))
        return src
    return parse(text, str(path))
