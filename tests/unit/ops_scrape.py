"""A real ``/metrics`` scrape of the whole gateway (gateway.app.create_app, no Asterisk), after one
call through the real call handler (a caller who hangs up in the menu) and its queue events
through the application's AMI router: for the metrics' and the Grafana dashboard's tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import DEPS, create_app
from gateway.calls.plugin import CALLS
from gateway.hotlines import plugin as hotlines_plugin
from gateway.hotlines.asterisk import AsteriskSync
from gateway.pbx.ami_events import parse_event
from tests.unit.scripted import ScriptedChannel
from tests.unit.test_app_plugins import _login, _settings

CALLER = "13800138000"


async def scrape_after_a_call(tmp_path: Path, monkeypatch) -> str:
    monkeypatch.setattr(AsteriskSync, "render", lambda self, config, previous: None)  # no Asterisk here
    monkeypatch.setattr(hotlines_plugin, "AMI_WAIT", 0.0)
    app = await create_app(_settings(tmp_path))
    async with TestClient(TestServer(app)) as client:
        handler = app[CALLS]
        handler.channel_factory = lambda session: ScriptedChannel(["HANGUP"])
        env = SimpleNamespace(uniqueid="ops-1", args=["12345"], extension="s", callerid=CALLER, channel="Local/x;1")
        await handler(SimpleNamespace(env=env, timings=[("GET DATA", 0.004)]))
        dispatch = app[DEPS].ami_events.dispatch
        await dispatch(parse_event({"Event": "QueueCallerJoin", "Uniqueid": "ops-2", "Queue": "q-general",
                                    "Position": "1", "CallerIDNum": CALLER}))
        await dispatch(parse_event({"Event": "QueueCallerAbandon", "Uniqueid": "ops-2", "Queue": "q-general",
                                    "HoldTime": "25"}))
        sup = await _login(app, "ops", "supervisor")
        resp = await client.get("/metrics", headers=sup)
        assert resp.status == 200
        return await resp.text()
