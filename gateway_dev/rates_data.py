"""Generated tickets with dispatches and follow-up answers, for the rates' tests and bench.

:func:`generate` makes plain row dicts for ``calls``, ``tickets``, ``dispatches``,
``followups`` and ``ticket_places`` (deterministic for a seed) spread over ``[start, end)``;
:func:`expected` counts the rates' figures from those dicts with plain Python, the
independent reference the SQL of :mod:`gateway.supervision.rates` is checked against.
Writers: :func:`insert_async` (a TicketStore, for the tests) and, in bench/rates.py,
executemany on SQLite and COPY on PostgreSQL.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Iterator

LINES = (("12345", "12345市民服务热线", "primary"), ("12319", "12319城市管理热线", "retired"),
         ("12315", "12315市场监管热线", "dual_number"), ("12366", "12366纳税服务热线", "sub_centre"),
         ("12360", "12360海关热线", "sub_centre"))
CATEGORIES = ("咨询", "建议", "举报", "投诉", "求助")
# (district id, street id, place text) — catalogue ids; the last has no known place
PLACES = (("chaoyang", "sanlitun", "朝阳区工体北路8号"), ("chaoyang", "wangjing", "望京西园三区"),
          ("haidian", "zhongguancun", "中关村大街27号"), ("haidian", "sujiatuo", "苏家坨镇西小营村"),
          ("dongcheng", "donghuamen", "王府井大街"), ("changping", "huilongguan", "回龙观龙泽苑"),
          (None, None, "某小区门口"))
UNITS = (("water", "市自来水集团"), ("power", "市电力公司"), ("market", "市市场监管局"), ("housing", "市住房城乡建设委"),
         ("tax", "市税务局"))
STREET_NAMES = {"sanlitun": "三里屯街道", "wangjing": "望京街道", "zhongguancun": "中关村街道", "sujiatuo": "苏家坨镇",
                "donghuamen": "东华门街道", "huilongguan": "回龙观街道"}


def generate(n: int, start: datetime, end: datetime, *, seed: int = 14, first_id: int = 1,
             now: datetime | None = None) -> Iterator[dict[str, list[dict]]]:
    """Batches (of up to 10,000 tickets) of rows per table. ``now``: the moment the data is
    as of (dispatches accepted, follow-ups answered before it); default ``end`` + 30 days."""
    rnd = random.Random(seed)
    now = now or end + timedelta(days=30)
    span = (end - start).total_seconds()
    batch: dict[str, list[dict]] = defaultdict(list)
    dispatch_id = first_id * 2
    for i in range(n):
        tid = first_id + i
        line_no, line_name, mode = LINES[rnd.randrange(len(LINES))] if rnd.random() < 0.3 else LINES[0]
        decided = start + timedelta(seconds=rnd.random() * span)
        district, street, place = PLACES[rnd.randrange(len(PLACES))]
        category = CATEGORIES[rnd.randrange(len(CATEGORIES))]
        confidential = rnd.random() < 0.1
        batch["calls"].append({"id": tid, "uniqueid": f"gen-{tid}", "channel": "Local/gen", "caller_number": "13800138000",
                               "dialled_number": line_no, "line_number": line_no, "line_name": line_name,
                               "merge_mode": mode, "menu_path": [], "status": "ended", "started_at": decided,
                               "ended_at": decided})
        units = [UNITS[rnd.randrange(len(UNITS))]]
        if street and rnd.random() < 0.3:
            units.append((street, STREET_NAMES[street]))
        due = decided + timedelta(days=5)
        statuses = []
        for unit_id, unit_name in units:
            dispatch_id += 1
            r = rnd.random()
            accepted = None
            if r < 0.80:
                accepted = decided + timedelta(hours=rnd.random() * 100)  # before the deadline (120 h)
            elif r < 0.90:
                accepted = due + timedelta(hours=1 + rnd.random() * 48)  # late
            if accepted is not None and accepted > now:
                accepted = None
            withdrawn = rnd.random() < 0.02
            status = "withdrawn" if withdrawn else ("sent" if accepted is None else
                                                    ("handled" if rnd.random() < 0.85 else "accepted"))
            handled = accepted + timedelta(hours=2) if status == "handled" else None
            statuses.append(status)
            batch["dispatches"].append({"id": dispatch_id, "ticket_id": tid, "unit_id": unit_id, "unit_name": unit_name,
                                        "status": status, "due_at": due, "accepted_at": accepted, "handled_at": handled,
                                        "created_at": decided, "updated_at": decided})
        live = [s for s in statuses if s != "withdrawn"]
        handling = "handled" if live and all(s == "handled" for s in live) else ("review" if not live else "accepted")
        batch["tickets"].append({"id": tid, "call_id": tid, "ticket_no": f"G{tid:011d}", "status": "submitted",
                                 "caller_number": "13800138000", "dialled_number": line_no, "line_number": line_no,
                                 "line_name": line_name, "merge_mode": mode, "category": category,
                                 "confidential": confidential, "menu_path": [], "transcript_status": "none",
                                 "transcript_attempts": 0, "emergency": False, "urgency": "normal",
                                 "place": place + ("，电话13912345678" if confidential else ""), "summary": "生成的工单",
                                 "dispatch_mode": "dual" if len(units) > 1 else "direct", "decided_at": decided,
                                 "decided_by": "gen", "handling": handling, "due_at": due, "followup_opt_out": False,
                                 "created_at": decided, "updated_at": decided, "version_id": 1})
        batch["ticket_places"].append({"ticket_id": tid, "district_id": district, "street_id": street,
                                       "source": "place" if district else "none", "resolved_at": decided})
        if handling == "handled":
            r = rnd.random()
            fstatus = "done" if r < 0.8 else ("unreachable" if r < 0.9 else "scheduled")
            solved = satisfaction = None
            if fstatus == "done":
                solved = "yes" if rnd.random() < 0.75 else "no"
                s = rnd.random()
                satisfaction = "satisfied" if s < 0.6 else ("basic" if s < 0.85 else "unsatisfied")
            batch["followups"].append({"id": tid, "ticket_id": tid, "status": fstatus, "attempts": 1, "solved": solved,
                                       "satisfaction": satisfaction, "created_at": decided, "updated_at": decided,
                                       "answered_at": decided if fstatus == "done" else None})
        if (i + 1) % 10_000 == 0:
            yield dict(batch)
            batch = defaultdict(list)
    if batch:
        yield dict(batch)


TABLE_ORDER = ("calls", "tickets", "dispatches", "followups", "ticket_places")


async def insert_async(store, batches) -> int:
    """Write generated batches through a :class:`TicketStore` (executemany per table)."""
    import sqlalchemy as sa  # noqa: PLC0415

    from gateway.supervision.places import TicketPlace  # noqa: PLC0415
    from gateway.ticketing.models import Call, Dispatch, Followup, Ticket  # noqa: PLC0415

    tables = {"calls": Call, "tickets": Ticket, "dispatches": Dispatch, "followups": Followup,
              "ticket_places": TicketPlace}
    count = 0
    for batch in batches:
        async def work(session, batch=batch) -> None:
            for name in TABLE_ORDER:
                if batch.get(name):
                    await session.execute(sa.insert(tables[name].__table__), batch[name])
        await store.run_write(work)
        count += len(batch.get("tickets", []))
    return count


def expected(batches: list[dict], level: str, start: datetime, end: datetime, *, now: datetime,
             weights: dict | None = None, only_sub_centre: bool = False) -> dict[str, dict]:
    """The figures per key counted in Python from the generated rows (the reference)."""
    weights = weights or {"satisfied": 1.0, "basic": 0.8, "unsatisfied": 0.0}
    tickets, dispatches, followups, places = {}, defaultdict(list), {}, {}
    for b in batches:
        for t in b.get("tickets", []):
            tickets[t["id"]] = t
        for d in b.get("dispatches", []):
            dispatches[d["ticket_id"]].append(d)
        for f in b.get("followups", []):
            followups[f["ticket_id"]] = f
        for p in b.get("ticket_places", []):
            places[p["ticket_id"]] = p
    out: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for tid, t in tickets.items():
        if not (start <= t["decided_at"] < end) or t["status"] != "submitted" or t["handling"] is None:
            continue
        if level == "sub_centre" and t["merge_mode"] != "sub_centre":
            continue
        live = [d for d in dispatches[tid] if d["status"] != "withdrawn"]
        if level == "unit":
            keys = [(d["unit_id"], [d]) for d in live]
        else:
            key = {"district": places.get(tid, {}).get("district_id"), "street": places.get(tid, {}).get("street_id"),
                   "line": t["line_number"], "sub_centre": t["line_number"], "type": t["category"],
                   "all": "all"}[level]
            keys = [(key, live)]
        f = followups.get(tid)
        for key, ds in keys:
            row = out[key or ""]
            row["tickets"] += 1
            for d in ds:
                row["dispatches"] += 1
                acc = d["accepted_at"]
                if acc is not None or d["due_at"] <= now:
                    row["due"] += 1
                if acc is not None and acc <= d["due_at"]:
                    row["responded"] += 1
            if f and f["status"] == "done":
                row["surveyed"] += 1
                row["solved"] += f["solved"] == "yes"
                row["unsolved"] += f["solved"] == "no"
                row[f["satisfaction"]] += 1
    result = {}
    for key, row in out.items():
        r = dict(row)
        r["response_rate"] = round(r["responded"] / r["due"], 4) if r.get("due") else None
        sv = r.get("surveyed", 0)
        r["resolution_rate"] = round(r.get("solved", 0) / sv, 4) if sv else None
        r["satisfaction_rate"] = (round(sum(r.get(k, 0) * w for k, w in weights.items()) / sv, 4) if sv else None)
        result[key] = r
    return result


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
