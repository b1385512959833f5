"""Figures for the callback (virtual hold): how soon a kept place is called back once an agent frees up.

    .venv/bin/python bench/callback.py [--callbacks 6] [--keep-state]

It prints figures and never asserts speed; it exits 2 when the callbacks did not go the intended
way (an offer not heard, a callback not placed, placed out of turn, or not ending with an agent).
Everything runs in a private sandbox Asterisk + ``gateway serve`` (gateway_dev.system.System).

The only agent of q-report (8003) is kept busy: the simulated agent talks as long as the Asterisk
global GW_AGENT_TALK says (600 s here), so each call it takes holds it until this bench hangs the
call up. Caller A takes the agent; then ``--callbacks`` callers dial 12345, press 3 (举报) and 2,
hear the offer (the wait is long: the agent is busy), press 1 and confirm their number; each
number's simulated citizen is ready to answer. Then, round by round, the bench hangs up the
call the agent is on. This process listens to AMI itself and notes when the member's
``QueueMemberStatus`` (Status 1: not in use) arrives, and when the gateway's ``Originate`` of
the next citizen appears (the ``Newchannel`` of ``Local/<number>@gw-citizen-sim``): placed
within = Originate - member free. The called-back citizen hears the notice, joins the queue
(high QUEUE_PRIO), reaches agent 8003 (AgentConnect), and is the call hung up next round.

Output: a table on stdout, progress on stderr, JSON in bench/results/callback.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway_dev.simcall import CallScript, answer_call, place_call, sim_ami_client  # noqa: E402
from gateway_dev.system import System  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CITIZEN = "@gw-citizen-sim"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


class Watch:
    """AMI events this bench times (monotonic arrival in this process)."""

    def __init__(self) -> None:
        self.freed: list[float] = []  # QueueMemberStatus of 8003 in q-report, not in use
        self.originated: list[tuple[float, str, str]] = []  # (t, number, outbound uniqueid)
        self.connected: dict[str, float] = {}  # uniqueid -> AgentConnect
        self.changed = asyncio.Event()

    def on_raw(self, h: dict) -> None:
        now = time.monotonic()
        name = h.get("Event")
        if name == "QueueMemberStatus" and h.get("Queue") == "q-report" and h.get("Status") == "1":
            self.freed.append(now)
        elif name == "Newchannel" and CITIZEN in h.get("Channel", "") and h.get("Channel", "").endswith(";1"):
            number = h["Channel"].split("/", 1)[1].split("@", 1)[0]
            self.originated.append((now, number, h.get("Uniqueid", "")))
        elif name == "AgentConnect":
            self.connected[h.get("Uniqueid", "")] = now
        else:
            return
        self.changed.set()

    async def until(self, check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(what)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass


async def run(args, sysm: System) -> dict:
    settings = sysm.settings
    ami = sim_ami_client(settings)
    await ami.start()
    await ami.wait_connected(20)
    watch = Watch()
    ami.subscribe_raw(watch.on_raw)
    problems: list[str] = []
    await ami.action({"Action": "Setvar", "Variable": "GW_AGENT_TALK", "Value": "600"})
    first = asyncio.create_task(place_call(settings, CallScript(number="12345", caller="13800009000", digits="32",
                                                                uniqueid="sim-bench-first", timeout=900), ami=ami))
    await watch.until(lambda: "sim-bench-first" in watch.connected, 120, "caller A with the agent")
    numbers = [f"139{5000000 + i:08d}" for i in range(args.callbacks)]
    ready = [asyncio.Event() for _ in numbers]
    citizens = [asyncio.create_task(answer_call(settings, n, CallScript(number=n), ready=r, timeout=900))
                for n, r in zip(numbers, ready)]
    for r in ready:
        await asyncio.wait_for(r.wait(), 60)
    say(f"{len(numbers)} callers ask for a callback…")
    asked = []
    for i, number in enumerate(numbers):  # one after the other: their places are in this order
        heard = await place_call(settings, CallScript(number="12345", caller=number, digits="3211", timeout=300),
                                 ami=ami)
        accepted = bool(heard["heard"]) and heard["heard"][-1] == "main-callback_accepted"
        if not accepted:
            problems.append(f"caller {i + 1} did not get a callback: {heard['heard'][-3:]}")
        asked.append(heard)
    occupant = "sim-bench-first"
    rounds = []
    for i in range(len(numbers)):
        before_free, before_orig = len(watch.freed), len(watch.originated)
        hung = time.monotonic()
        await ami.action({"Action": "Hangup", "Channel": occupant})
        try:
            await watch.until(lambda: len(watch.originated) > before_orig, 120, f"callback {i + 1} placed")
        except TimeoutError:
            problems.append(f"callback {i + 1} was not placed within 120 s of the agent freeing up")
            break
        t_orig, number, uid = watch.originated[before_orig]
        freed = [t for t in watch.freed[before_free:] if t >= hung]
        t_free = freed[0] if freed else hung
        if number != numbers[i]:
            problems.append(f"callback {i + 1} called {number}, the place of {numbers[i]} was first")
        try:
            await watch.until(lambda: uid in watch.connected, 120, f"callback {i + 1} with the agent")
        except TimeoutError:
            problems.append(f"the citizen of callback {i + 1} did not reach the agent")
            break
        rounds.append({"number": number[:3] + "****" + number[-4:], "placed_after_free_s": round(t_orig - t_free, 3),
                       "placed_after_hangup_s": round(t_orig - hung, 3),
                       "agent_after_placed_s": round(watch.connected[uid] - t_orig, 3)})
        say(f"  callback {i + 1}: placed {t_orig - t_free:.2f} s after the agent was free")
        occupant = uid
    await ami.action({"Action": "Hangup", "Channel": occupant})
    for task in [first, *citizens]:
        try:
            result = await asyncio.wait_for(task, 60)
        except Exception as exc:  # noqa: BLE001 - reported as a problem below
            problems.append(f"a simulated party ended badly: {exc!r}")
            continue
        if task is not first and "main-callback_notice" not in result.get("heard", []):
            problems.append(f"citizen {result.get('number')} did not hear the notice: {result.get('heard')}")
    await ami.close()
    status, body = sysm.http("/api/supervisor/callbacks", token=sysm.token())
    done = [c for c in body.get("items", []) if c["status"] == "done"]
    if len(done) != len(numbers):
        problems.append(f"{len(done)} of {len(numbers)} callbacks ended with an agent: "
                        f"{[(c['id'], c['status'], c['last_result']) for c in body.get('items', [])]}")
    placed = [r["placed_after_free_s"] for r in rounds]
    return {
        "when": datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
        "callbacks": len(numbers), "rounds": rounds, "problems": problems,
        "placed_after_free_s": {"p50": statistics.median(placed) if placed else None, "p95": p95(placed),
                                "max": max(placed) if placed else None},
    }


def table(out: dict) -> str:
    f = out["placed_after_free_s"]
    lines = ["callback placed after an agent is free (Originate - QueueMemberStatus free), seconds",
             f"  callbacks {out['callbacks']}  p50 {f['p50']}  p95 {f['p95']}  max {f['max']}"]
    for i, r in enumerate(out["rounds"], 1):
        lines.append(f"  {i:2d}  {r['number']}  placed {r['placed_after_free_s']:.2f} s after free "
                     f"({r['placed_after_hangup_s']:.2f} s after the hang-up), agent {r['agent_after_placed_s']:.1f} s later")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--callbacks", type=int, default=6, help="callbacks placed one after the other (6)")
    parser.add_argument("--keep-state", action="store_true", help="keep the temporary state dir")
    parser.add_argument("--output", type=Path, default=RESULTS / "callback.json")
    args = parser.parse_args()
    started = time.monotonic()
    env = {"GATEWAY_SPEECH": "false", "GATEWAY_CALLBACK_OVER_SECONDS": "1"}
    with System(prefix="gw-bench-callback-", keep=args.keep_state, extra_env=env) as sysm:
        say(f"system up: {sysm.up()}")
        out = asyncio.run(run(args, sysm))
    out["bench_s"] = round(time.monotonic() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(table(out))
    print(f"\nwritten to {args.output}")
    if out["problems"]:
        print("\nOFF PATH: the callbacks did not go the intended way:")
        for problem in out["problems"]:
            print(f"  - {problem}")
        sys.exit(2)


if __name__ == "__main__":
    main()
