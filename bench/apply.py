"""Figures for live configuration changes (issue: hotline mergers as a versioned configuration).

1. Time from "apply" (the admin API call) to the first call on the new version: the
   API round trip of a change (validate, render dialplan and prompts, reload Asterisk,
   store the version), then a call placed right after it, checked to run on the new
   version (its greeting is the new one).
2. 20 applies while 20 calls are in progress: how many calls were dropped (counted:
   a call that did not reach an agent, got no ticket or ended abnormally).

Run: .venv/bin/python bench/apply.py [--applies 20] [--calls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import datetime
from pathlib import Path

from gateway_dev.simcall import CallScript, place_call, sim_ami_client
from gateway_dev.system import System

RESULTS = Path(__file__).resolve().parent / "results"


def change_greeting(sysm: System, token: str, i: int) -> tuple[float, dict]:
    started = time.monotonic()
    status, version = sysm.http("/api/admin/lines/12315", method="PATCH", token=token, body={
        "fields": {"greeting": f"您好，这里是12315热线，第{i}版问候语。"}, "comment": f"bench apply {i}"})
    elapsed = time.monotonic() - started
    if status != 201:
        raise RuntimeError(f"apply {i} refused: {status} {version}")
    return elapsed, version


async def run(args) -> dict:
    out: dict = {"when": datetime.now().isoformat(timespec="seconds")}
    with System(prefix="gw-bench-apply-") as sysm:
        sysm.up()
        token = sysm.login("bench-admin", "bench admin password", "admin")
        s = sysm.settings
        ami = sim_ami_client(s)
        await ami.start()
        await ami.wait_connected(10)
        try:
            # 1. apply -> first call on the new version
            applies, first_ok = [], 0
            for i in range(args.rounds):
                elapsed, version = await asyncio.to_thread(change_greeting, sysm, token, i)
                applies.append(elapsed)
                call_started = time.monotonic()
                result = await place_call(s, CallScript(number="12315", digits="12", hangup_at_menu=1), ami=ami)
                _, call = await asyncio.to_thread(sysm.http, f"/api/calls/{result['uniqueid']}", token=sysm.token())
                if call.get("flow_version") == version["content_hash"]:
                    first_ok += 1
                print(f"apply {i}: {elapsed * 1000:.0f} ms; next call on version {call.get('flow_version')} "
                      f"(new {version['content_hash']}), answered by the IVR in "
                      f"{time.monotonic() - call_started:.1f} s")
            out["apply_ms"] = {"median": round(statistics.median(applies) * 1000, 1),
                               "max": round(max(applies) * 1000, 1), "n": len(applies)}
            out["first_call_on_new_version"] = f"{first_ok}/{args.rounds}"
            # 2. N applies while M calls are in progress
            numbers = ["12345", "12315", "12369", "12319", "12360"]
            scripts = [CallScript(number=numbers[i % len(numbers)], caller=f"1380000{i:04d}", digits="12",
                                  timeout=600) for i in range(args.calls)]
            calls = [asyncio.create_task(place_call(s, sc, ami=ami)) for sc in scripts]
            await asyncio.sleep(8)  # every call is in the IVR by now
            during = []
            for i in range(args.applies):
                elapsed, _ = await asyncio.to_thread(change_greeting, sysm, token, 100 + i)
                during.append(elapsed)
            results = await asyncio.gather(*calls, return_exceptions=True)
            dropped = [r for r in results if isinstance(r, Exception) or not r.get("agent")
                       or r.get("ticket_id") is None or r.get("hangup_cause") != 16]
            out["applies_during_calls"] = {"applies": args.applies, "calls": args.calls,
                                           "dropped": len(dropped),
                                           "apply_ms_median": round(statistics.median(during) * 1000, 1)}
            print(f"{args.applies} applies during {args.calls} calls: {len(dropped)} dropped")
        finally:
            await ami.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--applies", type=int, default=20)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    out = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"apply-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(json.dumps(out, indent=2, ensure_ascii=False))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
