"""Hotline mergers as a live, versioned configuration, end to end (real Asterisk, gateway, SQLite)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.pbx.ami import AmiClient
from gateway_dev.eventually import aeventually, eventually
from gateway_dev.simcall import CallScript, place_call

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

APPLY_TIMEOUT = 120  # s: an apply renders prompts and reloads Asterisk; on a loaded CI machine over 30 s


@pytest.fixture(scope="module")
def admin(system) -> str:
    return system.login("admin-e2e", "correct horse battery", "admin")


def _versions(system, token) -> list[dict]:
    status, body = system.http("/api/admin/versions", token=token)
    assert status == 200, body
    return body["items"]


def _state(system, token) -> tuple:
    """What must not move when a change is refused: versions, live hash, Asterisk's dialplan and queues."""
    etc = system.state / "var" / "asterisk" / "etc"
    _, overview = system.http("/api/admin/overview", token=token)
    return (len(_versions(system, token)), overview["content_hash"], (etc / "extensions.conf").read_text(),
            (etc / "queues.conf").read_text())


def _rollback_to(system, token, version_id: int) -> None:
    status, body = system.http(f"/api/admin/versions/{version_id}/rollback", method="POST", token=token,
                               body={"comment": "test clean-up"}, timeout=APPLY_TIMEOUT)
    assert status in (201, 400), body  # 400: it already runs


def _set_clock(system, token, when: str | None) -> None:
    status, body = system.http("/api/test/clock", method="PUT", token=token, body={"now": when})
    assert status == 200, body


async def _wait_in_menu(system, uid: str, timeout: float = 60) -> None:
    def in_menu() -> bool:  # run in a thread: the simulated call goes on meanwhile on this loop
        status, call = system.http(f"/api/calls/{uid}", token=system.token())
        return status == 200 and any(s["node"] == "emergency_notice" for s in call["menu_path"])

    await aeventually(lambda: asyncio.to_thread(in_menu), timeout=timeout, interval=0.2,
                      what=f"call {uid} in the menu")


def test_given_a_call_in_the_menu_when_its_line_changes_mode_then_it_finishes_on_the_old_flow_and_the_next_follows_the_new(system, admin):
    base = _versions(system, admin)[0]["id"]

    async def scenario():
        s = system.settings
        ami = AmiClient(host=s.ami_host, port=s.ami_port, username=s.ami_user, secret=s.ami_secret)
        await ami.start()
        try:
            assert await ami.wait_connected(10)
            first = asyncio.create_task(place_call(s, CallScript(number="12369", digits="32", uniqueid="e2e-mode-1"),
                                                   ami=ami))
            await _wait_in_menu(system, "e2e-mode-1")
            status, version = await asyncio.to_thread(
                system.http, "/api/admin/lines/12369", method="PATCH", token=admin,
                body={"fields": {"mode": "retired"}, "comment": "12369 folds into 12345 (整体并入)"},
                timeout=APPLY_TIMEOUT)
            assert status == 201, version
            # the next call starts once the change is applied, while the first goes on (old flow)
            new = await place_call(s, CallScript(number="12369", digits="32"), ami=ami)
            old = await first
            return version, old, new
        finally:
            await ami.close()

    try:
        version, old, new = asyncio.run(scenario())
        assert version["status"] == "applied"
        diff = version["diff"].splitlines()
        assert any(ln.startswith("-") and ln.strip("- ") == "mode: dual_number" for ln in diff), diff
        assert any(ln.startswith("+") and ln.strip("+ ") == "mode: retired" for ln in diff), diff
        assert old["heard"][0] == "line-12369-greeting" and old["queue"] == "q-12369"
        _, old_ticket = system.http(f"/api/tickets/{old['ticket_id']}", token=system.token())
        assert old_ticket["merge_mode"] == "dual_number" and old["hangup_cause"] == 16
        assert new["heard"][0] == "line-12369-announcement" and new["queue"] == "q-report"
        _, new_ticket = system.http(f"/api/tickets/{new['ticket_id']}", token=system.token())
        assert new_ticket["merge_mode"] == "retired" and new_ticket["department"] == "市生态环境局"
    finally:
        _rollback_to(system, admin, base)


def test_given_a_sub_centre_nobody_answers_when_called_then_it_overflows_to_central_within_its_time(system, admin):
    base = _versions(system, admin)[0]["id"]
    try:
        for change in (
            {"op": "upsert_queue", "name": "q-12399", "queue": {"label": "无人应答的分中心", "members": []}},
            {"op": "create_line", "line": {"number": "12399", "name": "测试分中心", "mode": "sub_centre",
                                           "department": "测试局", "greeting": "您好，这里是测试分中心。",
                                           "queue": "q-12399", "overflow_seconds": 5}},
        ):
            status, body = system.http("/api/admin/changes", method="POST", token=admin,
                                       body={"change": change, "comment": "overflow test"}, timeout=APPLY_TIMEOUT)
            assert status == 201, body
        result = asyncio.run(place_call(system.settings, CallScript(number="12399", digits="42")))

        joined = [q["queue"] for q in result["queues"]]
        assert joined == ["q-12399", "q-complaint"], result
        waited = result["queues"][1]["at_s"] - result["queues"][0]["at_s"]
        assert waited <= 5 + 3, waited  # the overflow time, plus Asterisk's one-second queue ticks
        _, ticket = system.http(f"/api/tickets/{result['ticket_id']}", token=system.token())
        assert ticket["handled_by"] == "测试局" and ticket["queue"] == "q-12399"
        assert ticket["overflow_queue"] == "q-complaint" and ticket["overflow_reason"] == "no_answer"
        assert result["agent"]  # central answered
    finally:
        _rollback_to(system, admin, base)


@pytest.mark.parametrize("when,opened", [
    ("2027-02-20T10:00:00+08:00", True),   # a Saturday worked as a Monday (调休)
    ("2027-10-01T10:00:00+08:00", False),  # National Day
])
def test_given_the_calendar_when_a_sub_centre_is_called_then_holidays_and_make_up_days_decide(system, admin, when, opened):
    _set_clock(system, admin, when)
    try:
        result = asyncio.run(place_call(system.settings, CallScript(number="12366", digits="12")))
    finally:
        _set_clock(system, admin, None)
    _, ticket = system.http(f"/api/tickets/{result['ticket_id']}", token=system.token())
    if opened:
        assert result["heard"][0] == "line-12366-greeting" and ticket["queue"] == "q-12366"
        assert ticket["handled_by"] == "国家税务总局北京市税务局"
    else:
        assert result["heard"][0] == "main-closed_to_central" and ticket["queue"] == "q-consult"
        assert ticket["handled_by"] is None


def test_given_a_scheduled_change_when_its_time_comes_then_it_takes_effect(system, admin):
    base = _versions(system, admin)[0]["id"]
    _set_clock(system, admin, "2026-12-31T23:00:00+08:00")
    try:
        status, version = system.http("/api/admin/lines/12315/retire", method="POST", token=admin, body={
            "comment": "12315 becomes retired on 2027-01-01", "effective_at": "2027-01-01T00:00:00+08:00"})
        assert status == 201 and version["status"] == "scheduled", version
        _, overview = system.http("/api/admin/overview", token=admin)
        assert {ln["number"]: ln["mode"] for ln in overview["lines"]}["12315"] == "dual_number"

        _set_clock(system, admin, "2027-01-01T00:00:01+08:00")
        def applied() -> dict:
            _, body = system.http(f"/api/admin/versions/{version['id']}", token=admin)
            assert body["status"] == "applied", body
            return body

        eventually(applied, interval=0.2, what="the scheduled change applied")
        _, overview = system.http("/api/admin/overview", token=admin)
        assert {ln["number"]: ln["mode"] for ln in overview["lines"]}["12315"] == "retired"
        extensions = (system.state / "var" / "asterisk" / "etc" / "extensions.conf").read_text()
        assert "; 消费者投诉举报热线 (retired)" in extensions
    finally:
        _set_clock(system, admin, None)
        _rollback_to(system, admin, base)


def test_given_a_proposed_change_when_dry_run_then_it_answers_without_applying(system, admin):
    before = _state(system, admin)
    status, result = system.http("/api/admin/dry-run", method="POST", token=admin, body={
        "number": "12319", "at": "2027-02-20T23:00:00+08:00", "digits": "4"})
    assert status == 200, result
    assert result["heard"][0]["prompt"] == "line-12319-announcement" and "12345" in result["heard"][0]["text"]
    assert result["destination"]["queue"] == "q-complaint"
    status, result = system.http("/api/admin/dry-run", method="POST", token=admin, body={
        "number": "12366", "at": "2027-02-20T23:00:00+08:00", "digits": "1",
        "change": {"op": "update_line", "number": "12366", "fields": {"after_hours": "hangup"}}})
    assert status == 200 and result["open"] is False and result["destination"] == {"hangup": True}
    assert result["configuration"] == "proposed change"
    assert _state(system, admin) == before


REFUSALS = [
    ("unknown queue", "PATCH", "/api/admin/lines/12315", {"fields": {"queue": "q-nowhere"}, "comment": "x"}, 422,
     "unknown queue"),
    ("duplicate number", "POST", "/api/admin/lines", {"line": {"number": "12345", "name": "x", "mode": "retired",
                                                                "department": "d"}, "comment": "x"}, 409, "exists"),
    ("emergency number", "POST", "/api/admin/lines", {"line": {"number": "119", "name": "火警", "mode": "retired",
                                                                "department": "消防"}, "comment": "x"}, 422,
     "emergency number"),
    ("mode misses a field", "POST", "/api/admin/lines", {"line": {"number": "12388", "name": "x",
                                                                   "mode": "dual_number", "department": "d",
                                                                   "greeting": "g"}, "comment": "x"}, 422,
     "missing required key 'queue'"),
    ("hours never open", "POST", "/api/admin/changes", {"change": {"op": "upsert_schedule", "name": "office",
                                                                    "schedule": {"weekly": {}}}, "comment": "x"},
     422, "never open"),
    ("misspelt mode", "PATCH", "/api/admin/lines/12360", {"fields": {"mode": "subcentre"}, "comment": "x"}, 422,
     "did you mean 'sub_centre'"),
    ("no comment", "PATCH", "/api/admin/lines/12315", {"fields": {"greeting": "新问候"}}, 400, "comment"),
    ("unknown line", "PATCH", "/api/admin/lines/99999", {"fields": {"greeting": "g"}, "comment": "x"}, 404, "99999"),
    ("not JSON", "POST", "/api/admin/changes", b"{not json", 400, "JSON"),
    ("bad effective time", "PATCH", "/api/admin/lines/12315", {"fields": {"greeting": "g"}, "comment": "x",
                                                                "effective_at": "tomorrow"}, 400, "effective_at"),
]


@pytest.mark.parametrize("name,method,path,body,status,reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_given_a_bad_change_when_submitted_then_refused_whole_and_nothing_changes(system, admin, name, method, path,
                                                                                  body, status, reason):
    before = _state(system, admin)
    kwargs = {"raw": body} if isinstance(body, bytes) else {"body": body}
    got, answer = system.http(path, method=method, token=admin, **kwargs)
    assert got == status, answer
    text = answer.get("message", "") + " ".join(p["message"] for p in answer.get("details", {}).get("problems", []))
    assert reason in text, answer
    if status == 422:
        assert all(p["field"] for p in answer["details"]["problems"])
    assert _state(system, admin) == before


def test_given_no_admin_session_when_changing_then_401_or_403_and_nothing_changes(system, admin):
    before = _state(system, admin)
    body = {"fields": {"greeting": "未授权"}, "comment": "x"}
    assert system.http("/api/admin/lines/12315", method="PATCH", body=body)[0] == 401
    agent = system.login("agent-e2e", "agent password 1", "agent")
    assert system.http("/api/admin/lines/12315", method="PATCH", body=body, token=agent)[0] == 403
    assert system.http("/api/admin/overview", token=agent)[0] == 403
    assert _state(system, admin) == before


def test_given_the_live_config_when_exported_and_imported_then_a_version_round_trips(system, admin):
    base = _versions(system, admin)[0]["id"]
    status, exported = system.http("/api/admin/export", token=admin)
    assert status == 200 and "lines:" in exported["text"]
    changed = exported["text"].replace("12369环保举报热线。", "12369环保举报热线，欢迎来电。", 1)
    try:
        status, version = system.http("/api/admin/import", method="POST", token=admin,
                                      body={"hotlines_yaml": changed, "comment": "reviewed in git"},
                                      timeout=APPLY_TIMEOUT)
        assert status == 201 and "欢迎来电" in version["diff"], version
        _, audit = system.http(f"/api/admin/versions/{version['id']}/audit", token=admin)
        assert audit["items"][0]["actor"] == "admin-e2e" and audit["items"][0]["details"]["comment"] == "reviewed in git"
    finally:
        _rollback_to(system, admin, base)
    _, openapi = system.http("/api/openapi.json", token=system.token())
    assert "/api/admin/dry-run" in openapi["paths"]
