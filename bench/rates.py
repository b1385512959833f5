"""Time to compute a month's three rates (三率) per level over 1 M tickets, on SQLite and PostgreSQL.

    .venv/bin/python bench/rates.py [--tickets 1000000] [--months 12] [--db sqlite,postgresql]
                                    [--runs 3] [--goal 10] [--keep]

Generates ``--tickets`` submitted tickets (with their calls, dispatches — 30 % dual —, follow-up
answers and places; gateway_dev.rates_data) spread evenly over ``--months`` months ending
with November 2026, into a fresh migrated database: SQLite in a temporary file (executemany
with the journal off while loading), or a private PostgreSQL (gateway_dev.postgres, COPY).
Then ANALYZE, and for each level (unit, district, street, line, sub_centre, type) and the
total, ``--runs`` timings of :func:`gateway.supervision.rates.compute_rates` for November
2026 (Asia/Shanghai) through the gateway's own async engine. The first run of each level is
reported apart (cold caches), the median of the others is the figure.

Prints the figures as JSON (also bench/results/rates.json). Exit codes: 0 every level's median
under ``--goal`` seconds on every database; 2 a goal missed; 1 the bench failed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.supervision.rates import LEVELS, compute_rates, period_bounds, total_rates  # noqa: E402
from gateway.ticketing import migrate  # noqa: E402
from gateway.ticketing.store import TicketStore  # noqa: E402
from gateway_dev.rates_data import TABLE_ORDER, generate  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MONTH = period_bounds("month", "Asia/Shanghai", day="2026-11-01")
NOW = datetime(2026, 12, 20, tzinfo=timezone.utc)
COLUMNS = {
    "calls": ("id", "uniqueid", "channel", "caller_number", "dialled_number", "line_number", "line_name", "merge_mode",
              "menu_path", "status", "started_at", "ended_at"),
    "tickets": ("id", "call_id", "ticket_no", "status", "caller_number", "dialled_number", "line_number", "line_name",
                "merge_mode", "category", "confidential", "menu_path", "transcript_status", "transcript_attempts",
                "emergency", "urgency", "place", "summary", "dispatch_mode", "decided_at", "decided_by", "handling",
                "due_at", "followup_opt_out", "created_at", "updated_at", "version_id"),
    "dispatches": ("id", "ticket_id", "unit_id", "unit_name", "status", "due_at", "accepted_at", "handled_at",
                   "created_at", "updated_at"),
    "followups": ("id", "ticket_id", "status", "attempts", "solved", "satisfaction", "answered_at", "created_at",
                  "updated_at"),
    "ticket_places": ("ticket_id", "district_id", "street_id", "source", "resolved_at"),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _sqlite_value(v):
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, list):
        return json.dumps(v)
    return v


def _pg_value(v) -> str:
    """One field of COPY's text format."""
    if v is None:
        return r"\N"
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, list):
        v = json.dumps(v)
    if isinstance(v, bool):
        return "t" if v else "f"
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _data(n: int, months: int):
    start = MONTH[1] - timedelta(days=30.4 * months)
    return generate(n, start, MONTH[1], seed=14, now=NOW)


def load_sqlite(path: Path, n: int, months: int) -> float:
    t0 = time.perf_counter()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    sql = {t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})" for t, c in COLUMNS.items()}
    done = 0
    for batch in _data(n, months):
        for table in TABLE_ORDER:
            cols = COLUMNS[table]
            con.executemany(sql[table], [tuple(_sqlite_value(r.get(c)) for c in cols) for r in batch.get(table, [])])
        done += len(batch["tickets"])
        if done % 100_000 == 0:
            con.commit()
            log(f"sqlite: {done} tickets")
    con.commit()
    con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return time.perf_counter() - t0


def load_postgres(server, name: str, n: int, months: int) -> float:
    import psycopg2  # noqa: PLC0415

    from gateway.ticketing.migrate import sync_url  # noqa: PLC0415

    url = sync_url(server.url(name))
    t0 = time.perf_counter()
    con = psycopg2.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname=name)
    cur = con.cursor()
    done = 0
    for batch in _data(n, months):
        for table in TABLE_ORDER:
            cols = COLUMNS[table]
            buf = io.StringIO("".join("\t".join(_pg_value(r.get(c)) for c in cols) + "\n"
                                      for r in batch.get(table, [])))
            cur.copy_expert(f"COPY {table} ({', '.join(cols)}) FROM STDIN", buf)
        done += len(batch["tickets"])
        if done % 100_000 == 0:
            con.commit()
            log(f"postgresql: {done} tickets")
    con.commit()
    con.autocommit = True
    cur.execute("VACUUM ANALYZE")
    con.close()
    return time.perf_counter() - t0


async def time_levels(url: str, runs: int) -> dict:
    store = await TicketStore.open(url)
    out: dict = {}
    try:
        for level in (*LEVELS, "total"):
            times, rows = [], None
            for _ in range(runs + 1):
                t0 = time.perf_counter()
                if level == "total":
                    rows = [await total_rates(store, *MONTH, now=NOW)]
                else:
                    rows = await compute_rates(store, level, *MONTH, now=NOW)
                times.append(time.perf_counter() - t0)
            out[level] = {"first_s": round(times[0], 3), "median_s": round(statistics.median(times[1:]), 3),
                          "keys": len(rows), "tickets": sum(r.tickets for r in rows),
                          "top": rows[0].as_dict() if rows else None}
            log(f"{url.split(':')[0]} {level}: median {out[level]['median_s']} s (first {out[level]['first_s']} s)")
    finally:
        await store.close()
    return out


def bench_sqlite(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-rates-"))
    path = tmp / "gateway.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url)
    load = load_sqlite(path, args.tickets, args.months)
    log(f"sqlite: loaded {args.tickets} tickets in {load:.0f} s ({path.stat().st_size / 2**20:.0f} MB)")
    result = {"load_s": round(load, 1), "db_mb": round(path.stat().st_size / 2**20), "levels":
              asyncio.run(time_levels(url, args.runs))}
    if not args.keep:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    else:
        result["path"] = str(path)
    return result


def bench_postgres(args) -> dict:
    from gateway_dev.postgres import PostgresServer  # noqa: PLC0415

    with PostgresServer(prefix="gw-bench-rates-", keep=args.keep) as server:
        url = server.create_database("rates")
        migrate.upgrade(url)
        load = load_postgres(server, "rates", args.tickets, args.months)
        log(f"postgresql: loaded {args.tickets} tickets in {load:.0f} s")
        return {"load_s": round(load, 1), "levels": asyncio.run(time_levels(url, args.runs))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tickets", type=int, default=1_000_000)
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--db", default="sqlite,postgresql")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--goal", type=float, default=10.0)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    result = {"tickets": args.tickets, "months": args.months, "period": [MONTH[0].isoformat(), MONTH[1].isoformat()],
              "goal_s": args.goal, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "databases": {}}
    try:
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            result["databases"][db] = bench_sqlite(args) if db == "sqlite" else bench_postgres(args)
    except KeyboardInterrupt:
        return 130
    missed = [f"{db}/{lvl}" for db, r in result["databases"].items() for lvl, f in r["levels"].items()
              if f["median_s"] >= args.goal]
    result["missed"] = missed
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rates.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 2 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
