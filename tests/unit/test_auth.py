"""Logins, sessions, roles and CSRF on a real SQLite database behind a real aiohttp server."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from gateway.ticketing.models import AuditEvent, UserSession
from gateway.ticketing.store import TicketStore
from gateway.auth.brake import LoginBrake
from gateway.auth.errors import UnknownUser, UserExists, ValidationError
from gateway.auth.http import AUTH, USER, auth_middleware, require_role, safe_next
from gateway.auth.passwords import verify_password
from gateway.auth.plugin import add_auth_routes
from gateway.auth.users import UserStore
from gateway.web.app import errors_middleware

ADMIN_PW = "admin password 1"
AGENT_PW = "agent password 1"


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


class World:
    def __init__(self, store: TicketStore, users: UserStore, clock: FakeClock, mono: FakeMonotonic) -> None:
        self.store, self.users, self.clock, self.mono = store, users, clock, mono
        self.changes: list[str] = []

    def app(self) -> web.Application:
        @require_role("admin")
        async def secret(request: web.Request) -> web.Response:
            if request.method == "POST":
                self.changes.append(request[USER]["username"])
            return web.json_response({"ok": True, "changes": len(self.changes)})

        @require_role("agent", page=True)
        async def desk(request: web.Request) -> web.Response:
            return web.Response(text="desk", content_type="text/html")

        app = web.Application(middlewares=[errors_middleware, auth_middleware])
        app[AUTH] = self.users
        add_auth_routes(app)
        app.router.add_get("/api/secret", secret)
        app.router.add_post("/api/secret", secret)
        app.router.add_get("/desk", desk)
        return app

    async def audit(self) -> list[dict]:
        async with self.store.read_session() as session:
            rows = (await session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))).all()
            return [{"actor": r.actor, "action": r.action, "object_id": r.object_id, "details": r.details}
                    for r in rows]

    async def session_rows(self) -> list[UserSession]:
        async with self.store.read_session() as session:
            return list((await session.scalars(sa.select(UserSession))).all())


@pytest.fixture()
async def world(tmp_path, database_url):
    url = database_url  # migrated: SQLite and PostgreSQL (tests/dbfixtures.py)
    store = await TicketStore.open(url)
    clock, mono = FakeClock(datetime(2027, 1, 1, 8, 0, tzinfo=timezone.utc)), FakeMonotonic()
    users = UserStore(store.engine, clock=clock, brake=LoginBrake(clock=mono))
    await users.create_user("root", ADMIN_PW, "admin")
    await users.create_user("agent1", AGENT_PW, "agent")
    yield World(store, users, clock, mono)
    await store.close()


@pytest.fixture()
async def client(world):
    async with TestClient(TestServer(world.app())) as c:
        yield c


async def _login(client, username="root", password=ADMIN_PW):
    resp = await client.post("/api/login", json={"username": username, "password": password})
    return resp, (await resp.json())


def _cookie_token(resp) -> str:
    return resp.cookies["gw_session"].value


# -- the store ---------------------------------------------------------------------------------
@pytest.mark.parametrize("username,password,role", [
    ("Root2", ADMIN_PW, "admin"),
    ("x", ADMIN_PW, "admin"),
    ("bad name", ADMIN_PW, "admin"),
    ("good.name", "short", "admin"),
    ("good.name", ADMIN_PW, "superuser"),
])
async def test_given_bad_user_data_when_creating_then_400_and_no_user(world, username, password, role):
    with pytest.raises(ValidationError) as caught:
        await world.users.create_user(username, password, role)
    assert caught.value.status_code == 400
    assert await world.users.count_users() == 2


async def test_given_an_existing_username_when_creating_again_then_409(world):
    with pytest.raises(UserExists) as caught:
        await world.users.create_user("root", "another password", "agent")
    assert caught.value.status_code == 409
    assert await world.users.count_users("admin") == 1 and await world.users.count_users("agent") == 1


async def test_given_a_new_user_when_listed_then_the_hash_is_scrypt_and_verifies(world):
    assert [(u["username"], u["role"]) for u in await world.users.list_users()] == [("agent1", "agent"),
                                                                                      ("root", "admin")]
    async with world.store.read_session() as session:
        stored = (await session.execute(sa.text("SELECT password_hash FROM users WHERE username='root'"))).scalar()
    kind, n, r, p, _salt, _digest = stored.split("$")
    assert (kind, n, r, p) == ("scrypt", "16384", "8", "1") and ADMIN_PW not in stored
    assert verify_password(ADMIN_PW, stored) and not verify_password(ADMIN_PW + "x", stored)


async def test_given_a_password_change_when_done_then_old_sessions_close_and_the_new_password_works(world):
    user = await world.users.authenticate("root", ADMIN_PW)
    token, _ = await world.users.create_session(user["id"])
    await world.users.set_password("root", "a brand new password")
    assert await world.users.session_user(token) is None
    assert await world.users.authenticate("root", ADMIN_PW) is None
    assert (await world.users.authenticate("root", "a brand new password"))["role"] == "admin"
    with pytest.raises(UnknownUser):
        await world.users.set_password("nobody", "a brand new password")


async def test_given_no_roles_when_decorating_then_refused_at_import_time():
    with pytest.raises(ValueError):
        require_role()
    with pytest.raises(ValueError):
        require_role("root")


# -- login ---------------------------------------------------------------------------------------
async def test_given_good_credentials_when_logging_in_then_a_hardened_cookie_and_only_its_hash_stored(world, client):
    resp, body = await _login(client)
    assert resp.status == 200
    assert body["user"] == {"id": 1, "username": "root", "role": "admin"} and body["csrf_token"]
    set_cookie = resp.headers["Set-Cookie"]
    assert "gw_session=" in set_cookie and "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
    token = _cookie_token(resp)
    rows = await world.session_rows()
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert rows[0].csrf_token == body["csrf_token"]
    me = await client.get("/api/me")
    assert me.status == 200
    assert (await me.json())["user"]["username"] == "root" and (await me.json())["csrf_token"] == body["csrf_token"]


@pytest.mark.parametrize("username,password", [("root", "wrong password"), ("nobody", ADMIN_PW), ("", "")])
async def test_given_bad_credentials_when_logging_in_then_401_and_no_session(world, client, username, password):
    resp, body = await _login(client, username, password)
    assert resp.status == 401 and body["error"] == "bad-login" and body["message_zh"]
    assert "gw_session" not in resp.cookies and await world.session_rows() == []
    assert (await client.get("/api/me")).status == 401


async def test_given_a_login_body_of_the_wrong_shape_when_posted_then_400_naming_every_field_and_no_session(
        world, client):
    resp, body = await _login(client, ["root"], {"x": 1})
    assert resp.status == 400 and body["error"] == "bad-request"
    problems = body["details"]["problems"]
    assert {p["field"] for p in problems} == {"username", "password"}
    assert all(p["message"] and p["message_zh"] for p in problems)
    assert "gw_session" not in resp.cookies and await world.session_rows() == []


async def test_given_a_disabled_user_when_logging_in_with_the_right_password_then_401(world, client):
    async with world.store.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE users SET disabled = true WHERE username = 'agent1'"))
    resp, _ = await _login(client, "agent1", AGENT_PW)
    assert resp.status == 401


async def test_given_a_login_from_another_site_when_posted_then_refused(world, client):
    resp = await client.post("/api/login", json={"username": "root", "password": ADMIN_PW},
                             headers={"Origin": "https://evil.example"})
    assert resp.status == 403 and await world.session_rows() == []


async def test_given_not_json_when_logging_in_then_400(client):
    resp = await client.post("/api/login", data=b"{nope", headers={"Content-Type": "application/json"})
    assert resp.status == 400


# -- CSRF and bearer -----------------------------------------------------------------------------
async def test_given_a_cookie_session_when_posting_without_or_with_a_wrong_csrf_then_403_and_nothing_changed(
        world, client):
    _, body = await _login(client)
    resp = await client.post("/api/secret")
    assert resp.status == 403 and (await resp.json())["error"] == "csrf"
    resp = await client.post("/api/secret", headers={"X-CSRF-Token": body["csrf_token"][:-1] + "x"})
    assert resp.status == 403 and (await resp.json())["error"] == "csrf"
    assert world.changes == []
    resp = await client.post("/api/secret", headers={"X-CSRF-Token": body["csrf_token"]})
    assert resp.status == 200 and world.changes == ["root"]
    resp = await client.post("/api/secret", data={"csrf_token": body["csrf_token"]})
    assert resp.status == 200 and world.changes == ["root", "root"]


async def test_given_a_bearer_token_when_posting_without_csrf_then_allowed(world, client):
    resp, _ = await _login(client)
    token = _cookie_token(resp)
    client.session.cookie_jar.clear()
    resp = await client.post("/api/secret", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200 and world.changes == ["root"]
    assert (await client.post("/api/secret", headers={"Authorization": "Bearer nope"})).status == 401


# -- expiry, roles ---------------------------------------------------------------------------------
async def test_given_an_expired_session_when_used_then_401_and_the_row_is_gone(world, client):
    resp, _ = await _login(client)
    world.clock.value += timedelta(hours=7, minutes=59)
    assert (await client.get("/api/secret")).status == 200
    world.clock.value += timedelta(minutes=2)
    resp = await client.get("/api/secret")
    assert resp.status == 401 and (await resp.json())["error"] == "unauthenticated"
    assert await world.session_rows() == []


async def test_given_an_agent_when_calling_an_admin_route_then_403(world, client):
    await _login(client, "agent1", AGENT_PW)
    resp = await client.get("/api/secret")
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    assert (await client.get("/desk")).status == 200


async def test_given_no_session_when_calling_an_api_or_a_page_then_401_or_a_login_redirect(client):
    resp = await client.get("/api/secret")
    assert resp.status == 401 and (await resp.json())["error"] == "unauthenticated"
    resp = await client.get("/desk?tab=1", allow_redirects=False)
    location = URL(resp.headers["Location"])
    assert resp.status == 302 and location.path == "/login" and location.query["next"] == "/desk?tab=1"


async def test_given_an_admin_when_opening_an_agent_only_page_then_403(client):
    await _login(client)
    assert (await client.get("/desk", allow_redirects=False)).status == 403


# -- brute force -----------------------------------------------------------------------------------
async def test_given_five_failures_for_a_user_when_trying_again_then_429_until_a_minute_passes(world, client):
    for _ in range(5):
        assert (await _login(client, "root", "wrong password"))[0].status == 401
    resp, body = await _login(client, "root", ADMIN_PW)
    assert resp.status == 429 and body["error"] == "too-many-attempts"
    assert body["details"]["scope"] == "user" and 0 < int(resp.headers["Retry-After"]) <= 61
    assert "该用户" in body["message"] and "this user" in body["message"]  # a person sees why
    world.mono.value += 61
    assert (await _login(client, "root", ADMIN_PW))[0].status == 200


async def test_given_five_failures_for_one_user_when_another_user_logs_in_from_that_address_then_it_works(
        world, client):
    """Probe: 5 wrong passwords for one user locked every user (admin included) out of that address."""
    for _ in range(5):
        assert (await _login(client, "agent1", "wrong password"))[0].status == 401
    assert (await _login(client, "root", ADMIN_PW))[0].status == 200
    assert (await _login(client, "agent1", AGENT_PW))[0].status == 429


async def test_given_a_spray_from_one_address_when_50_fail_then_the_address_waits_longer_each_time(world, client):
    for i in range(50):
        assert (await _login(client, f"u{i}", "wrong password"))[0].status == 401
    resp, body = await _login(client, "agent1", AGENT_PW)
    assert resp.status == 429 and body["details"]["scope"] == "address" and "该网络地址" in body["message"]
    world.mono.value += 61
    for i in range(50):
        await _login(client, f"v{i}", "wrong password")
    resp, body = await _login(client, "agent1", AGENT_PW)
    assert resp.status == 429 and 61 < body["details"]["retry_after"] <= 121  # doubled
    world.mono.value += 121
    assert (await _login(client, "agent1", AGENT_PW))[0].status == 200
    assert len(await world.session_rows()) == 1


async def test_given_a_throttled_form_login_when_redirected_then_the_page_says_why_and_how_long(world, client):
    for _ in range(5):
        await _login(client, "root", "wrong password")
    resp = await client.post("/api/login", data={"username": "root", "password": ADMIN_PW}, allow_redirects=False)
    assert resp.status == 302 and "failed=throttled&scope=user&wait=" in resp.headers["Location"]
    page = await (await client.get(resp.headers["Location"])).text()
    assert "该用户登录失败次数过多" in page and "try again in" in page


@pytest.mark.parametrize("raw", [b"[" * 50_000, b'{"a":' * 50_000, b"\xff\xfe", b"[1, 2]", b"{" + b" " * 20_000 + b"}",
                                 b'{"username": ' + b"9" * 5000 + b"}"])
async def test_given_hostile_json_when_logging_in_then_400_with_a_reason(client, raw):
    """Probe: deeply nested JSON on the anonymous /api/login gave 500."""
    resp = await client.post("/api/login", data=raw, headers={"Content-Type": "application/json"})
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "bad-request" and body["message"].startswith("send JSON")


def test_given_many_usernames_when_failing_then_the_brake_stays_bounded():
    brake = LoginBrake(size=100, clock=FakeMonotonic())
    for i in range(1000):
        brake.fail(f"u{i}")
    assert len(brake) == 100


# -- redirects, logout, audit, page ---------------------------------------------------------------
@pytest.mark.parametrize("nxt,expected", [
    ("/desk?tab=1", "/desk?tab=1"),
    ("//evil.example/x", "/admin"),
    ("https://evil.example/", "/admin"),
    ("/\\evil.example", "/admin"),
    ("/\t/evil.example", "/admin"),
    ("javascript:alert(1)", "/admin"),
    ("", "/admin"),
])
async def test_given_a_form_login_when_next_is_given_then_only_local_paths_are_followed(client, nxt, expected):
    resp = await client.post("/api/login", data={"username": "root", "password": ADMIN_PW, "next": nxt},
                             allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == expected
    assert safe_next(nxt) == expected


async def test_given_a_failed_form_login_when_redirected_then_back_to_the_login_page(client):
    resp = await client.post("/api/login", data={"username": "root", "password": "wrong password",
                                                 "next": "//evil.example"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/login?failed=1&next=/admin"


async def test_given_a_logout_when_done_then_the_token_is_dead(world, client):
    resp, body = await _login(client)
    token = _cookie_token(resp)
    assert (await client.post("/api/logout")).status == 403  # the CSRF check guards logout too
    assert (await client.get("/api/me")).status == 200
    resp = await client.post("/api/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert resp.status == 200 and resp.cookies["gw_session"].value == ""
    assert (await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})).status == 401
    assert await world.session_rows() == []


async def test_given_logins_and_logouts_when_audited_then_no_password_is_stored(world, client):
    await _login(client, "root", "wrong password 42")
    await _login(client, "nobody", "stranger password 7")
    _, body = await _login(client)
    await client.post("/api/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    await world.users.set_password("agent1", "changed password 9")
    events = await world.audit()
    assert [(e["actor"], e["action"], e["object_id"]) for e in events if e["action"].startswith("auth.")] == [
        ("anonymous", "auth.login_failed", "root"),
        ("anonymous", "auth.login_failed", "nobody"),
        ("root", "auth.login", "root"),
        ("root", "auth.logout", "root"),
    ]
    dumped = json.dumps(events, ensure_ascii=False)
    for secret in ("wrong password 42", "stranger password 7", ADMIN_PW, AGENT_PW, "changed password 9",
                   body["csrf_token"]):
        assert secret not in dumped


async def test_given_a_hostile_next_when_the_login_page_is_shown_then_it_is_escaped(client):
    resp = await client.get("/login", params={"next": '/"><script>alert(1)</script>', "failed": "<b>x</b>"})
    text = await resp.text()
    assert resp.status == 200 and "12345 热线网关 登录" in text
    assert "<script>alert(1)" not in text and "<b>x</b>" not in text
    assert 'value="/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in text
    csp = resp.headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in text and "http" not in text.replace("http-equiv", "")
    assert 'id="username"' in text and 'id="password"' in text and 'type="submit"' in text


async def test_given_no_page_asked_for_when_logging_in_then_each_role_goes_to_its_own_page(world, client):
    _, body = await _login(client, "agent1", AGENT_PW)
    assert body["next"] == "/desk"
    _, body = await _login(client)
    assert body["next"] == "/admin"
    resp = await client.post("/api/login", json={"username": "agent1", "password": AGENT_PW, "next": "/supervisor"})
    assert (await resp.json())["next"] == "/supervisor"  # an explicit page wins (its own role check follows)
    resp = await client.post("/api/login", json={"username": "agent1", "password": AGENT_PW,
                                                 "next": "//evil.example/x"})
    assert (await resp.json())["next"] == "/admin"  # never an open redirect
