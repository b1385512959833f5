"""Figure "ticket number audible" (issue 13): CER of the spoken ticket number by the Mandarin recogniser.

The number is played as a call plays it: the flow's intro prompt ("您的诉求已记录，工单号是"),
then the per-digit prompts rendered at apply (gateway.pbx.prompts.digit_prompts: the Kokoro
voice, one file per digit) joined 4-3-4: the flow's gap prompt (150 ms) between two digits,
its pause prompt (350 ms) between the groups. N random numbers
(gateway.ticketing.ticket_no.new_ticket_no, a fixed seed) are built, sent through the
telephone channel (G.711 µ-law round trip) and transcribed by the gateway's Mandarin
recogniser (config/speech.yaml zh: Whisper base). Per number: the digits heard
(gateway_dev.heard.heard_digits) against the number: CER = edit distance / 11; also the
share of numbers heard exactly. ``--gap S`` puts S seconds of silence between the digits of a
group instead of the gap prompt (to compare pacings). The end-to-end check on a real call is tests/e2e/test_ticket_number.py.

Run: .venv/bin/python bench/ticket_no.py [--n 20] [--gap 0] [--seed 13]
Writes bench/results/ticket_no.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import wave
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mandarin import CACHE, mulaw_round_trip, pad, read_pcm  # noqa: E402
from gateway.asr.audio import write_wav_8k  # noqa: E402
from gateway.asr.config import load_speech_config  # noqa: E402
from gateway.asr.vosk_engine import VoskEngine  # noqa: E402
from gateway.asr.zh_text import edit_distance  # noqa: E402
from gateway.ivr_flows.validate import load_config  # noqa: E402
from gateway.pbx.prompts import PromptText, catalogue, synthesize  # noqa: E402
from gateway.ticketing.ticket_no import new_ticket_no, spoken_groups  # noqa: E402
from gateway_dev.heard import heard_digits  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def render_prompts(folder: Path) -> dict[str, bytes]:
    """The main flow's intro, digits and pause as the apply renders them (PCM, 8 kHz)."""
    prompts = catalogue(load_config(ROOT / "config"))
    keys = ["main-ticket_no", "main-digit-pause", "main-digit-gap"] + [f"main-digit-{d}" for d in range(10)]
    out = {}
    for key in keys:
        p: PromptText = prompts[key]
        path = folder / f"{key}.wav"
        synthesize(p, path)
        out[key] = read_pcm(path)
    return out


def spoken(number: str, pcm: dict[str, bytes], gap_s: float) -> bytes:
    silence = bytes(int(gap_s * 16000)) if gap_s > 0 else b""
    parts = [pcm["main-ticket_no"]]
    for n, group in enumerate(spoken_groups(number)):
        if n:
            parts.append(pcm["main-digit-pause"])
        gap = silence if gap_s > 0 else pcm["main-digit-gap"]
        parts.append(gap.join(pcm[f"main-digit-{d}"] for d in group))
    return b"".join(parts)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--gap", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    numbers = [new_ticket_no(date(2026, rng.randint(1, 12), rng.randint(1, 28)), randbelow=rng.randrange)
               for _ in range(args.n)]
    shipped = load_speech_config(ROOT / "config" / "speech.yaml")
    config = dataclasses.replace(shipped, workers=1, models={"zh": shipped.models["zh"]})
    engine = VoskEngine(config, cache_dir=CACHE)
    await engine.start(print)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            pcm = await asyncio.to_thread(render_prompts, folder)
            for i, number in enumerate(numbers):
                audio = mulaw_round_trip(pad(spoken(number, pcm, args.gap)))
                path = write_wav_8k(folder / f"n{i}.wav", audio)
                text = (await engine.transcribe_file(path, "zh")).text
                digits = heard_digits(text)
                rows.append({"number": number, "heard": digits, "text": text,
                             "cer": edit_distance(number, digits) / len(number)})
                print(f"{number}  heard {digits:<14} CER {rows[-1]['cer']:.2f}  {text}")
            with wave.open(str(folder / "n0.wav")) as w:
                seconds = w.getnframes() / w.getframerate()
    finally:
        await engine.close()
    figure = {
        "n": len(rows), "gap_s": args.gap, "seed": args.seed, "model": shipped.models["zh"].name
        if hasattr(shipped.models["zh"], "name") else "zh",
        "cer_mean": round(statistics.mean(r["cer"] for r in rows), 3),
        "cer_p90": round(sorted(r["cer"] for r in rows)[int(0.9 * (len(rows) - 1))], 3),
        "exact": round(sum(r["cer"] == 0 for r in rows) / len(rows), 3),
        "seconds_spoken": round(seconds, 2),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in figure.items() if k != "rows"}, ensure_ascii=False))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ticket_no.json").write_text(json.dumps(figure, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
