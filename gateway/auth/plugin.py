"""The auth feature's wiring: the user store under :data:`AUTH`, the session middleware and the
login routes. Users and sessions live in the gateway's database (``deps.store``); sessions
follow the wall clock, never the test clock."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.http import AUTH, auth_middleware, login, logout, me
from gateway.auth.login_page import login_page
from gateway.auth.users import UserStore
from gateway.deps import Deps


def add_auth_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)


def setup(app: web.Application, deps: Deps) -> None:
    app[AUTH] = UserStore(deps.store)
    app.middlewares.append(auth_middleware)  # inside errors_middleware (set by gateway.app)
    add_auth_routes(app)
