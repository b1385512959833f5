"""Foundation figures of the 12345 gateway on this machine.

    .venv/bin/python bench/foundation.py [--quick] [--sizes 10,30,100] [--skip-cold]
                                         [--kinds local,sip] [--keep-state]

1. Cold start (a fresh sandbox root built by debootstrap into a temporary
   GATEWAY_CACHE_DIR, render, Asterisk up, gateway healthy) and warm restarts
   (same cache: sandbox up + gateway healthy), in a private state dir.
2. N simultaneous calls for each N, placed (a) as Local-channel calls with
   gateway_dev.simcall.place_call sharing one AmiClient, (b) as real SIP calls
   from SIPp (bench/sipp/uac_12345.xml): placed, completed, tickets written,
   wall time, CPU used, the gateway's AGI round trip per command from /metrics.

Everything runs in a private temporary state dir with free ports, started with
the project's own commands, and is always torn down (gateway SIGTERM, sandbox
down), also on failure, Ctrl-C or SIGTERM. Results: a table on stdout and a
JSON file under bench/results/. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import (KEY, SIPP, BenchRun, admin_token, asterisk_pid, call_records, check_timeline,  # noqa: E402
                    make_media, needs_root, path_problems, proc_cpu_seconds, run_sipp, sigterm_as_interrupt,
                    sipp_command, sipp_figures, sipp_tmp, ticket_figures, ticket_total, tickets_since)
from common import count_values as _count  # noqa: E402
from common import wait_idle as _wait_idle  # noqa: E402
from gateway_dev import sandbox_root  # noqa: E402
from gateway_dev.system import System  # noqa: E402

QUICK_VERBS = ("SET VARIABLE", "ANSWER", "GET VARIABLE", "VERBOSE", "EXEC", "HANGUP", "CHANNEL STATUS")


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- helpers -----------------------------------------------------------------------------------
def wait_idle(sysm: System, timeout: float = 180) -> bool:
    return _wait_idle(sysm, timeout, log=say)


def agi_summary(metrics: dict) -> dict:
    return metrics.get("agi_round_trip", {}) if isinstance(metrics, dict) else {}


# -- 1. cold and warm start ---------------------------------------------------------------------
def _parse_sandbox_progress(stderr: str) -> dict:
    out = {}
    m = re.search(r"sandbox root ready in (\d+(?:\.\d+)?) s \((\d+) MB\)", stderr)
    if m:
        out["debootstrap_s"] = float(m.group(1))
        out["root_mb"] = int(m.group(2))
    m = re.search(r"Asterisk ready in (\d+(?:\.\d+)?) s", stderr)
    if m:
        out["asterisk_start_s"] = float(m.group(1))
    return out


def bench_start(warm_runs: int, *, skip_cold: bool) -> dict:
    """Cold start into a temporary cache (unless skipped), then ``warm_runs`` warm restarts."""
    result: dict = {"cold": None, "first_start_warm_cache": None, "warm": []}
    cache = None if skip_cold else Path(tempfile.mkdtemp(prefix="gw-bench-cache-"))
    try:
        if cache is not None:
            say(f"cold start: building a sandbox root from scratch into {cache} (debootstrap, ~1 min)")
        with System(cache_dir=cache, log=say) as sysm:
            t = sysm.up()
            t.update(_parse_sandbox_progress(sysm.last_stderr))
            if cache is not None:
                t["render_and_prompts_s"] = round(max(0.0, t["sandbox_up_s"] - t.get("debootstrap_s", 0)
                                                      - t.get("asterisk_start_s", 0)), 2)
                result["cold"] = t
                say(f"cold start: {t['total_s']:.1f} s (debootstrap {t.get('debootstrap_s', '?')} s)")
            else:
                result["first_start_warm_cache"] = t
                say(f"first start, fresh state dir, cache already built: {t['total_s']:.2f} s")
            for i in range(warm_runs):
                sysm.down()
                t = sysm.up()
                t.update(_parse_sandbox_progress(sysm.last_stderr))
                result["warm"].append(t)
                say(f"warm restart {i + 1}/{warm_runs}: {t['total_s']:.2f} s")
    finally:
        if cache is not None:
            mounts = sandbox_root.host_mounts_under(cache)
            if mounts:
                say(f"warning: not removing {cache}: still mounted: {mounts}")
            else:
                shutil.rmtree(cache, ignore_errors=True)
    return result


# -- 2a. Local-channel calls --------------------------------------------------------------------
async def _local_batch(sysm: System, n: int, speech: Path, timeout: float) -> list:
    from gateway_dev.simcall import CallScript, place_call, sim_ami_client

    s = sysm.settings
    ami = sim_ami_client(s, action_timeout=max(s.ami_action_timeout, 15))
    await ami.start()
    try:
        if not await ami.wait_connected(10):
            raise RuntimeError("AMI not connected")
        scripts = [CallScript(number="12345", caller=f"1390000{i:04d}", digits=KEY, say=speech, timeout=timeout)
                   for i in range(n)]
        return await asyncio.gather(*(place_call(s, sc, ami=ami) for sc in scripts), return_exceptions=True)
    finally:
        await ami.close()


def run_local(sysm: System, n: int, speech: Path, timeout: float) -> dict:
    before = ticket_total(sysm)
    sysm.http("/metrics?reset=1", method="POST", token=admin_token(sysm))
    cpu0 = (proc_cpu_seconds(sysm.gateway.pid), proc_cpu_seconds(asterisk_pid(sysm)))
    started = time.monotonic()
    results = asyncio.run(_local_batch(sysm, n, speech, timeout))
    wall = time.monotonic() - started
    cpu1 = (proc_cpu_seconds(sysm.gateway.pid), proc_cpu_seconds(asterisk_pid(sysm)))
    metrics = sysm.http("/metrics?format=json", token=sysm.token())[1]
    ok = [r for r in results if isinstance(r, dict)]
    errors = [f"{type(r).__name__}: {r}" for r in results if not isinstance(r, dict)]
    records = call_records(sysm, [r["uniqueid"] for r in ok])
    durations = [r["duration_s"] for r in ok]
    new_tickets = tickets_since(sysm, before)
    return {
        "kind": "local", "n": n,
        "placed": n,
        "completed": sum(1 for r in ok if r.get("hangup_cause") == 16),
        "reached_agent": sum(1 for c in records if c.get("agent")),
        "tickets": len(new_tickets),
        "tickets_with_recording": sum(1 for t in new_tickets if (t.get("recording_duration_ms") or 0) > 0),
        "wall_s": round(wall, 1),
        "call_duration_s": _spread(durations),
        "errors": _count(errors),
        "hangup_causes": _count(f"{r.get('hangup_cause')} {r.get('hangup_cause_txt')}" for r in ok),
        "paths": _count(r.get("path", "") for r in ok),
        "cpu_s": _cpu(cpu0, cpu1),
        "metrics": metrics,
    }


# -- 2b. SIP calls from SIPp --------------------------------------------------------------------
def run_sip(sysm: System, n: int, media: dict, logs_dir: Path) -> dict:
    tmp = sipp_tmp(str(n))
    global_timeout = 420  # every call ends by itself in ~65 s plus the queue wait; BYE awaited <= 300 s
    cmd = sipp_command(f"127.0.0.1:{sysm.sip_port}", media, tmp, calls=n, limit=n, rate=n, timeout=global_timeout)
    before = ticket_total(sysm)
    sysm.http("/metrics?reset=1", method="POST", token=admin_token(sysm))
    cpu0 = (proc_cpu_seconds(sysm.gateway.pid), proc_cpu_seconds(asterisk_pid(sysm)))
    started = time.monotonic()
    rc, timed_out = run_sipp(cmd, tmp, global_timeout + 60)
    wall = time.monotonic() - started
    cpu1 = (proc_cpu_seconds(sysm.gateway.pid), proc_cpu_seconds(asterisk_pid(sysm)))
    wait_idle(sysm, timeout=60)  # let the gateway record the last hang-ups before reading
    metrics = sysm.http("/metrics?format=json", token=sysm.token())[1]
    figures = sipp_figures(tmp, rc, timed_out, logs_dir, f"sip-{n}", n)
    figures.update(ticket_figures(sysm, tickets_since(sysm, before)))
    return {"kind": "sip", "n": n, **figures, "wall_s": round(wall, 1), "cpu_s": _cpu(cpu0, cpu1),
            "metrics": metrics}


# -- did the calls go the intended way? ----------------------------------------------------------
def off_path(report: dict) -> list[str]:
    """Why the batches do not measure what they claim: each caller was meant to press KEY at the
    type menu, speak its description (recorded) and reach an agent. Figures of calls that fell
    back (the key missed, nothing recorded) describe the fallback, so the run fails instead."""
    problems = []
    if report.get("prompt_check", {}).get("warning"):
        problems.append(report["prompt_check"]["warning"])
    for b in report.get("batches", []):
        name = f"{b.get('kind')} N={b.get('n')}"
        if b.get("kind") == "sip" or "error" in b:
            problems += path_problems(name, b, b.get("n", 0), queue=None)
            continue
        n = b["n"]
        for what, got in (("completed", b["completed"]), ("reached an agent", b["reached_agent"]),
                          ("left a ticket", b["tickets"]), ("had the description recorded",
                                                               b["tickets_with_recording"])):
            if got < n:
                problems.append(f"{name}: {got} of {n} calls {what}")
        key_read = sum(count for path, count in b["paths"].items() if f"type_menu:{KEY}>" in path)
        if key_read < n:
            problems.append(f"{name}: the type menu read key {KEY} on {key_read} of {n} calls")
    return problems


# -- reporting ----------------------------------------------------------------------------------
def _spread(values: list[float]) -> dict | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"min": ordered[0], "median": round(statistics.median(ordered), 1), "max": ordered[-1]}


def _cpu(before: tuple, after: tuple) -> dict:
    names = ("gateway", "asterisk")
    return {name: (round(a - b, 1) if a is not None and b is not None else None)
            for name, b, a in zip(names, before, after)}


def check_prompts(sysm: System) -> dict:
    return check_timeline(sysm, say)


def _fmt_rtt(rtt: dict, verb: str) -> str:
    v = rtt.get(verb)
    if not v:
        return "-"
    return f"{v['median_ms']:.1f}/{v['p99_ms']:.1f} (n={v['count']})"


def print_report(report: dict) -> None:
    start = report.get("start")
    print("\n=== 12345 gateway foundation figures ===")
    print(f"machine: {report['machine']['cpus']} CPUs, {report['machine']['platform']}; "
          f"{report['machine']['load_before']}")
    if start:
        cold = start.get("cold")
        if cold:
            print(f"cold start (fresh cache: debootstrap + render + Asterisk + gateway healthy): "
                  f"{cold['total_s']:.1f} s  [debootstrap {cold.get('debootstrap_s', '?')} s, "
                  f"root {cold.get('root_mb', '?')} MB, render+prompts {cold.get('render_and_prompts_s', 0):.1f} s, "
                  f"Asterisk {cold.get('asterisk_start_s', '?')} s, gateway {cold['gateway_healthy_s']:.2f} s]")
        else:
            print("cold start: skipped (--skip-cold)")
        first = start.get("first_start_warm_cache")
        if first:
            print(f"first start, fresh state dir, root already built: {first['total_s']:.2f} s "
                  f"(sandbox up {first['sandbox_up_s']:.2f} s, gateway {first['gateway_healthy_s']:.2f} s)")
        for key, label in (("warm", "warm restart, same cache and state (sandbox up + gateway healthy)"),):
            runs = start.get(key) or []
            if runs:
                tot = [r["total_s"] for r in runs]
                print(f"{label}: median {statistics.median(tot):.2f} s of {len(tot)} "
                      f"({', '.join(f'{t:.2f}' for t in tot)}); sandbox up median "
                      f"{statistics.median(r['sandbox_up_s'] for r in runs):.2f} s, gateway median "
                      f"{statistics.median(r['gateway_healthy_s'] for r in runs):.2f} s")
    if report.get("prompt_check"):
        pc = report["prompt_check"]
        print(f"IVR timeline: type menu prompt from {pc.get('type_menu_prompt_s')} s after answer, recording from "
              f"~{pc.get('record_starts_at_s')} s" + (f"  WARNING: {pc['warning']}" if pc.get("warning") else ""))
    batches = report.get("batches", [])
    if not batches:
        return
    print()
    hdr = (f"{'kind':5} {'N':>4} {'placed':>6} {'done':>5} {'agent':>5} {'tickets':>7} {'wall s':>7} "
           f"{'cpu gw/ast s':>13}  {'SET VARIABLE ms med/p99':>26}  {'ANSWER':>7}  {'STREAM FILE med/p99':>24}"
           f"  {'GET DATA med/p99':>24}  {'RECORD FILE med/p99':>24}")
    print(hdr)
    print("-" * len(hdr))
    for b in batches:
        if "error" in b:
            print(f"{b['kind']:5} {b['n']:>4}  ERROR: {b['error']}")
            continue
        rtt = agi_summary(b["metrics"])
        cpu = b.get("cpu_s", {})
        print(f"{b['kind']:5} {b['n']:>4} {b['placed']:>6} {b['completed']:>5} {b['reached_agent']:>5} "
              f"{b['tickets']:>7} {b['wall_s']:>7} {str(cpu.get('gateway')) + '/' + str(cpu.get('asterisk')):>13}  "
              f"{_fmt_rtt(rtt, 'SET VARIABLE'):>26}  {_fmt_rtt(rtt, 'ANSWER'):>7}  "
              f"{_fmt_rtt(rtt, 'STREAM FILE'):>24}  {_fmt_rtt(rtt, 'GET DATA'):>24}  "
              f"{_fmt_rtt(rtt, 'RECORD FILE'):>24}")
    print("done = hung up normally (local: Hangup cause 16; sip: SIPp successful call, BYE from Asterisk);"
          " agent = a simulated agent answered;")
    print("AGI round trips are per command in ms; STREAM FILE / GET DATA / RECORD FILE include the audio's "
          "duration (prompt, key timeout, recording), so only SET VARIABLE-like commands show the gateway's "
          "own latency. ANSWER '-': the flow does not send it (the dialplan answers before AGI).")
    for b in batches:
        if "error" in b:
            continue
        notes = []
        if b.get("errors"):
            notes.append(f"errors {b['errors']}")
        if b.get("failed_reasons"):
            notes.append(f"failed {b['failed_reasons']}")
        if b.get("sipp_killed"):
            notes.append("SIPp killed at the hard timeout")
        others = {k: v for k, v in agi_summary(b["metrics"]).items()
                  if k not in ("SET VARIABLE", "STREAM FILE", "GET DATA", "RECORD FILE", "ANSWER")}
        if others:
            notes.append("other verbs " + ", ".join(f"{k} {v['median_ms']:.1f}/{v['p99_ms']:.1f}"
                                                   for k, v in others.items()))
        if notes:
            print(f"  {b['kind']} N={b['n']}: " + "; ".join(notes))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N=10 only, both kinds, skip the cold start, 1 warm run")
    ap.add_argument("--sizes", default="10,30,100", help="numbers of simultaneous calls (default 10,30,100)")
    ap.add_argument("--skip-cold", action="store_true", help="skip the debootstrap cold start")
    ap.add_argument("--kinds", default="local,sip", help="local, sip or both (default)")
    ap.add_argument("--warm-runs", type=int, default=3)
    ap.add_argument("--no-start", action="store_true", help="skip the start-up figures")
    ap.add_argument("--keep-state", action="store_true", help="keep the temporary state dir (logs, database)")
    args = ap.parse_args(argv)
    if needs_root():
        return 2
    sizes = [10] if args.quick else [int(x) for x in args.sizes.split(",") if x.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    skip_cold = args.skip_cold or args.quick
    warm_runs = 1 if args.quick else args.warm_runs
    sigterm_as_interrupt()

    run = BenchRun("foundation", args, say, suffix="-quick" if args.quick else "")
    report, save, logs_dir = run.report, run.save, run.logs_dir
    report.update({
        "sizes": sizes, "kinds": kinds,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_before": "loadavg " + Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()},
        "sipp": subprocess.run([SIPP, "-v"], capture_output=True, text=True).stdout.strip().splitlines()[-1:],
    })

    with run.guard():
        if not args.no_start:
            report["start"] = bench_start(warm_runs, skip_cold=skip_cold)
            save()
        if sizes and kinds:
            media_tmp = Path(tempfile.mkdtemp(prefix="gw-bench-media-"))
            try:
                media = make_media(media_tmp)
                with System(keep=args.keep_state, log=say) as sysm:
                    say(f"system up for the call batches (state {sysm.state})")
                    sysm.up()
                    report["state_dir"] = str(sysm.state) if args.keep_state else None
                    report["prompt_check"] = check_prompts(sysm)
                    report["batches"] = []
                    for n in sizes:
                        for kind in kinds:
                            wait_idle(sysm)
                            say(f"{kind}: {n} simultaneous calls ...")
                            try:
                                if kind == "local":
                                    b = run_local(sysm, n, media["speech_wav"], timeout=420)
                                elif kind == "sip":
                                    b = run_sip(sysm, n, media, logs_dir)
                                else:
                                    raise ValueError(f"unknown kind {kind!r}")
                            except KeyboardInterrupt:
                                raise
                            except Exception as exc:  # noqa: BLE001 - report it, go on with the next batch
                                b = {"kind": kind, "n": n, "error": f"{type(exc).__name__}: {exc}"}
                            report["batches"].append(b)
                            say(f"{kind} N={n}: " + (b["error"] if "error" in b else
                                f"placed {b['placed']}, completed {b['completed']}, agent {b['reached_agent']}, "
                                f"tickets {b['tickets']}, wall {b['wall_s']} s"))
                            save()
                    if any("error" in b or b["completed"] < b["n"] for b in report["batches"]):
                        run.keep_logs(sysm)
            finally:
                shutil.rmtree(media_tmp, ignore_errors=True)
    print_report(report)
    run.fail("OFF PATH: these figures do not measure the intended call (key, speech, agent):",
             off_path(report), 2, "off_path")
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
