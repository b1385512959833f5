"""Figure "monthly report" (issue 14): time to assemble and render a monthly bulletin over N tickets.

A month of generated tickets (``--tickets``, default 100 000; the issue's figure is 1 000 000) is
written with SQLAlchemy Core into a fresh, migrated database: SQLite in a temporary directory, or
``--postgres`` (a private server from gateway_dev.postgres). Each ticket has its call, a place and
a description the catalogue recognises (a few hundred distinct ones, as real streets and matters
repeat), a third are dispatched (some overdue) and answered by a follow-up. Then, timed apart:
the data assembly (gateway.supervision.reports.assemble: SQL, after each ticket's district, street
and matter were resolved once into ticket_places by gateway.supervision.places) and the rendering of HTML, PDF, CSV and XLSX.

Run: .venv/bin/python bench/reports.py [--tickets 1000000] [--postgres]
Writes bench/results/reports-<db>-<N>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
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

RESULTS = ROOT / "bench" / "results"
MONTH = period_containing("monthly", date(2027, 3, 1))
PLACES = ["三里屯街道工体北路", "望京街道花家地", "双井街道富力城", "中关村", "海淀区", "东城区", "昌平区", "朝阳区望京"]
SAID = ["楼下工地半夜施工打桩", "广场舞噪音太吵", "路边有人摆摊占道经营", "小区垃圾三天没人清运", "路灯坏了不亮",
        "私搭乱建违建", "停水两天了", "暖气不热", "咨询公积金提取"]
LINES = [("12345", "市民服务热线", "primary"), ("12315", "市场监管热线", "dual_number"), ("12366", "纳税服务热线", "sub_centre")]
CATS = ["咨询", "建议", "举报", "投诉", "求助"]
BATCH = 10_000


def fill(url: str, n: int, seed: int = 14) -> None:
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
                                "place": rnd.choice(PLACES), "summary": rnd.choice(SAID), "followup_opt_out": False,
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


async def measure(url: str) -> dict:
    store = await TicketStore.open(url)
    catalogue = load_catalogue(ROOT / "config" / "catalogue.yaml")
    try:
        t0 = time.perf_counter()
        report = await assemble(store, MONTH, now=MONTH.end_utc + timedelta(hours=3), catalogue=catalogue)
        t1 = time.perf_counter()
        sizes = {k: len(v) for k, v in (await asyncio.to_thread(report_render.render_all, report)).items()}
        t2 = time.perf_counter()
    finally:
        await store.close()
    return {"assemble_s": round(t1 - t0, 2), "render_s": round(t2 - t1, 2), "bytes": sizes,
            "tickets_counted": report.headline.get("tickets")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--postgres", action="store_true", help="a private PostgreSQL server instead of SQLite")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-bench-reports-") as tmp:
        if args.postgres:
            from gateway_dev.postgres import PostgresServer

            server_cm = PostgresServer(prefix="gw-bench-pg-")
            server = server_cm.__enter__()
            url = server.create_database("bench")
        else:
            server_cm, url = None, f"sqlite+aiosqlite:///{tmp}/bench.db"
        try:
            migrate.upgrade(url)
            t = time.perf_counter()
            fill(url, args.tickets)
            fill_s = time.perf_counter() - t
            result = {"database": "postgresql" if args.postgres else "sqlite", "tickets": args.tickets,
                      "fill_s": round(fill_s, 1), **asyncio.run(measure(url)),
                      "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        finally:
            if server_cm is not None:
                server_cm.__exit__(None, None, None)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"reports-{result['database']}-{args.tickets}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
