"""Users, their sessions and the login audit trail, in the gateway's database."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.brake import LoginBrake
from gateway.auth.errors import LastAdmin, UnknownUser, UserExists, ValidationError
from gateway.auth.passwords import (MAX_PASSWORD, check_password_policy, dummy_hash, hash_password, token_digest,
                                    verify_password)
from gateway.ticketing.models import AuditEvent, User, UserSession
from gateway.ticketing.store import TicketStore

ROLES = ("agent", "supervisor", "admin", "unit")
USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
MAX_TOKEN = 200


def _user_dict(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role, "disabled": bool(user.disabled),
            "agent_id": user.agent_id, "unit_id": user.unit_id,
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
        self._watchers.setdefault(token_digest(token), (user_id, set()))[1].add(event)
        return event

    def unwatch_session(self, token: str, event: asyncio.Event) -> None:
        digest = token_digest(token)
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
                          agent_id: str | None = None, unit_id: str | None = None) -> int:
        if not isinstance(username, str) or not USERNAME.match(username):
            raise ValidationError("a username is 2-32 of a-z, 0-9, _ . - and starts with a letter",
                                  details={"field": "username"})
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}", details={"field": "role"})
        _check_agent_id(agent_id)
        if (role == "unit") != (unit_id is not None):
            raise ValidationError("a unit account needs a unit id (--unit), and only a unit account has one",
                                  details={"field": "unit_id"})
        password_hash = await self._hash(check_password_policy(password))

        async def work(session) -> int:
            if (await session.execute(sa.select(User.id).where(User.username == username))).first():
                raise UserExists(f"user {username} exists already", details={"username": username})
            user = User(username=username, password_hash=password_hash, role=role, disabled=False,
                        agent_id=agent_id, unit_id=unit_id)
            session.add(user)
            await session.flush()
            session.add(AuditEvent(actor=actor, action="user.created", object_type="user", object_id=username,
                                   details={"role": role, **({"unit_id": unit_id} if unit_id else {})}))
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

    async def api_token(self, username: str, *, days: float, actor: str = "cli") -> str:
        """A long-lived session token for a unit's own system (``Authorization: Bearer``); audited."""
        if not 0 < days <= 3660:
            raise ValidationError("days must be between 0 and 3660", details={"field": "days"})
        async with self._db.read_session() as session:
            user = await _user_named(session, username)
            user_id, role, disabled = user.id, user.role, user.disabled
        if role != "unit" or disabled:
            raise ValidationError("API tokens are for enabled unit accounts", details={"field": "username"})
        token, _csrf = await self.create_session(user_id, ttl=timedelta(days=days))
        await self.audit(actor, "user.api_token", username, {"days": days})
        return token

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
        if USERNAME.match(username):
            async with self._db.read_session() as session:
                user = (await session.scalars(sa.select(User).where(User.username == username))).one_or_none()
        good = await self._verify(password[:MAX_PASSWORD], user.password_hash if user else dummy_hash())
        details = {"remote": remote} if remote else {}
        if user is None or not good or user.disabled:
            self.brake.fail(username, remote)
            reason = "disabled" if (user is not None and good) else "bad-credentials"
            await self.audit("anonymous", "auth.login_failed", username[:64] or "-", {**details, "reason": reason})
            return None
        self.brake.succeed(username)
        await self.audit(username, "auth.login", username, details)
        return {"id": user.id, "username": user.username, "role": user.role}

    async def create_session(self, user_id: int, *, ttl: timedelta | None = None) -> tuple[str, str]:
        """A new session: ``(token, csrf_token)``; only the token's SHA-256 is stored. ``ttl``: an
        API token's lifetime (a unit's own system sends it as ``Authorization: Bearer``)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock()
        ttl = ttl or self.session_ttl

        async def work(session) -> None:
            await session.execute(sa.delete(UserSession).where(UserSession.expires_at <= now))
            session.add(UserSession(token_hash=token_digest(token), user_id=user_id, csrf_token=csrf, created_at=now,
                                    expires_at=now + ttl))

        await self._db.run_write(work)
        return token, csrf

    async def session_user(self, token: str | None) -> dict | None:
        """The user behind a session token, or None (unknown, expired or disabled)."""
        if not token or len(token) > MAX_TOKEN:
            return None
        stmt = (sa.select(UserSession, User).join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash == token_digest(token)))
        async with self._db.read_session() as session:
            row = (await session.execute(stmt)).first()
        if row is None:
            return None
        sess, user = row
        if sess.expires_at <= self.clock() or user.disabled:
            await self.delete_session(token)
            return None
        return {"id": user.id, "username": user.username, "role": user.role, "csrf_token": sess.csrf_token,
                "expires_at": sess.expires_at.isoformat(), "agent_id": user.agent_id,
                "unit_id": user.unit_id}

    async def delete_session(self, token: str) -> None:
        async def work(session) -> None:
            await session.execute(sa.delete(UserSession).where(UserSession.token_hash == token_digest(token)))

        await self._db.run_write(work)
        self._session_ended(digest=token_digest(token))

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
    return {k: user[k] for k in ("id", "username", "role", "expires_at", "agent_id", "unit_id") if k in user}
