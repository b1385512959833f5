"""Issue 12 (loop lag): work every call start did on the event loop that it need not do.

Profiling a 60-caller burst (py-spy, GATEWAY_LOOP_DEBUG) showed each FastAGI session spending
most of its first step serialising the whole configuration for ``GatewayConfig.version`` and
resolving the recordings directory on disk. These tests check that the work is done once,
without measuring any time."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.calls.plugin import CALLS
from gateway.hotlines import plugin as hotlines_plugin
from gateway.hotlines.asterisk import AsteriskSync
from gateway.ivr_flows import model
from gateway.ivr_flows.validate import load_config
from gateway.settings import Settings, load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_given_a_configuration_when_its_version_is_read_again_then_it_is_not_serialised_again(monkeypatch):
    config = load_config(CONFIG)
    dumps = json.dumps
    version = config.version
    assert len(version) == 12 and int(version, 16) >= 0

    def no_second_serialisation(*args, **kwargs):
        raise AssertionError("the configuration was serialised again for its version")

    monkeypatch.setattr(model.json, "dumps", no_second_serialisation)
    assert config.version == version  # from the first reading
    monkeypatch.setattr(model.json, "dumps", dumps)
    assert load_config(CONFIG).version == version  # same content, same version (a content hash)
    other = dataclasses.replace(config, timezone="UTC")
    assert other.version != version  # a new configuration object has its own version
    assert dataclasses.asdict(config) == dataclasses.asdict(load_config(CONFIG))  # not a field: not in the content
    assert config == load_config(CONFIG)


@pytest.fixture()
def no_asterisk(monkeypatch):
    monkeypatch.setattr(AsteriskSync, "render", lambda self, config, previous: None)
    monkeypatch.setattr(hotlines_plugin, "AMI_WAIT", 0.0)


async def test_given_the_call_handler_when_a_channel_is_made_for_a_call_then_no_path_is_resolved(
        tmp_path, monkeypatch, no_asterisk):
    settings = Settings(state_dir=tmp_path / "var", config_dir=CONFIG, cache_dir=tmp_path / "cache",
                        database_url=f"sqlite+aiosqlite:///{tmp_path}/gw.db", http_port=0, agi_port=0,
                        audiosocket_port=0, ami_port=1, ami_secret="not-used", speech=False)
    expected = await asyncio.to_thread(settings.pbx_path, settings.recordings_dir)
    app = await create_app(settings)
    async with TestClient(TestServer(app)):  # started: the directory was resolved (in a thread)

        def resolved(self, local):
            raise AssertionError(f"{local} resolved on the loop for a call")

        monkeypatch.setattr(Settings, "pbx_path", resolved)
        channels = [app[CALLS].channel_factory(object()) for _ in range(3)]
        assert [channel._recording_dir for channel in channels] == [expected.rstrip("/")] * 3
        assert expected.endswith("/recordings")


def test_given_the_loop_debug_setting_when_parsed_then_it_is_strict_and_off_by_default(tmp_path):
    base = {"GATEWAY_STATE_DIR": str(tmp_path / "var"), "GATEWAY_CONFIG_DIR": str(CONFIG)}
    assert load_settings(base).loop_debug is False
    assert load_settings({**base, "GATEWAY_LOOP_DEBUG": "true"}).loop_debug is True
    with pytest.raises(Exception, match="GATEWAY_LOOP_DEBUG"):
        load_settings({**base, "GATEWAY_LOOP_DEBUG": "sometimes"})
