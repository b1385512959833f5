"""The units' page and API, and the supervisor's review and 督办 lists.

Routes (roles in brackets)::

    GET  /unit                                         page [unit]
    GET  /api/unit/dispatches?state=new|accepted|overdue|handled|objected|all   [unit]
    GET  /api/unit/dispatches/{id}                     one of mine (another unit's: 404)  [unit]
    POST /api/unit/dispatches/{id}/accept|object|notes|reply                      [unit]
    GET  /api/supervisor/review                        tickets under review       [supervisor|admin]
    POST /api/supervisor/review/{ticket_id}/redispatch|reject|close               [supervisor|admin]
    GET  /api/supervisor/overdue                       督办 list                  [supervisor|admin]
    GET  /api/supervisor/unit-hooks                    failing webhook deliveries [supervisor|admin]
    GET  /api/tickets/{ticket_id}/events               events and dispatches      [supervisor|admin]

A unit's own system uses the same API with an API token (``gateway user token NAME``) as
``Authorization: Bearer``; a browser session needs the CSRF header as everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from gateway.auth.http import USER, require_role
from gateway.errors import BadRequest
from gateway.units.service import UNITS
from gateway.units.schemas import AcceptBody, NoteBody, ObjectBody, RedispatchBody, ReplyBody, ReviewBody
from gateway.units.store import UNIT_STATES
from gateway.web.params import ticket_id
from gateway.web.schema import parse

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
SUPERVISORS = ("supervisor", "admin")


def _dispatch_id(request: web.Request) -> int:
    raw = request.match_info["dispatch_id"]
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest("dispatch id must be a number (0-9)")
    return int(raw)


def _unit_of(request: web.Request) -> str:
    unit_id = request[USER].get("unit_id")
    if not unit_id:
        raise BadRequest("this unit account is not tied to a unit (gateway user add --role unit --unit ID)")
    return unit_id


@require_role("unit", page=True)
async def unit_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "unit.html")


@require_role("unit")
async def my_dispatches(request: web.Request) -> web.Response:
    state = request.query.get("state", "all")
    if state not in UNIT_STATES:
        raise BadRequest(f"state must be one of {', '.join(UNIT_STATES)}", details={"parameter": "state"})
    units = request.app[UNITS]
    unit_id = _unit_of(request)
    items = await units.store.list_for_unit(unit_id, state, units.clock())
    return web.json_response({"items": items, "unit_id": unit_id, "unit_name": units.unit_names.get(unit_id),
                              "now": units.clock().isoformat()})


@require_role("unit")
async def my_dispatch(request: web.Request) -> web.Response:
    units = request.app[UNITS]
    return web.json_response(await units.store.open_for_unit(_dispatch_id(request), _unit_of(request),
                                                             units.clock()))


async def _act(request: web.Request, action: str, model) -> web.Response:
    if model is AcceptBody and not request.can_read_body:
        body = AcceptBody()  # 签收 needs no body
    else:
        body = await parse(request, model, limit=16_000)
    units = request.app[UNITS]
    text = getattr(body, "reason", None) or getattr(body, "text", None) or getattr(body, "result", None)
    out = await units.store.unit_action(_dispatch_id(request), _unit_of(request), action,
                                        request[USER]["username"], units.clock(), text=text,
                                        public=bool(getattr(body, "public", True)))
    return web.json_response(out)


@require_role("unit")
async def accept(request: web.Request) -> web.Response:
    return await _act(request, "accept", AcceptBody)


@require_role("unit")
async def object_(request: web.Request) -> web.Response:
    return await _act(request, "object", ObjectBody)


@require_role("unit")
async def note(request: web.Request) -> web.Response:
    return await _act(request, "note", NoteBody)


@require_role("unit")
async def reply(request: web.Request) -> web.Response:
    return await _act(request, "handle", ReplyBody)


@require_role(*SUPERVISORS)
async def review_list(request: web.Request) -> web.Response:
    units = request.app[UNITS]
    return web.json_response({"items": await units.store.review_list(units.clock()),
                              "units": [{"id": k, "name": v} for k, v in units.unit_names.items()]})


async def _review(request: web.Request, action: str, model) -> web.Response:
    body = await parse(request, model, limit=16_000)
    units = request.app[UNITS]
    out = await units.store.review_action(ticket_id(request), action, request[USER]["username"], units.clock(),
                                          version_id=body.version_id, reason=body.reason,
                                          units=list(getattr(body, "units", None) or []))
    return web.json_response(out)


@require_role(*SUPERVISORS)
async def redispatch(request: web.Request) -> web.Response:
    return await _review(request, "redispatch", RedispatchBody)


@require_role(*SUPERVISORS)
async def reject(request: web.Request) -> web.Response:
    return await _review(request, "reject", ReviewBody)


@require_role(*SUPERVISORS)
async def close(request: web.Request) -> web.Response:
    return await _review(request, "close", ReviewBody)


@require_role(*SUPERVISORS)
async def overdue(request: web.Request) -> web.Response:
    units = request.app[UNITS]
    return web.json_response({"items": await units.store.overdue_list(units.clock()),
                              "now": units.clock().isoformat()})


@require_role(*SUPERVISORS)
async def hook_problems(request: web.Request) -> web.Response:
    units = request.app[UNITS]
    return web.json_response({"items": await units.sender.problems(), "hooks": sorted(units.hooks)})


@require_role(*SUPERVISORS)
async def ticket_events(request: web.Request) -> web.Response:
    units = request.app[UNITS]
    tid = ticket_id(request)
    await units.store.store.get_ticket(tid)  # 404 for an unknown ticket
    return web.json_response({"events": await units.store.events(tid),
                              "dispatches": await units.store.dispatches(tid, units.clock())})


def add_unit_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/unit", unit_page)
    r.add_get("/api/unit/dispatches", my_dispatches)
    r.add_get("/api/unit/dispatches/{dispatch_id}", my_dispatch)
    r.add_post("/api/unit/dispatches/{dispatch_id}/accept", accept)
    r.add_post("/api/unit/dispatches/{dispatch_id}/object", object_)
    r.add_post("/api/unit/dispatches/{dispatch_id}/notes", note)
    r.add_post("/api/unit/dispatches/{dispatch_id}/reply", reply)
    r.add_get("/api/supervisor/review", review_list)
    r.add_post("/api/supervisor/review/{ticket_id}/redispatch", redispatch)
    r.add_post("/api/supervisor/review/{ticket_id}/reject", reject)
    r.add_post("/api/supervisor/review/{ticket_id}/close", close)
    r.add_get("/api/supervisor/overdue", overdue)
    r.add_get("/api/supervisor/unit-hooks", hook_problems)
    r.add_get("/api/tickets/{ticket_id}/events", ticket_events)
