"""Checks of a request's path and query parameters, shared by the APIs."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.errors import BadRequest


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise BadRequest(f"query parameter {name!r} must be a whole number", details={"parameter": name})
    return max(low, min(high, int(raw)))


def ticket_id(request: web.Request) -> int:
    """The ``{ticket_id}`` of the path: ASCII digits only (``int()`` would also take ``١٥``)."""
    raw = request.match_info["ticket_id"]
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest("ticket id must be a number (0-9)")
    return int(raw)
