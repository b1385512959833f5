"""The authentication layer in aiohttp: the session middleware, roles, and login/logout/me.

``auth_middleware`` must sit inside ``errors_middleware`` (gateway.web.app), which
turns the errors of :mod:`gateway.auth.errors` into JSON.
"""

from __future__ import annotations

import functools
import hmac
import json
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.auth.errors import Forbidden, TooManyAttempts, Unauthenticated
from gateway.auth.users import ROLES, UserStore, user_payload
from gateway.errors import BadRequest
from gateway.web.bodies import parse_json_object
from gateway.web.edge import same_origin
from gateway.web.problems import error_body, plain_body
from gateway.web.schema import parse
from gateway.web.schemas_auth import LoginBody

COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_NEXT = "/admin"
ROLE_HOME = {"agent": "/desk", "supervisor": "/supervisor", "admin": "/admin", "unit": "/unit"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
CSRF_EXEMPT = frozenset({"/api/login"})  # creates the session; guarded by its Origin check instead

AUTH = web.AppKey("auth", UserStore)
USER = web.RequestKey("user", object)  # the logged-in user (a dict from UserStore) or None


def session_token(request: web.Request) -> tuple[str | None, bool]:
    """The session token and whether it came as a Bearer header (no ambient credential)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None, True
    return request.cookies.get(COOKIE) or None, False


def _json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response(plain_body(error, message), status=status)  # with its Chinese (gateway.web.problems)


@web.middleware
async def auth_middleware(request: web.Request, handler):
    """Attach ``request[USER]`` (or None); refuse cookie requests that change things without CSRF."""
    request[USER] = None
    token, bearer = session_token(request)
    if token and AUTH in request.app:
        user = await request.app[AUTH].session_user(token)
        if user is not None:
            if request.method not in SAFE_METHODS and not bearer and request.path not in CSRF_EXEMPT:
                sent = request.headers.get(CSRF_HEADER, "")
                if not sent and request.content_type in _FORMS:
                    sent = (await request.post()).get("csrf_token", "")
                if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), user["csrf_token"].encode()):
                    return _json_error(403, "csrf", f"missing or wrong CSRF token (send {CSRF_HEADER})")
            request[USER] = user
    return await handler(request)


def require_role(*roles: str, page: bool = False):
    """Allow the handler only to a logged-in user whose role is listed (no implied hierarchy).

    API handlers answer 401/403 JSON; with ``page=True`` an anonymous visitor is
    sent to ``/login?next=<path>`` and a wrong role gets an HTML 403.
    """
    if not roles or any(role not in ROLES for role in roles):
        raise ValueError(f"require_role needs roles from {ROLES}, got {roles}")

    def wrap(handler):
        @functools.wraps(handler)
        async def checked(request: web.Request):
            user = request.get(USER)
            if user is None:
                if page:
                    raise web.HTTPFound(f"/login?next={quote(safe_next(request.path_qs), safe='/')}")
                raise Unauthenticated("log in first (POST /api/login)")
            if user["role"] not in roles:
                if page:
                    raise web.HTTPForbidden(text="403: your role may not open this page / 无权访问此页面")
                raise Forbidden(f"the role {user['role']} may not do this")
            return await handler(request)

        return checked

    return wrap


def safe_next(value: Any) -> str:
    """Only a local path may follow a login (no open redirect)."""
    if (not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or len(value) > 512
            or "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value)):
        return DEFAULT_NEXT
    return value


async def _login_data(request: web.Request) -> tuple[dict, bool]:
    if request.content_type in _FORMS:
        return dict(await request.post()), True
    try:
        raw = parse_json_object(await request.read(), limit=16_000)
    except BadRequest as exc:
        raise BadRequest(f"send JSON {{username, password}}: {exc.message}", details=exc.details) from None
    return (await parse(raw, LoginBody)).model_dump(), False  # a body of the wrong shape: every problem, 400


async def login(request: web.Request) -> web.StreamResponse:
    users: UserStore = request.app[AUTH]
    data, form = await _login_data(request)
    if not same_origin(request):
        return _json_error(403, "csrf", "cross-site login refused")
    explicit = data.get("next") if isinstance(data.get("next"), str) and data.get("next") else None
    nxt = safe_next(explicit) if explicit else ""
    username, password = data.get("username"), data.get("password")
    try:
        user = await users.authenticate(username if isinstance(username, str) else "",
                                        password if isinstance(password, str) else "",
                                        remote=request.remote or None)
    except TooManyAttempts as exc:
        if form:
            raise web.HTTPFound(f"/login?failed=throttled&scope={exc.details['scope']}"
                                f"&wait={exc.details['retry_after']}&next={quote(nxt, safe='/')}") from None
        raise web.HTTPTooManyRequests(
            text=json.dumps(error_body(exc), ensure_ascii=False),
            content_type="application/json", headers={"Retry-After": str(exc.details["retry_after"])}) from None
    if user is None:
        if form:
            raise web.HTTPFound(f"/login?failed=1&next={quote(nxt, safe='/')}")
        return _json_error(401, "bad-login", "wrong username or password")
    old, bearer = session_token(request)
    if old and not bearer:
        await users.delete_session(old)  # one browser, one session
    token, csrf = await users.create_session(user["id"])
    nxt = nxt or ROLE_HOME.get(user["role"], DEFAULT_NEXT)  # no page asked for: the role's own page
    response: web.StreamResponse = web.HTTPFound(nxt) if form else web.json_response(
        {"user": user, "csrf_token": csrf, "next": nxt})
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/", secure=request.secure,
                        max_age=int(users.session_ttl.total_seconds()))
    if form:
        raise response
    return response


async def logout(request: web.Request) -> web.Response:
    token, _ = session_token(request)
    user = request.get(USER)
    if user is not None and token:
        await request.app[AUTH].delete_session(token)
        await request.app[AUTH].audit(user["username"], "auth.logout", user["username"])
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    user = request.get(USER)
    if user is None:
        raise Unauthenticated("not logged in")
    return web.json_response({"user": user_payload(user), "csrf_token": user["csrf_token"]})
