"""The follow-up flow (config/flows/followup.yaml) walked with a scripted citizen."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from gateway.followup.ivr import FlowMissing, day_zh, fill, followup_flow, run_followup_ivr, templates
from gateway.ivr_flows.channel import Heard, Recording
from gateway.ivr_flows.validate import config_from_files, load_config, read_files
from gateway.pbx.prompts import catalogue
from tests.unit.scripted import ScriptedChannel

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")
NOW = datetime(2027, 9, 28, 2, 0, tzinfo=timezone.utc)
ALIASES = {"followup-intro": "live/abc"}


async def walk(channel) -> object:
    return await run_followup_ivr(CONFIG, channel, uniqueid="out-1", number="13800138000", aliases=ALIASES,
                                  clock=lambda: NOW, recording_path=lambda r: f"/local/{Path(r.path).name}.{r.fmt}")


async def test_given_keys_1_1_and_a_spoken_comment_then_answered_with_the_transcript():
    heard = Heard(ended_by="dtmf", digit="#", transcript={"text": "处理得很及时"}, transcript_status="done",
                  recording=Recording("/srv/gw/recordings/followup-out-1", "wav", 2100, "dtmf"))
    channel = ScriptedChannel(["1", "1"], languages={"zh"}, heard=[heard])
    result = await walk(channel)
    assert (result.outcome, result.solved, result.satisfaction) == ("answered", "yes", "satisfied")
    assert (result.comment_transcript, result.comment_status) == ("处理得很及时", "done")
    assert result.comment_path == "/local/followup-out-1.wav"
    assert channel.played[0] == "live/abc"  # the intro with this ticket's day
    assert channel.played[-1] == "followup-thanks" and channel.hung_up


async def test_given_no_recogniser_then_the_comment_is_recorded_and_pending():
    channel = ScriptedChannel(["2", "3"])
    result = await walk(channel)
    assert (result.outcome, result.solved, result.satisfaction) == ("answered", "no", "unsatisfied")
    assert result.comment_status == "pending" and result.comment_path.endswith("followup-out-1.wav")


async def test_given_silence_at_a_menu_then_repeated_once_then_no_input_and_goodbye():
    channel = ScriptedChannel(["", ""])
    result = await walk(channel)
    assert result.outcome == "no_input" and result.solved is None
    assert channel.played.count("followup-solved_menu") == 2
    assert "followup-no_input" in channel.played and channel.played[-1] == "followup-no_choice"


async def test_given_an_invalid_key_then_the_invalid_prompt_and_the_menu_again():
    channel = ScriptedChannel(["7", "1", "2"])
    result = await walk(channel)
    assert (result.outcome, result.solved, result.satisfaction) == ("answered", "yes", "basic")
    assert "followup-invalid" in channel.played


async def test_given_key_9_then_refused():
    channel = ScriptedChannel(["9"])
    result = await walk(channel)
    assert result.outcome == "refused" and channel.played[-1] == "followup-refused"


async def test_given_a_hangup_after_the_first_answer_then_hangup_with_the_partial_answer():
    channel = ScriptedChannel(["1", "HANGUP"])
    result = await walk(channel)
    assert (result.outcome, result.solved, result.satisfaction) == ("hangup", "yes", None)


def test_given_the_intro_template_then_filled_with_the_local_day_and_not_rendered_at_apply():
    flow = followup_flow(CONFIG)
    assert set(templates(flow)) == {"intro"}
    day = day_zh(datetime(2027, 11, 30, 17, 0, tzinfo=timezone.utc), "Asia/Shanghai")  # 12-01 01:00 in Beijing
    assert day == "12月1日"
    assert fill(flow.prompts["intro"], {"date": day}) == "您好，这里是12345市民服务热线，对您于12月1日反映的问题进行回访。"
    keys = catalogue(CONFIG)
    assert "followup-intro" not in keys and "followup-solved_menu" in keys


def test_given_no_followup_flow_then_flow_missing():
    files = {k: v for k, v in read_files(Path(__file__).resolve().parents[2] / "config").items()
             if k != "flows/followup.yaml"}
    with pytest.raises(FlowMissing):
        followup_flow(config_from_files(files))


async def test_given_three_calls_of_one_day_when_their_greeting_is_rendered_at_once_then_one_file_once(
        tmp_path, monkeypatch):
    import asyncio

    from gateway.followup.ivr import LivePrompts
    from gateway.pbx import prompts

    rendered = []

    def fake_synthesize(prompt, target):
        rendered.append(prompt.text)
        target.write_bytes(b"RIFF-fake")
        return {"engine": "kokoro", "voice": "zf_xiaobei", "seconds": 1.0}

    monkeypatch.setattr(prompts, "synthesize", fake_synthesize)
    live = LivePrompts(prompts_dir=tmp_path / "prompts", cache_dir=tmp_path / "cache")
    when = datetime(2027, 9, 28, 2, 0, tzinfo=timezone.utc)
    keys = await asyncio.gather(*(live.for_ticket(CONFIG, called_at=when) for _ in range(3)))
    assert keys[0] == keys[1] == keys[2] and set(keys[0]) == {"followup-intro"}
    assert rendered == ["您好，这里是12345市民服务热线，对您于9月28日反映的问题进行回访。"]
    live_key = keys[0]["followup-intro"]
    made = await asyncio.to_thread((tmp_path / "prompts" / f"{live_key}.wav").read_bytes)
    assert live_key.startswith("live/") and made == b"RIFF-fake"
    names = await asyncio.to_thread(lambda: [p.name for p in (tmp_path / "prompts" / "live").iterdir()])
    assert names == [f"{live_key[5:]}.wav"]  # no .tmp left
