"""``GET /healthz``: up or down for anyone, the whole report for a supervisor or admin.

The report is assembled from the sources the features register
(``deps.health.add(...)``, :class:`gateway.deps.HealthSources`).
"""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from gateway.auth.http import USER

HEALTH = web.AppKey("health", Callable[[], Awaitable[dict]])
HEALTH_ROLES = ("supervisor", "admin")


async def healthz(request: web.Request) -> web.Response:
    """Up or down for anyone (load balancers, monitors); the whole report (workers, versions,
    errors) only for a supervisor or admin."""
    report = await request.app[HEALTH]()
    status = 200 if report.get("status") == "ok" else 503
    user = request.get(USER)
    if user is None or user["role"] not in HEALTH_ROLES:
        report = {"status": report.get("status", "degraded")}
    return web.json_response(report, status=status)


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
