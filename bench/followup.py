"""Follow-up calls (回访) per minute one node can run.

    .venv/bin/python bench/followup.py [--calls 20] [--max-calls 20] [--timeout 600] [--keep-state]

A private sandbox Asterisk + ``gateway serve`` (gateway_dev.system.System) with short follow-up
settings (any hour, no delay after 办结, one attempt, 1 s rounds, ``--max-calls`` follow-up calls
at once). ``--calls`` tickets are written straight into the database (a submitted ticket each,
its own caller number), a simulated citizen waits at every number (gateway_dev.simcall.answer_call:
presses 1 已解决 and 1 满意, says nothing at the comment), then every ticket is set to 办结 in one
transaction (gateway_dev.handled, as the units part does) and the clock starts. It stops when
every follow-up has left ``calling``/``scheduled`` or at ``--timeout``.

Figures: wall time from 办结 to the last answers stored, follow-up calls completed per minute,
per call the time from 办结 to the call placed (scheduler + prompt rendering), the ring-to-answer
and the answered call's length (outbound_calls rows), the gateway's CPU and loop lag.

Exit codes: 0 every call went the intended way; 2 OFF PATH (a follow-up is not ``done`` with
solved=yes and satisfaction=satisfied, or a citizen did not press 1 and 1: the figures would
describe something else); 1 the bench failed; 130 interrupted. JSON in bench/results/followup.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from common import proc_cpu_seconds
from gateway_dev.handled import mark_handled
from gateway_dev.simcall import CallScript, answer_call, sim_ami_client
from gateway_dev.system import System

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


async def _tickets(url: str, numbers: list[str]) -> list[int]:
    from gateway.ticketing.store import TicketStore

    store = await TicketStore.open(url)
    try:
        out = []
        now = datetime.now(timezone.utc)
        for n, number in enumerate(numbers):
            uid = f"bench-fu-{n}-{int(time.time())}"
            await store.start_call(uniqueid=uid, channel="Local/bench", caller_number=number, dialled_number="12345",
                                   line_number="12345", line_name="12345市民服务热线", merge_mode="primary",
                                   department=None, flow_version="bench", started_at=now)
            out.append(await store.ensure_ticket(uid, category="投诉", channel_kind=None, confidential=None,
                                                 handled_by=None, queue="q-complaint", department=None))
        return out
    finally:
        await store.close()


async def _handle_all(url: str, tickets: list[int]) -> None:
    from gateway.ticketing.store import TicketStore

    store = await TicketStore.open(url)
    try:
        now = datetime.now(timezone.utc)
        await asyncio.gather(*(mark_handled(store, t, now=now, text="已办结（压测）") for t in tickets))
    finally:
        await store.close()


async def _rows(url: str, tickets: list[int]) -> tuple[list[dict], list[dict]]:
    from gateway.ticketing.models import Followup, OutboundCall
    from gateway.ticketing.store import TicketStore

    store = await TicketStore.open(url)
    try:
        async with store.read_session() as session:
            fus = (await session.execute(sa.select(Followup).where(Followup.ticket_id.in_(tickets)))).scalars().all()
            calls = (await session.execute(sa.select(OutboundCall).where(OutboundCall.purpose == "followup")))\
                .scalars().all()
            return ([{"ticket_id": f.ticket_id, "status": f.status, "solved": f.solved, "satisfaction": f.satisfaction,
                      "uniqueid": f.uniqueid, "created_at": f.created_at, "answered_at": f.answered_at,
                      "attempts": f.attempts, "last_outcome": f.last_outcome} for f in fus],
                    [{"uniqueid": c.uniqueid, "outcome": c.outcome, "started_at": c.started_at,
                      "answered_at": c.answered_at, "ended_at": c.ended_at} for c in calls])
    finally:
        await store.close()


async def run(system: System, calls: int, timeout: float) -> dict:
    url = system.gateway_settings.database_url
    numbers = [f"1390{7000000 + i:07d}" for i in range(calls)]
    tickets = await _tickets(url, numbers)
    ami = sim_ami_client(system.settings)
    await ami.start()
    try:
        readies = [asyncio.Event() for _ in numbers]
        citizens = [asyncio.create_task(answer_call(system.settings, n, CallScript(number=n, digits="11", key_delay=0.5),
                                                    ami=ami, ready=r, timeout=timeout)) for n, r in zip(numbers, readies)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        _log(f"{calls} citizens listening; setting {calls} tickets to 办结 at once")
        cpu0 = proc_cpu_seconds(system.gateway.pid)
        await system_metrics_reset(system)
        t0 = time.monotonic()
        started = datetime.now(timezone.utc)
        await _handle_all(url, tickets)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            fus, _ = await _rows(url, tickets)
            if len(fus) == calls and all(f["status"] not in ("scheduled", "calling") for f in fus):
                break
            await asyncio.sleep(0.5)  # polling the database for the end of the run
        wall = time.monotonic() - t0
        cpu = (proc_cpu_seconds(system.gateway.pid) or 0) - (cpu0 or 0)
        heard = await asyncio.gather(*citizens, return_exceptions=True)
    finally:
        await ami.close()
    fus, outbound = await _rows(url, tickets)
    status, metrics = system.http("/metrics?format=json", token=system.token())
    ours = {f["uniqueid"] for f in fus if f["uniqueid"]}
    outbound = [c for c in outbound if c["uniqueid"] in ours]
    done = [f for f in fus if f["status"] == "done" and f["solved"] == "yes" and f["satisfaction"] == "satisfied"]
    pressed = [h for h in heard if isinstance(h, dict) and h.get("pressed") == "11"]
    last = max((f["answered_at"] for f in done), default=None)
    busy = (last - started).total_seconds() if last else wall
    to_call = [(c["started_at"] - started).total_seconds() for c in outbound if c["started_at"]]
    ring = [(c["answered_at"] - c["started_at"]).total_seconds() for c in outbound if c["answered_at"]]
    length = [(c["ended_at"] - c["answered_at"]).total_seconds() for c in outbound if c["ended_at"] and c["answered_at"]]
    return {
        "calls": calls, "done_as_intended": len(done), "citizens_pressed_1_1": len(pressed),
        "statuses": {s: sum(f["status"] == s for f in fus) for s in {f["status"] for f in fus}},
        "wall_s": round(busy, 1), "calls_per_minute": round(len(done) / (busy / 60), 1) if busy > 0 else None,
        "placed_after_banjie_s": {"p50": _pct(to_call, 0.5), "p95": _pct(to_call, 0.95), "max": _pct(to_call, 1.0)},
        "ring_to_answer_s": {"p50": _pct(ring, 0.5), "p95": _pct(ring, 0.95)},
        "call_length_s": {"p50": _pct(length, 0.5), "p95": _pct(length, 0.95),
                          "mean": round(statistics.mean(length), 1) if length else None},
        "gateway_cpu_s": round(cpu, 1), "event_loop_lag": (metrics or {}).get("event_loop_lag"),
        "errors": [repr(h)[:200] for h in heard if isinstance(h, BaseException)][:5],
    }


async def system_metrics_reset(system: System) -> None:
    admin = system.login("bench-fu-admin", "bench followup admin password 1", "admin")
    await asyncio.to_thread(system.http, "/metrics?reset=1", method="POST", token=admin)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--max-calls", type=int, default=None, help="GATEWAY_FOLLOWUP_MAX_CALLS (default: --calls)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep-state", action="store_true")
    args = parser.parse_args()
    max_calls = args.max_calls or args.calls
    env = {"GATEWAY_FOLLOWUP_HOURS": "always", "GATEWAY_FOLLOWUP_DELAY": "0", "GATEWAY_FOLLOWUP_ATTEMPTS": "1",
           "GATEWAY_FOLLOWUP_TICK": "1", "GATEWAY_FOLLOWUP_RING_SECONDS": "20",
           "GATEWAY_FOLLOWUP_MAX_CALLS": str(max_calls)}
    system = System(prefix="gw-bench-followup-", log_level="INFO", keep=args.keep_state, extra_env=env)
    try:
        _log("starting the sandbox and the gateway…")
        system.up()
        system.wait_speech_ready("zh")
        result = asyncio.run(run(system, args.calls, args.timeout))
    except KeyboardInterrupt:
        return 130
    finally:
        system.down()
    result.update({"max_calls": max_calls, "host": platform.node(), "at": datetime.now(timezone.utc).isoformat()})
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "followup.json").write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    print(f"follow-up calls: {result['calls']} handled at once, {result['max_calls']} at a time")
    for key in ("done_as_intended", "citizens_pressed_1_1", "statuses", "wall_s", "calls_per_minute",
                "placed_after_banjie_s", "ring_to_answer_s", "call_length_s", "gateway_cpu_s", "event_loop_lag"):
        print(f"  {key:24} {result[key]}")
    if result["done_as_intended"] != result["calls"] or result["citizens_pressed_1_1"] != result["calls"]:
        print(f"OFF PATH: {result['calls'] - result['done_as_intended']} follow-ups without the answers 1, 1 "
              f"({result['statuses']}); errors {result['errors']}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
