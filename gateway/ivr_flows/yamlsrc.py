"""YAML loading that remembers where every value came from.

We compose the node tree (with marks) from PyYAML's event stream ourselves and
turn it into plain Python values and a table ``path -> line`` so validation
errors can name the file, the line and the field. Duplicate keys (which PyYAML
silently overwrites) and non-string keys are reported as problems instead of
being accepted.

Hostile documents are refused while they are read, before anything big is
built: anchors and aliases (``&x``/``*x``, the "billion laughs" bomb: 300 bytes
that expand to billions of values) are not allowed at all, a file larger than
:data:`MAX_CHARS`, nested deeper than :data:`MAX_DEPTH` or holding more than
:data:`MAX_NODES` values is refused at the first event past the limit. Our
composer keeps an explicit stack (PyYAML's recurses, so ``[[[[...`` 50,000
deep raised ``RecursionError``), and the events come from libyaml when PyYAML
has it, so even a refused 256 KiB file costs milliseconds.
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


MAX_CHARS = 256 * 1024  # the admin API's largest body; config/ files are a few KiB
MAX_DEPTH = 32  # the deepest configuration (a flow's nodes.x.options.1.set.k) nests 6 levels
MAX_NODES = 50_000  # values (scalars, lists, mappings) in one file
ALIASES_REFUSED = "anchors/aliases (&x, *x) are not allowed / 不允许使用锚点和别名（&x、*x），请写出每个值"
_EVENTS_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built with it
_RESOLVER = yaml.resolver.Resolver()  # the implicit tags of SafeLoader (int, bool, timestamp...)


class _Refused(Exception):
    """The document is refused at ``line``/``path`` while it is being read."""

    def __init__(self, line: int | None, path: Path_, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


def _compose(text: str) -> yaml.Node | None:
    """The single document of ``text`` as PyYAML nodes, or :class:`_Refused` (no recursion)."""
    root = None
    stack: list = []  # [node, its path, the key node waiting for its value]
    nodes = documents = 0
    for event in yaml.parse(text, Loader=_EVENTS_LOADER):
        line = event.start_mark.line + 1 if event.start_mark else None
        here = stack[-1][1] if stack else ()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(line, _child_path(stack), ALIASES_REFUSED)
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Refused(line, (), "not valid YAML: expected a single document in the stream")
        elif isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                raise _Refused(line, here, f"more than {MAX_NODES} values in one file / 值的数量超过上限")
            path = _child_path(stack)
            tag = event.tag
            if isinstance(event, yaml.ScalarEvent):
                if tag is None or tag == "!":
                    tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
            else:
                if len(stack) >= MAX_DEPTH:
                    raise _Refused(line, here, f"nested deeper than {MAX_DEPTH} levels / 嵌套层级过深")
                kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
                if tag is None or tag == "!":
                    tag = _RESOLVER.resolve(kind, None, event.implicit)
                node = kind(tag, [], event.start_mark, event.end_mark, flow_style=event.flow_style)
            if stack:
                _attach(stack[-1], node)
            else:
                root = node
            if not isinstance(node, yaml.ScalarNode):
                stack.append([node, path, None])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            stack.pop()[0].end_mark = event.end_mark
    return root


def _child_path(stack: list) -> Path_:
    """The field path of the next value read inside the innermost open collection."""
    if not stack:
        return ()
    node, path, key = stack[-1]
    if isinstance(node, yaml.SequenceNode):
        return path + (len(node.value),)
    if key is not None and isinstance(key, yaml.ScalarNode):
        return path + (key.value,)
    return path


def _attach(parent: list, node: yaml.Node) -> None:
    collection, _, key = parent
    if isinstance(collection, yaml.SequenceNode):
        collection.value.append(node)
    elif key is None:
        parent[2] = node
    else:
        collection.value.append((key, node))
        parent[2] = None


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
            try:
                key = str(_scalar(key_node))
            except ValueError as exc:
                src.problems.append(ConfigProblem(src.file, key_node.start_mark.line + 1, field_name(path),
                                                  f"{key_node.value[:60]!r} is not a valid key: {exc}"))
                continue
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
        return _scalar(node)
    except ValueError as exc:  # e.g. an impossible date such as 2027-13-01, a 5,000-digit number
        src.problem(path, f"{node.value[:60]!r} is not a valid value: {exc}")
        return None


def _scalar(node: yaml.ScalarNode) -> Any:
    """A scalar built by the safe constructor (int, float, bool, null, timestamp or text)."""
    if node.tag == "tag:yaml.org,2002:str":
        return node.value
    return yaml.constructor.SafeConstructor().construct_object(node)


def parse(text: str, file: str) -> Source:
    src = Source(file=file)
    if len(text) > MAX_CHARS:
        src.problems.append(ConfigProblem(file, None, "", f"the file is larger than {MAX_CHARS // 1024} KiB "
                                                          f"({len(text)} characters) / 文件过大"))
        return src
    try:
        node = _compose(text)
    except _Refused as exc:
        src.problems.append(ConfigProblem(file, exc.line, field_name(exc.path), exc.message))
        return src
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        if "maximum nesting depth" in reason:  # libyaml's own cap (1,000 flow levels) came first
            src.problems.append(ConfigProblem(file, line, "", f"nested deeper than {MAX_DEPTH} levels / 嵌套层级过深"))
            return src
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
