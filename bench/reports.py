"""Figure "monthly report" (issue 14): time to assemble and render a monthly bulletin over N tickets.

A month of generated tickets (``--tickets``, default 100 000; the issue's figure is 1 000 000) is
written with SQLAlchemy Core into a fresh, migrated database: SQLite in a temporary directory, or
``--postgres`` (a private server from gateway_dev.postgres). Each ticket has its call, a place and
a description the catalogue recognises (72 distinct place × text pairs: the best case for the
report, which classifies each distinct pair once; ``--unique-texts`` appends the ticket's number
to every summary, the worst case, as agents' own words rarely repeat), a third are dispatched
(some overdue) and answered by a follow-up. Then, timed apart: the data assembly
(gateway.supervision.reports.assemble: the period's tickets not resolved yet are resolved once
into ticket_places by gateway.supervision.places, then SQL GROUP BYs) and the rendering of HTML,
PDF, CSV and XLSX.

Run: .venv/bin/python bench/reports.py [--tickets 1000000] [--postgres] [--runs 3] [--db PATH] [--unique-texts]
``--db PATH`` keeps the generated data (SQLite: the file; --postgres: the server's directory) and
reuses it when it is there already (migrated to the head first; the content depends on
``--tickets`` and ``--unique-texts`` only, and a database holding another count is refused).
Assembly and rendering are timed ``--runs`` times: the median and every run are reported. Writes bench/results/reports-<db>-<N>.json; exits 2 when the report
did not count the generated tickets (its figures would describe something else).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.desk.catalogue_load import load_catalogue  # noqa: E402
from gateway.supervision import report_render  # noqa: E402
from gateway.supervision.reports import assemble, period_containing  # noqa: E402
from gateway.ticketing import migrate  # noqa: E402
from gateway.ticketing.models import Call, Dispatch, Followup, Ticket  # noqa: E402
from gateway.ticketing.store import TicketStore  # noqa: E402
from gateway_dev.postgres import PostgresServer, kept_server  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MONTH = period_containing("monthly", date(2027, 3, 1))
PLACES = ["三里屯街道工体北路", "望京街道花家地", "双井街道富力城", "中关村", "海淀区", "东城区", "昌平区", "朝阳区望京"]
SAID = ["楼下工地半夜施工打桩", "广场舞噪音太吵", "路边有人摆摊占道经营", "小区垃圾三天没人清运", "路灯坏了不亮",
        "私搭乱建违建", "停水两天了", "暖气不热", "咨询公积金提取"]
LINES = [("12345", "市民服务热线", "primary"), ("12315", "市场监管热线", "dual_number"), ("12366", "纳税服务热线", "sub_centre")]
CATS = ["咨询", "建议", "举报", "投诉", "求助"]
BATCH = 10_000


def fill(url: str, n: int, seed: int = 14, unique: bool = False) -> None:
    rnd = random.Random(seed)
    engine = sa.create_engine(migrate.sync_url(url))
    start = MONTH.start_utc
    span = (MONTH.end_utc - start).total_seconds()
    with engine.begin() as conn:
        for base in range(0, n, BATCH):
            calls, tickets, dispatches, followups = [], [], [], []
            for i in range(base, min(n, base + BATCH)):
                at = start + timedelta(seconds=span * i / n)
                number, name, mode = LINES[i % 3]
                calls.append({"id": i + 1, "uniqueid": f"b{i}", "channel": "PJSIP/b", "caller_number": "13800138000",
                              "dialled_number": number, "line_number": number, "line_name": name,
                              "merge_mode": mode, "menu_path": [], "status": "ended", "started_at": at})
                dispatched = i % 3 == 0
                tickets.append({"id": i + 1, "call_id": i + 1, "ticket_no": f"B{i:09d}", "status":
                                "submitted" if dispatched else "answered", "caller_number": "13800138000",
                                "dialled_number": number, "line_number": number, "line_name": name, "merge_mode": mode,
                                "category": CATS[i % 5], "confidential": i % 7 == 0, "menu_path": [],
                                "transcript_status": "none", "transcript_attempts": 0, "emergency": False,
                                "place": rnd.choice(PLACES),
                                "summary": rnd.choice(SAID) + (f"（{i}）" if unique else ""), "followup_opt_out": False,
                                "created_at": at, "updated_at": at, "version_id": 1})
                if dispatched:
                    late = i % 9 == 0
                    dispatches.append({"ticket_id": i + 1, "unit_id": "sanlitun", "unit_name": "三里屯街道办事处",
                                       "status": "accepted" if late else "handled", "due_at": at + timedelta(days=1),
                                       "handled_at": None if late else at + timedelta(hours=5), "created_at": at,
                                       "updated_at": at})
                    if not late:
                        followups.append({"ticket_id": i + 1, "status": "done", "attempts": 1, "via": "ivr",
                                          "solved": "yes", "satisfaction": rnd.choice(["satisfied", "basic", "unsatisfied"]),
                                          "comment_transcript": "处理及时" if i % 5 == 0 else None,
                                          "answered_at": at + timedelta(hours=8), "created_at": at, "updated_at": at})
            conn.execute(sa.insert(Call), calls)
            conn.execute(sa.insert(Ticket), tickets)
            if dispatches:
                conn.execute(sa.insert(Dispatch), dispatches)
            if followups:
                conn.execute(sa.insert(Followup), followups)
            print(f"  {min(n, base + BATCH)}/{n} tickets written", file=sys.stderr, flush=True)
    engine.dispose()


def decided(n: int) -> int:
    """The generated tickets the report counts: every one is decided (submitted or answered)."""
    return n


def analyze(url: str) -> None:
    engine = sa.create_engine(migrate.sync_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def count_tickets(url: str) -> int:
    engine = sa.create_engine(migrate.sync_url(url))
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(Ticket)).scalar_one()
    engine.dispose()
    return int(n)


async def measure(url: str, runs: int) -> dict:
    store = await TicketStore.open(url)
    catalogue = load_catalogue(ROOT / "config" / "catalogue.yaml")
    assembled, rendered = [], []
    try:
        for i in range(runs):
            t0 = time.perf_counter()
            report = await assemble(store, MONTH, now=MONTH.end_utc + timedelta(hours=3), catalogue=catalogue)
            t1 = time.perf_counter()
            sizes = {k: len(v) for k, v in (await asyncio.to_thread(report_render.render_all, report)).items()}
            t2 = time.perf_counter()
            assembled.append(round(t1 - t0, 2))
            rendered.append(round(t2 - t1, 2))
            print(f"  run {i + 1}/{runs}: assemble {t1 - t0:.2f} s, render {t2 - t1:.2f} s", file=sys.stderr, flush=True)
    finally:
        await store.close()
    return {"assemble_s": statistics.median(assembled), "render_s": statistics.median(rendered),
            "assemble_runs_s": assembled, "render_runs_s": rendered, "bytes": sizes,
            "tickets_counted": report.headline.get("tickets"), "headline": report.headline}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--postgres", action="store_true", help="a private PostgreSQL server instead of SQLite")
    ap.add_argument("--runs", type=int, default=3, help="timed runs (median reported)")
    ap.add_argument("--unique-texts", action="store_true",
                    help="every ticket's summary different (a number appended), as agents' own words are: "
                         "no two tickets share a text, so every ticket is matched against the catalogue")
    ap.add_argument("--db", type=Path, help="SQLite: keep the database file here and reuse it when present; "
                    "with --postgres: keep the server's directory here and reuse it when present")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-bench-reports-") as tmp:
        if args.postgres:
            server_cm, reuse = kept_server(args.db) if args.db else (PostgresServer(prefix="gw-bench-pg-"), False)
            server = server_cm.__enter__()
            url = server.url("bench") if reuse else server.create_database("bench")
        else:
            path = args.db.resolve() if args.db else Path(tmp) / "bench.db"
            reuse = args.db is not None and path.exists()
            server_cm, url = None, f"sqlite+aiosqlite:///{path}"
        try:
            migrate.upgrade(url)
            fill_s = None
            if reuse:
                have = count_tickets(url)
                if have != args.tickets:
                    sys.exit(f"{args.db} holds {have} tickets, not {args.tickets}: remove it or give another --db")
                print(f"reusing {args.db} ({have} tickets)", file=sys.stderr, flush=True)
            else:
                t = time.perf_counter()
                fill(url, args.tickets, unique=args.unique_texts)
                fill_s = round(time.perf_counter() - t, 1)
            analyze(url)
            result = {"database": "postgresql" if args.postgres else "sqlite", "tickets": args.tickets,
                      "unique_texts": args.unique_texts,
                      "fill_s": fill_s, "runs": args.runs, **asyncio.run(measure(url, args.runs)),
                      "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        finally:
            if server_cm is not None:
                server_cm.__exit__(None, None, None)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"reports-{result['database']}-{args.tickets}{'-unique' if args.unique_texts else ''}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if result["tickets_counted"] != decided(args.tickets):
        print(f"OFF PATH: the report counted {result['tickets_counted']} tickets, {decided(args.tickets)} generated",
              file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
