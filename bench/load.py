"""Load: how many simultaneous SIP callers one node carries on the intended path, then twice that
through the site (Kamailio, two Asterisk nodes, two gateways).

    .venv/bin/python bench/load.py [--topology single|site] [--start 50] [--step 50] [--cap 200]
                                   [--capacity N] [--agents 40] [--no-speech] [--keep-state]

1. Capacity of one node (sandbox Asterisk + one ``gateway serve``, gateway_dev.system.System):
   batches of N simultaneous SIPp callers (bench/sipp/uac_12345.xml, all INVITEs within one
   second), N = --start, +--step, ... up to --cap. Every caller presses 1 (咨询) at the type menu,
   speaks its description (recorded), and must reach q-consult and an agent (--agents simulated
   agents answer q-consult). A batch passes when every call followed that path and the gateway's
   own event-loop lag (/metrics' event_loop_lag, reset before the batch) kept p99 < 20 ms and
   worst < 100 ms. The capacity is the largest N that passed; the ramp stops at the first failure
   (when the first batch fails, N is halved until one passes, down to --min).
   --capacity N skips the ramp.
2. --topology site: --factor (2) x capacity callers at once through Kamailio to two Asterisk nodes
   and two gateways gw-a, gw-b on PostgreSQL (gateway_dev.topology.SiteSystem); node pbx1 tries
   gw-a first, pbx2 gw-b first. On path also means every call's IVR ran on its node's first
   gateway (calls.instance) and each gateway ran some. The loop lag is each gateway's own.
   --topology single stops after the ramp.

Per batch: calls attempted/completed, type_key_read, tickets with their recording, queue reached
as chosen, agent reached, loop lag p50/p99/worst, wall time, calls/s (completed / wall), CPU of
gateway(s) and Asterisk, the per-node and per-gateway split, the load average. A table on stdout, JSON under bench/results/.
Exit codes: 0 all batches on path and within the lag goals; 2 OFF PATH (some call did not follow
the intended path: its figures would describe a fallback); 3 the site harness is missing;
4 the site run, or even the smallest batch of the ramp, missed the loop-lag goals; 1 the bench
itself failed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import (KEY_QUEUE, BenchRun, add_queue_agents, asterisk_pid, check_timeline, count_values, make_media,
                    metrics, needs_root, path_problems, proc_cpu_seconds, reset_metrics, run_sipp,
                    sigterm_as_interrupt, sipp_command, sipp_figures, sipp_tmp, system_options, ticket_figures,
                    ticket_total, tickets_since, wait_idle)
from gateway_dev.system import System

LAG_P99_MS = 20.0
LAG_WORST_MS = 100.0
SIPP_TIMEOUT = 420  # every call ends by itself in ~50 s plus the queue wait; BYE awaited <= 300 s


def say(msg: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class NeedsSiteHarness(RuntimeError):
    pass


def bench_agents(count: int) -> list[str]:
    return [str(9001 + i) for i in range(count)]


def prepare(sysm: System, agents: int, speech: bool) -> str:
    """--agents simulated agents answer q-consult; speech off when asked (before ``up``)."""
    if not speech:
        sysm.env["GATEWAY_SPEECH"] = "off"
    return add_queue_agents(sysm, KEY_QUEUE, bench_agents(agents),
                            f"bench/load.py: {agents} bench agents answer {KEY_QUEUE}")


def lag_ok(lag: dict | None) -> bool:
    return bool(lag) and lag.get("p99_ms") is not None and lag["p99_ms"] < LAG_P99_MS \
        and lag["worst_ms"] < LAG_WORST_MS


# -- one node ----------------------------------------------------------------------------------
def node_of(uniqueid: str) -> str:
    """The Asterisk node that took a call: its ``systemname`` prefixes the uniqueid when a site has
    several nodes ("pbx2-1764650000.12"); one node without a systemname is "node1"."""
    head = uniqueid.split("-", 1)[0]
    return "node1" if "-" not in uniqueid or head[:1].isdigit() else head


def asterisk_pids(sysm: System) -> list[int | None]:
    names = getattr(sysm, "names", None)
    return [sysm.node_pid(name) for name in names] if names else [asterisk_pid(sysm)]


def gateways_of(sysm: System) -> list[System]:
    return list(getattr(sysm, "gateways", [sysm]))


def cpu_now(sysm: System) -> tuple[float | None, float | None]:
    ast = [proc_cpu_seconds(pid) for pid in asterisk_pids(sysm)]
    gws = [proc_cpu_seconds(g.gateway.pid) for g in gateways_of(sysm)]
    return (None if None in gws else sum(gws)), (None if None in ast else sum(ast))


def worst_lag(lags: list[dict | None]) -> dict | None:
    """The worst of several gateways' loop lags, figure by figure (None when one gateway has none)."""
    if not lags or any(not lag for lag in lags):
        return None
    keys = [k for k in lags[0] if all(isinstance(lag.get(k), (int, float)) for lag in lags)]
    return {k: max(lag[k] for lag in lags) for k in keys}


def dev_env() -> dict:
    """GATEWAY_LOOP_DEBUG=true in the bench's environment reaches the gateway (slow callbacks logged)."""
    return {"GATEWAY_LOOP_DEBUG": os.environ["GATEWAY_LOOP_DEBUG"]} if os.environ.get("GATEWAY_LOOP_DEBUG") else {}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_site_idle(sysm: System) -> None:
    """Every gateway without an IVR session (the first's wait_idle also checks its Asterisk)."""
    wait_idle(sysm, timeout=60, log=say)
    for gateway in gateways_of(sysm)[1:]:
        for _ in range(60):
            status, health = gateway.http("/healthz", timeout=5, token=gateway.token())
            if health.get("calls_in_ivr", 1) == 0 and health.get("fastagi_sessions", 1) == 0:
                break
            time.sleep(1)


def node_batch(sysm: System, n: int, media: dict, logs_dir: Path, label: str, target: str | None = None) -> dict:
    """N simultaneous SIPp callers to ``target`` (default: the node's own SIP port)."""
    tmp = sipp_tmp(label)
    cmd = sipp_command(target or f"127.0.0.1:{sysm.sip_port}", media, tmp, calls=n, limit=n, rate=n,
                       timeout=SIPP_TIMEOUT)
    before = ticket_total(sysm)
    gateways = gateways_of(sysm)
    for gateway in gateways:
        reset_metrics(gateway)
    load0 = load_average()
    cpu0 = cpu_now(sysm)
    started = time.monotonic()
    rc, killed = run_sipp(cmd, tmp, SIPP_TIMEOUT + 60)
    wall = time.monotonic() - started
    cpu1 = cpu_now(sysm)
    load1 = load_average()
    wait_site_idle(sysm)  # the last hang-ups recorded before reading
    each = {g.env.get("GATEWAY_INSTANCE_ID") or "gateway": metrics(g) for g in gateways}
    m = next(iter(each.values()))
    out = {"label": label, "n": n, **sipp_figures(tmp, rc, killed, logs_dir, label, n)}
    tickets = tickets_since(sysm, before)
    out.update(ticket_figures(sysm, tickets, instances=True))
    instance_of = out.pop("call_instances", {})
    out["transcripts"] = {s: sum(1 for t in tickets if t.get("transcript_status") == s)
                          for s in sorted({t.get("transcript_status") for t in tickets})}
    out.update({
        "wall_s": round(wall, 1),
        "calls_per_s": round(out["completed"] / wall, 2) if wall else None,
        "loop_lag": m.get("event_loop_lag") if len(each) == 1 else worst_lag(
            [g.get("event_loop_lag") for g in each.values()]),
        "loop_lag_by_gateway": {name: g.get("event_loop_lag") for name, g in each.items()},
        "calls_started_by_gateway": {name: g.get("calls_started") for name, g in each.items()},
        "load_average": {"before": load0, "after": load1},
        "cpu_s": {name: (round(b - a, 1) if a is not None and b is not None else None)
                  for name, a, b in zip(("gateway", "asterisk"), cpu0, cpu1)},
        "nodes": count_values(node_of(t["uniqueid"]) for t in tickets),
        "gateways": count_values(instance_of.get(t["uniqueid"]) or "-" for t in tickets),
        "node_gateway": count_values(f"{node_of(t['uniqueid'])}>{instance_of.get(t['uniqueid']) or '-'}"
                                     for t in tickets),
        "agi_set_variable": (m.get("agi_round_trip") or {}).get("SET VARIABLE"),
    })
    return out


def ramp(sysm: System, args, media: dict, logs_dir: Path, report: dict, save) -> int:
    """Batches of growing N (--start, +--step, ... --cap) until one goes off path or misses the lag
    goals; when the very first one fails, halving N until one passes. The largest good N."""
    capacity, n = 0, args.start
    while args.min <= n <= args.cap:
        wait_idle(sysm, log=say)
        say(f"one node: {n} simultaneous SIP callers ...")
        b = node_batch(sysm, n, media, logs_dir, f"node-{n}")
        b["off_path"] = path_problems(f"one node N={n}", b, n)
        b["lag_ok"] = lag_ok(b["loop_lag"])
        report["ramp"].append(b)
        save()
        lag = b["loop_lag"] or {}
        say(f"N={n}: completed {b['completed']}, key read {b['type_key_read']}, recorded "
            f"{b['tickets_with_recording']}, {KEY_QUEUE} {b['queues'].get(KEY_QUEUE, 0)}, agent {b['reached_agent']}; "
            f"loop lag p99 {lag.get('p99_ms')} ms, worst {lag.get('worst_ms')} ms; wall {b['wall_s']} s")
        failed = any(not r.get("lag_ok") or r["off_path"] for r in report["ramp"])
        if b["off_path"] or not b["lag_ok"]:
            say(f"N={n} is beyond one node's capacity: " + "; ".join(b["off_path"][:3] or ["loop lag over the goal"]))
            if capacity:
                break
            n //= 2
        else:
            capacity = n
            if failed:  # a smaller N after a failure: the limit lies between
                break
            n += args.step
            report["capacity_is_the_cap"] = n > args.cap  # every batch passed: the limit is higher
    return capacity


# -- the site ----------------------------------------------------------------------------------
def site_harness():
    """The site topology's harness: Kamailio, two Asterisk nodes, two gateways on PostgreSQL
    (gateway_dev.topology.SiteSystem)."""
    if importlib.util.find_spec("gateway_dev.topology") is None:
        raise NeedsSiteHarness("needs the site harness: gateway_dev.topology.SiteSystem is not on this branch")
    from gateway_dev import topology

    if not hasattr(topology, "SiteSystem"):
        raise NeedsSiteHarness("needs the site harness: gateway_dev.topology.SiteSystem (two gateways)")
    return topology.SiteSystem


# The way a call is meant to go through the site: each node's first FastAGI peer runs its IVR.
INTENDED_GATEWAY = {"pbx1": "gw-a", "pbx2": "gw-b"}


def site_problems(name: str, b: dict) -> list[str]:
    """Calls whose IVR did not run on their node's first gateway, or a gateway that ran none."""
    if "error" in b:
        return []
    problems = []
    astray = {pair: count for pair, count in b.get("node_gateway", {}).items()
              if INTENDED_GATEWAY.get(pair.split(">", 1)[0]) != pair.split(">", 1)[1]}
    if astray:
        problems.append(f"{name}: calls not on their node's first gateway (node>gateway: count): {astray}")
    for gateway in INTENDED_GATEWAY.values():
        if not b.get("gateways", {}).get(gateway):
            problems.append(f"{name}: gateway {gateway} ran no call ({b.get('gateways')})")
    for node in INTENDED_GATEWAY:
        if not b.get("nodes", {}).get(node):
            problems.append(f"{name}: node {node} took no call ({b.get('nodes')})")
    return problems


def site_run(args, media: dict, run: BenchRun, n: int) -> dict:
    """``n`` simultaneous callers through Kamailio to the site's nodes."""
    nodes_system = site_harness()
    with nodes_system(keep=args.keep_state, log=say, prefix="gw-bench-site-", log_level=args.log_level) as site:
        run.report["site_config_check"] = prepare(site, args.agents, not args.no_speech)
        say(f"site up (Kamailio udp:127.0.0.1:{site.proxy_port}, nodes {site.names}, gateways "
            f"{[g.env.get('GATEWAY_INSTANCE_ID') for g in site.gateways]}, PostgreSQL) ...")
        run.report["site_startup_s"] = {k: round(v, 1) for k, v in site.up().items()}
        if not args.no_speech:  # each gateway's recogniser loads its models before the batch, not during it
            started = time.monotonic()
            for gateway in site.gateways:
                gateway.wait_speech_ready("zh", timeout=300)
            run.report["site_startup_s"]["speech_ready_s"] = round(time.monotonic() - started, 1)
        wait_site_idle(site)
        b = node_batch(site, n, media, run.logs_dir, f"site-{n}", target=f"127.0.0.1:{site.proxy_port}")
        b["off_path"] = path_problems(f"site N={n}", b, n) + site_problems(f"site N={n}", b)
        b["lag_ok"] = all(lag_ok(lag) for lag in b["loop_lag_by_gateway"].values())
        b["topology"] = (f"Kamailio -> {len(site.names)} Asterisk nodes -> {len(site.gateways)} gateways "
                         f"(PostgreSQL)")
        if b["off_path"] or not b["lag_ok"]:
            run.keep_logs(site)
            for peer in site.peers:
                if peer.log_path.exists():
                    shutil.copy(peer.log_path, run.logs_dir / peer.log_path.name)
            if site.kamailio.log_path.exists():
                shutil.copy(site.kamailio.log_path, run.logs_dir / "kamailio.log")
    lag = b["loop_lag"] or {}
    say(f"site N={n}: completed {b['completed']}, key read {b['type_key_read']}, recorded "
        f"{b['tickets_with_recording']}, {KEY_QUEUE} {b['queues'].get(KEY_QUEUE, 0)}, agent {b['reached_agent']}, "
        f"nodes {b['nodes']}, gateways {b['gateways']}, node>gateway {b['node_gateway']}; loop lag (worst gateway) "
        f"p99 {lag.get('p99_ms')} ms, worst {lag.get('worst_ms')} ms; load average {b['load_average']}")
    return b


# -- report ------------------------------------------------------------------------------------
def row(b: dict) -> str:
    lag = b.get("loop_lag") or {}
    if "error" in b:
        return f"{b['label']:<12} {b['n']:>5}  ERROR: {b['error']}"
    return (f"{b['label']:<12} {b['n']:>5} {b['placed']:>6} {b['completed']:>5} {b['type_key_read']:>4} "
            f"{b['tickets_with_recording']:>4} {b['queues'].get(KEY_QUEUE, 0):>5} {b['reached_agent']:>5} "
            f"{lag.get('p50_ms')!s:>6} {lag.get('p99_ms')!s:>7} {lag.get('worst_ms')!s:>7} {b['wall_s']:>6} "
            f"{b['calls_per_s']!s:>5} {b['cpu_s'].get('gateway')!s:>6}/{b['cpu_s'].get('asterisk')!s:<6} "
            f"{' '.join(f'{k}={v}' for k, v in b['nodes'].items())}"
            + (f" | {' '.join(f'{k}={v}' for k, v in b['gateways'].items())}" if len(b.get("gateways", {})) > 1 else ""))


def print_report(report: dict) -> None:
    print(f"\n=== 12345 load ({report['topology']}) {report['started_at']} ===")
    print(f"machine: {report['machine']}")
    hdr = (f"{'batch':<12} {'N':>5} {'placed':>6} {'done':>5} {'key':>4} {'rec':>4} {'queue':>5} {'agent':>5} "
           f"{'lag50':>6} {'lag99':>7} {'worst':>7} {'wall s':>6} {'cps':>5} {'cpu gw/ast s':>13} nodes")
    print(hdr)
    print("-" * len(hdr))
    for b in report.get("ramp", []) + ([report["site"]] if report.get("site") else []):
        print(row(b))
    print("key = type menu read key 1; rec = tickets with the recording; queue = reached q-consult as chosen; "
          "agent = answered; lag ms from the gateway's /metrics (event_loop_lag, since the batch began); "
          "cps = completed calls / wall time of the batch.")
    capped = report.get("capacity_is_the_cap")
    print(f"one node's capacity: {'at least ' if capped else ''}{report.get('capacity')} simultaneous callers"
          f"{' (every batch passed up to --cap)' if capped else ''} "
          f"(goal per batch: every call on path, loop lag p99 < {LAG_P99_MS:g} ms, worst < {LAG_WORST_MS:g} ms)")
    if report.get("sustainable_cps"):
        print(f"sustainable calls/s of one node ≈ capacity / call length: {report['sustainable_cps']}")
    site = report.get("site") or {}
    for name, lag in (site.get("loop_lag_by_gateway") or {}).items():
        lag = lag or {}
        print(f"site gateway {name}: calls {site.get('gateways', {}).get(name, 0)}, loop lag p50/p99/worst "
              f"{lag.get('p50_ms')} / {lag.get('p99_ms')} / {lag.get('worst_ms')} ms")
    if site.get("node_gateway"):
        print(f"site node>gateway: {site['node_gateway']}; load average before/after {site.get('load_average')}")
    if report.get("site_status"):
        print(f"site: {report['site_status']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topology", choices=("single", "site"), default="single")
    ap.add_argument("--start", type=int, default=50, help="first batch size (50)")
    ap.add_argument("--step", type=int, default=50, help="batch size step (50)")
    ap.add_argument("--cap", type=int, default=200, help="largest batch tried (200)")
    ap.add_argument("--min", type=int, default=5, help="smallest batch tried when halving (5)")
    ap.add_argument("--capacity", type=int, help="skip the ramp: one node's capacity is N")
    ap.add_argument("--factor", type=int, default=2, help="site run: this many times the capacity (2)")
    system_options(ap, agents=40)
    args = ap.parse_args(argv)
    if needs_root():
        return 1
    if min(args.start, args.step, args.cap, args.agents, args.min) < 1:
        print("--start, --step, --cap, --min and --agents must be at least 1", file=sys.stderr)
        return 1
    sigterm_as_interrupt()
    run = BenchRun("load", args, say)
    report = run.report
    report.update({"topology": args.topology, "ramp": [], "machine": run.machine()})
    media_tmp = Path(tempfile.mkdtemp(prefix="gw-bench-media-"))
    with run.guard():
        try:
            media = make_media(media_tmp)
            if args.capacity:
                report["capacity"] = args.capacity
            else:
                with System(keep=args.keep_state, log=say, prefix="gw-bench-load-", log_level=args.log_level,
                            extra_env=dev_env()) as sysm:
                    report["config_check"] = prepare(sysm, args.agents, not args.no_speech)
                    say(f"one node up (state {sysm.state}) ...")
                    report["startup_s"] = {k: round(v, 1) for k, v in sysm.up().items()}
                    report["timeline"] = check_timeline(sysm, say)
                    report["capacity"] = ramp(sysm, args, media, run.logs_dir, report, run.save)
                    if any(b["off_path"] or not b["lag_ok"] for b in report["ramp"]):
                        run.keep_logs(sysm)
            good = [b for b in report["ramp"] if b["n"] == report["capacity"]]
            if good and good[0].get("wall_s"):
                # the batch's callers all called at once and for about its wall time: capacity / that
                report["sustainable_cps"] = round(report["capacity"] / max(1.0, good[0]["wall_s"]), 2)
            if args.topology == "site":
                if not report["capacity"]:
                    raise RuntimeError("no capacity measured for one node: nothing to double")
                report["site"] = site_run(args, media, run, args.factor * report["capacity"])
                report["site_status"] = "Kamailio, two Asterisk nodes, two gateways (gw-a, gw-b) on PostgreSQL"
        except NeedsSiteHarness as exc:
            report["site_status"] = str(exc)
            run.rc = 3
        finally:
            shutil.rmtree(media_tmp, ignore_errors=True)
    print_report(report)
    # the ramp's failing batch found the limit; the batches within capacity and the site run must not fail
    within = [b for b in report["ramp"] if b["n"] <= (report.get("capacity") or 0)]
    final = [report["site"]] if report.get("site") else []
    problems = [p for b in within + final for p in b.get("off_path", [])]
    if (report.get("timeline") or {}).get("warning"):
        problems.insert(0, report["timeline"]["warning"])
    if report.get("capacity") == 0 and report["ramp"]:
        problems += report["ramp"][-1]["off_path"]  # even the smallest batch went off path
    run.fail("OFF PATH: these figures do not measure the intended call (key, speech, q-consult, agent):",
             problems, 2, "off_path")
    site = report.get("site")
    if site and not site.get("lag_ok"):
        run.fail("LOOP LAG over the goal:", [f"site N={site['n']}: loop lag {site.get('loop_lag')} over p99 "
                                             f"{LAG_P99_MS:g} ms / worst {LAG_WORST_MS:g} ms"], 4, "lag")
    if report.get("capacity") == 0 and report["ramp"]:
        run.fail("LOOP LAG over the goal:", [f"even {report['ramp'][-1]['n']} callers kept the gateway's loop lag "
                                              f"over p99 {LAG_P99_MS:g} ms / worst {LAG_WORST_MS:g} ms"], 4, "lag")
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
