"""Logins, sessions, roles and CSRF protection for the pages and the API.

Passwords are hashed with scrypt; a session is a random token whose SHA-256
alone is stored, with a CSRF token bound to it. The session travels in an
HttpOnly, SameSite=Strict cookie (pages) or as ``Authorization: Bearer``
(scripts). Every unsafe request made with the cookie must carry the session's
CSRF token in ``X-CSRF-Token`` (or a ``csrf_token`` form field); Bearer
requests carry no ambient credential and need none.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa
from aiohttp import web

from gateway.errors import GatewayError
from gateway.ticketing.models import AuditEvent, User, UserSession
from gateway.ticketing.store import TicketStore

ROLES = ("agent", "supervisor", "admin")
COOKIE = "gw_session"
_USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class AuthError(GatewayError):
    status_code = 400
    error_id = "bad-user"


class Unauthenticated(GatewayError):
    status_code = 401
    error_id = "unauthenticated"


class Forbidden(GatewayError):
    status_code = 403
    error_id = "forbidden"


class TooManyAttempts(GatewayError):
    status_code = 429
    error_id = "too-many-attempts"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), dklen=len(expected),
                             n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(12))


class _Brake:
    """At most 5 failed logins per username or address in 5 minutes, then 60 s of refusals."""

    def __init__(self, limit: int = 5, window: float = 300.0, penalty: float = 60.0, size: int = 10000) -> None:
        self.limit, self.window, self.penalty = limit, window, penalty
        self._fails: OrderedDict[str, list[float]] = OrderedDict()
        self._size = size

    def check(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            recent = [t for t in self._fails.get(key, []) if now - t < self.window]
            if len(recent) >= self.limit and now - recent[-1] < self.penalty:
                raise TooManyAttempts("too many failed logins; wait a minute and try again")

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            times = [t for t in self._fails.pop(key, []) if now - t < self.window] + [now]
            self._fails[key] = times[-self.limit:]
        while len(self._fails) > self._size:
            self._fails.popitem(last=False)

    def succeed(self, *keys: str) -> None:
        for key in keys:
            self._fails.pop(key, None)


class UserStore:
    def __init__(self, store: TicketStore, *, session_ttl: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.store = store
        self.session_ttl = session_ttl
        self.clock = clock
        self.brake = _Brake()

    async def create_user(self, username: str, password: str, role: str) -> int:
        if not isinstance(username, str) or not _USERNAME.match(username):
            raise AuthError("a username is 2-32 of a-z, 0-9, _ . - and starts with a letter")
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}")
        if not isinstance(password, str) or len(password) < 10:
            raise AuthError("a password has at least 10 characters")

        async def work(session) -> int:
            if (await session.execute(sa.select(User.id).where(User.username == username))).first():
                raise AuthError(f"user {username} exists already")
            user = User(username=username, password_hash=hash_password(password), role=role, disabled=False)
            session.add(user)
            await session.flush()
            session.add(AuditEvent(actor="cli", action="user.created", object_type="user", object_id=username,
                                   details={"role": role}))
            return user.id

        return await self.store.run_write(work)

    async def set_password(self, username: str, password: str) -> None:
        if not isinstance(password, str) or len(password) < 10:
            raise AuthError("a password has at least 10 characters")

        async def work(session) -> None:
            user = (await session.execute(sa.select(User).where(User.username == username))).scalar_one_or_none()
            if user is None:
                raise AuthError(f"no user {username}")
            user.password_hash = hash_password(password)
            await session.execute(sa.delete(UserSession).where(UserSession.user_id == user.id))
            session.add(AuditEvent(actor="cli", action="user.password_set", object_type="user", object_id=username,
                                   details={}))

        await self.store.run_write(work)

    async def list_users(self) -> list[dict]:
        async with self.store.read_session() as session:
            rows = (await session.execute(sa.select(User).order_by(User.username))).scalars()
            return [{"username": u.username, "role": u.role, "disabled": u.disabled} for u in rows]

    async def count_users(self, role: str | None = None) -> int:
        stmt = sa.select(sa.func.count(User.id))
        if role:
            stmt = stmt.where(User.role == role)
        async with self.store.read_session() as session:
            return int((await session.execute(stmt)).scalar_one())

    async def authenticate(self, username: str, password: str) -> dict | None:
        async with self.store.read_session() as session:
            user = (await session.execute(sa.select(User).where(User.username == username))).scalar_one_or_none()
        if user is None:
            verify_password(password, _DUMMY_HASH)  # the same cost as a real check
            return None
        if not verify_password(password, user.password_hash) or user.disabled:
            return None
        return {"id": user.id, "username": user.username, "role": user.role}

    async def create_session(self, user_id: int) -> tuple[str, str]:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self.clock()

        async def work(session) -> None:
            session.add(UserSession(token_hash=_digest(token), user_id=user_id, csrf_token=csrf, created_at=now,
                                    expires_at=now + self.session_ttl))

        await self.store.run_write(work)
        return token, csrf

    async def session_user(self, token: str) -> dict | None:
        if not token or len(token) > 200:
            return None
        stmt = (sa.select(UserSession, User).join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash == _digest(token)))
        async with self.store.read_session() as session:
            row = (await session.execute(stmt)).first()
        if row is None:
            return None
        sess, user = row
        if sess.expires_at <= self.clock() or user.disabled:
            await self.delete_session(token)
            return None
        return {"id": user.id, "username": user.username, "role": user.role, "csrf_token": sess.csrf_token,
                "expires_at": sess.expires_at.isoformat()}

    async def delete_session(self, token: str) -> None:
        async def work(session) -> None:
            await session.execute(sa.delete(UserSession).where(UserSession.token_hash == _digest(token)))

        await self.store.run_write(work)

    async def audit(self, actor: str, action: str, username: str, details: dict | None = None) -> None:
        async def work(session) -> None:
            session.add(AuditEvent(actor=actor, action=action, object_type="user", object_id=username[:64],
                                   details=details or {}))

        await self.store.run_write(work)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


AUTH = web.AppKey("auth", UserStore)


def _token(request: web.Request) -> tuple[str | None, bool]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip(), True
    return request.cookies.get(COOKIE), False


@web.middleware
async def auth_middleware(request: web.Request, handler):
    request["user"] = None
    token, bearer = _token(request)
    if token and AUTH in request.app:
        user = await request.app[AUTH].session_user(token)
        if user is not None:
            request["user"] = user
            if request.method in UNSAFE and not bearer and request.path not in ("/api/login",):
                sent = request.headers.get("X-CSRF-Token", "")
                if not sent and request.content_type == "application/x-www-form-urlencoded":
                    sent = (await request.post()).get("csrf_token", "")
                if not hmac.compare_digest(str(sent), user["csrf_token"]):
                    return web.json_response({"error": "csrf", "message": "missing or wrong CSRF token"},
                                             status=403)
    return await handler(request)


def require_role(*roles: str, page: bool = False):
    """Allow the handler only to a logged-in user whose role is one of ``roles``."""

    def wrap(handler):
        @functools.wraps(handler)
        async def checked(request: web.Request):
            user = request.get("user")
            if user is None:
                if page:
                    raise web.HTTPFound(f"/login?next={_quote_next(request.path)}")
                raise Unauthenticated("log in first (POST /api/login)")
            if user["role"] not in roles:
                if page:
                    raise web.HTTPForbidden(text="403: your role may not open this page")
                raise Forbidden(f"the role {user['role']} may not do this")
            return await handler(request)

        return checked

    return wrap


def _quote_next(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def safe_next(value: str | None) -> str:
    """Only a local path may follow a login (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or "\n" in value:
        return "/admin"
    return value


async def login(request: web.Request) -> web.Response:
    users: UserStore = request.app[AUTH]
    form = request.content_type == "application/x-www-form-urlencoded"
    if form:
        data = dict(await request.post())
    else:
        try:
            data = json.loads(await request.text())
        except ValueError:
            data = None
    if not isinstance(data, dict):
        return web.json_response({"error": "bad-request", "message": "send JSON {username, password}"}, status=400)
    username, password = str(data.get("username", ""))[:64], str(data.get("password", ""))[:256]
    remote = request.remote or "?"
    users.brake.check(f"user:{username}", f"addr:{remote}")
    user = await users.authenticate(username, password)
    if user is None:
        users.brake.fail(f"user:{username}", f"addr:{remote}")
        await users.audit("anonymous", "auth.login_failed", username or "-", {"remote": remote})
        if form:
            raise web.HTTPFound(f"/login?failed=1&next={_quote_next(safe_next(data.get('next')))}")
        return web.json_response({"error": "bad-login", "message": "wrong username or password"}, status=401)
    users.brake.succeed(f"user:{username}", f"addr:{remote}")
    token, csrf = await users.create_session(user["id"])
    await users.audit(username, "auth.login", username, {"remote": remote})
    if form:
        response = web.HTTPFound(safe_next(data.get("next")))
    else:
        response = web.json_response({"user": user, "csrf_token": csrf})
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        max_age=int(users.session_ttl.total_seconds()))
    if form:
        raise response
    return response


async def logout(request: web.Request) -> web.Response:
    token, _ = _token(request)
    if request.get("user") and token:
        await request.app[AUTH].delete_session(token)
        await request.app[AUTH].audit(request["user"]["username"], "auth.logout", request["user"]["username"])
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    user = request.get("user")
    if user is None:
        raise Unauthenticated("not logged in")
    return web.json_response({"user": {k: user[k] for k in ("username", "role", "expires_at")},
                              "csrf_token": user["csrf_token"]})


_LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>12345 热线网关 登录</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:"WenQuanYi Micro Hei","Noto Sans CJK SC",sans-serif;background:#f3f5f8;margin:0}
main{max-width:360px;margin:12vh auto;background:#fff;padding:28px 32px;border-radius:8px;box-shadow:0 2px 10px #0002}
h1{font-size:20px;margin:0 0 18px}label{display:block;margin:12px 0 4px}input{width:100%;padding:8px;box-sizing:border-box}
button{margin-top:18px;width:100%;padding:10px;background:#1d5fbf;color:#fff;border:0;border-radius:4px;font-size:15px}
.err{color:#b00020;margin-top:12px}</style></head>
<body><main><h1>12345 热线网关 登录 <small>Sign in</small></h1>
<form method="post" action="/api/login" id="login">
<input type="hidden" name="next" value="__NEXT__">
<label for="username">用户名 Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">密码 Password</label><input id="password" name="password" type="password"
 autocomplete="current-password" required>
<button type="submit">登录 Sign in</button>
<p class="err" id="error" role="alert">__ERROR__</p></form></main></body></html>
"""


async def login_page(request: web.Request) -> web.Response:
    nxt = html.escape(safe_next(request.query.get("next")), quote=True)
    error = "用户名或密码错误 Wrong username or password" if request.query.get("failed") else ""
    return web.Response(text=_LOGIN_PAGE.replace("__NEXT__", nxt).replace("__ERROR__", error),
                        content_type="text/html", headers={"Cache-Control": "no-store",
                                                           "Content-Security-Policy": "default-src 'self'; "
                                                           "style-src 'unsafe-inline'"})


def add_auth_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)


def user_payload(user: dict[str, Any]) -> dict[str, Any]:
    return {k: user[k] for k in ("username", "role")}
