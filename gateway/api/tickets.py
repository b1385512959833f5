"""The read-only ticket and call API: ``GET /api/tickets``, ``/api/tickets/{id}``,
``/api/calls/{uniqueid}`` (desk roles; agents see numbers masked)."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.auth.http import USER, require_role
from gateway.desk.access import mask_spoken
from gateway.errors import BadRequest, NotFound
from gateway.masking import mask_number, mask_text
from gateway.ticketing.store import TicketStore
from gateway.web.params import int_param, ticket_id

STORE = web.AppKey("store", TicketStore)
_UNIQUEID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


DESK_ROLES = ("agent", "supervisor", "admin")


_PERSONAL = ("transcript", "transcript_words", "recording_path", "emergency_words", "transcript_error")


def _numbers_for(request: web.Request, item: dict) -> dict:
    """In the general API agents see callers' numbers masked and no transcripts or recordings
    (the desk shows an agent their own calls whole); supervisors and admins see everything."""
    user = request.get(USER) or {}
    if user.get("role") in ("supervisor", "admin"):
        if item.get("transcript") or item.get("transcript_words"):
            return {**item, **mask_spoken(item)}  # lists and exports: identifiers masked
        return item
    out = {k: v for k, v in item.items() if k not in _PERSONAL}
    if item.get("caller_number"):
        out.update(caller_number=mask_number(item["caller_number"]), caller_number_masked=True)
    if item.get("caller_id_raw"):
        out["caller_id_raw"] = mask_text(item["caller_id_raw"])
    return out


@require_role(*DESK_ROLES)
async def list_tickets(request: web.Request) -> web.Response:
    q = request.query
    for key in q:
        if key not in ("limit", "offset", "status", "line", "category"):
            raise BadRequest(f"unknown query parameter {key!r}", details={"parameter": key})
    result = await request.app[STORE].list_tickets(
        limit=int_param(request, "limit", 50, 1, 200),
        offset=int_param(request, "offset", 0, 0, 10**9),
        status=q.get("status") or None,
        line_number=q.get("line") or None,
        category=q.get("category") or None,
    )
    result["items"] = [_numbers_for(request, item) for item in result["items"]]
    return web.json_response(result)


@require_role(*DESK_ROLES)
async def get_ticket(request: web.Request) -> web.Response:
    return web.json_response(_numbers_for(request, await request.app[STORE].get_ticket(ticket_id(request))))


@require_role(*DESK_ROLES)
async def get_call(request: web.Request) -> web.Response:
    uniqueid = request.match_info["uniqueid"]
    if not _UNIQUEID.match(uniqueid):
        raise BadRequest("not a valid call id")
    call = await request.app[STORE].get_call(uniqueid)
    if call is None:
        raise NotFound(f"no call {uniqueid}")
    return web.json_response(_numbers_for(request, call))


def add_ticket_routes(app: web.Application) -> None:
    app.router.add_get("/api/tickets", list_tickets)
    app.router.add_get("/api/tickets/{ticket_id}", get_ticket)
    app.router.add_get("/api/calls/{uniqueid}", get_call)
