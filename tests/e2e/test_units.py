"""After dispatch, end to end on the real system (sandbox Asterisk, ``gateway serve``, a simulated
caller, Debian's Chromium): the handling units' side of a ticket.

One call (建议, not confidential) is answered by agent 8002, who submits it 双派 to the water
company and 三里屯街道. The street objects (派单异议) over the API; a supervisor re-dispatches it on
/supervisor's review section to the power company. The water company's own system (an API token,
its webhook signed with HMAC) accepts and adds notes; the gateway's clock jumps past the deadline:
both open dispatches are on the 督办 list and reminded; the water company replies 办结 on /unit
(after the error summary for an empty reply), the power company over the API: the ticket is
``handled`` with one public ``handled`` event; a second 办结 is a 409. Screenshots at 1366 and 768 px
go to ``test-artifacts/units-*.png``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import subprocess
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway_dev.eventually import eventually
from gateway_dev.simcall import CallScript, place_call
from gateway_dev.system import GATEWAY, ROOT, System, say_zh

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
expect = playwright_api.expect

ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "units e2e test password 12345"
CALLER = "13800138000"
SECRET = "water-hook-secret-0123456789"
SIZES = {"1366": {"width": 1366, "height": 768}, "768": {"width": 768, "height": 1024}}


class Receiver:
    """The water company's own system: records every webhook POST (headers and body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [json.loads(b)["event"] for _h, b in self.posts]


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="module")
def system(receiver):
    # tell_number=False: the caller does not hear the ticket number read (12 s; test_ticket_number.py's)
    sysm = System(prefix="gw-e2e-units-", log_level="INFO", test_clock=True, tell_number=False,
                  extra_env={"GATEWAY_UNIT_JOB_INTERVAL": "1"})
    (sysm.config_dir / "unit_hooks.yaml").write_text(
        f'hooks:\n  water: {{url: "http://127.0.0.1:{receiver.port}/12345", secret: "{SECRET}"}}\n',
        encoding="utf-8")
    try:
        sysm.up()
        yield sysm
    finally:
        sysm.down()
        ARTIFACTS.mkdir(exist_ok=True)
        if sysm.log_path.exists():
            import shutil

            shutil.copy(sysm.log_path, ARTIFACTS / "e2e-units-gateway.log")


def _wait(check, what: str, timeout: float = 30):
    """``eventually`` in a thread of its own (Playwright's sync API holds this thread's event loop)."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = eventually(check, timeout=timeout, interval=0.2, what=what)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout + 30)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _gateway(system, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(GATEWAY + list(args), env=system.env, cwd=ROOT, input=stdin, capture_output=True,
                          text=True, timeout=120)


def _unit_user(system, name: str, unit: str) -> None:
    proc = _gateway(system, "user", "add", name, "--role", "unit", "--unit", unit, "--password-stdin",
                    stdin=PASSWORD + "\n")
    assert proc.returncode == 0, proc.stderr


def _login(system, name: str) -> tuple[int, dict, str]:
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{system.http_port}/api/login", method="POST",
                                 data=json.dumps({"username": name, "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
        cookie = resp.headers.get("Set-Cookie", "")
        return resp.status, json.loads(resp.read()), cookie.split("gw_session=", 1)[1].split(";", 1)[0]


def _dispatch_of(system, token: str, state: str = "all") -> list[dict]:
    status, body = system.http(f"/api/unit/dispatches?state={state}", token=token)
    assert status == 200, body
    return body["items"]


def _browser(chromium, system, size: str):
    context = chromium.new_context(viewport=SIZES[size], base_url=f"http://127.0.0.1:{system.http_port}",
                                   locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, errors


def _login_page(page, name: str, path: str) -> None:
    page.goto(path)
    expect(page).to_have_url(re.compile(rf"/login\?next={re.escape(path)}$"))
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name=re.compile("登录")).click()
    expect(page).to_have_url(re.compile(rf"{re.escape(path)}$"))


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"units-{name}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{name}: sideways scroll ({width} px)"


def _call_and_submit(system, tmp_path) -> int:
    """A real call (建议, not confidential, a description), answered by 8002, submitted 双派."""
    agent = system.login("units-8002", "units-8002-password", "agent")
    system.cli("user", "agent", "units-8002", "8002")
    speech = say_zh("我家小区停水两天了，还有路灯不亮", tmp_path / "caller.wav")
    script = CallScript(number="12345", caller=CALLER, digits="22", say=speech,
                        uniqueid=f"units-{uuid.uuid4().hex[:12]}")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(r=asyncio.run(place_call(system.settings, script))))
    thread.start()  # its own loop: Playwright's sync API holds this thread's
    thread.join(300)
    assert not thread.is_alive() and result.get("r") is not None
    status, call = system.http(f"/api/calls/{script.uniqueid}", token=system.token())
    assert status == 200 and call["ticket_id"], call
    tid = int(call["ticket_id"])
    status, ticket = system.http(f"/api/desk/tickets/{tid}", token=agent)
    assert status == 200, ticket
    body = {"version_id": ticket["version_id"], "category": "求助", "urgency": "urgent", "place": "三里屯街道",
            "summary": "小区停水两天，路灯不亮", "dispatch_mode": "dual",
            "units": [{"id": "water", "name": "市自来水集团"}, {"id": "sanlitun", "name": "三里屯街道"}]}
    status, done = system.http(f"/api/desk/tickets/{tid}/submit", method="POST", body=body, token=agent)
    assert status == 200 and done["status"] == "submitted" and done["handling"] == "dispatched", done
    assert done["due_at"]
    return tid


def test_given_a_submitted_ticket_when_units_object_accept_and_reply_then_review_overdue_and_handled(
        system, chromium, receiver, tmp_path):
    expect.set_options(timeout=20_000)
    # -- unit accounts: tied to catalogue ids; an unknown id is refused with the reason --------------
    bad = _gateway(system, "user", "add", "nowhere-unit", "--role", "unit", "--unit", "watr", "--password-stdin",
                   stdin=PASSWORD + "\n")
    assert bad.returncode == 2 and "unknown unit 'watr'" in bad.stderr and "water" in bad.stderr
    for name, unit in (("water-unit", "water"), ("street-unit", "sanlitun"), ("power-unit", "power")):
        _unit_user(system, name, unit)
    status, me, street = _login(system, "street-unit")
    assert me["next"] == "/unit" and me["user"]["role"] == "unit"
    water_api = _gateway(system, "user", "token", "water-unit", "--days", "30").stdout.strip()  # its own system
    power_api = _gateway(system, "user", "token", "power-unit", "--days", "30").stdout.strip()
    boss = system.token()

    tid = _call_and_submit(system, tmp_path)
    water = _dispatch_of(system, water_api)[0]
    street_d = _dispatch_of(system, street)[0]
    assert water["ticket"]["id"] == tid and water["status"] == "sent" and water["unit_name"] == "市自来水集团"
    assert CALLER not in json.dumps(water) + json.dumps(street_d)
    # another unit's dispatch is not found (not forbidden: that would say it exists)
    status, err = system.http(f"/api/unit/dispatches/{water['id']}", token=street)
    assert status == 404, err
    assert system.http(f"/api/unit/dispatches/{water['id']}/accept", method="POST", body={}, token=street)[0] == 404
    status, view = system.http(f"/api/unit/dispatches/{water['id']}", token=water_api)
    assert status == 200 and view["ticket"]["caller_number"] == "138****8000" and "recording_url" not in view["ticket"]
    # the water company's system was told, signed with its secret, without the caller's number
    _wait(lambda: receiver.events() == ["dispatched"], "the dispatched webhook")
    headers, raw = receiver.posts[0]
    assert headers["X-Gateway-Signature"] == "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert json.loads(raw)["ticket_id"] == tid and CALLER not in raw.decode()

    # -- the street objects: the ticket goes to the hotline's review list ---------------------------
    status, err = system.http(f"/api/unit/dispatches/{street_d['id']}/object", method="POST", body={"reason": " "},
                              token=street, headers={"X-CSRF-Token": me["csrf_token"]})
    assert status == 400 and err["details"]["problems"][0]["field"] == "reason"
    status, objected = system.http(f"/api/unit/dispatches/{street_d['id']}/object", method="POST",
                                   body={"reason": "供电照明不属街道职责，应由电力公司处理"}, token=street)
    assert status == 200 and objected["dispatch"]["status"] == "objected"
    status, review = system.http("/api/supervisor/review", token=boss)
    assert [t["id"] for t in review["items"]] == [tid] and review["items"][0]["review_reason"] == "objection"

    # -- the supervisor re-dispatches it to the power company on /supervisor (1366 px) ----------------
    context, page, errors = _browser(chromium, system, "1366")
    try:
        system.login("units-boss", PASSWORD, "supervisor")
        _login_page(page, "units-boss", "/supervisor")
        item = page.locator(f'#review .review-item[data-ticket="{tid}"]')
        expect(item).to_contain_text("派单异议")
        expect(item).to_contain_text("供电照明不属街道职责")
        item.get_by_role("button", name=re.compile("改派")).click()  # nothing chosen: the error summary
        summary = item.locator(".error-summary")
        expect(summary).to_be_focused()
        expect(summary).to_contain_text("请填写理由")
        expect(summary).to_contain_text("请选择承办单位")
        _shot(page, "supervisor-review-1366")
        item.locator("select").select_option("power")
        item.locator("textarea").fill("路灯由市电力公司负责，改派")
        item.get_by_role("button", name=re.compile("改派")).click()
        expect(page.locator("#status")).to_contain_text("已改派")
        expect(page.locator("#review-empty")).to_be_visible()
        assert errors == []
    finally:
        context.close()
    status, events = system.http(f"/api/tickets/{tid}/events", token=boss)
    assert [(d["unit_id"], d["status"]) for d in events["dispatches"]] == [
        ("water", "sent"), ("sanlitun", "withdrawn"), ("power", "sent")]
    assert [e["kind"] for e in events["events"]][-3:] == ["objected", "withdrawn", "redispatched"]
    assert _dispatch_of(system, street) == []  # withdrawn: not the street's any more

    # -- the water company's system accepts and adds notes; the power company accepts ----------------
    for path, body in (("accept", {}), ("notes", {"text": "抢修队已出发", "public": True}),
                       ("notes", {"text": "内部：主管线老化", "public": False})):
        status, out = system.http(f"/api/unit/dispatches/{water['id']}/{path}", method="POST", body=body,
                                  token=water_api)
        assert status == 200, out
    status, again = system.http(f"/api/unit/dispatches/{water['id']}/accept", method="POST", body={}, token=water_api)
    assert status == 409 and "already accepted" in again["message"]
    power = _dispatch_of(system, power_api)[0]
    assert system.http(f"/api/unit/dispatches/{power['id']}/accept", method="POST", token=power_api)[0] == 200
    status, view = system.http(f"/api/unit/dispatches/{power['id']}", token=power_api)
    seen = [e["text"] for e in view["events"]]
    assert "抢修队已出发" in seen and "内部：主管线老化" not in seen  # another unit's internal note

    # -- past the deadline (urgent: 24 h): reminded, overdue, on the 督办 list --------------------------
    admin = system.login("units-admin", "units-admin-password-1", "admin")
    later = datetime.now(timezone.utc) + timedelta(hours=25)
    assert system.http("/api/test/clock", method="PUT", body={"now": later.isoformat()}, token=admin)[0] == 200
    try:
        boss = system.login("units-boss", PASSWORD, "supervisor")  # sessions made before the jump expired
        _wait(lambda: "overdue" in receiver.events(), "the overdue webhook")
        status, late = system.http("/api/supervisor/overdue", token=boss)
        assert sorted(d["unit_id"] for d in late["items"]) == ["power", "water"]
        assert all(d["late_seconds"] > 0 for d in late["items"])
        assert _dispatch_of(system, water_api, "overdue")[0]["id"] == water["id"]

        # -- the water company replies 办结 on /unit (768 and 1366 px) ----------------------------------
        for size in ("768", "1366"):
            context, page, errors = _browser(chromium, system, size)
            try:
                _login_page(page, "water-unit", "/unit")
                expect(page.locator("body")).to_have_attribute("data-ready", "true")
                page.locator('#filters button[data-filter="overdue"]').click()
                expect(page.locator("#list")).to_have_attribute("data-filter", "overdue")  # that filter's list is drawn
                row = page.locator(f'#list tbody tr[data-dispatch="{water["id"]}"]')
                expect(row).to_have_class(re.compile(r"\boverdue\b"))
                row.get_by_role("button").focus()
                page.keyboard.press("Enter")  # by keyboard
                expect(page.locator("#detail")).to_be_focused()
                expect(page.locator("#facts")).to_contain_text("小区停水两天")
                expect(page.locator("#events")).to_contain_text("超期")
                expect(page.locator("#events")).to_contain_text("内部：主管线老化")  # its own internal note
                if size == "768":
                    _shot(page, "unit-768")
                    continue
                page.get_by_role("button", name=re.compile("Reply handled")).click()  # empty: the error summary
                expect(page.locator("#error-summary")).to_be_focused()
                expect(page.locator("#reply-result")).to_have_attribute("aria-invalid", "true")
                _shot(page, "unit-error-1366")
                page.fill("#reply-result", "已抢修主管线，今日 18 时恢复供水")
                page.get_by_role("button", name=re.compile("Reply handled")).click()
                expect(page.locator("#status")).to_contain_text("已办结")
                expect(page.locator("#facts")).to_contain_text("今日 18 时恢复供水")
                _shot(page, "unit-1366")
                assert errors == []
            finally:
                context.close()

        # -- supervisor's 督办 list at 768 px ------------------------------------------------------
        context, page, errors = _browser(chromium, system, "768")
        try:
            _login_page(page, "units-boss", "/supervisor")
            expect(page.locator(f'#overdue tbody tr[data-dispatch="{power["id"]}"]')).to_contain_text("市电力公司")
            expect(page.locator(f'#overdue tbody tr[data-dispatch="{water["id"]}"]')).to_have_count(0)  # replied
            _shot(page, "supervisor-overdue-768")
            assert errors == []
        finally:
            context.close()
    finally:
        system.http("/api/test/clock", method="PUT", body={"now": None},
                    token=system.login("units-admin", "units-admin-password-1", "admin"))

    # -- the power company replies: the ticket is handled, once -----------------------------------------
    status, out = system.http(f"/api/unit/dispatches/{power['id']}/reply", method="POST",
                              body={"result": "已修复路灯"}, token=power_api)
    assert status == 200, out
    status, ticket = system.http(f"/api/tickets/{tid}", token=system.login("units-boss", PASSWORD, "supervisor"))
    assert ticket["handling"] == "handled" and ticket["handled_at"]
    status, again = system.http(f"/api/unit/dispatches/{power['id']}/reply", method="POST",
                                body={"result": "again"}, token=power_api)
    assert status == 409
    status, events = system.http(f"/api/tickets/{tid}/events", token=system.login("units-boss", PASSWORD,
                                                                                   "supervisor"))
    handled = [e for e in events["events"] if e["kind"] == "handled"]
    assert len(handled) == 1 and handled[0]["public"] and "恢复供水" in handled[0]["text"] and "路灯" in handled[0]["text"]
    # every unit action is audited, by whom; the street never got a webhook (it has none)
    status, audit = system.http(f"/api/tickets/{tid}/audit", token=system.login("units-boss", PASSWORD, "supervisor"))
    actions = [(a["actor"], a["action"]) for a in audit["items"]]
    for expected in (("street-unit", "unit.object"), ("units-boss", "review.redispatch"),
                     ("water-unit", "unit.accept"), ("water-unit", "unit.handle"), ("power-unit", "unit.handle")):
        assert expected in actions, expected
    assert set(receiver.events()) >= {"dispatched", "overdue"}
    assert {json.loads(b)["unit_id"] for _h, b in receiver.posts} == {"water"}
