"""aiohttp application: ``/healthz`` and the read-only ticket and call API.

Dependencies live on the application under typed ``AppKey``s; errors from the
gateway's exception tree are mapped to JSON here, at the edge, and nowhere else.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable

from aiohttp import web

from gateway.errors import BadRequest, GatewayError, NotFound
from gateway.desk.service import mask_spoken
from gateway.masking import mask_number, mask_text
from gateway.web import edge
from gateway.web.auth import AUTH, add_auth_routes, auth_middleware, require_role

log = logging.getLogger(__name__)

STORE = web.AppKey("store", object)
HEALTH = web.AppKey("health", Callable[[], Awaitable[dict]])
METRICS = web.AppKey("metrics", Callable[[], dict])
_UNIQUEID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise BadRequest(f"query parameter {name!r} must be a whole number", details={"parameter": name})
    return max(low, min(high, int(raw)))


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except GatewayError as exc:
        from gateway.web.problems import error_body  # English and Chinese, every problem (gateway.web.problems)

        return web.json_response(error_body(exc), status=exc.status_code)
    except Exception:  # noqa: BLE001 - the edge: log, answer 500, keep serving
        from gateway.web.problems import internal_body

        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(internal_body(), status=500)


HEALTH_ROLES = ("supervisor", "admin")


async def healthz(request: web.Request) -> web.Response:
    """Up or down for anyone (load balancers, monitors); the whole report (workers, versions,
    errors) only for a supervisor or admin."""
    report = await request.app[HEALTH]()
    status = 200 if report.get("status") == "ok" else 503
    user = request.get("user")
    if user is None or user["role"] not in HEALTH_ROLES:
        report = {"status": report.get("status", "degraded")}
    return web.json_response(report, status=status)


@require_role("supervisor", "admin")
async def metrics(request: web.Request) -> web.Response:
    return web.json_response(request.app[METRICS]())


@require_role("admin")
async def reset_metrics(request: web.Request) -> web.Response:
    """``POST /metrics?reset=1``: the figures so far, then zero (benchmarks between rounds)."""
    await request.read()  # enforces client_max_size: a huge body is a 413, not a hang
    if request.query.get("reset") != "1":
        raise BadRequest("POST /metrics resets the counters: say so with ?reset=1")
    return web.json_response(request.app[METRICS](reset=True))


DESK_ROLES = ("agent", "supervisor", "admin")


_PERSONAL = ("transcript", "transcript_words", "recording_path", "emergency_words", "transcript_error")


def _numbers_for(request: web.Request, item: dict) -> dict:
    """In the general API agents see callers' numbers masked and no transcripts or recordings
    (the desk shows an agent their own calls whole); supervisors and admins see everything."""
    user = request.get("user") or {}
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
        limit=_int_param(request, "limit", 50, 1, 200),
        offset=_int_param(request, "offset", 0, 0, 10**9),
        status=q.get("status") or None,
        line_number=q.get("line") or None,
        category=q.get("category") or None,
    )
    result["items"] = [_numbers_for(request, item) for item in result["items"]]
    return web.json_response(result)


def ticket_id(request: web.Request) -> int:
    """The ``{ticket_id}`` of the path: ASCII digits only (``int()`` would also take ``١٥``)."""
    raw = request.match_info["ticket_id"]
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest("ticket id must be a number (0-9)")
    return int(raw)


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


def build_app(*, store: Any, health: Callable[[], Awaitable[dict]],
              metrics_source: Callable[..., dict] = lambda reset=False: {}, users: Any = None,
              edge_policy: edge.EdgePolicy | None = None) -> web.Application:
    app = web.Application(middlewares=[edge.edge_middleware, errors_middleware, auth_middleware],
                          client_max_size=256 * 1024)
    edge.install(app, edge_policy or edge.EdgePolicy())
    if users is not None:
        app[AUTH] = users
        add_auth_routes(app)
    app[STORE] = store
    app[HEALTH] = health
    app[METRICS] = metrics_source
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/metrics", reset_metrics)
    app.router.add_get("/api/tickets", list_tickets)
    app.router.add_get("/api/tickets/{ticket_id}", get_ticket)
    app.router.add_get("/api/calls/{uniqueid}", get_call)
    return app
