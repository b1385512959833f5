"""The composition root (gateway.app): features as plugins started and stopped through
``cleanup_ctx``, test routes only with the test clock, /healthz and /metrics assembled from
the features' sources. The whole application runs (database, AMI client, every feature) on
free ports without Asterisk: AMI never connects and Asterisk's files are not rendered."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import DEPS, create_app
from gateway.auth.http import AUTH
from gateway.deps import AmiEvents
from gateway.hotlines import plugin as hotlines_plugin
from gateway.hotlines.asterisk import AsteriskSync
from gateway.hotlines.keys import HOTLINES
from gateway.pbx.ami_events import parse_event
from gateway.settings import Settings
from gateway_dev.eventually import aeventually

CONFIG = Path(__file__).resolve().parents[2] / "config"
HEALTH_KEYS = {"status", "database", "journal", "ami", "config_version", "config_version_id", "calls_in_ivr",
               "fastagi_sessions", "last_reload", "speech", "voice", "desk", "reconcile", "recordings", "bus",
               "units", "sms", "followup", "rates", "reports", "warnings"}
BACKGROUND = {"config-scheduler", "ami-supervisor", "loop-lag-monitor", "reconcile-asterisk", "bus-dispatch",
              "units-job", "followup-scheduler", "rates-places", "reports-job", "warnings"}


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings(tmp_path: Path, database_url: str | None = None, **changes) -> Settings:
    return Settings(state_dir=tmp_path / "var", config_dir=CONFIG, cache_dir=tmp_path / "cache",
                    database_url=database_url or f"sqlite+aiosqlite:///{tmp_path}/gw.db", http_port=0, agi_port=0,
                    audiosocket_port=0, ami_port=_unused_port(), ami_secret="not-used", speech=False,
                    **changes)


@pytest.fixture(autouse=True)
def no_asterisk(monkeypatch):
    """No Asterisk here: nothing rendered for it (nor prompts spoken), no wait for AMI at start."""
    monkeypatch.setattr(AsteriskSync, "render", lambda self, config, previous: None)
    monkeypatch.setattr(hotlines_plugin, "AMI_WAIT", 0.0)


def _running() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks() if not task.done()}


async def _login(app: web.Application, name: str, role: str) -> dict:
    users = app[AUTH]
    token, _csrf = await users.create_session(await users.create_user(name, f"{name}-password-1", role))
    return {"Authorization": f"Bearer {token}"}


async def test_given_a_feature_that_cannot_start_when_the_gateway_starts_then_the_ones_before_it_are_stopped(
        tmp_path):
    with socket.socket() as taken:  # the FastAGI port is taken: the calls feature cannot start
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = await create_app(_settings(tmp_path).with_(agi_port=taken.getsockname()[1]))
        runner = web.AppRunner(app)
        try:
            with pytest.raises(OSError):
                await runner.setup()
            started = _running()
            assert app[HOTLINES].config is not None  # the features before calls did start ...
            assert {"config-scheduler", "ami-supervisor"} <= started
            assert "loop-lag-monitor" not in started  # ... and the one after it did not
        finally:
            await runner.cleanup()
    assert not _running() & BACKGROUND  # ... and cleaning up stopped every one that had started


@pytest.mark.parametrize("test_clock,status", [(False, 404), (True, 200)])
async def test_given_the_test_clock_setting_when_an_admin_sets_the_clock_then_the_route_exists_only_with_it(
        tmp_path, test_clock, status):
    app = await create_app(_settings(tmp_path, test_clock=test_clock))
    paths = {r.resource.canonical for r in app.router.routes() if r.resource}
    assert ({"/api/test/clock", "/api/test/speech"} <= paths) is test_clock
    async with TestClient(TestServer(app)) as client:
        admin = await _login(app, "root", "admin")
        resp = await client.put("/api/test/clock", json={"now": "2027-01-01T09:00:00+08:00"}, headers=admin)
        assert resp.status == status
        if test_clock:
            assert (await resp.json())["now"].startswith("2027-01-01T01:00:00")
            assert app[DEPS].clock.now().year == 2027
        resp = await client.put("/api/test/speech", json={"suspended": True}, headers=admin)
        assert resp.status == (409 if test_clock else 404)  # speech is off here
    assert not _running() & BACKGROUND


async def test_given_a_running_gateway_when_a_supervisor_reads_metrics_then_prometheus_text_with_the_loop_lag(
        tmp_path):
    app = await create_app(_settings(tmp_path))
    async with TestClient(TestServer(app)) as client:
        sup = await _login(app, "lead", "supervisor")

        async def lag_observed():
            resp = await client.get("/metrics", headers=sup)
            text = await resp.text()
            count = next((line for line in text.splitlines()
                          if line.startswith("gateway_event_loop_lag_seconds_count")), "count 0")
            return (resp, text) if float(count.split()[-1]) >= 1 else None

        resp, text = await aeventually(lag_observed, timeout=30, what="a loop-lag observation")
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert "# TYPE gateway_event_loop_lag_seconds histogram" in text
        assert 'gateway_event_loop_lag_seconds_bucket{le="0.005"}' in text
        assert "gateway_fastagi_accepted 0.0" in text and "gateway_desk_pops 0.0" in text
        resp = await client.get("/metrics?format=json", headers=sup)
        body = await resp.json()
        assert {"agi_round_trip", "calls_started", "calls_finished", "sessions_refused", "fastagi",
                "audiosocket", "speech", "desk"} <= set(body)
        assert body["desk"]["pops"] == 0 and body["speech"]["status"] == "off"
        assert body["event_loop_lag"]["count"] >= 1 and body["event_loop_lag"]["worst_ms"] >= 0
        resp = await client.get("/metrics", headers={**sup, "Accept": "application/json"})
        assert (await resp.json())["fastagi"]["accepted"] == 0
        assert (await client.get("/metrics?format=xml", headers=sup)).status == 400


async def test_given_a_running_gateway_without_asterisk_when_a_supervisor_asks_health_then_every_key_degraded(
        tmp_path, database_url):
    app = await create_app(_settings(tmp_path, database_url))  # both databases: the app migrates at start
    async with TestClient(TestServer(app)) as client:
        sup = await _login(app, "lead", "supervisor")
        resp = await client.get("/healthz", headers=sup)
        report = await resp.json()
        assert resp.status == 503 and set(report) == HEALTH_KEYS
        assert report["status"] == "degraded" and report["database"] == "ok"
        assert report["ami"].startswith("disconnected")
        assert report["journal"]["backlog"] == 0 and report["journal"]["waiting_for_database"] is None
        assert report["config_version"] == app[HOTLINES].config.version
        assert report["desk"] == {"suggestions": "on", "connections": 0}
        assert report["speech"] == {"status": "off", "reason": "GATEWAY_SPEECH=off"}
        assert report["sms"]["sender"] == "none" and report["sms"]["backlog"] == 0 and "GATEWAY_SMS_WEBHOOK_URL" in \
            report["sms"]["note"]  # no sender: the outbox records, health says so
        assert await (await client.get("/healthz")).json() == {"status": "degraded"}  # anonymous: up or down


async def test_given_ami_handlers_when_an_event_comes_then_every_record_handler_runs_before_any_notify():
    events, seen = AmiEvents(), []

    async def notify(event):
        seen.append(("notify", event.uniqueid))

    async def record(event):
        await asyncio.sleep(0)  # a database write takes a while
        seen.append(("record", event.uniqueid))

    async def broken(event):
        raise RuntimeError("one failing handler")

    events.add(notify, stage="notify")  # registered first (the desk is set up before calls)
    events.add(broken, stage="record")
    events.add(record, stage="record")
    await events.dispatch(parse_event({"Event": "AgentConnect", "Uniqueid": "u1", "Queue": "q",
                                       "Interface": "Local/8001@agents", "MemberName": "8001"}))
    assert seen == [("record", "u1"), ("notify", "u1")]
    with pytest.raises(ValueError, match="stage"):
        events.add(record, stage="later")
