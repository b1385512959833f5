"""The report archive (issue 14): generated on schedule once (idempotent, across instances),
missed ones caught up after a restart, retention; the API for the supervisor page (list,
generate now, downloads with their headers) and hostile downloads that must not leave the
archive directory."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth.users import UserStore
from gateway.desk.catalogue_load import load_catalogue
from gateway.supervision import report_render
from gateway.supervision.report_config import DEFAULTS
from gateway.supervision.report_service import ReportService
from gateway.supervision.report_tables import ReportArchive
from gateway.supervision.reports import period_containing
from gateway.supervision.reports_http import REPORTS, add_report_routes
from tests.unit.report_world import make_world
from tests.unit.test_config_validation import CONFIG
from tests.unit.webapp import build_app

START = datetime(2027, 3, 1, 1, 0, tzinfo=timezone.utc)  # Monday 1 March 2027, 09:00 in Beijing
CATALOGUE = load_catalogue(CONFIG / "catalogue.yaml")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _service(store, tmp_path: Path, clock: Clock, **changes) -> ReportService:
    return ReportService(store=store, archive_dir=tmp_path / "instance" / "reports", clock=clock,
                         catalogue=CATALOGUE, **changes)


async def _rows(store) -> list[tuple[str, date, str]]:
    async with store.read_session() as session:
        rows = (await session.execute(sa.select(ReportArchive).order_by(ReportArchive.kind,
                                                                        ReportArchive.period_start))).scalars()
        return [(r.kind, r.period_start, r.created_by) for r in rows]


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def test_given_the_schedule_when_the_job_runs_twice_then_each_report_once_with_its_files_and_digests(
        store, tmp_path):
    await make_world(store, START, days=3, per_day=4)
    clock = Clock(datetime(2027, 3, 2, 17, 30, tzinfo=timezone.utc))  # 3 March 01:30 in Beijing
    service = _service(store, tmp_path, clock)
    made = await service.run_due()
    assert [(m["kind"], m["period_start"]) for m in made] == [("daily", "2027-03-01"), ("daily", "2027-03-02")]
    assert await service.run_due() == []  # idempotent
    assert await _rows(store) == [("daily", date(2027, 3, 1), "schedule"), ("daily", date(2027, 3, 2), "schedule")]
    directory = tmp_path / "instance" / "reports"
    names = await asyncio.to_thread(_names, directory)
    assert len(names) == 8 and all(n.startswith("daily-2027-03-0") for n in names)
    for f in made[0]["files"]:
        path, _name, _row = await service.file(made[0]["id"], f["format"])
        data = await asyncio.to_thread(path.read_bytes)
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    assert made[0]["summary"]["tickets"] == 4


async def test_given_the_gateway_was_down_when_it_runs_again_then_the_missed_reports_are_made_up_not_before_data(
        store, tmp_path):
    await make_world(store, START, days=1, per_day=2)
    clock = Clock(datetime(2027, 4, 1, 20, 0, tzinfo=timezone.utc))  # 2 April 04:00: a month later
    service = _service(store, tmp_path, clock)
    await service.run_due()
    rows = await _rows(store)
    daily = [r[1] for r in rows if r[0] == "daily"]
    assert daily == [date(2027, 3, 26) + timedelta(days=i) for i in range(7)]  # catch_up: the last 7 days
    assert [r[1] for r in rows if r[0] == "weekly"] == [date(2027, 3, 1), date(2027, 3, 8), date(2027, 3, 15),
                                                        date(2027, 3, 22)]
    assert [r[1] for r in rows if r[0] == "monthly"] == [date(2027, 3, 1)]  # none before the first call (February)


async def test_given_two_instances_when_both_make_the_same_period_then_one_row_and_the_losers_files_gone(
        store, tmp_path):
    await make_world(store, START, days=1, per_day=2)
    clock = Clock(datetime(2027, 3, 2, 2, 0, tzinfo=timezone.utc))
    a, b = _service(store, tmp_path, clock), _service(store, tmp_path, clock)
    period = period_containing("daily", date(2027, 3, 1))
    one, two = await asyncio.gather(a.generate(period, actor="schedule", replace=False),
                                    b.generate(period, actor="schedule", replace=False))
    assert one["id"] == two["id"] and len(await _rows(store)) == 1
    assert len(await asyncio.to_thread(_names, tmp_path / "instance" / "reports")) == 4


async def test_given_old_reports_when_retention_passes_then_rows_and_files_deleted(store, tmp_path):
    await make_world(store, START, days=1, per_day=2)
    clock = Clock(datetime(2027, 3, 2, 2, 0, tzinfo=timezone.utc))
    service = _service(store, tmp_path, clock, config=DEFAULTS.__class__(retention_days={
        "daily": 10, "weekly": 0, "monthly": 0}))
    await service.generate(period_containing("daily", date(2027, 3, 1)), actor="lead")
    assert await service.expire(clock() + timedelta(days=5)) == 0
    assert await service.expire(clock() + timedelta(days=12)) == 4
    assert await _rows(store) == [] and await asyncio.to_thread(_names, tmp_path / "instance" / "reports") == []


async def test_given_the_font_missing_when_the_job_runs_then_nothing_made_and_health_says_why(
        store, tmp_path, monkeypatch):
    await make_world(store, START, days=1, per_day=2)
    monkeypatch.setattr(report_render, "FONT_CANDIDATES", (str(tmp_path / "no-font.ttc"),))
    service = _service(store, tmp_path, Clock(datetime(2027, 3, 5, 2, 0, tzinfo=timezone.utc)))
    assert await service.run_due() == []
    assert service.health()["font"].startswith("missing: install fonts-wqy-microhei")


# -- the API -----------------------------------------------------------------------------------

@pytest.fixture()
async def client(tmp_path, store):
    users = UserStore(store)
    tokens = {}
    for name, role in (("lead", "supervisor"), ("a1", "agent")):
        uid = await users.create_user(name, f"{name}-password-1", role)
        tokens[name] = {"Authorization": f"Bearer {(await users.create_session(uid))[0]}"}

    async def health():
        return {}

    app = build_app(store=store, health=health, users=users)
    clock = Clock(datetime(2027, 3, 9, 2, 0, tzinfo=timezone.utc))  # Tuesday 9 March, 10:00 in Beijing
    app[REPORTS] = service = _service(store, tmp_path, clock)
    await service.check_font()
    add_report_routes(app)
    await make_world(store, START, days=7, per_day=3)
    async with TestClient(TestServer(app)) as c:
        yield c, service, tokens


async def test_given_a_supervisor_when_generating_now_then_listed_and_each_file_downloads_with_its_headers(client):
    c, service, tok = client
    resp = await c.post("/api/supervisor/reports", json={"kind": "weekly"}, headers=tok["lead"])
    made = await resp.json()
    assert resp.status == 201, made
    assert made["label"] == "2027年第9周（3月1日—3月7日）周分析" and made["created_by"] == "lead"
    listed = await (await c.get("/api/supervisor/reports", headers=tok["lead"])).json()
    assert [i["id"] for i in listed["items"]] == [made["id"]] and listed["font"] == "ok"
    assert listed["schedule"] == {"daily": "01:00", "weekly": "02:00", "monthly": "03:00"}
    for f in made["files"]:
        resp = await c.get(f["url"], headers=tok["lead"])
        body = await resp.read()
        assert resp.status == 200 and hashlib.sha256(body).hexdigest() == f["sha256"]
        assert resp.headers["Content-Type"].startswith(report_render.CONTENT_TYPES[f["format"]].split(";")[0])
        assert resp.headers["Content-Disposition"].startswith(
            f'attachment; filename="12345-weekly-2027-03-01.{f["format"]}"')
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    resp = await c.get(f"/api/supervisor/reports/{made['id']}/html?inline=1", headers=tok["lead"])
    assert resp.headers["Content-Disposition"].startswith("inline;")
    assert "script-src" not in resp.headers["Content-Security-Policy"]  # default-src 'none': no script at all
    again = await (await c.post("/api/supervisor/reports", json={"kind": "weekly", "date": "2027-03-03"},
                                headers=tok["lead"])).json()
    assert again["id"] == made["id"] and again["sha256"] != made["sha256"]  # the same row, new files
    names = await asyncio.to_thread(_names, service.archive_dir)
    assert len(names) == 4 and all(n.startswith("weekly-2027-03-01-") for n in names)  # the replaced ones are gone


async def test_given_bad_requests_when_generating_then_400_with_the_field_and_agents_403(client):
    c, _service, tok = client
    resp = await c.post("/api/supervisor/reports", json={"kind": "yearly", "date": "3 March"}, headers=tok["lead"])
    body = await resp.json()
    assert resp.status == 400 and {p["field"] for p in body["details"]["problems"]} == {"kind", "date"}
    resp = await c.post("/api/supervisor/reports", json={"kind": "daily", "date": "2027-03-09"}, headers=tok["lead"])
    body = await resp.json()
    assert resp.status == 400 and body["details"]["field"] == "date" and "尚未结束" in body["message_zh"]
    assert (await c.post("/api/supervisor/reports", json={"kind": "daily"}, headers=tok["a1"])).status == 403
    assert (await c.get("/api/supervisor/reports", headers=tok["a1"])).status == 403
    assert (await c.get("/api/supervisor/reports")).status == 401


@pytest.mark.parametrize("path", [
    "/api/supervisor/reports/{id}/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/supervisor/reports/{id}/../../../etc/passwd",
    "/api/supervisor/reports/..%2F{id}/pdf",
    "/api/supervisor/reports/{id}/pdf%00.html",
    "/api/supervisor/reports/{id}/PDF",
    "/api/supervisor/reports/99999/pdf",
    "/api/supervisor/reports/-1/pdf",
])
async def test_given_hostile_download_paths_then_never_a_file_outside_the_archive(client, path):
    c, service, tok = client
    made = await service.generate(period_containing("daily", date(2027, 3, 1)), actor="lead")
    resp = await c.get(path.format(id=made["id"]), headers=tok["lead"])
    body = await resp.read()
    assert resp.status in (400, 404), (path, resp.status)
    assert b"root:" not in body and b"%PDF" not in body


async def test_given_a_row_whose_file_name_was_tampered_with_when_downloaded_then_404_not_the_target(
        client, tmp_path):
    c, service, tok = client
    made = await service.generate(period_containing("daily", date(2027, 3, 1)), actor="lead")
    outside = tmp_path / "secret.txt"
    await asyncio.to_thread(outside.write_text, "not a report")

    async def tamper(session) -> None:
        row = await session.get(ReportArchive, made["id"])
        row.files = [{**f, "name": "../../secret.txt"} if f["format"] == "csv" else f for f in row.files]

    await service.store.run_write(tamper)
    resp = await c.get(f"/api/supervisor/reports/{made['id']}/csv", headers=tok["lead"])
    assert resp.status == 404 and b"not a report" not in await resp.read()
