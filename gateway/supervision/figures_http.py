"""The call-centre figures' API (supervisor and admin).

Routes::

    GET /api/supervisor/figures?period=today|day|week|month&date=YYYY-MM-DD|YYYY-MM
    GET /api/supervisor/figures?start=YYYY-MM-DD&end=YYYY-MM-DD          (a custom period, end included)
    GET /api/supervisor/figures/trend?…same…[&bucket=hour|day]           one point per hour or day

A parameter that cannot be taken is a 400 ``bad-figures-query`` naming it (English and Chinese).
"""

from __future__ import annotations

from aiohttp import web

from gateway.auth.http import require_role
from gateway.supervision.figures_service import FiguresService

FIGURES = web.AppKey("figures", FiguresService)
SUPERVISORS = ("supervisor", "admin")


@require_role(*SUPERVISORS)
async def figures(request: web.Request) -> web.Response:
    service = request.app[FIGURES]
    period = service.period(request.query)
    return web.json_response(await service.figures(period))


@require_role(*SUPERVISORS)
async def figures_trend(request: web.Request) -> web.Response:
    service = request.app[FIGURES]
    period = service.period(request.query)
    return web.json_response(await service.trend(period))


def add_figures_routes(app: web.Application) -> None:
    app.router.add_get("/api/supervisor/figures", figures)
    app.router.add_get("/api/supervisor/figures/trend", figures_trend)


def figures_paths() -> dict:
    """The OpenAPI paths of the figures (merged into ``/api/openapi.json`` by ``gateway.hotlines.openapi``)."""
    def q(name: str, description: str, schema: dict) -> dict:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    params = [
        q("period", "today (default), day, week (Monday-Sunday), month, custom (with start and end)",
          {"enum": ["today", "day", "week", "month", "custom"]}),
        q("date", "the day (day, week) or month (YYYY-MM or a day of it) asked; default today", {"type": "string"}),
        q("start", "a custom period's first day (YYYY-MM-DD)", {"type": "string", "format": "date"}),
        q("end", "a custom period's last day, included (YYYY-MM-DD)", {"type": "string", "format": "date"}),
        q("bucket", "the trend's step: hour (periods up to 7 days) or day; default hour up to 2 days",
          {"enum": ["hour", "day"]}),
    ]
    error = {"$ref": "#/components/schemas/Error"}

    def op(summary: str) -> dict:
        return {"summary": summary, "security": [{"session": []}, {"bearer": []}], "parameters": params,
                "responses": {
                    "200": {"description": "the figures", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "400": {"description": "a parameter that cannot be taken (bad-figures-query), named in "
                                           "details.problems", "content": {"application/json": {"schema": error}}},
                    "401": {"description": "not logged in", "content": {"application/json": {"schema": error}}},
                    "403": {"description": "supervisor or admin only", "content": {"application/json": {"schema": error}}}}}

    return {
        "/api/supervisor/figures": {"get": op(
            "call-centre figures of a period: service level, ASA, AHT, abandonment in the queue and in the IVR "
            "(per menu node), per line and queue; callbacks and drafts waiting; agents' states from Asterisk")},
        "/api/supervisor/figures/trend": {"get": op("the same figures per hour or day of the period (charts)")},
    }
