"""Time to compute the call-centre figures (issue 14) of a month of N calls, and a day's live figures.

    .venv/bin/python bench/figures.py [--calls 1000000] [--db sqlite,postgresql] [--runs 3] [--keep DIR]

Generates ``--calls`` calls spread evenly over November 2026 (Asia/Shanghai) on three lines, each
with its IVR steps (``menu_path``) and its queue legs (``queue_legs``, as the AMI recorder writes
them), written with SQLAlchemy Core into a fresh migrated database: SQLite (a file) and a private
PostgreSQL (gateway_dev.postgres). Every twentieth call follows the same pattern of outcomes:

    11 answered at the first queue (waits 0-44 s: some in, some out of the 20 s service level)
     1 timed out of one queue (30 s), answered at the next
     2 abandoned in the queue          1 timed out of the queue (120 s)
     2 hung up in the IVR (at the type menu / at the description)
     1 took the callback offer          2 ended in the IVR (self-service)

Then ANALYZE, and through the gateway's own service (gateway.supervision.figures_service, no AMI
node: the agents' states are Asterisk's, not the database's) the median of ``--runs`` timings of:

* **month**: the month's figures (totals, per line, per queue, agents' load; ``figures``) and
  its daily trend (``trend``), as the supervisor page asks for ``?period=month&date=2026-11``;
* **day (live)**: the last day's figures, its hourly trend and the overview's abandoned-today
  card (``today_abandoned``), the supervisor board's refresh, with the clock at the day's end;
* **month (page)**: the month's figures and trend asked at once, as the supervisor page does
  (``Promise.all`` in supervisor_figures.js): what the supervisor waits for.

A bench checks its own path: the figures must show the counts generated (calls, answered, in the
service level, abandoned in the queue and in the IVR, timed out, callbacks); otherwise the run
says OFF PATH and exits 2 (its times would describe something else). ``--keep DIR`` keeps the
generated databases in DIR (SQLite file, PostgreSQL directory) and reuses them on the next run.
Prints JSON (also bench/results/figures.json). Exit 0 on the path, 2 off it, 1 the bench failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.supervision.figures import DEFAULTS, parse_period  # noqa: E402
from gateway.supervision.figures_service import FiguresService  # noqa: E402
from gateway.supervision.queue_legs import QueueLeg  # noqa: E402
from gateway.ticketing import migrate  # noqa: E402
from gateway.ticketing.models import Call  # noqa: E402
from gateway.ticketing.store import TicketStore  # noqa: E402
from gateway_dev.postgres import PostgresServer, kept_server  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TZ = "Asia/Shanghai"
FIRST = date(2026, 11, 1)
LAST = date(2026, 11, 30)
START = datetime(2026, 11, 1, tzinfo=ZoneInfo(TZ)).astimezone(timezone.utc)
END = datetime(2026, 12, 1, tzinfo=ZoneInfo(TZ)).astimezone(timezone.utc)
NOW = END - timedelta(seconds=1)  # the month's last second: "today" is 30 November, every call ended
LINES = [("12345", "市民服务热线", "q-consult", "q-general"), ("12315", "市场监管热线", "q-12315", "q-general"),
         ("12366", "纳税服务热线", "q-12366", "q-general")]
AGENTS = [f"PJSIP/agent{n:02d}" for n in range(1, 41)]
PATTERN = (["answered"] * 11 + ["answered_after_timeout", "abandoned_queue", "abandoned_queue", "queue_timeout",
                                 "abandoned_ivr", "abandoned_ivr", "callback", "ended_in_ivr", "ended_in_ivr"])
BATCH = 10_000
SL = DEFAULTS.service_level_seconds


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def steps(i: int, kind: str, at: datetime) -> list[dict]:
    """The IVR's steps of call ``i`` as the flow writes them (node, key or result, when)."""
    t = at.isoformat()
    path = [{"node": "greeting", "at": t}, {"node": "type_menu", "key": str(1 + i % 5), "at": t},
            {"node": "confidential", "key": "2", "at": t}]
    if kind == "abandoned_ivr":
        node = "type_menu" if i % 2 else "describe"
        return path[:2 if node == "type_menu" else 3] + [{"node": "caller_hangup", "at": node}]
    if kind == "callback":
        return path + [{"node": "callback_offer", "result": "callback", "at": t}]
    if kind == "ended_in_ivr":
        return path + [{"node": "self_service", "result": "played", "at": t}]
    return path + [{"node": "describe", "result": "recorded", "at": t}, {"node": "transfer", "at": t}]


def generate(n: int):
    """Batches of (calls, legs) and the expected figures: of the month and of its last day."""
    span = (END - START).total_seconds()
    last_day = datetime(2026, 11, 30, tzinfo=ZoneInfo(TZ)).astimezone(timezone.utc)
    month, day = Counter(), Counter()
    calls, legs = [], []
    for i in range(n):
        at = START + timedelta(seconds=span * i / n)
        kind = PATTERN[i % len(PATTERN)]
        number, name, queue, overflow = LINES[i % 3]
        wait = (i // len(PATTERN)) % 45
        row = {"id": i + 1, "uniqueid": f"f{i}", "channel": f"PJSIP/caller-{i:08x}", "caller_number": "13800138000",
               "dialled_number": number, "line_number": number, "line_name": name, "merge_mode": "primary",
               "menu_path": steps(i, kind, at), "status": "ended", "queue": None, "agent": None,
               "started_at": at, "ended_at": at + timedelta(minutes=5)}
        joined = at + timedelta(seconds=40)
        leg = {"uniqueid": row["uniqueid"], "queue": queue, "joined_at": joined, "answered_at": None, "agent": None,
               "hold_s": None, "talk_s": None, "abandoned": False, "left_at": None}
        outcome, in_sl = kind, False
        if kind == "answered":
            agent = AGENTS[i % len(AGENTS)]
            row.update(queue=queue, agent=agent)
            legs.append({**leg, "answered_at": joined + timedelta(seconds=wait), "agent": agent, "hold_s": wait,
                         "talk_s": 60 + i % 240, "left_at": joined + timedelta(seconds=wait)})
            in_sl = wait <= SL
        elif kind == "answered_after_timeout":
            agent = AGENTS[i % len(AGENTS)]
            row.update(queue=overflow, agent=agent)
            second = joined + timedelta(seconds=30)
            legs.append({**leg, "left_at": second})  # no HoldTime: the figures take joined -> left (30 s)
            legs.append({**leg, "queue": overflow, "joined_at": second, "answered_at": second + timedelta(seconds=wait),
                         "agent": agent, "hold_s": wait, "talk_s": 90, "left_at": second + timedelta(seconds=wait)})
            outcome, in_sl = "answered", 30 + wait <= SL
        elif kind == "abandoned_queue":
            row.update(queue=queue)
            legs.append({**leg, "hold_s": wait, "abandoned": True, "left_at": joined + timedelta(seconds=wait)})
        elif kind == "queue_timeout":
            row.update(queue=queue)
            legs.append({**leg, "left_at": joined + timedelta(seconds=120)})
        calls.append(row)
        for tally in (month, day) if at >= last_day else (month,):
            tally["calls"] += 1
            tally[outcome] += 1
            tally["answered_in_sl"] += in_sl
        if len(calls) == BATCH:
            yield calls, legs
            calls, legs = [], []
    if calls:
        yield calls, legs
    yield month, day


def fill(url: str, n: int) -> tuple[float, dict, dict]:
    """Write the calls and legs (SQLAlchemy Core, executemany per batch); returns (s, month, day)."""
    engine = sa.create_engine(migrate.sync_url(url))
    t0 = time.perf_counter()
    expected = None
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
        done = 0
        for item in generate(n):
            if isinstance(item[0], Counter):
                expected = item
                break
            calls, legs = item
            conn.execute(sa.insert(Call), calls)
            if legs:
                conn.execute(sa.insert(QueueLeg), legs)
            done += len(calls)
            if done % 100_000 == 0 or done == n:
                log(f"{engine.dialect.name}: {done}/{n} calls written")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()
    return time.perf_counter() - t0, *expected


def expected_only(n: int) -> tuple[dict, dict]:
    for item in generate(n):
        if isinstance(item[0], Counter):
            return item
    raise AssertionError("unreachable")


def stored_calls(url: str) -> int:
    engine = sa.create_engine(migrate.sync_url(url))
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(Call)).scalar_one()
    engine.dispose()
    return int(n)


def problems(name: str, totals: dict, want: Counter) -> list[str]:
    """What the figures say against what was generated."""
    out = []
    pairs = {"calls": "calls", "answered": "answered", "answered_in_sl": "answered_in_sl",
             "abandoned_queue": "abandoned_queue", "abandoned_ivr": "abandoned_ivr", "queue_timeout": "queue_timeout",
             "callback": "callback", "ended_in_ivr": "ended_in_ivr"}
    for key, gen in pairs.items():
        if totals.get(key) != want.get(gen, 0):
            out.append(f"{name}: {key} {totals.get(key)} != {want.get(gen, 0)} generated")
    return out


async def measure(url: str, runs: int, month_want: Counter, day_want: Counter) -> dict:
    store = await TicketStore.open(url)
    service = FiguresService(store=store, ami_nodes={}, clock=lambda: NOW, timezone=lambda: TZ)
    month = parse_period({"period": "month", "date": "2026-11"}, today=LAST, timezone=TZ)
    today = parse_period({"period": "today"}, today=LAST, timezone=TZ)
    day_start = today.start.astimezone(timezone.utc)
    timings: dict[str, list[float]] = {k: [] for k in ("month_figures", "month_trend", "month", "month_page",
                                                       "day_figures", "day_trend", "day_abandoned", "day")}
    off: list[str] = []
    try:
        for run in range(runs):
            t0 = time.perf_counter()
            figures = await service.figures(month)
            t1 = time.perf_counter()
            trend = await service.trend(month)
            t2 = time.perf_counter()
            live = await service.figures(today)
            t3 = time.perf_counter()
            live_trend = await service.trend(today)
            t4 = time.perf_counter()
            abandoned = await service.today_abandoned(day_start)
            t5 = time.perf_counter()
            await asyncio.gather(service.figures(month), service.trend(month))  # as the page asks: both at once
            t6 = time.perf_counter()
            for key, s in (("month_figures", t1 - t0), ("month_trend", t2 - t1), ("month", t2 - t0),
                           ("month_page", t6 - t5),
                           ("day_figures", t3 - t2), ("day_trend", t4 - t3), ("day_abandoned", t5 - t4),
                           ("day", t5 - t2)):
                timings[key].append(round(s, 3))
            log(f"run {run + 1}/{runs}: month {t2 - t0:.2f} s (figures {t1 - t0:.2f}, trend {t2 - t1:.2f}; "
                f"both at once as the page asks {t6 - t5:.2f}); day {t5 - t2:.2f} s")
            if run == 0:
                off += problems("month", figures["totals"], month_want)
                off += problems("day", live["totals"], day_want)
                if sum(p["calls"] for p in trend["points"]) != month_want["calls"] or len(trend["points"]) != 30:
                    off.append(f"month trend: {len(trend['points'])} days, "
                               f"{sum(p['calls'] for p in trend['points'])} calls")
                if sum(p["calls"] for p in live_trend["points"]) != day_want["calls"] or len(live_trend["points"]) != 24:
                    off.append(f"day trend: {len(live_trend['points'])} hours, "
                               f"{sum(p['calls'] for p in live_trend['points'])} calls")
                if abandoned["queue"] != day_want["abandoned_queue"] or abandoned["ivr"] != day_want["abandoned_ivr"]:
                    off.append(f"day abandoned: {abandoned}")
                log("on the path: the generated counts shown" if not off else "OFF PATH: " + "; ".join(off))
                sample = {"month_totals": figures["totals"], "per_line": [
                    {k: p[k] for k in ("line", "calls", "service_level", "asa_s", "aht_s", "abandon_rate_queue")}
                    for p in figures["per_line"]], "per_queue": [
                    {k: p[k] for k in ("queue", "offered", "answered", "service_level", "asa_s")}
                    for p in figures["per_queue"]], "agents": len(figures["agents"]["items"]),
                    "day_totals": live["totals"]}
    finally:
        await store.close()
    return {"median_s": {k: statistics.median(v) for k, v in timings.items()}, "runs_s": timings,
            "off_path": off, "figures": sample}


def bench(url: str, reuse: bool, args) -> dict:
    migrate.upgrade(url)
    if reuse:
        have = stored_calls(url)
        if have != args.calls:
            raise SystemExit(f"the kept database holds {have} calls, not {args.calls}: remove it or use another --keep")
        log(f"reusing the kept database ({have} calls)")
        fill_s, (month, day) = None, expected_only(args.calls)
        engine = sa.create_engine(migrate.sync_url(url))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        engine.dispose()
    else:
        fill_s, month, day = fill(url, args.calls)
        fill_s = round(fill_s, 1)
    return {"fill_s": fill_s, "expected": {"month": dict(month), "day": dict(day)},
            **asyncio.run(measure(url, args.runs, month, day))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--db", default="sqlite,postgresql")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keep", type=Path, help="keep the generated databases here and reuse them")
    args = p.parse_args(argv)
    result = {"calls": args.calls, "period": [FIRST.isoformat(), LAST.isoformat()], "timezone": TZ,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "loadavg_before": os.getloadavg()}, "databases": {}}
    with tempfile.TemporaryDirectory(prefix="gw-bench-figures-") as tmp:
        keep = args.keep.resolve() if args.keep else None
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            log(f"{db}: {args.calls} calls")
            if db == "sqlite":
                path = (keep or Path(tmp)) / f"figures-{args.calls}.db"
                result["databases"][db] = bench(f"sqlite+aiosqlite:///{path}", keep is not None and path.exists(), args)
            elif db == "postgresql":
                server, reuse = kept_server(keep / f"pg-{args.calls}") if keep else \
                    (PostgresServer(prefix="gw-bench-figures-"), False)
                with server:
                    url = server.url("figures") if reuse else server.create_database("figures")
                    result["databases"][db] = bench(url, reuse, args)
            else:
                p.error(f"unknown database {db!r} (sqlite, postgresql)")
    result["machine"]["loadavg_after"] = os.getloadavg()
    off = [f"{db}: {o}" for db, r in result["databases"].items() for o in r["off_path"]]
    result["off_path"] = off
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "figures.json").write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    if off:
        print("OFF PATH: " + "; ".join(off), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
