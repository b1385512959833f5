"""The callback offer in the 12345 flow, walked with a scripted channel (no Asterisk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError, GatewayError
from gateway.ivr_flows.engine import CallState, Interpreter
from gateway.ivr_flows.validate import load_config
from gateway.pbx.prompts import catalogue
from tests.unit.scripted import RecordingObserver, ScriptedChannel
from tests.unit.test_flow_engine import CONFIG, WEEKDAY_OPEN


class WaitObserver(RecordingObserver):
    def __init__(self, seconds, *, limit=60.0, refuse=False):
        super().__init__()
        self.seconds, self.limit, self.refuse = seconds, limit, refuse
        self.requested: list[tuple] = []

    async def expected_wait(self, state, queue):
        return None if self.seconds == "unknown" else (self.seconds, self.limit)

    async def callback_requested(self, state, queue, number, source):
        if self.refuse:
            raise GatewayError("database down")
        self.requested.append((queue, number, source))


async def walk(keys, seconds, *, caller="13800138000", **options):
    observer = WaitObserver(seconds, **options)
    channel = ScriptedChannel(keys)
    state = CallState(uniqueid="u1", line=CONFIG.lines["12345"], caller=caller, dialled="12345")
    await Interpreter(CONFIG, clock=lambda: WEEKDAY_OPEN).run(state, channel, observer)
    return state, channel, observer


def offer_steps(observer):
    return [s for s in observer.steps if "callback_offer" in s]


async def test_given_short_wait_when_transferred_then_no_offer():
    state, channel, observer = await walk(["4", "2"], 30)
    assert channel.transferred == "q-complaint" and not offer_steps(observer)
    assert not any("callback" in p for p in channel.played)


async def test_given_long_wait_when_caller_accepts_and_confirms_then_place_kept_and_hung_up():
    state, channel, observer = await walk(["4", "2", "1", "1"], 250)
    assert observer.requested == [("q-complaint", "13800138000", "caller_id")]
    assert state.outcome == "callback" and channel.transferred is None and channel.hung_up
    assert "main-callback_offer-5" in channel.played  # 250 s: about 5 minutes
    digits = [p for p in channel.played if "-digit-" in p]
    assert digits == [f"main-digit-{d}" for d in "13800138000"]
    assert channel.played[-1] == "main-callback_accepted"
    assert offer_steps(observer)[-1]["result"] == "callback"
    assert "13800138000" not in str(observer.steps)  # the number is not in the menu path


async def test_given_long_wait_when_caller_presses_nothing_then_keeps_waiting_in_the_queue():
    state, channel, observer = await walk(["4", "2", ""], 250)
    assert channel.transferred == "q-complaint" and observer.requested == []
    assert offer_steps(observer)[0]["result"] == "keep_waiting"


async def test_given_nobody_staffs_the_queue_then_the_long_offer_is_said():
    _, channel, observer = await walk(["4", "2", "2"], None)
    assert "main-callback_offer_long" in channel.played and channel.transferred == "q-complaint"


async def test_given_no_figure_when_transferred_then_no_offer():
    _, channel, observer = await walk(["4", "2"], "unknown")
    assert channel.transferred == "q-complaint" and not offer_steps(observer)


async def test_given_withheld_number_when_accepting_then_caller_keys_one_and_confirms():
    state, channel, observer = await walk(["4", "2", "1", "12345", "01062345678", "1"], 600, caller="")
    assert observer.requested == [("q-complaint", "01062345678", "keyed")]
    assert channel.played.count("main-callback_invalid") == 1 and state.outcome == "callback"


async def test_given_caller_wants_another_number_when_keyed_then_that_one_is_kept():
    _, channel, observer = await walk(["4", "2", "1", "2", "13900139000", "1"], 600)
    assert observer.requested == [("q-complaint", "13900139000", "keyed")]


async def test_given_no_number_ever_keyed_then_the_caller_waits_in_the_queue():
    state, channel, observer = await walk(["4", "2", "1", "2", ""], 600)
    assert channel.transferred == "q-complaint" and observer.requested == [] and state.outcome == "queued"


async def test_given_the_place_cannot_be_kept_then_the_caller_waits_in_the_queue():
    state, channel, observer = await walk(["4", "2", "1", "1"], 600, refuse=True)
    assert channel.transferred == "q-complaint" and offer_steps(observer)[-1]["result"] == "not_kept"


async def test_given_the_emergency_transfer_then_never_an_offer():
    state, channel, observer = await walk(["0", ""], 9999)
    assert channel.transferred == "q-emergency" and not offer_steps(observer)


def test_given_the_flow_when_catalogued_then_minute_steps_and_digits_are_prompts():
    keys = catalogue(CONFIG)
    assert {"main-callback_offer-1", "main-callback_offer-30", "main-callback_confirm-a", "main-callback_confirm-b",
            "main-digit-1", "main-callback_notice"} <= set(keys)
    assert "main-callback_offer" not in keys and keys["main-digit-1"].text == "幺"
    assert "{" not in "".join(p.text for p in keys.values())


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    import shutil

    root = Path(__file__).resolve().parents[2] / "config"
    shutil.copytree(root, tmp_path / "config")
    flow = tmp_path / "config" / "flows" / "main.yaml"
    text = flow.read_text(encoding="utf-8")
    assert old in text
    flow.write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path / "config"


@pytest.mark.parametrize("old,new,message", [
    ("    callback: {}          #", "    callback: {over_second: 60}  #", "unknown key"),
    ("约{minutes}分钟", "约几分钟", "must contain {minutes}"),
    ("    callback: {}          #", "    callback: {offer: nope}  #", "unknown prompt 'nope'"),
    ("    callback: {}          #", "    callback: {over_seconds: -5}  #", "out of range"),
])
def test_given_a_bad_callback_option_when_checked_then_error_names_file_line_and_field(tmp_path, old, new, message):
    with pytest.raises(ConfigError) as err:
        load_config(_broken(tmp_path, old, new))
    problems = [p for p in err.value.problems if message in p.message]
    assert problems and problems[0].file.endswith("main.yaml") and problems[0].line
    assert "callback" in problems[0].field
