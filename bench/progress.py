"""Progress by phone: how long a caller waits for the live part (unit + latest reply).

The live voice (gateway.progress.voice.LiveVoice, the project's Kokoro voice on its own
thread, telephony normalisation, disk cache) speaks typical details: the voice's load time
(once per gateway, done at start), each text's first-time latency (rendered now) and its
cached latency (a hit: the file is touched and played), and the audio's length, for the
pieces a call asks for one after the other (承办单位：…。 then 最新答复：…。), with the
machine's load average (a shared machine: compare runs at similar load). Every
rendered file is put through the project's Mandarin recogniser (`gateway transcribe`,
Whisper base): exit 1 when what was spoken is not what was asked: CER over --max-cer (0.4:
Whisper base itself scores 0.13-0.31 on clean Mandarin sentences, see /work/shared/DESIGN.md)
or another text of the set matching what was heard better. First renders slower than the
gateway's default timeout (GATEWAY_PROGRESS_SPEECH_TIMEOUT, 8 s) are counted, not failed:
on a loaded machine they would send callers to an agent, which is what the figure tells.
Figures are printed and written to bench/results/progress.json.

Run: .venv/bin/python bench/progress.py [--max-cer 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.asr.zh_text import cer  # noqa: E402
from gateway.ivr_flows.progress import TicketView, details_texts  # noqa: E402
from gateway.progress.voice import LiveVoice  # noqa: E402
from gateway.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REPLIES = [  # (units, latest public reply): typical of 12345 handling units
    (("朝阳区住房和城乡建设委员会",), "已安排工作人员到现场核查，三个工作日内答复。"),
    (("市城市管理委员会", "东城区城管执法局"), "经现场核实，占道经营问题已依法处理，后续将加强巡查。"),
    (("市市场监管局",), "已联系商家，商家同意为您办理退货，请保持电话畅通。"),
]


def seconds_of(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def heard(path: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "transcribe", str(path), "--lang", "zh", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)
    return json.loads(proc.stdout).get("text", "")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-cer", type=float, default=0.4)
    parser.add_argument("--cached-rounds", type=int, default=20)
    args = parser.parse_args()
    timeout = Settings.__dataclass_fields__["progress_speech_timeout"].default
    failures, rows = [], []
    with tempfile.TemporaryDirectory(prefix="gw-bench-progress-") as tmp:
        voice = LiveVoice(Path(tmp) / "live", timeout=120)
        try:
            started = time.monotonic()
            await voice.warm_up()
            load_s = time.monotonic() - started
            for units, reply in REPLIES:
                pieces = details_texts(TicketView(id=1, filed_at=None, caller_number="", status="submitted",
                                                  handling="accepted", units=units, reply=reply))
                for text in pieces:  # the unit, then the reply: what a call asks the voice for
                    started = time.monotonic()
                    key = await voice.say(text)
                    first = time.monotonic() - started
                    cached = []
                    for _ in range(args.cached_rounds):
                        started = time.monotonic()
                        assert await voice.say(text) == key
                        cached.append(time.monotonic() - started)
                    path = voice.path_of(key)
                    said = heard(path)
                    score = cer(text, said)
                    row = {"text": text, "chars": len(text), "audio_s": round(seconds_of(path), 2),
                           "first_s": round(first, 2), "cached_ms_p50": round(statistics.median(cached) * 1000, 2),
                           "cached_ms_max": round(max(cached) * 1000, 2), "heard": said, "cer": round(score, 3),
                           "load_avg_1m": round(os.getloadavg()[0], 1)}
                    others = [t for u, r in REPLIES for t in details_texts(TicketView(
                        id=1, filed_at=None, caller_number="", status="submitted", units=u, reply=r,
                        handling="accepted")) if t != text]
                    if score > args.max_cer or any(cer(t, said) < score for t in others):
                        failures.append(f"spoken text not what was asked (CER {score:.2f}): {said!r}")
                    row["over_timeout"] = first > timeout
                    rows.append(row)
                    print(json.dumps(row, ensure_ascii=False), flush=True)
        finally:
            voice.close()
    summary = {"voice_load_s": round(load_s, 2), "timeout_s": timeout, "texts": rows, "cpus": os.cpu_count(),
               "first_s_mean": round(statistics.mean(r["first_s"] for r in rows), 2),
               "rtf_mean": round(statistics.mean(r["first_s"] / r["audio_s"] for r in rows), 2),
               "cer_mean": round(statistics.mean(r["cer"] for r in rows), 3),
               "over_timeout": sum(r["over_timeout"] for r in rows), "failures": failures}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "progress.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "texts"}, ensure_ascii=False))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
