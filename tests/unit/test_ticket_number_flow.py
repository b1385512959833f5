"""The ticket number read to the caller (say_ticket node), walked with a scripted channel."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from gateway.ivr_flows.engine import CallState, Interpreter
from gateway.ivr_flows.model import SayTicketNode
from gateway.ivr_flows.validate import load_config
from gateway.pbx.prompts import catalogue
from gateway.ticketing.ticket_no import new_ticket_no
from tests.unit.scripted import RecordingObserver, ScriptedChannel

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")
WEEKDAY_OPEN = datetime(2027, 3, 3, 2, 0, tzinfo=timezone.utc)
NUMBER = new_ticket_no(date(2027, 3, 3), randbelow=lambda n: 45678)  # 0303045678 + check digit


class NumberingObserver(RecordingObserver):
    """The call's observer as the gateway's: the first ticket point draws the number."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[dict] = []

    async def ticket_point(self, state):
        state.vars.setdefault("ticket_no", NUMBER)
        await super().ticket_point(state)

    async def ticket_told(self, state):
        self.told.append({"ticket_no": state.vars["ticket_no"], "sms": state.vars.get("sms")})


async def walk(keys, **channel_options):
    channel = ScriptedChannel(keys, **channel_options)
    observer = NumberingObserver()
    state = CallState(uniqueid="u1", line=CONFIG.lines["12345"], caller="13800138000", dialled="12345")
    await Interpreter(CONFIG, clock=lambda: WEEKDAY_OPEN).run(state, channel, observer)
    return state, channel, observer


def _readings(played: list[str]) -> list[str]:
    """The numbers read out, as digits, from the prompts played."""
    out, current = [], None
    for prompt in played:
        if prompt == "main-ticket_no":
            current = ""
            out.append(current)
        elif prompt.startswith("main-digit-") and prompt not in ("main-digit-pause", "main-digit-gap"):
            out[-1] += prompt.rsplit("-", 1)[1]
    return out


def _spoken(played: list[str]) -> list[str]:
    start = played.index("main-ticket_no")
    end = played.index("main-to_queue")
    return played[start:end]


async def test_given_a_caller_who_described_when_transferred_then_the_number_is_read_434_before_the_queue():
    state, channel, observer = await walk(["4", "2", ""])
    assert state.outcome == "queued" and channel.transferred == "q-complaint"
    assert _readings(channel.played) == [NUMBER]
    spoken = _spoken(channel.played)
    digits_and_pauses = [p.removeprefix("main-digit-") for p in spoken[1:-1] if p != "main-digit-gap"]
    assert spoken[1:-1].count("main-digit-gap") == 3 + 2 + 3
    assert "".join(d if d != "pause" else " " for d in digits_and_pauses) == f"{NUMBER[:4]} {NUMBER[4:7]} {NUMBER[7:]}"
    assert spoken[-1] == "main-ticket_repeat"  # then the transfer prompt
    assert observer.told == [{"ticket_no": NUMBER, "sms": None}]
    step = next(s for s in observer.steps if s["node"] == "tell_number")
    assert step["times"] == 1


async def test_given_star_pressed_after_the_number_then_it_is_read_again_at_most_the_configured_times():
    node = CONFIG.flows["main"].nodes["tell_number"]
    assert isinstance(node, SayTicketNode) and node.repeats == 2
    _state, channel, observer = await walk(["4", "2", "*", "*", "*"])
    assert _readings(channel.played) == [NUMBER] * 3
    assert next(s for s in observer.steps if s["node"] == "tell_number")["times"] == 3
    assert channel.played.count("main-ticket_repeat") == 2  # not offered after the last repeat


async def test_given_a_caller_who_hangs_up_while_hearing_the_number_then_the_ticket_was_made_first():
    state, _channel, observer = await walk(["4", "2"], hangup_on_prompt="main-digit-pause")
    assert state.outcome == "caller_hangup"
    assert observer.ticket_points and observer.ticket_points[0]["ticket_no"] == NUMBER
    assert observer.told  # the SMS is queued before the first digit


async def test_given_a_confidential_caller_then_asked_about_sms_and_no_answer_means_no():
    state, channel, observer = await walk(["4", "1", ""])
    assert "main-sms_consent" in channel.played
    assert state.vars["confidential"] is True and state.vars["sms"] is False
    assert observer.told == [{"ticket_no": NUMBER, "sms": False}]


async def test_given_a_confidential_caller_who_presses_1_then_the_sms_is_asked_for():
    _state, _channel, observer = await walk(["4", "1", "1"])
    assert observer.told == [{"ticket_no": NUMBER, "sms": True}]


async def test_given_a_caller_not_confidential_then_no_sms_question():
    _state, channel, _observer = await walk(["4", "2"])
    assert "main-sms_consent" not in channel.played


async def test_given_no_number_drawn_when_a_dry_run_walks_the_flow_then_the_node_is_skipped():
    channel = ScriptedChannel(["4", "2"])
    observer = RecordingObserver()
    state = CallState(uniqueid="u1", line=CONFIG.lines["12345"], caller="13800138000", dialled="12345")
    await Interpreter(CONFIG, clock=lambda: WEEKDAY_OPEN).run(state, channel, observer)
    assert "main-ticket_no" not in channel.played and state.outcome == "queued"
    assert next(s for s in observer.steps if s["node"] == "tell_number")["result"] == "no_number"


def test_given_the_flows_then_digit_prompts_exist_once_per_flow_in_its_voice():
    prompts = catalogue(CONFIG)
    assert [prompts[f"main-digit-{d}"].text for d in range(10)] == list("零幺二三四五六七八九")
    assert prompts["main-digit-gap"].is_tone and prompts["main-digit-gap"].text == "silence:150ms"
    assert prompts["main-digit-pause"].is_tone and prompts["main-digit-pause"].voice() == ("sox", "tone")
    assert prompts["ko-digit-1"].language == "ko" and prompts["ko-digit-1"].text == "일"


@pytest.mark.parametrize("change,field,message", [
    ("    repeat_key: \"*\"\n", "nodes.tell_number.repeat_key", "phone key"),
    ("    repeats: 2\n    timeout: 2.5\n    next: to_queue\n", "nodes.tell_number.repeats", "out of range"),
])
def test_given_a_bad_say_ticket_node_then_refused_with_its_field(tmp_path, change, field, message):
    import shutil

    from gateway.errors import ConfigError

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    flow = config / "flows" / "main.yaml"
    text = flow.read_text(encoding="utf-8")
    bad = change.replace('"*"', '"x"').replace("repeats: 2", "repeats: 9")
    assert change in text
    flow.write_text(text.replace(change, bad, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    problems = caught.value.problems
    assert any(p.field == field and message in p.message for p in problems), problems


class SequenceChannel(ScriptedChannel):
    """A channel that plays a list of prompts as one sound (as AgiChannel's EXEC Playback does)."""

    def __init__(self, keys) -> None:
        super().__init__(keys)
        self.sequences: list[list[str]] = []

    async def play_sequence(self, prompt_ids):
        self._prompt("sequence")
        self.sequences.append(list(prompt_ids))


async def test_given_a_channel_that_plays_sequences_then_each_reading_is_one_command_with_the_pacing():
    channel = SequenceChannel(["4", "2", "*", ""])
    observer = NumberingObserver()
    state = CallState(uniqueid="u1", line=CONFIG.lines["12345"], caller="13800138000", dialled="12345")
    await Interpreter(CONFIG, clock=lambda: WEEKDAY_OPEN).run(state, channel, observer)
    assert len(channel.sequences) == 2 and channel.sequences[0] == channel.sequences[1]
    reading = channel.sequences[0]
    assert reading[0] == "main-ticket_no" and len(reading) == 1 + 11 + 8 + 2
    assert "".join(p.removeprefix("main-digit-") for p in reading[1:] if p.removeprefix("main-digit-").isdigit()) \
        == NUMBER
