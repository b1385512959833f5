"""Early warnings over HTTP (预警): the supervisors' list, detail, 签收 and 转交, an on-demand run,
failing webhook notices, and the alerts forwarded to a unit.

Routes (roles in brackets)::

    GET  /api/supervisor/warnings?status=open|acknowledged|forwarded|active|all   [supervisor|admin]
    GET  /api/supervisor/warnings/{warning_id}        with its tickets      [supervisor|admin]
    POST /api/supervisor/warnings/{warning_id}/acknowledge  {note?}         [supervisor|admin]
    POST /api/supervisor/warnings/{warning_id}/forward  {unit_id, note?}    [supervisor|admin]
    POST /api/supervisor/warnings/run                 run the detection now [supervisor|admin]
    GET  /api/supervisor/warnings/deliveries          webhook notices failing [supervisor|admin]
    GET  /api/unit/warnings[/{warning_id}]            alerts forwarded to my unit [unit]

Tickets are shown without callers' numbers; a confidential caller's ticket without its place
and summary. Acknowledging and forwarding are audited (``warning.acknowledged``,
``warning.forwarded``, object ``warning``). A forwarded alert may be forwarded again, to the same
unit or another one (audited with ``again`` and the earlier unit; the detail lists every
forwarding under ``forwards``). An alert that grew since its last notice carries ``grown``
(``from_count``/``to_count``, ``from_ratio``/``to_ratio``, ``at``).
"""

from __future__ import annotations

import re

from aiohttp import web
from pydantic import Field

from gateway.auth.http import USER, require_role
from gateway.errors import BadRequest
from gateway.supervision.warnings_service import WARNINGS
from gateway.supervision.warnings_store import ALERT_STATUSES
from gateway.units.store import UnknownUnit
from gateway.web.schema import Body, parse, text

SUPERVISORS = ("supervisor", "admin")
STATUSES = (*ALERT_STATUSES, "active", "all")  # active: open or acknowledged


class AcknowledgeBody(Body):
    """签收: the supervisor has seen the alert (an optional note)."""

    note: text(2000, strip=True, no_control=True) = Field(default="", description="optional, kept on the alert")


class ForwardBody(Body):
    """转交: to the responsible unit (a catalogue unit id), with an optional note."""

    unit_id: text(64, strip=True, required=True, single_line=True) = Field(
        description="a catalogue unit id (config/catalogue.yaml), e.g. the alert's suggested unit")
    note: text(2000, strip=True, no_control=True) = Field(default="", description="what the unit should know")


class RunBody(Body):
    """Run the detection now (nothing to say)."""


BODIES = {
    ("POST", "/api/supervisor/warnings/{warning_id}/acknowledge"): AcknowledgeBody,
    ("POST", "/api/supervisor/warnings/{warning_id}/forward"): ForwardBody,
    ("POST", "/api/supervisor/warnings/run"): RunBody,
}


def _warning_id(request: web.Request) -> int:
    raw = request.match_info["warning_id"]
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest("warning id must be a number (0-9) / 预警编号须为数字", details={"field": "warning_id"})
    return int(raw)


def _status(request: web.Request) -> str:
    status = request.query.get("status", "open")
    if status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)} / 状态须为 {', '.join(STATUSES)} 之一",
                         details={"field": "status"})
    return status


@require_role(*SUPERVISORS)
async def list_warnings(request: web.Request) -> web.Response:
    service = request.app[WARNINGS]
    return web.json_response({"items": await service.store.list_alerts(_status(request)),
                              "units": [{"id": k, "name": v} for k, v in service.unit_names().items()],
                              "last_run": service.last_run, "now": service.clock().isoformat()})


@require_role(*SUPERVISORS)
async def one_warning(request: web.Request) -> web.Response:
    return web.json_response(await request.app[WARNINGS].store.detail(_warning_id(request)))


@require_role(*SUPERVISORS)
async def acknowledge(request: web.Request) -> web.Response:
    alert_id = _warning_id(request)
    body = await parse(request, AcknowledgeBody, limit=16_000) if request.can_read_body else AcknowledgeBody()
    service = request.app[WARNINGS]
    return web.json_response(await service.store.acknowledge(alert_id, request[USER]["username"], service.clock(),
                                                             note=body.note or None))


@require_role(*SUPERVISORS)
async def forward(request: web.Request) -> web.Response:
    alert_id = _warning_id(request)
    body = await parse(request, ForwardBody, limit=16_000)
    service = request.app[WARNINGS]
    names = service.unit_names()
    if body.unit_id not in names:
        raise UnknownUnit(f"unknown unit {body.unit_id!r}: not in the responsibility catalogue / "
                          f"职责目录中没有承办单位 {body.unit_id!r}", details={"field": "unit_id"})
    return web.json_response(await service.store.forward(alert_id, request[USER]["username"], service.clock(),
                                                         unit_id=body.unit_id, unit_name=names[body.unit_id],
                                                         note=body.note or None))


@require_role(*SUPERVISORS)
async def run_now(request: web.Request) -> web.Response:
    if request.can_read_body:
        await parse(request, RunBody, limit=1000)
    return web.json_response(await request.app[WARNINGS].run_once())


@require_role(*SUPERVISORS)
async def deliveries(request: web.Request) -> web.Response:
    service = request.app[WARNINGS]
    return web.json_response({"items": await service.store.delivery_problems(), "webhook": bool(service.hooks),
                              **await service.store.delivery_counts()})


def _unit_of(request: web.Request) -> str:
    unit_id = request[USER].get("unit_id")
    if not unit_id:
        raise BadRequest("this unit account is not tied to a unit (gateway user add --role unit --unit ID)")
    return unit_id


@require_role("unit")
async def unit_warnings(request: web.Request) -> web.Response:
    return web.json_response({"items": await request.app[WARNINGS].store.list_alerts("all",
                                                                                      unit_id=_unit_of(request))})


@require_role("unit")
async def unit_warning(request: web.Request) -> web.Response:
    return web.json_response(await request.app[WARNINGS].store.detail(_warning_id(request),
                                                                       unit_id=_unit_of(request)))


def add_warning_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/supervisor/warnings", list_warnings)
    r.add_post("/api/supervisor/warnings/run", run_now)
    r.add_get("/api/supervisor/warnings/deliveries", deliveries)
    r.add_get("/api/supervisor/warnings/{warning_id}", one_warning)
    r.add_post("/api/supervisor/warnings/{warning_id}/acknowledge", acknowledge)
    r.add_post("/api/supervisor/warnings/{warning_id}/forward", forward)
    r.add_get("/api/unit/warnings", unit_warnings)
    r.add_get("/api/unit/warnings/{warning_id}", unit_warning)


def warning_paths(op) -> dict:
    """OpenAPI paths of this API (merged into ``/api/openapi.json``); ``op`` builds one operation."""
    wid = [{"name": "warning_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}}]
    return {
        "/api/supervisor/warnings": {"get": op(
            "early warnings (surges, repeated demands): status=open (default), acknowledged, forwarded, "
            "active (open or acknowledged) or all",
            params=[{"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}}])},
        "/api/supervisor/warnings/run": {"post": op("run the detection now (also periodic)", body=RunBody)},
        "/api/supervisor/warnings/deliveries": {"get": op("webhook notices not delivered yet that failed")},
        "/api/supervisor/warnings/{warning_id}": {"get": op(
            "one alert with its tickets (no callers' numbers; confidential ones without place and summary)",
            params=wid)},
        "/api/supervisor/warnings/{warning_id}/acknowledge": {"post": op(
            "签收 an open alert (audited); 409 warning-state when it is not open", body=AcknowledgeBody, params=wid)},
        "/api/supervisor/warnings/{warning_id}/forward": {"post": op(
            "转交 to a catalogue unit (audited; the unit's webhook gets a warning event); a forwarded alert may be "
            "forwarded again, to the same or another unit; 400 unknown-unit", body=ForwardBody, params=wid)},
        "/api/unit/warnings": {"get": op("alerts forwarded to my unit (unit accounts)")},
        "/api/unit/warnings/{warning_id}": {"get": op("one alert forwarded to my unit", params=wid)},
    }
