"""Every Mandarin prompt of config/ is said in Mandarin: no English, no number left for an engine to guess."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gateway import tts
from gateway.ivr_flows.validate import load_config
from gateway.pbx import prompts
from gateway.tts import espeak

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
MANDARIN = sorted((p for p in prompts.catalogue(load_config(CONFIG_DIR)).values()
                   if tts.is_mandarin(p.language) and not p.is_tone), key=lambda p: p.key)


def test_given_the_shipped_config_when_catalogued_then_it_has_mandarin_prompts_of_flows_and_lines():
    keys = {p.key for p in MANDARIN}
    assert {"main-greeting", "main-emergency_notice", "main-type_menu", "line-12315-greeting",
            "line-12358-announcement", "line-12319-announcement"} <= keys


@pytest.mark.parametrize("prompt", MANDARIN, ids=lambda p: p.key)
def test_given_a_mandarin_prompt_when_normalised_then_no_digit_run_or_key_symbol_is_left(prompt):
    spoken = prompt.spoken
    assert not re.search(r"[0-9０-９#＃*＊%％]", spoken), spoken
    for run in re.findall(r"\d{3,}", prompt.text):  # dialled numbers digit by digit, 1 as 幺
        assert tts.normalize.say_digits(run) in spoken, (run, spoken)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@pytest.mark.parametrize("prompt", MANDARIN, ids=lambda p: p.key)
def test_given_a_mandarin_prompt_when_the_fallback_voice_reads_it_then_no_word_is_english(prompt):
    said = espeak.phonemes(prompt.spoken, espeak.MANDARIN_FALLBACK)
    assert "(en)" not in said, f"{prompt.key}: espeak-ng would speak English: {said}"


def test_given_the_emergency_notice_when_spoken_then_it_names_the_four_numbers_digit_by_digit():
    notice = next(p for p in MANDARIN if p.key == "main-emergency_notice").spoken
    for number in ("幺幺零", "幺幺九", "幺二零", "幺二二"):
        assert number in notice


def test_given_the_type_menu_when_spoken_then_its_keys_are_read_as_keys():
    menu = next(p for p in MANDARIN if p.key == "main-type_menu").spoken
    for key in "一二三四五六":
        assert f"按{key}" in menu
