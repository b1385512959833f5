"""One schema layer for request bodies: pydantic v2 models, every problem at once, in English and Chinese.

Theory of operation
-------------------
A JSON body passes two gates. The bounded reader (:mod:`gateway.web.bodies`)
refuses what is no JSON object at all: too large, too slow, not UTF-8, nested
too deeply, NaN/Infinity, a number too long to read. Then the route's model
(:class:`Body` subclasses beside each API, ``gateway/<feature>/schemas.py``)
validates it in pydantic's *strict* mode: no type coercion (``"5"`` is no
number, ``true`` is no 1), unknown keys refused, lengths, enumerations and
patterns with ASCII ``[0-9]`` (``"١٢٣"`` is no number). Every problem pydantic
finds is reported together as one :class:`RequestInvalid`, each problem with
its path (``lines[2].queue``), field, and a message in English and Chinese
from :data:`MESSAGES` (one entry per error type the models can raise; a test
checks the table covers them all).

The same models give the OpenAPI document its request bodies
(:func:`components`), so what the document says is what the server checks.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Iterable, TypeVar

from pydantic import (AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError,
                      WithJsonSchema)
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticCustomError

from gateway.errors import BadRequest
from gateway.web.bodies import parse_json_object, read_json

M = TypeVar("M", bound="Body")


class Body(BaseModel):
    """A request body: strict types, unknown keys refused, the model named in the OpenAPI document."""

    model_config = ConfigDict(strict=True, extra="forbid", regex_engine="rust-regex")


# -- messages ---------------------------------------------------------------------------------
# error type -> (English, Chinese); ``{name}`` fills from the error's context.
MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("required", "必填"),
    "extra_forbidden": ("unknown field (not allowed here)", "未知字段（此处不允许）"),
    "model_type": ("must be an object", "必须是对象"),
    "model_attributes_type": ("must be an object", "必须是对象"),
    "dict_type": ("must be an object", "必须是对象"),
    "list_type": ("must be a list", "必须是列表"),
    "string_type": ("must be text", "必须是文本"),
    "string_too_short": ("must not be empty", "不能为空"),
    "string_too_long": ("must be at most {max_length} characters", "最多 {max_length} 个字符"),
    "string_pattern_mismatch": ("must be {hint}", "应为{hint_zh}"),
    "int_type": ("must be a whole number", "必须是整数"),
    "int_parsing": ("must be a whole number", "必须是整数"),
    "bool_type": ("must be true or false", "必须是 true 或 false"),
    "greater_than_equal": ("must be at least {ge}", "不能小于 {ge}"),
    "less_than_equal": ("must be at most {le}", "不能大于 {le}"),
    "too_short": ("must have at least {min_length} item(s)", "至少 {min_length} 项"),
    "too_long": ("must have at most {max_length} item(s)", "最多 {max_length} 项"),
    "literal_error": ("must be one of: {expected}", "应为以下之一：{expected}"),
    "union_tag_invalid": ("must be one of: {expected_tags}", "应为以下之一：{expected_tags}"),
    "union_tag_not_found": ("required", "必填"),
    "json_invalid": ("is not valid JSON", "不是有效的 JSON"),
    # our own checks (custom error types; raise them with :func:`problem`)
    "control_characters": ("contains control characters", "含有控制字符"),
    "single_line": ("must be one line (no line breaks or control characters)", "必须为一行（不能含换行或控制字符）"),
    "blank": ("must not be blank", "不能为空白"),
    "datetime_format": ("must be a date and time like 2027-01-01T00:00:00+08:00",
                        "应为日期时间，如 2027-01-01T00:00:00+08:00"),
    "datetime_offset": ("needs a UTC offset (e.g. +08:00)", "需要带时区偏移（如 +08:00）"),
    "dual_needs_two": ("dual dispatch needs two units", "双派至少需要两个承办单位"),
    "not_allowed": ("{reason}", "{reason_zh}"),
}
FALLBACK = ("is not valid: {msg}", "格式不正确")

# a pattern -> what it means, in words (string_pattern_mismatch says this, not the regex)
PATTERN_HINTS: dict[str, tuple[str, str]] = {}


def pattern_text(pattern: str, hint: str, hint_zh: str, *, max_length: int | None = None) -> Any:
    """A text type that must match ``pattern`` (Rust regex: ``^``/``$`` anchor the whole text,
    ``[0-9]`` is ASCII); its error says ``hint`` rather than the regex."""
    PATTERN_HINTS[pattern] = (hint, hint_zh)
    return Annotated[str, StringConstraints(pattern=pattern, max_length=max_length)]


def problem(kind: str, **ctx: Any) -> PydanticCustomError:
    """A custom validation error of a type in :data:`MESSAGES` (raise it from a validator)."""
    if kind not in MESSAGES:
        raise KeyError(f"error type {kind!r} has no entry in gateway.web.schema.MESSAGES")
    return PydanticCustomError(kind, MESSAGES[kind][0], ctx or None)


def _fill(template: str, ctx: dict) -> str:
    try:
        return template.format(**ctx)
    except (KeyError, IndexError, ValueError):
        return template.split("{", 1)[0].strip() or template


def _texts(error: dict) -> tuple[str, str]:
    kind = error["type"]
    ctx = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    if kind == "string_pattern_mismatch":
        hint, hint_zh = PATTERN_HINTS.get(ctx.get("pattern", ""), (None, None))
        if hint is None:
            return "has the wrong format", "格式不正确"
        ctx.update(hint=hint, hint_zh=hint_zh)
    if kind in ("literal_error", "union_tag_invalid"):
        for key in ("expected", "expected_tags"):
            if key in ctx:
                ctx[key] = ctx[key].replace("'", "").replace(" or ", ", ")
    en, zh = MESSAGES.get(kind, FALLBACK)
    ctx.setdefault("msg", error.get("msg", ""))
    return _fill(en, ctx), _fill(zh, ctx)


# -- paths ------------------------------------------------------------------------------------
UNION_TAGS: set[str] = set()  # discriminator values: pydantic puts them in the loc, the path leaves them out


def path_of(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in UNION_TAGS:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def field_of(loc: Iterable[Any]) -> str:
    names = [p for p in loc if isinstance(p, str) and p not in UNION_TAGS]
    return names[-1] if names else ""


def problems_of(exc: ValidationError) -> list[dict]:
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append(str((error.get("ctx") or {}).get("discriminator", "")).strip("'") or "type")
        en, zh = _texts(error)
        out.append({"path": path_of(loc), "field": field_of(loc), "message": en, "message_zh": zh})
    return out


# -- the error --------------------------------------------------------------------------------
class RequestInvalid(BadRequest):
    """A body that does not fit its schema: every problem, each with path, field, English and Chinese.

    Status 400 and ``bad-request``, as the API answered malformed bodies before (tests and the
    pages rely on it); ``details.field`` is the first problem's field, for older clients."""

    status_code = 400
    error_id = "bad-request"

    def __init__(self, problems: list[dict]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        listing = "; ".join(f"{p['path'] or '(body)'}: {p['message']}" for p in self.problems[:20])
        listing_zh = "；".join(f"{p['path'] or '（请求体）'}：{p['message_zh']}" for p in self.problems[:20])
        super().__init__(f"{n} problem(s) in the request: {listing}",
                         details={"problems": self.problems, "field": self.problems[0]["field"] if n else ""})
        self.message_zh = f"请求有 {n} 处问题：{listing_zh}"


def validate(data: Any, model: type[M]) -> M:
    """``data`` (already read) as ``model``, or :class:`RequestInvalid` with every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(problems_of(exc)) from None


async def parse(request_or_data: Any, model: type[M], *, limit: int = 64_000) -> M:
    """The body of an aiohttp request (or raw JSON bytes/text, or a parsed dict) as ``model``.

    First the bounded reader (size ``limit``, depth, deadline; :class:`BadRequest`), then the
    model (:class:`RequestInvalid` listing every problem)."""
    if isinstance(request_or_data, (bytes, bytearray, str)):
        data: Any = parse_json_object(bytes(request_or_data) if isinstance(request_or_data, bytearray)
                                      else request_or_data, limit=limit)
    elif isinstance(request_or_data, dict):
        data = request_or_data
    else:
        data = await read_json(request_or_data, limit)
    return validate(data, model)


# -- shared field types -----------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise problem("control_characters")
    return value


def _single_line(value: str) -> str:
    if _CONTROL.search(value) or "\n" in value or "\t" in value:
        raise problem("single_line")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise problem("blank")
    return value


def _aware_time(value: str) -> datetime | None:
    if value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise problem("datetime_format") from None
    if parsed.tzinfo is None:
        raise problem("datetime_offset")
    return parsed


# A date and time with its UTC offset, as text ("" is none): read as a datetime.
AwareTime = Annotated[str, StringConstraints(max_length=64), AfterValidator(_aware_time),
                      WithJsonSchema({"type": "string", "format": "date-time", "maxLength": 64})]


def text(max_length: int, *, strip: bool = False, required: bool = False, no_control: bool = False,
         single_line: bool = False) -> Any:
    """Text of at most ``max_length`` characters; ``required``: not blank; ``no_control``: no
    control characters but tab and newline; ``single_line``: none at all."""
    validators = [AfterValidator(_not_blank)] if required else []
    if no_control:
        validators.append(AfterValidator(_no_control))
    if single_line:
        validators.append(AfterValidator(_single_line))
    return Annotated[(str, StringConstraints(strip_whitespace=strip, max_length=max_length), *validators)]


# Why a change is made (audited): required, at most 500 characters, no control characters.
Comment = text(500, required=True, no_control=True)


# -- OpenAPI ----------------------------------------------------------------------------------
REF = "#/components/schemas/{model}"


def components(models: Iterable[type[BaseModel]]) -> dict:
    """JSON schemas of ``models`` and everything they use, keyed by name for ``components.schemas``
    (every ``$ref`` points at ``#/components/schemas/...``)."""
    unique = list(dict.fromkeys(models))
    _, top = models_json_schema([(m, "validation") for m in unique], ref_template=REF)
    return dict(top.get("$defs", {}))


def body_ref(model: type[BaseModel]) -> dict:
    """An OpenAPI ``requestBody`` of ``model`` (its schema in components)."""
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}
