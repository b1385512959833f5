"""Asterisk config and prompts are generated from config/, none hand-written per line."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import pytest

from gateway.ivr_flows.validate import load_config
from gateway.pbx import dialplan, prompts
from gateway.settings import load_settings

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")


@pytest.fixture()
def settings(tmp_path):
    return load_settings({"GATEWAY_STATE_DIR": str(tmp_path / "var"), "GATEWAY_CONFIG_DIR": str(tmp_path / "cfg"),
                          "GATEWAY_CACHE_DIR": str(tmp_path / "cache"), "GATEWAY_AMI_SECRET": "s3cret",
                          "GATEWAY_AGI_PORT": "4999", "GATEWAY_AMI_PORT": "5999", "GATEWAY_SIP_PORT": "5998"})


def test_given_the_config_when_rendered_then_every_line_has_an_inbound_context(settings):
    files = dialplan.render_files(CONFIG, settings)
    ext = files["extensions.conf"]
    for number in CONFIG.lines:
        assert f"exten => {number},1,Goto(did-{number},s,1)" in ext
        assert f"[did-{number}]" in ext
    assert "AGI(agi://127.0.0.1:4999/ivr,${ARG1})" in ext
    assert "[gw-caller-sim]" in ext and "[gw-agents]" in ext


def test_given_the_config_when_rendered_then_queues_and_members_follow_it(settings):
    queues = dialplan.render_files(CONFIG, settings)["queues.conf"]
    for queue in CONFIG.queues.values():
        assert f"[{queue.name}]" in queues
        for member in queue.members:
            assert f"member => Local/{member}@gw-agents/n" in queues


def test_given_settings_when_rendered_then_ami_is_loopback_with_this_installs_secret(settings, tmp_path):
    etc = dialplan.write_config(CONFIG, settings)
    manager = (etc / "manager.conf").read_text()
    assert "bindaddr = 127.0.0.1" in manager and "port = 5999" in manager and "secret = s3cret" in manager
    assert (etc / "manager.conf").stat().st_mode & 0o077 == 0
    assert "bind = 127.0.0.1:5998" in (etc / "pjsip.conf").read_text()


def test_given_the_config_when_catalogued_then_line_texts_override_the_flow():
    cat = prompts.catalogue(CONFIG)
    assert cat["line-12315-greeting"].text.startswith("您好，12315")
    assert cat["main-greeting"].text.startswith("您好，欢迎致电12345")
    assert "line-12319-announcement" in cat and "line-12345-greeting" not in cat


@pytest.fixture()
def few_prompts(monkeypatch):
    """Three prompts (Mandarin, Korean, a tone), not the whole catalogue: Kokoro takes seconds each."""
    whole = prompts.catalogue
    keep = ("main-greeting", "ko-greeting", "main-beep")
    monkeypatch.setattr(prompts, "catalogue", lambda config: {k: v for k, v in whole(config).items() if k in keep})
    return keep


def test_given_prompts_when_rendered_twice_then_cached_and_an_override_wins(settings, tmp_path, few_prompts):
    out, cache, override = tmp_path / "out", tmp_path / "cache", tmp_path / "override"
    first = prompts.render_all(CONFIG, out_dir=out, cache_dir=cache, override_dir=override)
    assert set(first) == set(few_prompts)
    assert set(first.values()) == {"new"}
    with wave.open(str(out / "main-greeting.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() > 8000  # more than a second of speech
    override.mkdir()
    subprocess.run(["sox", "-n", "-r", "16000", str(override / "main-greeting.wav"), "synth", "0.5", "sine", "440"],
                   check=True)
    second = prompts.render_all(CONFIG, out_dir=out, cache_dir=cache, override_dir=override)
    assert second["main-greeting"] == "override"
    assert {v for k, v in second.items() if k != "main-greeting"} == {"cache"}
    with wave.open(str(out / "main-greeting.wav")) as w:
        assert w.getframerate() == 8000 and w.getnframes() == 4000


def test_given_a_prompt_text_when_an_admin_edits_it_then_it_is_rendered_again_and_the_old_file_is_replaced(
        tmp_path, monkeypatch):
    out, cache, override = tmp_path / "out", tmp_path / "cache", tmp_path / "override"
    texts = {"main-greeting": "您好，欢迎致电12345。"}
    monkeypatch.setattr(prompts, "catalogue",
                        lambda config: {k: prompts.PromptText(k, t, "cmn") for k, t in texts.items()})
    assert prompts.render_all(CONFIG, out_dir=out, cache_dir=cache, override_dir=override) == {"main-greeting": "new"}
    before = (out / "main-greeting.wav").read_bytes()
    texts["main-greeting"] = "您好，这里是12345热线。"
    assert prompts.render_all(CONFIG, out_dir=out, cache_dir=cache, override_dir=override) == {"main-greeting": "new"}
    assert (out / "main-greeting.wav").read_bytes() != before
    texts["main-greeting"] = "您好，欢迎致电12345。"
    assert prompts.render_all(CONFIG, out_dir=out, cache_dir=cache, override_dir=override) == {"main-greeting": "cache"}
    assert (out / "main-greeting.wav").read_bytes() == before


def test_given_mandarin_and_korean_prompts_when_described_then_kokoro_speaks_mandarin_and_espeak_korean():
    from gateway import tts

    tts.check()
    rows = {r["key"]: r for r in prompts.describe(CONFIG)}
    assert rows["main-greeting"]["spoken"].startswith("您好，欢迎致电幺二三四五")
    assert (rows["main-greeting"]["engine"], rows["main-greeting"]["voice"]) == ("kokoro", "zf_xiaobei")
    assert (rows["ko-greeting"]["engine"], rows["ko-greeting"]["voice"]) == ("espeak", "ko")
    assert rows["ko-greeting"]["spoken"] == rows["ko-greeting"]["text"]


def test_given_a_prompt_text_with_shell_characters_when_rendered_then_it_is_spoken_not_run(tmp_path):
    marker = tmp_path / "pwned"
    text = prompts.PromptText("x", f"$(touch {marker}); `touch {marker}` -v", "cmn")
    prompts.synthesize(text, tmp_path / "x.wav")
    assert (tmp_path / "x.wav").stat().st_size > 1000 and not marker.exists()


def test_given_the_shipped_flows_when_the_gateway_is_down_then_the_fail_safe_queue_is_the_general_one():
    from gateway.ivr_flows.validate import load_config
    from gateway.pbx.dialplan import _fallback_queue

    config = load_config(Path(__file__).resolve().parents[2] / "config")
    assert _fallback_queue(config) == "q-general"  # not the emergency hand-off, which comes first in the file
