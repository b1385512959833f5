"""One place per ticket (gateway/supervision/places.py): resolved once for the rates, the warnings
and the reports, again when the ticket was edited; migration 0020 moves the warnings' facts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from gateway.desk.catalogue_load import load_catalogue
from gateway.supervision.places import STALE, Lookups, TicketPlace, place_label, resolve, resolve_places
from gateway.ticketing import migrate
from gateway.ticketing.models import Call, Ticket

CATALOGUE = load_catalogue(Path(__file__).resolve().parents[2] / "config" / "catalogue.yaml")
UTC = timezone.utc
AT = datetime(2026, 11, 10, 2, tzinfo=UTC)


def _rows(tid: int, *, place: str, summary: str, status: str = "submitted", category: str = "投诉") -> dict:
    call = {"id": tid, "uniqueid": f"p-{tid}", "channel": "Local/x", "caller_number": "13800138000",
            "dialled_number": "12345", "line_number": "12345", "line_name": "市民服务热线", "merge_mode": "primary",
            "menu_path": [], "status": "ended", "started_at": AT}
    ticket = {"id": tid, "call_id": tid, "ticket_no": f"P{tid}", "status": status, "caller_number": "13800138000",
              "dialled_number": "12345", "line_number": "12345", "line_name": "市民服务热线", "merge_mode": "primary",
              "category": category, "confidential": False, "menu_path": [], "transcript_status": "none",
              "transcript_attempts": 0, "emergency": False, "place": place, "summary": summary, "decided_at": AT,
              "handling": "accepted" if status == "submitted" else None, "followup_opt_out": False,
              "created_at": AT, "updated_at": AT, "version_id": 1}
    return {"calls": call, "tickets": ticket}


async def _insert(store, *tickets: dict) -> None:
    async def work(session) -> None:
        await session.execute(sa.insert(Call.__table__), [t["calls"] for t in tickets])
        await session.execute(sa.insert(Ticket.__table__), [t["tickets"] for t in tickets])

    await store.run_write(work)


async def _places(store) -> dict[int, TicketPlace]:
    async with store.read_session() as session:
        return {p.ticket_id: p for p in (await session.execute(sa.select(TicketPlace))).scalars()}


def test_given_a_ticket_when_resolved_then_place_matter_and_address_in_one_answer():
    found = resolve(CATALOGUE, "朝阳区工体北路8号", [], "广场舞噪音太吵")
    assert (found.district, found.street, found.source, found.matter, found.address) == (
        "chaoyang", "sanlitun", "place", "noise", "朝阳区工体北路8号")
    assert resolve(Lookups(CATALOGUE), "朝阳区工体北路8号", [], "广场舞噪音太吵") == found
    assert place_label(CATALOGUE, "chaoyang", "sanlitun") == "朝阳区三里屯街道"
    assert resolve(None, "朝阳区工体北路8号", [], "噪音").source == "none"


async def test_given_decided_tickets_when_resolved_then_one_row_each_and_drafts_left_out(store):
    await _insert(store, _rows(1, place="朝阳区工体北路8号", summary="广场舞噪音太吵"),
                  _rows(2, place="某处", summary="问一下办事时间", status="answered", category="咨询"),
                  _rows(3, place="望京", summary="停水", status="draft"))
    assert await resolve_places(store, CATALOGUE, AT, since=AT - timedelta(days=1), on="created_at") == 2
    assert await resolve_places(store, CATALOGUE, AT) == 0  # once per ticket
    assert await resolve_places(store, None, AT) == 0  # no catalogue: nothing written for good
    rows = await _places(store)
    assert set(rows) == {1, 2}
    one = rows[1]
    assert (one.district_id, one.street_id, one.matter_id, one.hour, one.ticket_version) == (
        "chaoyang", "sanlitun", "noise", int(AT.timestamp() // 3600), 1)
    assert (rows[2].district_id, rows[2].source, rows[2].matter_id) == (None, "none", None)


async def test_given_an_edited_ticket_when_resolved_again_then_its_row_follows_the_new_place(store):
    await _insert(store, _rows(1, place="朝阳区工体北路8号", summary="广场舞噪音太吵"))
    assert await resolve_places(store, CATALOGUE, AT) == 1

    async def edit(session) -> None:
        ticket = await session.get(Ticket, 1)
        ticket.place, ticket.summary = "回龙观龙泽苑", "家里停水了"  # the ORM bumps version_id

    await store.run_write(edit)
    assert await resolve_places(store, CATALOGUE, AT + timedelta(hours=1)) == 1
    row = (await _places(store))[1]
    assert (row.district_id, row.street_id, row.matter_id, row.ticket_version) == (
        "changping", "huilongguan", "water-outage", 2)
    assert await resolve_places(store, CATALOGUE, AT + timedelta(hours=2)) == 0


def test_given_rates_and_warnings_rows_when_migrated_to_0020_then_one_table_and_back(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0018")
    hour = int(AT.timestamp() // 3600)

    def fill(conn) -> None:
        tickets = [_rows(i, place="p", summary="s") for i in (1, 2, 3)]
        conn.execute(sa.insert(Call.__table__), [t["calls"] for t in tickets])
        conn.execute(sa.insert(Ticket.__table__), [t["tickets"] for t in tickets])
        places = sa.table("ticket_places", sa.column("ticket_id"), sa.column("district_id"), sa.column("street_id"),
                          sa.column("source"), sa.column("resolved_at", sa.DateTime(timezone=True)))
        conn.execute(sa.insert(places), [  # 1: both tables, 2: the rates' only
            {"ticket_id": 1, "district_id": "chaoyang", "street_id": "sanlitun", "source": "place", "resolved_at": AT},
            {"ticket_id": 2, "district_id": "haidian", "street_id": None, "source": "dispatch", "resolved_at": AT}])
        facts = sa.table("warning_ticket_facts", sa.column("ticket_id"), sa.column("hour"), sa.column("matter"),
                         sa.column("street"), sa.column("district"), sa.column("address"))
        conn.execute(sa.insert(facts), [  # 1: both, 3: the warnings' only
            {"ticket_id": 1, "hour": hour, "matter": "noise", "street": "sanlitun", "district": "chaoyang",
             "address": "工体北路8号"},
            {"ticket_id": 3, "hour": hour + 1, "matter": "type:投诉", "street": "wangjing", "district": "chaoyang",
             "address": None}])

    def read(conn) -> dict:
        cols = "ticket_id, district_id, street_id, source, matter_id, address, hour, ticket_version"
        return {r[0]: tuple(r[1:]) for r in conn.execute(sa.text(f"SELECT {cols} FROM ticket_places"))}

    migrate.run_sync(url, fill)
    migrate.upgrade(url, "0020_one_place")
    assert "warning_ticket_facts" not in migrate.run_sync(url, lambda conn: sa.inspect(conn).get_table_names())
    assert migrate.run_sync(url, read) == {
        1: ("chaoyang", "sanlitun", "place", "noise", "工体北路8号", hour, None),
        2: ("haidian", None, "dispatch", None, None, None, STALE),  # no matter known: resolved again
        3: ("chaoyang", "wangjing", "moved", None, None, hour + 1, None)}
    migrate.downgrade(url, "0018")
    back = migrate.run_sync(url, lambda conn: sorted(tuple(r) for r in conn.execute(sa.text(
        "SELECT ticket_id, hour, matter, street, district, address FROM warning_ticket_facts"))))
    assert back == [(1, hour, "noise", "sanlitun", "chaoyang", "工体北路8号"),
                    (3, hour + 1, "type:投诉", "wangjing", "chaoyang", None)]
    assert migrate.run_sync(url, lambda conn: sorted(r[0] for r in conn.execute(sa.text(
        "SELECT ticket_id FROM ticket_places")))) == [1, 2]
