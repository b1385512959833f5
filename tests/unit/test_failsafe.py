"""The dialplan's fail-safe and FastAGI failover: rendered config, settings, the choices the IVR keeps."""

from __future__ import annotations

import wave
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from gateway.errors import LocalProtocolError, SettingsError
from gateway.ivr_flows.engine import CallState, Interpreter, choice_path
from gateway.ivr_flows.validate import load_config
from gateway.pbx import dialplan, prompts
from gateway.pbx.fastagi import AgiChannel
from gateway.settings import load_settings
from tests.unit.scripted import RecordingObserver, ScriptedChannel

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")
WEEKDAY_OPEN = datetime(2027, 3, 3, 2, 0, tzinfo=timezone.utc)


def _settings(tmp_path, **extra):
    env = {"GATEWAY_STATE_DIR": str(tmp_path / "var"), "GATEWAY_CONFIG_DIR": str(tmp_path / "cfg"),
           "GATEWAY_CACHE_DIR": str(tmp_path / "cache"), "GATEWAY_AMI_SECRET": "s3cret", "GATEWAY_AGI_PORT": "4999"}
    return load_settings({**env, **extra})


def _gw_ivr(ext: str) -> list[str]:
    start = ext.index("[gw-ivr]")
    return ext[start:ext.index("\n\n", start)].splitlines()


# -- settings ----------------------------------------------------------------------------------
def test_given_no_agi_peers_when_loaded_then_the_single_agi_address_is_tried(tmp_path):
    assert _settings(tmp_path).agi_addresses == ("127.0.0.1:4999",)


def test_given_agi_peers_when_loaded_then_they_are_kept_in_order(tmp_path):
    s = _settings(tmp_path, GATEWAY_AGI_PEERS=" 127.0.0.1:4574, 127.0.0.1:4573 ,gw-b.example:4573")
    assert s.agi_addresses == ("127.0.0.1:4574", "127.0.0.1:4573", "gw-b.example:4573")


@pytest.mark.parametrize("raw", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "a b:1", "x:1,x:1", "h:1/ivr"])
def test_given_bad_agi_peers_when_loaded_then_refused_with_the_variable_name(tmp_path, raw):
    with pytest.raises(SettingsError, match="GATEWAY_AGI_PEERS"):
        _settings(tmp_path, GATEWAY_AGI_PEERS=raw)


@pytest.mark.parametrize("raw", ["-1", "lots", "nan", "inf"])
def test_given_a_bad_minimum_free_space_when_loaded_then_refused(tmp_path, raw):
    with pytest.raises(SettingsError, match="GATEWAY_RECORDINGS_MIN_FREE_MB"):
        _settings(tmp_path, GATEWAY_RECORDINGS_MIN_FREE_MB=raw)


# -- the rendered dialplan -----------------------------------------------------------------
def test_given_two_agi_peers_when_rendered_then_the_second_is_tried_only_before_the_ivr_started(tmp_path):
    s = _settings(tmp_path, GATEWAY_AGI_PEERS="127.0.0.1:4573,127.0.0.1:4574")
    lines = _gw_ivr(dialplan.render_files(CONFIG, s)["extensions.conf"])
    first = lines.index(" same => n(agi1),AGI(agi://127.0.0.1:4573/ivr,${ARG1})")
    second = lines.index(" same => n(agi2),AGI(agi://127.0.0.1:4574/ivr,${ARG1})")
    between = lines[first + 1:second]
    guard = ' same => n,GotoIf($["${AGISTATUS}" != "FAILURE" | "${GW_IVR}" != ""]?failsafe)'
    assert guard in between and " same => n,Goto(agi2)" in between
    assert between.index(guard) < between.index(" same => n,Goto(agi2)")
    assert ' same => n,GotoIf($["${GW_ACTION}" = "queue"]?queue)' in between  # a routed call never fails over
    after = lines[second:]
    assert any("n(failsafe)" in line for line in after)  # the last address falls through to the fail-safe
    assert not any("AGI(agi://" in line for line in after[1:])


def test_given_one_agi_address_when_rendered_then_no_failover_and_the_failsafe_follows(tmp_path):
    lines = _gw_ivr(dialplan.render_files(CONFIG, _settings(tmp_path))["extensions.conf"])
    assert sum("AGI(agi://" in line for line in lines) == 1
    assert not any("Goto(agi" in line for line in lines)


def test_given_the_failsafe_when_rendered_then_notice_kept_choice_cdr_then_queue(tmp_path):
    lines = _gw_ivr(dialplan.render_files(CONFIG, _settings(tmp_path))["extensions.conf"])
    start = next(i for i, line in enumerate(lines) if "n(failsafe)" in line)
    queue = next(i for i, line in enumerate(lines) if "n(queue),Queue(${GW_QUEUE}" in line)
    part = "\n".join(lines[start:queue])
    assert "${GW_CHOICE_QUEUE}" in lines[start] and "${GW_FALLBACK_QUEUE}" in lines[start]
    assert r"Set(CDR(userfield)=failsafe\;queue=${GW_QUEUE}\;path=${GW_CHOICE_PATH}\;agi=${AGISTATUS})" in part
    assert f"Playback(/srv/gw/prompts/{prompts.FAILSAFE_NOTICE[0]})" in part
    assert start < queue


def test_given_the_config_when_rendered_then_music_on_hold_and_cdr_function_are_there(tmp_path):
    files = dialplan.render_files(CONFIG, _settings(tmp_path))
    assert "[default]" in files["musiconhold.conf"] and "directory = /srv/gw/moh" in files["musiconhold.conf"]
    assert "load => func_cdr.so" in files["modules.conf"]
    assert files["modules.conf"].count("load => res_musiconhold.so") == 1


def test_given_a_render_when_written_then_the_music_file_is_a_quiet_8khz_wav(tmp_path):
    s = _settings(tmp_path)
    dialplan.write_config(CONFIG, s)
    path = s.instance_dir / "moh" / "gentle-tone.wav"
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert len(audio) >= 8000 * 10
    assert 0 < np.abs(audio).max() < 0.2 * 32767  # audible, never loud


def test_given_the_catalogue_then_the_failsafe_notice_is_a_mandarin_prompt():
    notice = prompts.catalogue(CONFIG)[prompts.FAILSAFE_NOTICE[0]]
    assert notice.language == CONFIG.flows[CONFIG.primary.flow].language
    assert "人工" in notice.text


# -- the choices the IVR keeps on the channel ---------------------------------------------------
class RememberingChannel(ScriptedChannel):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.remembered: list[dict] = []

    async def remember(self, values: dict) -> None:
        self.remembered.append(dict(values))


def _current(channel: RememberingChannel) -> dict:
    out: dict = {}
    for values in channel.remembered:
        out.update(values)
    return out


async def _walk(number: str, channel):
    state = CallState(uniqueid="u1", line=CONFIG.lines[number], caller="13800138000", dialled=number)
    await Interpreter(CONFIG, clock=lambda: WEEKDAY_OPEN).run(state, channel, RecordingObserver())
    return state


async def test_given_a_caller_when_they_choose_then_the_channel_keeps_queue_category_and_path():
    channel = RememberingChannel(["4", "1"])
    await _walk("12345", channel)
    assert channel.remembered[0] == {"GW_IVR": "started"}  # before anything is played
    kept = _current(channel)
    assert kept["GW_CHOICE_QUEUE"] == "q-complaint" and kept["GW_CHOICE_CATEGORY"] == "投诉"
    assert kept["GW_CHOICE_PATH"] == "type_menu:4>confidential_menu:1>sms_consent:2"
    sent = [name for values in channel.remembered for name in values]
    assert sent.count("GW_CHOICE_QUEUE") == 1  # only changes are sent


async def test_given_a_caller_who_hangs_up_in_the_second_menu_then_the_first_choice_is_kept():
    channel = RememberingChannel(["3", "HANGUP"])
    await _walk("12345", channel)
    assert _current(channel)["GW_CHOICE_QUEUE"] == "q-report"


async def test_given_a_dual_number_line_when_the_ivr_starts_then_its_own_queue_is_kept_at_once():
    channel = RememberingChannel(["HANGUP"])
    await _walk("12315", channel)
    assert channel.remembered[0]["GW_IVR"] == "started"
    assert channel.remembered[0]["GW_CHOICE_QUEUE"] == CONFIG.lines["12315"].queue


def test_given_a_long_menu_path_then_it_is_cut_from_the_front():
    path = [{"node": f"menu_{i}", "key": "1", "label": "x"} for i in range(40)]
    text = choice_path(path)
    assert len(text) <= 124 and text.startswith("...>") and text.endswith("menu_39:1")
    assert choice_path([{"node": "m", "key": "7", "result": "invalid"}]) == ""  # no option chosen


class _Session:
    id = "agi-1"
    read_timeout = 1.0

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def command(self, cmd, *, timeout=None):
        from gateway.pbx.agi import parse_reply

        self.sent.append(cmd)
        return parse_reply(b"200 result=1")


async def test_given_an_agi_channel_when_it_remembers_then_set_variable_per_value_and_only_failsafe_names():
    session = _Session()
    channel = AgiChannel(session, lambda key: key, "/srv/gw/recordings")
    await channel.remember({"GW_IVR": "started", "GW_CHOICE_CATEGORY": "投诉"})
    assert session.sent == [b"SET VARIABLE GW_IVR started\n", "SET VARIABLE GW_CHOICE_CATEGORY 投诉\n".encode()]
    for bad in ({"GW_ACTION": "queue"}, {"GW_CHOICE_QUEUE": "q x"}):
        with pytest.raises(LocalProtocolError):
            await channel.remember(bad)


async def test_given_the_emergency_key_when_the_gateway_is_lost_then_the_failsafe_routes_to_the_emergency_queue():
    channel = RememberingChannel(["4", "0", "HANGUP"])  # complaint, then 0 (emergency) in the next menu
    state = await _walk("12345", channel)
    assert any(step["node"] == "emergency_guard" for step in state.path), state.path
    assert _current(channel)["GW_CHOICE_QUEUE"] == "q-emergency"
