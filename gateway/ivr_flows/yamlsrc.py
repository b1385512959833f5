"""YAML loading that remembers where every value came from.

We compose the node tree (with marks) from ruamel.yaml's event stream ourselves
and turn it into plain Python values and a table ``path -> line`` so validation
errors can name the file, the line and the field. Duplicate keys and non-string
keys are reported as problems instead of being accepted.

Hostile documents are refused while they are read, before anything big is
built: anchors and aliases (``&x``/``*x``, the "billion laughs" bomb: 300 bytes
that expand to billions of values) are not allowed at all, a file larger than
:data:`MAX_CHARS`, nested deeper than :data:`MAX_DEPTH` or holding more than
:data:`MAX_NODES` values is refused at the first event past the limit. Our
composer keeps an explicit stack (a recursive composer raised
``RecursionError`` on ``[[[[...`` 50,000 deep) and the parser hands out events
one at a time, so even a refused 256 KiB file is refused after reading only
the part up to the limit.

Scalars resolve as YAML 1.1 (``yes``/``no`` are booleans, ``0755`` is octal),
as the configuration always has been read (PyYAML's safe loader until issue 11).
ruamel.yaml is the project's one YAML library: the admin's round-trip editing of
``hotlines.yaml`` (:mod:`gateway.hotlines.changes`) needs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:
    import _ruamel_yaml  # noqa: F401 - ruamel.yaml.clib: libyaml's parser
    _HAVE_CLIB = True
except ImportError:  # pure Python then: same events, slower
    _HAVE_CLIB = False

from gateway import i18n

Path_ = tuple  # a field path such as ("lines", 2, "mode")


@dataclass(frozen=True)
class ConfigProblem:
    """One problem of a configuration file: where, and what in English and Chinese.

    ``message_zh`` is made from ``message`` by :func:`gateway.i18n.message_zh` (the one
    catalogue of the translations) unless given.
    """

    file: str
    line: int | None
    field: str
    message: str
    message_zh: str = ""

    def __post_init__(self) -> None:
        if not self.message_zh:
            object.__setattr__(self, "message_zh", i18n.message_zh(self.message))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        # A few messages carry a short Chinese already ("... / 嵌套层级过深"): the full one replaces it.
        english = _INLINE_ZH.split(self.message, maxsplit=1)[0]
        return f"{where}: {self.field or '(document)'}: {english} / {self.message_zh}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message,
                "message_zh": self.message_zh}


_INLINE_ZH = re.compile(r" / (?=[^/]*[\u3400-\u9fff])")


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
YAML_VERSION = (1, 1)  # how plain scalars resolve (see the module's docstring)
_TAG = "tag:yaml.org,2002:"
# The implicit tags of a plain (unquoted) scalar: YAML 1.1 exactly as PyYAML's SafeLoader resolved
# them, which is how the configuration has always been read (ruamel's own 1.1 table differs in
# corners: it reads "y"/"n" as booleans and "1e3" as a number).
_IMPLICIT = tuple((_TAG + tag, re.compile(pattern, re.X)) for tag, pattern in (
    ("bool", r"""^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"""),
    ("float", r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                 |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                 |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                 |[-+]?\.(?:inf|Inf|INF)
                 |\.(?:nan|NaN|NAN))$"""),
    ("int", r"""^(?:[-+]?0b[0-1_]+
               |[-+]?0[0-7_]+
               |[-+]?(?:0|[1-9][0-9_]*)
               |[-+]?0x[0-9a-fA-F_]+
               |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"""),
    ("merge", r"^(?:<<)$"),
    ("null", r"^(?:~|null|Null|NULL|)$"),
    ("timestamp", r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
                     |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
                      (?:[Tt]|[\ \t]+)[0-9][0-9]?
                      :[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
                      (?:[\ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"""),
    ("value", r"^(?:=)$"),
    ("yaml", r"^(?:!|&|\*)$"),
))


def reads_as_text(value: str) -> bool:
    """Whether ``value`` written plain (unquoted) is read back as text by this reader (YAML 1.1
    typing: ``yes``, ``on``, ``1:30``, ``0777`` and ``2027-01-01`` are not text)."""
    return not any(pattern.match(value) for _tag, pattern in _IMPLICIT)


def _resolve(event: Any) -> str:
    """The tag of a scalar, sequence or mapping event (its own tag, or the implicit one)."""
    if event.tag is not None and event.tag != "!":
        return str(event.tag)
    if isinstance(event, ev.SequenceStartEvent):
        return _TAG + "seq"
    if isinstance(event, ev.MappingStartEvent):
        return _TAG + "map"
    if event.implicit[0]:  # plain: typed by its look; quoted (or "!"): text
        for tag, pattern in _IMPLICIT:
            if pattern.match(event.value):
                return tag
    return _TAG + "str"


def _reader() -> YAML:
    """A fresh safe ruamel reader (one per document: ruamel's objects keep state).

    Its parser is libyaml's (ruamel.yaml.clib) when installed, about 20x faster than the
    pure-Python one on config/ (6 ms against 110 ms); only events are used either way, so
    typing and every limit stay ours."""
    y = YAML(typ="safe", pure=not _HAVE_CLIB)
    y.version = YAML_VERSION
    return y


class _Refused(Exception):
    """The document is refused at ``line``/``path`` while it is being read."""

    def __init__(self, line: int | None, path: Path_, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


def _compose(text: str, reader: YAML) -> Node | None:
    """The single document of ``text`` as ruamel nodes, or :class:`_Refused` (no recursion)."""
    root = None
    stack: list = []  # [node, its path, the key node waiting for its value]
    nodes = documents = 0
    for event in reader.parse(text):
        line = event.start_mark.line + 1 if event.start_mark else None
        here = stack[-1][1] if stack else ()
        if isinstance(event, ev.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(line, _child_path(stack), ALIASES_REFUSED)
        if isinstance(event, ev.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Refused(line, (), "not valid YAML: expected a single document in the stream")
        elif isinstance(event, (ev.ScalarEvent, ev.SequenceStartEvent, ev.MappingStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                raise _Refused(line, here, f"more than {MAX_NODES} values in one file / 值的数量超过上限")
            path = _child_path(stack)
            tag = _resolve(event)
            if isinstance(event, ev.ScalarEvent):
                node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
            else:
                if len(stack) >= MAX_DEPTH:
                    raise _Refused(line, here, f"nested deeper than {MAX_DEPTH} levels / 嵌套层级过深")
                kind = SequenceNode if isinstance(event, ev.SequenceStartEvent) else MappingNode
                node = kind(tag, [], event.start_mark, event.end_mark, flow_style=event.flow_style)
            if stack:
                _attach(stack[-1], node)
            else:
                root = node
            if not isinstance(node, ScalarNode):
                stack.append([node, path, None])
        elif isinstance(event, (ev.SequenceEndEvent, ev.MappingEndEvent)):
            stack.pop()[0].end_mark = event.end_mark
    return root


def _child_path(stack: list) -> Path_:
    """The field path of the next value read inside the innermost open collection."""
    if not stack:
        return ()
    node, path, key = stack[-1]
    if isinstance(node, SequenceNode):
        return path + (len(node.value),)
    if key is not None and isinstance(key, ScalarNode):
        return path + (key.value,)
    return path


def _attach(parent: list, node: Node) -> None:
    collection, _, key = parent
    if isinstance(collection, SequenceNode):
        collection.value.append(node)
    elif key is None:
        parent[2] = node
    else:
        collection.value.append((key, node))
        parent[2] = None


_SAFE_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
}


def _convert(node: Node, path: Path_, src: Source, build: Any) -> Any:
    src.lines[path] = node.start_mark.line + 1
    if node.tag not in _SAFE_TAGS:
        src.problem(path, f"the tag {node.tag} is not allowed")
        return None
    if isinstance(node, MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                src.problems.append(
                    ConfigProblem(src.file, key_node.start_mark.line + 1, field_name(path), "keys must be plain strings")
                )
                continue
            try:
                key = str(_scalar(key_node, build))
            except _UNBUILDABLE as exc:
                src.problems.append(ConfigProblem(src.file, key_node.start_mark.line + 1, field_name(path),
                                                  f"{key_node.value[:60]!r} is not a valid key: {_reason(exc)}"))
                continue
            if key in out:
                src.problems.append(
                    ConfigProblem(src.file, key_node.start_mark.line + 1, field_name(path + (key,)), "duplicate key")
                )
                continue
            out[key] = _convert(value_node, path + (key,), src, build)
            src.lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, SequenceNode):
        return [_convert(item, path + (i,), src, build) for i, item in enumerate(node.value)]
    # Scalars: resolve with the safe constructor, so "08:30" stays a string only when quoted.
    if node.tag == "tag:yaml.org,2002:str":
        return node.value
    if node.tag == "tag:yaml.org,2002:null":
        return None  # "key:" with nothing after it
    try:
        return _scalar(node, build)
    except _UNBUILDABLE as exc:  # e.g. an impossible date such as 2027-13-01, a 5,000-digit number, !!bool maybe
        src.problem(path, f"{node.value[:60]!r} is not a valid value: {_reason(exc)}")
        return None


# What the safe constructor raises for a scalar it cannot build: ValueError (2027-13-01), KeyError
# (!!bool maybe, which crashed the validator before issue 11), its own error (!!timestamp x).
_UNBUILDABLE = (ValueError, KeyError, YAMLError)


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"{exc.args[0]!r} is no value of its tag"
    if isinstance(exc, YAMLError):
        return str(getattr(exc, "problem", None) or exc).splitlines()[0]
    return str(exc)


def _scalar(node: ScalarNode, build: Any) -> Any:
    """A scalar built by ruamel's safe constructor ``build`` (int, float, bool, null, timestamp or text)."""
    if node.tag == "tag:yaml.org,2002:str":
        return node.value
    return build.construct_object(node)


def parse(text: str, file: str) -> Source:
    src = Source(file=file)
    if len(text) > MAX_CHARS:
        src.problems.append(ConfigProblem(file, None, "", f"the file is larger than {MAX_CHARS // 1024} KiB "
                                                          f"({len(text)} characters) / 文件过大"))
        return src
    reader = _reader()
    try:
        node = _compose(text, reader)
    except _Refused as exc:
        src.problems.append(ConfigProblem(file, exc.line, field_name(exc.path), exc.message))
        return src
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        src.problems.append(ConfigProblem(file, line, "", f"not valid YAML: {reason}"))
        return src
    if node is None:
        src.problems.append(ConfigProblem(file, 1, "", "the file is empty"))
        return src
    try:
        src.data = _convert(node, (), src, reader.constructor)
    except YAMLError as exc:  # e.g. an unknown tag such as !!python/object
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
