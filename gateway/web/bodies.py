"""Request bodies as the API accepts them: one JSON reader for every route.

A body is refused with :class:`~gateway.errors.BadRequest` (400 and the reason)
when it is not JSON, not UTF-8, larger than the route allows, not an object, or
nested deeper than any request of this API needs (Python's parser would
otherwise raise ``RecursionError`` deep inside and the edge would answer 500).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.errors import BadRequest

MAX_DEPTH = 32  # no body of this API is nested more than a few levels


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


def parse_json_object(raw: bytes | str, *, limit: int = 64_000) -> dict:
    """``raw`` as a JSON object, or :class:`BadRequest` saying what is wrong with it."""
    if len(raw) > limit:
        raise BadRequest(f"the body is larger than {limit} bytes / 请求体过大", details={"limit": limit})
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        body = json.loads(text)
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 / 请求体不是 UTF-8 编码") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc} / 请求体不是有效的 JSON") from None
    except ValueError as exc:  # int() of a number over Python's 4,300-digit limit
        raise BadRequest(f"the body holds a value JSON cannot be read as ({exc}) / 请求体中的数值过长") from None
    except RecursionError:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels / 嵌套层级过深",
                         details={"max_depth": MAX_DEPTH}) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object / 请求体必须是 JSON 对象")
    if depth_of(body) > MAX_DEPTH:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels / 嵌套层级过深",
                         details={"max_depth": MAX_DEPTH})
    return body


BODY_DEADLINE = 10.0  # seconds a client has to send a body it announced (no slow-loris POST)


async def read_json(request, limit: int = 64_000) -> dict:
    """The request's JSON object body (``Content-Type: application/json``), read within
    :data:`BODY_DEADLINE` seconds and at most ``limit`` bytes."""
    if request.content_type != "application/json":
        raise BadRequest("send JSON (Content-Type: application/json)")
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(f"the body is larger than {limit} bytes / 请求体过大", details={"limit": limit})
    try:
        async with asyncio.timeout(BODY_DEADLINE):
            raw = await request.read()
    except TimeoutError:
        raise BadRequest(f"the body did not arrive within {BODY_DEADLINE:g} s / 请求体发送超时") from None
    return parse_json_object(raw, limit=limit)
