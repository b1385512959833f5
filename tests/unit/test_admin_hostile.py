"""The admin API under hostile input: clear 400/422 with the field and reason, never a 500,
and the event loop keeps answering while a configuration is parsed and validated."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.hotlines.service import HotlineAdmin
from gateway.ivr_flows.validate import read_files
from gateway.ticketing.store import TicketStore
from gateway.auth.users import UserStore
from tests.unit.webapp import build_app, with_admin
from tests.unit.test_config_validation import CONFIG
from tests.unit.test_yaml_hostile import laughs

NOW = datetime(2027, 2, 20, 10, 0, tzinfo=timezone.utc)


@pytest.fixture()
async def client(tmp_path, sqlite_database_url):
    url = sqlite_database_url  # SQLite only: nothing here depends on the database's SQL
    store = await TicketStore.open(url)
    applied = []

    async def applier(config, old):
        applied.append(config.version)

    admin = HotlineAdmin(store=store, clock=lambda: NOW, applier=applier,
                         initial_files=lambda: read_files(CONFIG))
    await admin.bootstrap()

    async def health():
        return {"status": "ok"}

    users = UserStore(store)
    token, _csrf = await users.create_session(await users.create_user("adm", "admin-pw-12345", "admin"))
    app = build_app(store=store, health=health, users=users)
    with_admin(app, admin)
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {token}"}) as c:
        c.admin, c.applied = admin, applied
        yield c
    await store.close()


async def _post(client, path: str, body, method: str = "POST"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.request(method, path, data=data, headers={"Content-Type": "application/json"})
    return resp.status, await resp.json()


def _problems(answer: dict) -> list[dict]:
    return answer.get("details", {}).get("problems", [])


# -- YAML bombs through the API ---------------------------------------------------------------


@pytest.mark.parametrize("text,reason,line", [
    (laughs(), "anchors/aliases (&x, *x) are not allowed", 1),
    ("[" * 50_000 + "]" * 50_000, "nested deeper than 32 levels", 1),
    ("lines: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n", "nested deeper than 32 levels", 1),
])
@pytest.mark.parametrize("route", ["import", "dry-run"])
async def test_given_a_yaml_bomb_when_imported_or_dry_run_then_422_naming_it_fast_and_nothing_applied(
        client, route, text, reason, line):
    if route == "import":
        body = {"hotlines_yaml": text, "comment": "probe"}
    else:
        body = {"number": "12345", "change": {"op": "replace", "hotlines_yaml": text}}
    started = time.perf_counter()
    status, answer = await _post(client, f"/api/admin/{route}", body)
    elapsed = time.perf_counter() - started
    assert status == 422, answer
    (problem,) = _problems(answer)
    assert reason in problem["message"] and problem["file"] == "proposed/hotlines.yaml" and problem["line"] == line
    assert problem["message_zh"].startswith(("不允许使用锚点", "嵌套层级过深"))  # what the admin page shows
    assert elapsed < 5.0, f"refused after {elapsed:.2f} s"  # unguarded: out of memory
    assert client.applied == []


async def test_given_a_large_document_being_validated_when_health_is_asked_then_it_answers_meanwhile(client):
    """45,000 values take the validator a second or two: in a worker thread, not on the event loop."""
    big = client.admin.files["hotlines.yaml"] + "padding: [" + "1," * 45_000 + "1]\n"
    importing = asyncio.ensure_future(_post(client, "/api/admin/import", {"hotlines_yaml": big, "comment": "big"}))
    waits = []
    while not importing.done():
        started = time.perf_counter()
        resp = await client.get("/healthz")
        assert resp.status == 200
        waits.append(time.perf_counter() - started)
    status, answer = await importing
    assert status == 422 and "padding: unknown key" in answer["message"]
    # Health was answered many times while the import ran: a validator on the event loop would
    # have let one or two through (before and after it), whatever the machine's speed.
    assert len(waits) >= 5, waits


# -- dry run: every field checked, 400 with the field -------------------------------------------

BIG = "9" * 5000
DRY_RUN_REFUSALS = [
    ("5,000-digit number (JSON number)", '{"number": ' + BIG + "}", None),
    ("5,000-digit number (text)", {"number": BIG}, "number"),
    ("number as a JSON number", {"number": 12345}, "number"),
    ("Arabic-Indic digits", {"number": "١٢٣٤٥"}, "number"),
    ("NUL in the number", {"number": "12345\u0000"}, "number"),
    ("5,000 keys", {"number": "12345", "digits": "1" * 5000}, "digits"),
    ("keys as a list", {"number": "12345", "digits": ["1"]}, "digits"),
    ("Arabic-Indic key", {"number": "12345", "digits": "١"}, "digits"),
    ("huge version", '{"number": "12345", "version": 99999999999999999999999}', "version"),
    ("5,000-digit version", '{"number": "12345", "version": ' + BIG + "}", None),
    ("version true", {"number": "12345", "version": True}, "version"),
    ("version 0", {"number": "12345", "version": 0}, "version"),
    ("time as a number", {"number": "12345", "at": 12}, "at"),
    ("time 4,000 characters", {"number": "12345", "at": "9" * 4000}, "at"),
    ("time without offset", {"number": "12345", "at": "2027-02-20T23:00:00"}, "at"),
    ("change not an object", {"number": "12345", "change": "replace"}, "change"),
    ("misspelt field", {"number": "12345", "digit": "1"}, "digit"),
    ("not an object", b"[1, 2]", None),
    ("too deep", b'{"number": "12345", "change": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}", None),
    ("not UTF-8", b'{"number": "\xff"}', None),
]


@pytest.mark.parametrize("body,field", [r[1:] for r in DRY_RUN_REFUSALS], ids=[r[0] for r in DRY_RUN_REFUSALS])
async def test_given_bad_dry_run_input_when_posted_then_400_with_the_field_and_reason(client, body, field):
    status, answer = await _post(client, "/api/admin/dry-run", body.encode() if isinstance(body, str) else body)
    assert status == 400, answer
    assert answer["error"] in ("bad-request", "bad-dry-run") and answer["message"]
    if field:
        assert answer["details"]["field"] == field


async def test_given_good_dry_run_input_then_it_still_answers(client):
    status, answer = await _post(client, "/api/admin/dry-run", {
        "number": "12319", "at": "2027-02-20T23:00:00+08:00", "digits": "4", "version": 1})
    assert status == 200 and answer["destination"]["queue"] == "q-complaint", answer


# -- other admin input: 400/422 with the reason, never 500, nothing applied ----------------------

ADMIN_REFUSALS = [
    ("NUL in the comment", "PATCH", "/api/admin/lines/12315", {"fields": {"greeting": "g"}, "comment": "ok\u0000"},
     400, "control characters"),
    ("Arabic-Indic line number", "PATCH", "/api/admin/lines/١٢٣١٥", {"fields": {"greeting": "g"}, "comment": "x"},
     400, "3-20 digits"),
    ("Arabic-Indic version id", "POST", "/api/admin/versions/١/rollback", {"comment": "x"}, 400, "version id"),
    ("huge version id", "POST", "/api/admin/versions/9999999999999/rollback", {"comment": "x"}, 400, "version id"),
    ("mode as a list", "PATCH", "/api/admin/lines/12360", {"fields": {"mode": ["sub_centre"]}, "comment": "x"},
     422, "expected text, got a list"),
    ("announcement as an object", "POST", "/api/admin/lines/12360/retire", {"announcement": {"a": 1}, "comment": "x"},
     400, "announcement"),
    ("huge overflow", "PATCH", "/api/admin/lines/12360", {"fields": {"overflow_seconds": 10 ** 4000}, "comment": "x"},
     422, "out of range 5..600"),
    ("NUL in a name", "PATCH", "/api/admin/lines/12360", {"fields": {"name": "海关\u0000"}, "comment": "x"},
     422, "control characters"),
    ("NUL in a greeting", "PATCH", "/api/admin/lines/12360", {"fields": {"greeting": "您好\u0000"}, "comment": "x"},
     422, "control characters"),
    ("dialplan injection in a name", "PATCH", "/api/admin/lines/12360",
     {"fields": {"name": "海关\nexten => _X.,1,Dial(PJSIP/evil)"}, "comment": "x"}, 422, "single line"),
    ("dialplan injection in a queue label", "POST", "/api/admin/changes",
     {"change": {"op": "upsert_queue", "name": "q-new", "queue": {"label": "L\n[evil]"}}, "comment": "x"},
     422, "single line"),
    ("unknown time zone", "POST", "/api/admin/changes",
     {"change": {"op": "upsert_schedule", "name": "night",
                 "schedule": {"weekly": {"mon": ["08:00-09:00"]}, "timezone": "../../etc/passwd"}}, "comment": "x"},
     422, "time zone"),
    ("Arabic-Indic holiday", "POST", "/api/admin/changes",
     {"change": {"op": "set_public_holidays", "year": "2027", "holidays": ["٢٠٢٧-٠١-٠١"]}, "comment": "x"},
     422, "is not a date of 2027"),
]


@pytest.mark.parametrize("method,path,body,status,reason", [r[1:] for r in ADMIN_REFUSALS],
                         ids=[r[0] for r in ADMIN_REFUSALS])
async def test_given_hostile_admin_input_when_submitted_then_refused_with_the_reason_and_nothing_applied(
        client, method, path, body, status, reason):
    got, answer = await _post(client, path, body, method=method)
    assert got == status, answer
    text = answer["message"] + " ".join(p["message"] for p in _problems(answer))
    assert reason in text, answer
    # configuration problems carry file and line; request problems their path in the body (or URL)
    assert all(p["field"] and (p["line"] if "file" in p else p["path"]) for p in _problems(answer))
    assert all(p["message_zh"] for p in _problems(answer)) and answer["message_zh"]
    assert client.applied == [] and len(text) < 2000
