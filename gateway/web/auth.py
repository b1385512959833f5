"""Logins, sessions, roles and CSRF protection for the pages and the API.

Theory of operation:

* Passwords are hashed with scrypt (n=2**14, r=8, p=1, 16-byte salt) and stored
  as ``scrypt$n$r$p$salt_b64$hash_b64``. Hashing runs in a worker thread (it is
  deliberately slow) and at most a few hashes run at once (each takes 16 MB).
* A session is a random token (``secrets.token_urlsafe(32)``); only its SHA-256
  is stored, with a CSRF token bound to it. Expired rows are deleted lazily:
  when presented, and whenever a new session is created.
* The token travels in an HttpOnly, SameSite=Strict cookie ``gw_session``
  (pages) or as ``Authorization: Bearer <token>`` (scripts). Every unsafe
  request made with the cookie must carry the session's CSRF token in
  ``X-CSRF-Token`` (or a ``csrf_token`` form field); Bearer requests carry no
  ambient credential and need none.
* A brake refuses logins (429, saying why and for how long): 5 failures in 5 minutes
  block that username for 60 s; 50 failures in 10 minutes block a client address,
  progressively longer (see :class:`LoginBrake`). It lives in memory, per process:
  with several gateway processes each keeps its own count. Behind a reverse proxy
  the client's address comes from ``X-Forwarded-For`` only when the proxy is listed
  in ``GATEWAY_TRUSTED_PROXIES`` (gateway.web.edge).
* ``auth_middleware`` must sit inside ``errors_middleware`` (gateway.web.app),
  which turns the errors below into JSON.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import quote

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import BadRequest, GatewayError
from gateway.ticketing.models import AuditEvent, User, UserSession
from gateway.ticketing.store import TicketStore
from gateway.web.bodies import parse_json_object
from gateway.web.edge import same_origin

log = logging.getLogger(__name__)

ROLES = ("agent", "supervisor", "admin")
COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_NEXT = "/admin"
ROLE_HOME = {"agent": "/desk", "supervisor": "/supervisor", "admin": "/admin"}
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_MAX_TOKEN = 200
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
CSRF_EXEMPT = frozenset({"/api/login"})  # creates the session; guarded by its Origin check instead


# -- errors ------------------------------------------------------------------------------------
class AuthError(GatewayError):
    """Root of the authentication layer's errors."""

    status_code = 400
    error_id = "auth-error"


class ValidationError(AuthError):
    """A username, role or password breaks the rules."""

    status_code = 400
    error_id = "invalid-user"


class UserExists(AuthError):
    status_code = 409
    error_id = "user-exists"


class UnknownUser(AuthError):
    status_code = 404
    error_id = "not-found"


class Unauthenticated(AuthError):
    status_code = 401
    error_id = "unauthenticated"


class Forbidden(AuthError):
    status_code = 403
    error_id = "forbidden"


class LastAdmin(AuthError):
    status_code = 409
    error_id = "last-admin"


class TooManyAttempts(AuthError):
    status_code = 429
    error_id = "too-many-attempts"


# -- passwords ---------------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` (blocking: ~50 ms)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored hash (blocking)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        if kind != "scrypt" or not (2 <= n_ <= 2**20 and 1 <= r_ <= 32 and 1 <= p_ <= 16):
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt, validate=True),
                             dklen=len(expected), n=n_, r=r_, p=p_, maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_password_policy(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- brute-force brake -------------------------------------------------------------------------
@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    strikes: int = 0  # how often this key was blocked (the address penalty doubles each time)
    last_block: float = 0.0


@dataclass(frozen=True)
class BrakePolicy:
    """``limit`` failures within ``window`` s block the key for ``penalty`` s, doubled for each
    block that follows within ``forgive`` s, up to ``max_penalty`` s."""

    limit: int
    window: float
    penalty: float
    max_penalty: float
    forgive: float = 3600.0

    def penalty_for(self, strikes: int) -> float:
        return min(self.max_penalty, self.penalty * 2 ** max(0, strikes - 1))


USER_POLICY = BrakePolicy(limit=5, window=300.0, penalty=60.0, max_penalty=60.0)
ADDRESS_POLICY = BrakePolicy(limit=50, window=600.0, penalty=60.0, max_penalty=3600.0)
_SCOPES = {"user": ("该用户", "this user"), "address": ("该网络地址", "this network address")}


class LoginBrake:
    """Refuses logins (429) for a while after repeated failures, per user and per address.

    * Per user: 5 failures within 5 minutes block *that username* for 60 s, from any
      address; other users are not affected.
    * Per client address: 50 failures within 10 minutes (a password spray) block the
      address for 60 s, doubling with each new block within an hour, up to an hour.
      The limit is high because many people share an address (a call centre behind NAT,
      a reverse proxy: set ``GATEWAY_TRUSTED_PROXIES`` so the client's own address is used).

    A refusal says which brake it is and for how long (``details``: scope, retry_after).
    In memory, per process; at most ``size`` keys are kept (least recently failed go first).
    """

    def __init__(self, *, user: BrakePolicy = USER_POLICY, address: BrakePolicy = ADDRESS_POLICY,
                 size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.policies = {"user": user, "address": address}
        self.size = size
        self._clock = clock
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

    @staticmethod
    def _keys(username: str, address: str | None) -> list[tuple[str, str]]:
        return [("user", username)] + ([("address", address)] if address else [])

    def check(self, username: str, address: str | None = None) -> None:
        now = self._clock()
        for key in self._keys(username, address):
            record = self._records.get(key)
            if record is not None and record.blocked_until > now:
                wait = int(record.blocked_until - now) + 1
                zh, en = _SCOPES[key[0]]
                raise TooManyAttempts(f"{zh}登录失败次数过多，请 {wait} 秒后再试 / too many failed logins for {en}; "
                                      f"try again in {wait} s", details={"scope": key[0], "retry_after": wait})

    def fail(self, username: str, address: str | None = None) -> None:
        now = self._clock()
        for key in self._keys(username, address):
            policy = self.policies[key[0]]
            record = self._records.pop(key, None) or _Record()
            record.failures = [t for t in record.failures if now - t < policy.window][-(policy.limit - 1):] + [now]
            if len(record.failures) >= policy.limit and record.blocked_until <= now:
                record.strikes = record.strikes + 1 if now - record.last_block < policy.forgive else 1
                record.last_block = now
                record.blocked_until = now + policy.penalty_for(record.strikes)
                record.failures = []
            self._records[key] = record  # most recent last
        while len(self._records) > self.size:
            self._records.popitem(last=False)

    def succeed(self, username: str) -> None:
        """A good password clears that user's count (never the address's: one good account
        must not reset a spray)."""
        self._records.pop(("user", username), None)

    def __len__(self) -> int:
        return len(self._records)


# -- users and sessions ------------------------------------------------------------------------
def _user_dict(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role, "disabled": bool(user.disabled),
            "agent_id": user.agent_id,
            "created_at": user.created_at.isoformat() if user.created_at else None}


class UserStore:
    """Users, their sessions and the login audit trail, in the gateway's database.

    ``engine`` is the async engine of a migrated database (a ``TicketStore`` on
    the same database is accepted too and shares its transactions).
    """

    def __init__(self, engine: AsyncEngine | TicketStore, *, session_ttl: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 brake: LoginBrake | None = None, hash_concurrency: int = 4) -> None:
        self._db = engine if isinstance(engine, TicketStore) else TicketStore(engine)
        self.session_ttl = session_ttl
        self.clock = clock
        self.brake = brake if brake is not None else LoginBrake()
        self._hash_slots = asyncio.Semaphore(hash_concurrency)
        self._watchers: dict[str, tuple[int, set[asyncio.Event]]] = {}  # token digest -> (user id, events)

    # -- open connections of a session (desk WebSockets) --------------------------------------
    def watch_session(self, token: str, user_id: int) -> asyncio.Event:
        """An event set when this session ends here (logout, password change, user disabled or
        deleted): a WebSocket opened with it closes at once instead of at its next check."""
        event = asyncio.Event()
        self._watchers.setdefault(_digest(token), (user_id, set()))[1].add(event)
        return event

    def unwatch_session(self, token: str, event: asyncio.Event) -> None:
        digest = _digest(token)
        entry = self._watchers.get(digest)
        if entry is not None:
            entry[1].discard(event)
            if not entry[1]:
                del self._watchers[digest]

    def _session_ended(self, *, digest: str | None = None, user_id: int | None = None) -> None:
        for key, (owner, events) in list(self._watchers.items()):
            if key == digest or (user_id is not None and owner == user_id):
                for event in events:
                    event.set()

    async def _hash(self, password: str) -> str:
        async with self._hash_slots:
            return await asyncio.to_thread(hash_password, password)

    async def _verify(self, password: str, stored: str) -> bool:
        async with self._hash_slots:
            return await asyncio.to_thread(verify_password, password, stored)

    async def create_user(self, username: str, password: str, role: str, *, actor: str = "cli",
                          agent_id: str | None = None) -> int:
        if not isinstance(username, str) or not _USERNAME.match(username):
            raise ValidationError("a username is 2-32 of a-z, 0-9, _ . - and starts with a letter",
                                  details={"field": "username"})
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}", details={"field": "role"})
        _check_agent_id(agent_id)
        password_hash = await self._hash(check_password_policy(password))

        async def work(session) -> int:
            if (await session.execute(sa.select(User.id).where(User.username == username))).first():
                raise UserExists(f"user {username} exists already", details={"username": username})
            user = User(username=username, password_hash=password_hash, role=role, disabled=False,
                        agent_id=agent_id)
            session.add(user)
            await session.flush()
            session.add(AuditEvent(actor=actor, action="user.created", object_type="user", object_id=username,
                                   details={"role": role}))
            return user.id

        return await self._db.run_write(work)

    async def set_password(self, username: str, password: str, *, actor: str = "cli") -> None:
        """Change a password; the user's open sessions are closed."""
        password_hash = await self._hash(check_password_policy(password))

        async def work(session) -> None:
            user = (await session.execute(sa.select(User).where(User.username == username))).scalar_one_or_none()
            if user is None:
                raise UnknownUser(f"no user {username}", details={"username": username})
            user.password_hash = password_hash
            await session.execute(sa.delete(UserSession).where(UserSession.user_id == user.id))
            session.add(AuditEvent(actor=actor, action="user.password_set", object_type="user",
                                   object_id=username, details={}))
            return user.id

        self._session_ended(user_id=await self._db.run_write(work))

    async def set_disabled(self, username: str, disabled: bool, *, actor: str = "cli") -> None:
        """Disable (every session closed, no login) or enable a user; the last enabled admin
        cannot be disabled (nobody could change the configuration any more)."""

        async def work(session) -> int:
            user = await _user_named(session, username)
            if disabled and not user.disabled:
                await _refuse_last_admin(session, user, "disable")
            user.disabled = bool(disabled)
            if disabled:
                await session.execute(sa.delete(UserSession).where(UserSession.user_id == user.id))
            session.add(AuditEvent(actor=actor, action="user.disabled" if disabled else "user.enabled",
                                   object_type="user", object_id=username, details={}))
            return user.id

        self._session_ended(user_id=await self._db.run_write(work))

    async def delete_user(self, username: str, *, actor: str = "cli") -> None:
        """Delete a user and their sessions and unsaved drafts; what they decided keeps their
        name (tickets, audit). The last enabled admin cannot be deleted."""
        from gateway.ticketing.models import TicketDraft

        async def work(session) -> int:
            user = await _user_named(session, username)
            await _refuse_last_admin(session, user, "delete")
            await session.execute(sa.delete(UserSession).where(UserSession.user_id == user.id))
            await session.execute(sa.delete(TicketDraft).where(TicketDraft.username == username))
            await session.delete(user)
            session.add(AuditEvent(actor=actor, action="user.deleted", object_type="user", object_id=username,
                                   details={"role": user.role}))
            return user.id

        self._session_ended(user_id=await self._db.run_write(work))

    async def set_agent(self, username: str, agent_id: str | None, *, actor: str = "cli") -> None:
        """Tie a user to a queue member (the agent id of hotlines.yaml), or untie with None."""
        _check_agent_id(agent_id)

        async def work(session) -> None:
            user = (await session.execute(sa.select(User).where(User.username == username))).scalar_one_or_none()
            if user is None:
                raise UnknownUser(f"no user {username}", details={"username": username})
            user.agent_id = agent_id
            session.add(AuditEvent(actor=actor, action="user.agent_set", object_type="user",
                                   object_id=username, details={"agent_id": agent_id}))

        await self._db.run_write(work)

    async def users_for_agent(self, agent_id: str) -> list[dict[str, Any]]:
        """The enabled users answering as queue member ``agent_id`` (who gets its screen pops)."""
        async with self._db.read_session() as session:
            rows = await session.scalars(sa.select(User).where(
                User.agent_id == agent_id, User.disabled.is_(False)).order_by(User.username))
            return [_user_dict(u) for u in rows.all()]

    async def list_users(self) -> list[dict[str, Any]]:
        async with self._db.read_session() as session:
            return [_user_dict(u) for u in (await session.scalars(sa.select(User).order_by(User.username))).all()]

    async def count_users(self, role: str | None = None) -> int:
        stmt = sa.select(sa.func.count(User.id))
        if role is not None:
            stmt = stmt.where(User.role == role)
        async with self._db.read_session() as session:
            return int((await session.execute(stmt)).scalar_one())

    async def authenticate(self, username: str, password: str, *, remote: str | None = None) -> dict | None:
        """The user for a good password, else None (unknown, wrong or disabled: the same cost).

        With the brake: raises :class:`TooManyAttempts` while ``username`` or
        ``remote`` is refused; every outcome is audited (never the password).
        """
        username = username if isinstance(username, str) else ""
        password = password if isinstance(password, str) else ""
        self.brake.check(username, remote)
        user = None
        if _USERNAME.match(username):
            async with self._db.read_session() as session:
                user = (await session.scalars(sa.select(User).where(User.username == username))).one_or_none()
        good = await self._verify(password[:MAX_PASSWORD], user.password_hash if user else _dummy_hash())
        details = {"remote": remote} if remote else {}
        if user is None or not good or user.disabled:
            self.brake.fail(username, remote)
            reason = "disabled" if (user is not None and good) else "bad-credentials"
            await self.audit("anonymous", "auth.login_failed", username[:64] or "-", {**details, "reason": reason})
            return None
        self.brake.succeed(username)
        await self.audit(username, "auth.login", username, details)
        return {"id": user.id, "username": user.username, "role": user.role}

    async def create_session(self, user_id: int) -> tuple[str, str]:
        """A new session: ``(token, csrf_token)``; only the token's SHA-256 is stored."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock()

        async def work(session) -> None:
            await session.execute(sa.delete(UserSession).where(UserSession.expires_at <= now))
            session.add(UserSession(token_hash=_digest(token), user_id=user_id, csrf_token=csrf, created_at=now,
                                    expires_at=now + self.session_ttl))

        await self._db.run_write(work)
        return token, csrf

    async def session_user(self, token: str | None) -> dict | None:
        """The user behind a session token, or None (unknown, expired or disabled)."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        stmt = (sa.select(UserSession, User).join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash == _digest(token)))
        async with self._db.read_session() as session:
            row = (await session.execute(stmt)).first()
        if row is None:
            return None
        sess, user = row
        if sess.expires_at <= self.clock() or user.disabled:
            await self.delete_session(token)
            return None
        return {"id": user.id, "username": user.username, "role": user.role, "csrf_token": sess.csrf_token,
                "expires_at": sess.expires_at.isoformat(), "agent_id": user.agent_id}

    async def delete_session(self, token: str) -> None:
        async def work(session) -> None:
            await session.execute(sa.delete(UserSession).where(UserSession.token_hash == _digest(token)))

        await self._db.run_write(work)
        self._session_ended(digest=_digest(token))

    async def audit(self, actor: str, action: str, username: str, details: dict | None = None) -> None:
        async def work(session) -> None:
            session.add(AuditEvent(actor=actor[:32], action=action, object_type="user", object_id=username[:64],
                                   details=details or {}))

        await self._db.run_write(work)


async def _user_named(session, username: str) -> User:
    user = (await session.execute(sa.select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        raise UnknownUser(f"no user {username}", details={"username": username})
    return user


async def _refuse_last_admin(session, user: User, what: str) -> None:
    if user.role != "admin" or user.disabled:
        return
    others = (await session.execute(sa.select(sa.func.count(User.id)).where(
        User.role == "admin", User.disabled.is_(False), User.id != user.id))).scalar_one()
    if not others:
        raise LastAdmin(f"{user.username} is the last enabled admin: add another admin before you {what} it",
                        details={"username": user.username})


def _check_agent_id(agent_id: str | None) -> None:
    if agent_id is not None and (not isinstance(agent_id, str) or not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", agent_id)):
        raise ValidationError("an agent id is 1-32 of 0-9, A-Z, a-z, _ and -", details={"field": "agent_id"})


def user_payload(user: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a logged-in user."""
    return {k: user[k] for k in ("id", "username", "role", "expires_at", "agent_id") if k in user}


# -- aiohttp integration -----------------------------------------------------------------------
AUTH = web.AppKey("auth", UserStore)


def _token(request: web.Request) -> tuple[str | None, bool]:
    """The session token and whether it came as a Bearer header (no ambient credential)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None, True
    return request.cookies.get(COOKIE) or None, False


def _json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message, "details": {}}, status=status)


@web.middleware
async def auth_middleware(request: web.Request, handler):
    """Attach ``request["user"]`` (or None); refuse cookie requests that change things without CSRF."""
    request["user"] = None
    token, bearer = _token(request)
    if token and AUTH in request.app:
        user = await request.app[AUTH].session_user(token)
        if user is not None:
            if request.method not in SAFE_METHODS and not bearer and request.path not in CSRF_EXEMPT:
                sent = request.headers.get(CSRF_HEADER, "")
                if not sent and request.content_type in _FORMS:
                    sent = (await request.post()).get("csrf_token", "")
                if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), user["csrf_token"].encode()):
                    return _json_error(403, "csrf", f"missing or wrong CSRF token (send {CSRF_HEADER})")
            request["user"] = user
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
            user = request.get("user")
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
        return parse_json_object(await request.read(), limit=16_000), False
    except BadRequest as exc:
        raise BadRequest(f"send JSON {{username, password}}: {exc.message}", details=exc.details) from None


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
            text=json.dumps({"error": exc.error_id, "message": exc.message, "details": exc.details},
                            ensure_ascii=False),
            content_type="application/json", headers={"Retry-After": str(exc.details["retry_after"])}) from None
    if user is None:
        if form:
            raise web.HTTPFound(f"/login?failed=1&next={quote(nxt, safe='/')}")
        return _json_error(401, "bad-login", "wrong username or password")
    old, bearer = _token(request)
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
    token, _ = _token(request)
    user = request.get("user")
    if user is not None and token:
        await request.app[AUTH].delete_session(token)
        await request.app[AUTH].audit(user["username"], "auth.logout", user["username"])
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    user = request.get("user")
    if user is None:
        raise Unauthenticated("not logged in")
    return web.json_response({"user": user_payload(user), "csrf_token": user["csrf_token"]})


_LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>12345 热线网关 登录 Sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:"WenQuanYi Micro Hei","Noto Sans CJK SC",sans-serif;background:#f3f5f8;margin:0}
main{max-width:360px;margin:12vh auto;background:#fff;padding:28px 32px;border-radius:8px;box-shadow:0 2px 10px #0002}
h1{font-size:20px;margin:0 0 18px}label{display:block;margin:12px 0 4px}input{width:100%;padding:8px;box-sizing:border-box}
button{margin-top:18px;width:100%;padding:10px;background:#1d5fbf;color:#fff;border:0;border-radius:4px;font-size:15px}
.err{color:#b00020;margin-top:12px;min-height:1em}</style></head>
<body><main><h1>12345 热线网关 登录 <small>Sign in</small></h1>
<form method="post" action="/api/login" id="login">
<input type="hidden" name="next" id="next" value="__NEXT__">
<label for="username">用户名 Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">密码 Password</label><input id="password" name="password" type="password"
 autocomplete="current-password" required>
<button type="submit">登录 Sign in</button>
<p class="err" id="error" role="alert">__ERROR__</p></form></main>
<script nonce="__NONCE__">
(function () {
  var form = document.getElementById("login"), error = document.getElementById("error");
  function local(p) { return /^\\/(?![\\/\\\\])[^\\\\\\s]*$/.test(p) ? p : "__DEFAULT__"; }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    error.textContent = "";
    fetch("/api/login", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({username: form.username.value, password: form.password.value})})
      .then(function (resp) {
        if (resp.ok) {
          resp.json().then(function (b) { location.assign(local(document.getElementById("next").value || b.next)); });
          return;
        }
        if (resp.status === 429) {
          resp.json().then(function (b) { error.textContent = b.message || "__THROTTLED__"; },
                           function () { error.textContent = "__THROTTLED__"; });
          return;
        }
        error.textContent = "__FAILED__";
      })
      .catch(function () { error.textContent = "网络错误 Network error"; });
  });
})();
</script></body></html>
"""
_MESSAGES = {"1": "用户名或密码错误 Wrong username or password",
             "throttled": "尝试次数过多，请一分钟后再试 Too many attempts, wait a minute"}


def _failure_message(query) -> str:
    failed = query.get("failed", "")
    wait = query.get("wait", "")
    scope = query.get("scope", "")
    if failed == "throttled" and re.fullmatch(r"[0-9]{1,5}", wait) and scope in _SCOPES:
        zh, en = _SCOPES[scope]
        return f"{zh}登录失败次数过多，请 {wait} 秒后再试 Too many failed logins for {en}: try again in {wait} s"
    return _MESSAGES.get(failed, "")


async def login_page(request: web.Request) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    asked = request.query.get("next")
    page = (_LOGIN_PAGE.replace("__NEXT__", html.escape(safe_next(asked) if asked else "", quote=True))
            .replace("__ERROR__", html.escape(_failure_message(request.query)))
            .replace("__FAILED__", _MESSAGES["1"]).replace("__THROTTLED__", _MESSAGES["throttled"])
            .replace("__DEFAULT__", DEFAULT_NEXT).replace("__NONCE__", nonce))
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return web.Response(text=page, content_type="text/html", headers={
        "Cache-Control": "no-store", "Content-Security-Policy": csp, "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin"})


def add_auth_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
