"""The web edge as the features set it up, without Asterisk: for tests of the HTTP API.

The gateway builds its application in :func:`gateway.app.create_app`; these helpers put
the same routes and application keys on a bare :func:`gateway.web.app.new_app` so a
test can hand in its own store, users and services.
"""

from __future__ import annotations

from aiohttp import web

from gateway.api.health import HEALTH, add_health_routes
from gateway.api.metrics import METRICS, SourcesCollector, add_metrics_routes
from gateway.api.tickets import STORE, add_ticket_routes
from gateway.auth.http import AUTH, auth_middleware
from gateway.auth.plugin import add_auth_routes
from gateway.deps import MetricSources
from gateway.desk.http import DESK, add_desk_routes
from gateway.hotlines.http import add_admin_routes
from gateway.hotlines.keys import HOTLINES, PROMPT_DIRS
from gateway.web.app import new_app


def build_app(*, store, health, users=None, metrics_source=None, edge_policy=None) -> web.Application:
    app = new_app(edge_policy)
    if users is not None:
        app[AUTH] = users
        app.middlewares.append(auth_middleware)
        add_auth_routes(app)
    sources = MetricSources()
    if metrics_source is not None:
        sources.extend(metrics_source)
    sources.registry.register(SourcesCollector(sources))
    app[STORE], app[HEALTH], app[METRICS] = store, health, sources
    add_ticket_routes(app)
    add_health_routes(app)
    add_metrics_routes(app)
    return app


def with_admin(app: web.Application, admin=None, prompt_dirs=None) -> web.Application:
    """The admin page and API (``admin``: a HotlineAdmin; None when only the routes matter)."""
    if admin is not None:
        app[HOTLINES] = admin
    if prompt_dirs is not None:
        app[PROMPT_DIRS] = prompt_dirs
    add_admin_routes(app)
    return app


def with_desk(app: web.Application, desk) -> web.Application:
    app[DESK] = desk
    add_desk_routes(app)
    return app
