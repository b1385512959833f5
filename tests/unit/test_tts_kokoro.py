"""The Kokoro voice: the real model speaks a sentence; a model that is not the pinned file is refused."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from gateway import tts
from gateway.tts import engine, model
from gateway.tts.errors import ModelError
from gateway.tts.kokoro import KokoroVoice, load_voice, voice_names


def test_given_the_vendored_voices_when_listed_then_the_prompt_and_caller_voices_are_there_and_check_out():
    assert {"zf_xiaobei", "zf_xiaoxiao", "zm_yunxia"} <= set(voice_names())
    assert load_voice("zf_xiaobei").shape == (510, 1, 256)


def test_given_a_file_of_the_wrong_size_when_verified_then_it_is_refused_with_the_reason(tmp_path):
    fake = tmp_path / model.MODEL_NAME
    fake.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="17 bytes, not the 92,361,271"):
        model.verify(fake)
    with pytest.raises(ModelError, match="refusing to load"):
        KokoroVoice(fake)


def test_given_a_file_of_the_right_size_but_other_bytes_when_verified_then_the_sha256_refuses_it(tmp_path, monkeypatch):
    fake = tmp_path / model.MODEL_NAME
    fake.write_bytes(b"\0" * 4096)
    monkeypatch.setattr(model, "MODEL_SIZE", 4096)  # a small stand-in for the 92 MB file
    with pytest.raises(ModelError, match=r"sha256 ad7facb2.*not the pinned 6e742170"):
        model.verify(fake)


def test_given_no_model_file_when_verified_then_it_says_how_to_get_one(tmp_path):
    with pytest.raises(ModelError, match="no such file.*gateway setup"):
        model.verify(tmp_path / model.MODEL_NAME)


def test_given_corrupt_parts_when_assembled_then_nothing_gets_the_model_name(tmp_path):
    parts = []
    for i in range(4):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(bytes([i]) * 1000)
        parts.append(part)
    target = tmp_path / "models" / model.MODEL_NAME
    with pytest.raises(ModelError, match="refusing them"):
        model.assemble(target, parts)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_given_a_broken_model_when_prompts_are_rendered_then_espeak_speaks_and_the_fallback_is_reported(
        tmp_path, monkeypatch):
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / model.MODEL_NAME).write_bytes(b"x" * 10)
    monkeypatch.setattr(model, "part_paths", lambda: (_ for _ in ()).throw(ModelError("parts gone (test)")))
    try:
        engine.configure(broken)
        said = tts.render_wav("您好，欢迎致电12345。", tmp_path / "x.wav")
        state = tts.status()
    finally:
        engine.configure(None)
    assert said["engine"] == "espeak" and said["voice"] == "cmn-latn-pinyin" and said["seconds"] > 1
    assert state["engine"] == "espeak" and "parts gone" in state["problem"]


@pytest.fixture(scope="module")
def real_voice():
    engine.configure(None)
    state = tts.check()
    if state["problem"]:
        pytest.fail(f"the Kokoro model cannot load here: {state['problem']}")
    return engine.voice()


def test_given_the_real_model_when_a_sentence_is_rendered_then_it_is_8khz_speech_of_a_sensible_length(
        real_voice, tmp_path):
    out = tmp_path / "s.wav"
    said = tts.render_wav("您的诉求已记录，我们将在3个工作日内回复。", out, voice="zm_yunxia")
    assert said["engine"] == "kokoro" and said["voice"] == "zm_yunxia"
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    seconds = pcm.size / 8000
    assert 2.0 < seconds < 8.0 and abs(seconds - said["seconds"]) < 0.01  # 18 syllables
    rms = np.sqrt(np.mean(pcm ** 2)) / 32768
    assert rms > 0.03, rms  # speech, not silence
    frames = pcm[: pcm.size // 160 * 160].reshape(-1, 160)
    voiced = (np.sqrt((frames ** 2).mean(axis=1)) / 32768 > 0.02).mean()
    assert voiced > 0.5, voiced  # speech most of the time, trimmed at both ends
    assert tts.status()["engine"] == "kokoro" and tts.status()["loaded"]
