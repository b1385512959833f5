"""Logins, sessions, roles and CSRF on a real SQLite database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.ticketing import migrate
from gateway.ticketing.store import TicketStore
from gateway.web.app import errors_middleware
from gateway.web.auth import AUTH, USER, UserStore, add_auth_routes, auth_middleware, require_role, safe_next


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
async def env(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    migrate.upgrade(url)
    store = await TicketStore.open(url)
    clock = Clock()
    users = UserStore(store, clock=clock)
    await users.create_user("root", "admin password 1", "admin")
    await users.create_user("alice", "agent password 1", "agent")
    changed = []

    @require_role("admin")
    async def change(request):
        changed.append(request[USER]["username"])
        return web.json_response({"ok": True})

    @require_role("admin", page=True)
    async def page(request):
        return web.Response(text="admin page")

    app = web.Application(middlewares=[errors_middleware, auth_middleware])
    app[AUTH] = users
    add_auth_routes(app)
    app.router.add_post("/api/admin/thing", change)
    app.router.add_get("/admin", page)
    async with TestClient(TestServer(app)) as client:
        yield client, users, clock, changed, store
    await store.close()


async def _login(client, username="root", password="admin password 1"):
    resp = await client.post("/api/login", json={"username": username, "password": password})
    return resp, (await resp.json())


async def test_given_good_credentials_when_logging_in_then_a_strict_httponly_cookie_and_a_csrf_token(env):
    client, *_ = env
    resp, body = await _login(client)
    assert resp.status == 200 and body["user"]["role"] == "admin" and body["csrf_token"]
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_given_a_wrong_password_when_logging_in_then_401_and_audited_without_the_password(env):
    client, users, _, _, store = env
    resp, body = await _login(client, password="wrong password")
    assert resp.status == 401
    audit = await store.list_audit("user", "root")
    assert audit[-1]["action"] == "auth.login_failed" and "wrong password" not in str(audit)


async def test_given_a_session_when_posting_without_or_with_a_wrong_csrf_token_then_403_and_nothing_done(env):
    client, _, _, changed, _ = env
    _, body = await _login(client)
    assert (await client.post("/api/admin/thing")).status == 403
    assert (await client.post("/api/admin/thing", headers={"X-CSRF-Token": "nope"})).status == 403
    assert changed == []
    assert (await client.post("/api/admin/thing", headers={"X-CSRF-Token": body["csrf_token"]})).status == 200
    assert changed == ["root"]


async def test_given_a_bearer_token_when_posting_then_no_csrf_is_needed(env):
    client, users, _, changed, _ = env
    token, _ = await users.create_session(1)
    client.session.cookie_jar.clear()
    resp = await client.post("/api/admin/thing", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200 and changed == ["root"]


async def test_given_an_agent_when_opening_admin_routes_then_403(env):
    client, *_ = env
    _, body = await _login(client, "alice", "agent password 1")
    assert (await client.post("/api/admin/thing", headers={"X-CSRF-Token": body["csrf_token"]})).status == 403
    assert (await client.get("/admin")).status == 403


async def test_given_nobody_when_opening_the_page_then_redirected_to_login_and_the_api_says_401(env):
    client, *_ = env
    resp = await client.get("/admin", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/login?next=/admin"
    assert (await client.post("/api/admin/thing")).status == 401


async def test_given_an_expired_session_when_used_then_401(env):
    client, _, clock, _, _ = env
    _, body = await _login(client)
    clock.now += timedelta(hours=9)
    assert (await client.get("/api/me")).status == 401


async def test_given_a_logout_when_the_token_is_reused_then_401(env):
    client, users, _, _, _ = env
    token, csrf = await users.create_session(1)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/api/logout", headers=headers)).status == 200
    assert (await client.get("/api/me", headers=headers)).status == 401


async def test_given_repeated_failures_when_logging_in_then_429(env):
    client, *_ = env
    for _ in range(5):
        await _login(client, password="wrong password")
    resp, _ = await _login(client)
    assert resp.status == 429


@pytest.mark.parametrize("value,expected", [
    ("/admin", "/admin"), ("//evil.example/x", "/admin"), ("https://evil.example", "/admin"),
    ("/\\evil", "/admin"), (None, "/admin"),
])
def test_given_a_next_parameter_when_checked_then_only_local_paths_pass(value, expected):
    assert safe_next(value) == expected


async def test_given_a_hostile_next_when_the_login_page_renders_then_it_is_escaped(env):
    client, *_ = env
    text = await (await client.get('/login?next=/"><script>alert(1)</script>')).text()
    assert "<script>alert(1)" not in text and "&lt;script&gt;" in text


async def test_given_weak_input_when_creating_users_then_refused(env):
    _, users, *_ = env
    from gateway.web.auth import AuthError

    for name, password, role in [("Bad Name", "long enough pw", "admin"), ("bob", "short", "admin"),
                                 ("bob", "long enough pw", "root"), ("root", "long enough pw", "admin")]:
        with pytest.raises(AuthError):
            await users.create_user(name, password, role)
