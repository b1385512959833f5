"""Soak: SIP callers at half of one node's capacity for a long time; do the processes grow?

    .venv/bin/python bench/soak.py [--minutes 30] [--concurrency 50 | --calls-per-minute 60]
                                   [--interval 10] [--warmup 120] [--agents 20] [--no-speech]

One node (sandbox Asterisk + ``gateway serve``, gateway_dev.system.System) and SIPp callers of
bench/sipp/uac_12345.xml arriving steadily for --minutes: at most --concurrency at once (default
50, half of the 100 simultaneous callers one node was measured to carry) at a rate that keeps about
that many in calls (concurrency / call length), or --calls-per-minute. Each caller presses 1 (咨询),
speaks its description and reaches q-consult and an agent.

Every --interval seconds: VmRSS (/proc/<pid>/status) and open file descriptors (/proc/<pid>/fd)
of the gateway, its speech workers and Asterisk (and Kamailio / PostgreSQL processes of the state
dir, when running). Growth per hour = the least-squares slope of RSS after --warmup seconds,
divided by the fitted value at the warm-up's end (and the same over the second half alone);
file descriptors are compared idle after a warm-up burst of --warmup-calls callers (pools and
caches filled) and idle after the last call (and their slope under load is printed).

Goals: RSS growth < 5 %/h for every process, idle fds back where they started (± 2).
Exit codes: 0 within the goals and every call on path; 2 OFF PATH (some call did not follow the
intended path); 5 growth or fds over the goals; 1 the bench failed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (KEY_QUEUE, BenchRun, add_queue_agents, asterisk_pid, check_timeline, descendants, fd_kinds,
                    make_media, metrics, needs_root, path_problems, proc_name, proc_rss_fds, reset_metrics,
                    run_sipp, sigterm_as_interrupt, sipp_command, sipp_figures, sipp_tmp, system_options,
                    ticket_figures, ticket_total, tickets_since, wait_idle)
from gateway_dev.system import System

GROWTH_GOAL_PCT_H = 5.0
FD_TOLERANCE = 2
CALL_SECONDS = 50.0  # one caller's call on an idle node: ~45 s IVR + queue + 1 s agent


def say(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def watched(sysm: System) -> dict[str, int]:
    """name -> pid of the processes to sample: gateway, its workers, Asterisk, Kamailio/PostgreSQL."""
    out = {}
    if sysm.gateway is not None:
        out["gateway"] = sysm.gateway.pid
        for i, pid in enumerate(descendants(sysm.gateway.pid), 1):
            out[f"gateway-child{i}-{proc_name(pid)}"] = pid
    ast = asterisk_pid(sysm)
    if ast is not None:
        tree = [ast] + descendants(ast)
        out["asterisk"] = next((p for p in tree if proc_name(p) == "asterisk"), ast)
    state = str(sysm.state)
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        if proc_name(pid) in ("kamailio", "postgres", "postmaster"):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if state in cmdline:
                out[f"{proc_name(pid)}-{pid}"] = pid
    return out


class Sampler(threading.Thread):
    """Samples (t, rss kB, fds) of every watched process every ``interval`` seconds."""

    def __init__(self, pids: dict[str, int], interval: float, t0: float) -> None:
        super().__init__(daemon=True, name="soak-sampler")
        self.pids, self.interval, self.t0 = pids, interval, t0
        self.samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in pids}
        self.stop = threading.Event()

    def sample(self) -> None:
        t = time.monotonic() - self.t0
        for name, pid in self.pids.items():
            got = proc_rss_fds(pid)
            if got is not None:
                self.samples[name].append((round(t, 1), *got))

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares y = a + b t; (a, b) or None with fewer than 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    b = sum((t - mt) * (y - my) for t, y in points) / var
    return my - b * mt, b


def growth(samples: list[tuple[float, int, int]], warmup: float) -> dict:
    """RSS growth per hour (slope / fitted value at the warm-up's end) and the fd slope."""
    steady = [s for s in samples if s[0] >= warmup] or samples
    out: dict = {"samples": len(samples)}
    if not samples:
        return out
    out.update({"rss_mb_first": round(samples[0][1] / 1024, 1), "rss_mb_last": round(samples[-1][1] / 1024, 1),
                "rss_mb_max": round(max(s[1] for s in samples) / 1024, 1),
                "fds_min": min(s[2] for s in samples), "fds_max": max(s[2] for s in samples)})
    rss = fit([(t / 3600, rss) for t, rss, _ in steady])
    fds = fit([(t / 3600, fd) for t, _, fd in steady])
    if rss is not None:
        base = rss[0] + rss[1] * steady[0][0] / 3600
        out["rss_growth_pct_per_h"] = round(100 * rss[1] / base, 2) if base > 0 else None
        out["rss_slope_mb_per_h"] = round(rss[1] / 1024, 1)
    if fds is not None:
        out["fds_slope_per_h"] = round(fds[1], 1)
    # the second half alone: a step (a new malloc arena, a cache filled once) shows as growth above
    # but not here; growth that goes on does both
    half = [s for s in steady if s[0] >= (steady[0][0] + steady[-1][0]) / 2]
    late = fit([(t / 3600, rss) for t, rss, _ in half])
    if late is not None:
        base = late[0] + late[1] * half[0][0] / 3600
        out["rss_growth_last_half_pct_per_h"] = round(100 * late[1] / base, 2) if base > 0 else None
    return out


def idle_fds(pids: dict[str, int]) -> dict[str, dict]:
    return {name: {"count": got[1] if (got := proc_rss_fds(pid)) else None, "kinds": fd_kinds(pid)}
            for name, pid in pids.items()}


def run(args, sysm: System, media: dict, logs_dir: Path, report: dict, save) -> None:
    concurrency = args.concurrency
    rate = args.calls_per_minute / 60 if args.calls_per_minute else concurrency / CALL_SECONDS
    total = max(1, math.floor(rate * args.minutes * 60))
    report["plan"] = {"concurrency_limit": concurrency, "calls_per_s": round(rate, 3), "calls": total,
                      "minutes": args.minutes}
    say(f"soak: {total} callers over {args.minutes} min ({rate * 60:.1f}/min, at most {concurrency} at once)")
    if args.warmup_calls:
        say(f"warm-up: {args.warmup_calls} callers at once, then the idle baseline")
        tmp = sipp_tmp("soak-warmup")
        run_sipp(sipp_command(f"127.0.0.1:{sysm.sip_port}", media, tmp, calls=args.warmup_calls,
                              limit=args.warmup_calls, rate=args.warmup_calls, timeout=420), tmp, 480)
        shutil.rmtree(tmp, ignore_errors=True)
        wait_idle(sysm, timeout=120, log=say)
    pids = watched(sysm)
    report["processes"] = {name: {"pid": pid, "comm": proc_name(pid)} for name, pid in pids.items()}
    before_fds = idle_fds(pids)
    t0 = time.monotonic()
    sampler = Sampler(pids, args.interval, t0)
    sampler.sample()
    sampler.start()
    tmp = sipp_tmp("soak")
    cmd = sipp_command(f"127.0.0.1:{sysm.sip_port}", media, tmp, calls=total, limit=concurrency, rate=rate,
                       timeout=args.minutes * 60 + 420)
    before = ticket_total(sysm)
    reset_metrics(sysm)
    try:
        rc, killed = run_sipp(cmd, tmp, args.minutes * 60 + 480)
    finally:
        sampler.stop.set()
        sampler.join()
    wall = time.monotonic() - t0
    wait_idle(sysm, timeout=120, log=say)
    m = metrics(sysm)
    b = {"n": total, **sipp_figures(tmp, rc, killed, logs_dir, "soak", total)}
    b.update(ticket_figures(sysm, tickets_since(sysm, before)))
    b["wall_s"] = round(wall, 1)
    b["calls_per_s"] = round(b["completed"] / wall, 3) if wall else None
    b["loop_lag"] = m.get("event_loop_lag")
    report["calls"] = b
    after_fds = idle_fds(pids)
    report["idle_fds"] = {name: {"before": before_fds[name]["count"], "after": after_fds[name]["count"],
                                 "kinds_before": before_fds[name]["kinds"], "kinds_after": after_fds[name]["kinds"]}
                          for name in pids}
    report["growth"] = {name: growth(s, args.warmup) for name, s in sampler.samples.items()}
    report["samples"] = sampler.samples
    save()


def problems_of(report: dict) -> tuple[list[str], list[str]]:
    """(off-path reasons, growth/fd reasons)."""
    b = report.get("calls")
    off = path_problems("soak", b, b["placed"]) if b else []
    if (report.get("timeline") or {}).get("warning"):
        off.insert(0, report["timeline"]["warning"])
    if b and b["placed"] < b["n"]:
        off.append(f"soak: SIPp placed {b['placed']} of {b['n']} planned calls")
    grow = []
    for name, g in (report.get("growth") or {}).items():
        pct_h = g.get("rss_growth_pct_per_h")
        if pct_h is not None and pct_h > GROWTH_GOAL_PCT_H:
            grow.append(f"{name}: RSS grows {pct_h} %/h (goal < {GROWTH_GOAL_PCT_H:g})")
    for name, f in (report.get("idle_fds") or {}).items():
        if f["before"] is not None and f["after"] is not None and f["after"] - f["before"] > FD_TOLERANCE:
            grow.append(f"{name}: {f['before']} fds idle before, {f['after']} idle after")
    return off, grow


def print_report(report: dict) -> None:
    print(f"\n=== 12345 soak {report['started_at']} ===")
    print(f"machine: {report['machine']}")
    plan, b = report.get("plan") or {}, report.get("calls") or {}
    if plan:
        print(f"plan: {plan['calls']} callers over {plan['minutes']} min, {plan['calls_per_s']} calls/s, "
              f"at most {plan['concurrency_limit']} at once")
    if b:
        lag = b.get("loop_lag") or {}
        print(f"calls: placed {b['placed']}, completed {b['completed']}, failed {b['failed']}, key read "
              f"{b['type_key_read']}, recorded {b['tickets_with_recording']}, {KEY_QUEUE} "
              f"{b['queues'].get(KEY_QUEUE, 0)}, agent {b['reached_agent']}; sustained {b['calls_per_s']} calls/s; "
              f"loop lag p50/p99/worst {lag.get('p50_ms')}/{lag.get('p99_ms')}/{lag.get('worst_ms')} ms")
    hdr = (f"{'process':<34} {'n':>4} {'RSS MB first':>12} {'last':>7} {'max':>7} {'growth %/h':>10} {'2nd half':>8} "
           f"{'MB/h':>7} {'fds min/max':>11} {'fds/h':>7} {'idle fds before/after':>21}")
    print(hdr)
    print("-" * len(hdr))
    for name, g in (report.get("growth") or {}).items():
        f = (report.get("idle_fds") or {}).get(name, {})
        print(f"{name:<34} {g.get('samples', 0):>4} {g.get('rss_mb_first')!s:>12} {g.get('rss_mb_last')!s:>7} "
              f"{g.get('rss_mb_max')!s:>7} {g.get('rss_growth_pct_per_h')!s:>10} "
              f"{g.get('rss_growth_last_half_pct_per_h')!s:>8} {g.get('rss_slope_mb_per_h')!s:>7} "
              f"{str(g.get('fds_min')) + '/' + str(g.get('fds_max')):>11} {g.get('fds_slope_per_h')!s:>7} "
              f"{str(f.get('before')) + '/' + str(f.get('after')):>21}")
    print(f"growth = least-squares slope of RSS after the first {report['args']['warmup']} s / the fitted RSS "
          f"then (goal < {GROWTH_GOAL_PCT_H:g} %/h; checked); 2nd half = the same over the run's second half only "
          f"(a one-off step shows in the first, not here); a run of minutes extrapolates an hour from a short line. "
          f"Idle fds: before = after a warm-up burst, after = when the last call ended.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="how long callers keep arriving (30)")
    ap.add_argument("--concurrency", type=int, default=50, help="callers at once at most (50: half of 100)")
    ap.add_argument("--calls-per-minute", type=float, help="arrival rate (default: concurrency / 50 s per call)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples (10)")
    ap.add_argument("--warmup", type=float, default=120.0, help="seconds left out of the growth fit (120)")
    ap.add_argument("--warmup-calls", type=int, help="callers at once before the idle baseline (default: "
                    "--concurrency; 0: none): pools and caches fill before the fds are counted")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="an environment variable for the gateway (repeatable), e.g. GATEWAY_MEMORY_DEBUG=true")
    system_options(ap, agents=20)
    args = ap.parse_args(argv)
    extra_env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"--env {item!r}: use KEY=VALUE", file=sys.stderr)
            return 1
        extra_env[key] = value
    if needs_root():
        return 1
    if args.minutes <= 0 or args.concurrency < 1 or args.interval <= 0 or args.agents < 1 \
            or (args.calls_per_minute is not None and args.calls_per_minute <= 0):
        print("--minutes, --concurrency, --interval, --agents and --calls-per-minute must be positive",
              file=sys.stderr)
        return 1
    if args.warmup_calls is None:
        args.warmup_calls = args.concurrency
    if args.warmup_calls < 0:
        print("--warmup-calls must be 0 or more", file=sys.stderr)
        return 1
    sigterm_as_interrupt()
    run_ = BenchRun("soak", args, say)
    report = run_.report
    report["machine"] = run_.machine()
    media_tmp = Path(tempfile.mkdtemp(prefix="gw-bench-media-"))
    with run_.guard():
        try:
            media = make_media(media_tmp)
            with System(keep=args.keep_state, log=say, prefix="gw-bench-soak-", log_level=args.log_level) as sysm:
                if args.no_speech:
                    sysm.env["GATEWAY_SPEECH"] = "off"
                sysm.env.update(extra_env)
                report["config_check"] = add_queue_agents(
                    sysm, KEY_QUEUE, [str(9001 + i) for i in range(args.agents)],
                    f"bench/soak.py: {args.agents} bench agents answer {KEY_QUEUE}")
                report["startup_s"] = {k: round(v, 1) for k, v in sysm.up().items()}
                report["timeline"] = check_timeline(sysm, say)
                if not args.no_speech:
                    sysm.wait_speech_ready("zh", timeout=300)  # the workers' models loaded: not counted as growth
                run(args, sysm, media, run_.logs_dir, report, run_.save)
                if problems_of(report)[0]:
                    run_.keep_logs(sysm)
        finally:
            shutil.rmtree(media_tmp, ignore_errors=True)
    print_report(report)
    off, grow = problems_of(report)
    run_.fail("OFF PATH: these figures do not measure the intended call (key, speech, q-consult, agent):",
              off, 2, "off_path")
    run_.fail(f"OVER THE GOALS (RSS < {GROWTH_GOAL_PCT_H:g} %/h, flat fds):", grow, 5, "over_goals")
    return run_.finish()


if __name__ == "__main__":
    sys.exit(main())
