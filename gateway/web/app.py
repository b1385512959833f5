"""The aiohttp application every feature adds to, and the one place errors become JSON.

Errors from the gateway's exception tree are mapped to JSON here, at the edge, and
nowhere else (:func:`errors_middleware`). The features' ``setup(app, deps)`` functions
(wired by :mod:`gateway.app`) add their routes, services and lifecycles to the
application :func:`new_app` makes.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.errors import GatewayError
from gateway.web import edge
from gateway.web.problems import error_body, internal_body

log = logging.getLogger(__name__)
CLIENT_MAX_SIZE = 256 * 1024  # an imported hotlines.yaml is the largest body


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except GatewayError as exc:  # English and Chinese, every problem, masked (gateway.web.problems)
        return web.json_response(error_body(exc), status=exc.status_code)
    except Exception:  # noqa: BLE001 - the edge: log, answer 500, keep serving
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(internal_body(), status=500)


def new_app(edge_policy: edge.EdgePolicy | None = None) -> web.Application:
    """An application with the edge (host check, security headers) and the errors middleware;
    the auth feature appends its session middleware inside them."""
    app = web.Application(middlewares=[edge.edge_middleware, errors_middleware], client_max_size=CLIENT_MAX_SIZE)
    edge.install(app, edge_policy or edge.EdgePolicy())
    return app
