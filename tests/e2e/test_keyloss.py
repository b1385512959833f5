"""End to end, issue 12 (keys lost at the start of a speech menu): a caller who presses the
type menu's key the moment the prompt before it ends, while the gateway is still seeking a
recogniser stream, gets the queue of the key, on a real call through the sandbox Asterisk.

The gap is made long on purpose (``PUT /api/test/speech`` ``open_delay_s``: each stream
request waits before it is answered, as it does on a loaded gateway) so that the key surely
lands in it; the caller presses on AMI's AGIExecEnd of the Korean hint's STREAM FILE, the
prompt just before the type menu. No AGI command that reads keys runs then unless the
gateway watches for keys: Asterisk frees the key.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.asr.config import load_speech_config
from gateway_dev.simcall import CallScript, place_call

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DELAY_S = 3.0  # the stream request's wait: the key (pressed ~0.1 s after the hint) falls inside it


_TOKENS: dict = {}


def _speech(system, **body) -> dict:
    if "admin" not in _TOKENS:
        _TOKENS["admin"] = system.login("keyloss-admin", "keyloss-admin-pw-1", "admin")
    status, reply = system.http("/api/test/speech", method="PUT", body={"suspended": False, **body},
                                token=_TOKENS["admin"])
    assert status == 200, reply
    return reply


def _call(system, key: str, caller: str) -> dict:
    # digits: the confidentiality menu's key only; the type menu's key is pressed in the gap
    script = CallScript(number="12345", caller=caller, digits="2", keys_after_prompt=("main-korean_hint", key),
                        timeout=400)
    return asyncio.run(place_call(system.settings, script))


@pytest.fixture(scope="module")
def mandarin(system):
    system.wait_speech_ready("zh", timeout=300)  # the type menu listens only when zh has a recogniser
    configured = load_speech_config(system.config_dir / "speech.yaml").max_streams
    yield
    _speech(system, max_streams=1000 if configured is None else configured, open_delay_s=0)  # None: no cap


def _type_menu(result: dict) -> dict:
    menus = [s for s in result["menu_path"] if s["node"] == "type_menu"]
    assert len(menus) == 1, result["path"]
    return menus[0]


def test_given_every_stream_taken_when_the_key_comes_as_the_menu_starts_then_it_reaches_its_queue(
        system, mandarin):
    _speech(system, max_streams=0, open_delay_s=DELAY_S)
    result = _call(system, "1", "13600000121")
    menu = _type_menu(result)
    assert (menu["key"], menu.get("via")) == ("1", "typeahead"), result["path"]
    assert result["queue"] == "q-consult" and "main-type_menu" not in result["heard"], result
    assert {"node": "confidential_menu", "key": "2", "label": "不保密", "result": "ok"} in result["menu_path"]


def test_given_a_free_stream_when_the_key_comes_while_it_opens_then_it_answers_the_menu(system, mandarin):
    configured = load_speech_config(system.config_dir / "speech.yaml").max_streams
    _speech(system, max_streams=1000 if configured is None else max(1, configured), open_delay_s=DELAY_S)
    result = _call(system, "4", "13600000122")
    menu = _type_menu(result)
    assert menu["key"] == "4" and menu.get("via") != "speech", result["path"]
    assert result["queue"] == "q-complaint", result
