"""Request bodies as the API accepts them: one JSON reader for every route.

A body is refused with :class:`~gateway.errors.BadRequest` (400 and the reason)
when it is not JSON, not UTF-8, larger than the route allows, not an object,
nested deeper than any request of this API needs (Python's parser would
otherwise raise ``RecursionError`` deep inside and the edge would answer 500),
or holds ``NaN``/``Infinity`` (Python's parser takes them; JSON has no such
values, and a stored one would make later answers invalid JSON). Messages are
English with the Chinese as ``message_zh``. What the body must contain is the
route's schema (:mod:`gateway.web.schema`), checked after this.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from gateway.errors import BadRequest

MAX_DEPTH = 32  # no body of this API is nested more than a few levels
_SURROGATE = re.compile("[\ud800-\udfff]")  # "\\ud800" alone: JSON may escape it, but it is no character


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests lists and objects (counting stops past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _refuse(message: str, message_zh: str, details: dict | None = None) -> BadRequest:
    exc = BadRequest(message, details=details)
    exc.message_zh = message_zh
    return exc


class _NotJson(ValueError):
    pass


def _no_constant(name: str):
    raise _NotJson(name)


def has_lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys too) holds half a UTF-16 pair, which no
    UTF-8 text, database or YAML file can store."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_json_object(raw: bytes | str, *, limit: int = 64_000) -> dict:
    """``raw`` as a JSON object, or :class:`BadRequest` saying what is wrong with it."""
    if len(raw) > limit:
        raise _refuse(f"the body is larger than {limit} bytes", f"请求体超过 {limit} 字节", {"limit": limit})
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        body = json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _refuse("the body is not UTF-8", "请求体不是 UTF-8 编码") from None
    except json.JSONDecodeError as exc:
        raise _refuse(f"the body is not valid JSON: {exc}", f"请求体不是有效的 JSON：{exc}") from None
    except _NotJson as exc:
        raise _refuse(f"the body holds {exc}, which is no JSON value (send a number or null)",
                      f"请求体含有 {exc}，这不是 JSON 的值（请用数字或 null）") from None
    except ValueError as exc:  # int() of a number over Python's 4,300-digit limit
        raise _refuse(f"the body holds a number too long to read ({exc})", "请求体中的数字过长，无法读取") from None
    except RecursionError:
        raise _refuse(f"the body nests deeper than {MAX_DEPTH} levels", f"请求体嵌套超过 {MAX_DEPTH} 层",
                      {"max_depth": MAX_DEPTH}) from None
    if not isinstance(body, dict):
        raise _refuse("the body must be a JSON object", "请求体必须是 JSON 对象")
    if depth_of(body) > MAX_DEPTH:
        raise _refuse(f"the body nests deeper than {MAX_DEPTH} levels", f"请求体嵌套超过 {MAX_DEPTH} 层",
                      {"max_depth": MAX_DEPTH})
    if has_lone_surrogate(body):
        raise _refuse("the body holds half a UTF-16 surrogate pair (\\ud800-\\udfff alone), which is no character",
                      "请求体含有不成对的 UTF-16 代理字符（单独的 \\ud800-\\udfff），不是有效字符")
    return body


BODY_DEADLINE = 10.0  # seconds a client has to send a body it announced (no slow-loris POST)


async def read_json(request, limit: int = 64_000) -> dict:
    """The request's JSON object body (``Content-Type: application/json``), read within
    :data:`BODY_DEADLINE` seconds and at most ``limit`` bytes."""
    if request.content_type != "application/json":
        raise _refuse("send JSON (Content-Type: application/json)", "请以 JSON 发送（Content-Type: application/json）")
    if request.content_length is not None and request.content_length > limit:
        raise _refuse(f"the body is larger than {limit} bytes", f"请求体超过 {limit} 字节", {"limit": limit})
    try:
        async with asyncio.timeout(BODY_DEADLINE):
            raw = await request.read()
    except TimeoutError:
        raise _refuse(f"the body did not arrive within {BODY_DEADLINE:g} s",
                      f"请求体未在 {BODY_DEADLINE:g} 秒内送达") from None
    return parse_json_object(raw, limit=limit)
