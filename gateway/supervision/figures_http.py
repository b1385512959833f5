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
