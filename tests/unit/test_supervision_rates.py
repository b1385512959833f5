"""The three rates (三率): formulas by hand, periods, the config section, SQL per level on both
databases (hand-built tickets and a generated month against a plain-Python reference), the
places, and the supervisor API (bad parameters, confidential tickets masked)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth.users import UserStore
from gateway.desk.catalogue_load import load_catalogue
from gateway.errors import ConfigError
from gateway.supervision.rates import (
    LEVELS,
    BadRatesQuery,
    RateRow,
    compute_rates,
    period_bounds,
    rank_rows,
    resolution_rate,
    response_rate,
    satisfaction_rate,
    total_rates,
)
from gateway.supervision.rates_config import DEFAULTS, RatesConfig, load_rates, parse_rates
from gateway.supervision.rates_http import RATES_SERVICE, RatesService, add_rates_routes
from gateway.supervision.places import resolve, resolve_places
from gateway.supervision.rates_tickets import rate_tickets
from gateway_dev.rates_data import expected, generate, insert_async
from tests.unit.webapp import build_app

CONFIG = Path(__file__).resolve().parents[2] / "config"
UTC = timezone.utc
NOV = period_bounds("month", "Asia/Shanghai", day="2026-11-01")  # [10-31 16:00Z, 11-30 16:00Z)
NOW = datetime(2026, 12, 20, tzinfo=UTC)
CATALOGUE = load_catalogue(CONFIG / "catalogue.yaml")  # read here, not on the event loop
FIGURES = ("tickets", "dispatches", "due", "responded", "surveyed", "solved", "unsolved", "satisfied", "basic",
           "unsatisfied", "response_rate", "resolution_rate", "satisfaction_rate")


# -- formulas (pure, hand-computed) ------------------------------------------------------------------
def test_given_counts_when_the_formulas_run_then_the_hand_computed_rates():
    assert response_rate(9, 12) == 0.75
    assert resolution_rate(7, 3, 10) == 0.7
    assert satisfaction_rate(6, 3, 1, 10) == 0.84  # (6 + 3 × 0.8) / 10
    half = RatesConfig(satisfaction_weights={"satisfied": 1.0, "basic": 0.5, "unsatisfied": 0.0},
                       resolution_weights={"solved": 1.0, "unsolved": 0.25})
    assert satisfaction_rate(6, 3, 1, 10, half) == 0.75  # (6 + 1.5) / 10
    assert resolution_rate(7, 3, 10, half) == 0.775  # (7 + 0.75) / 10
    assert satisfaction_rate(2, 0, 1, 3) == 0.6667
    assert response_rate(0, 0) is None and resolution_rate(0, 0, 0) is None and satisfaction_rate(0, 0, 0, 0) is None


def test_given_rows_when_ranked_then_ties_share_a_rank_and_rows_without_a_base_come_last_unranked():
    rows = [RateRow("a", "a", surveyed=10, satisfaction_rate=0.9), RateRow("b", "b", surveyed=20, satisfaction_rate=0.95),
            RateRow("c", "c", surveyed=5, satisfaction_rate=0.9), RateRow("d", "d", tickets=3),
            RateRow("e", "e", surveyed=1, satisfaction_rate=0.5)]
    ranked = rank_rows(rows, "satisfaction")
    assert [(r.key, r.rank) for r in ranked] == [("b", 1), ("a", 2), ("c", 2), ("e", 4), ("d", None)]


# -- periods ---------------------------------------------------------------------------------------
def test_given_periods_when_bounded_then_local_days_in_utc():
    assert NOV == (datetime(2026, 10, 31, 16, tzinfo=UTC), datetime(2026, 11, 30, 16, tzinfo=UTC))
    assert period_bounds("week", "Asia/Shanghai", day="2026-11-04") == (
        datetime(2026, 11, 1, 16, tzinfo=UTC), datetime(2026, 11, 8, 16, tzinfo=UTC))  # Monday 11-02 to 11-09
    assert period_bounds("day", "Asia/Shanghai", day="2026-12-31") == (
        datetime(2026, 12, 30, 16, tzinfo=UTC), datetime(2026, 12, 31, 16, tzinfo=UTC))
    assert period_bounds("custom", "Asia/Shanghai", start="2026-11-01", end="2026-11-30") == NOV
    assert period_bounds("month", "Asia/Shanghai", day="2026-12-15")[1] == datetime(2026, 12, 31, 16, tzinfo=UTC)


@pytest.mark.parametrize("kw, parameter", [
    ({"period": "year"}, "period"),
    ({"period": "month", "day": "2026-13-01"}, "date"),
    ({"period": "month", "day": "2026-1-1"}, "date"),
    ({"period": "custom", "start": "2026-11-01"}, "end"),
    ({"period": "custom", "start": "2026-11-02", "end": "2026-11-01"}, "end"),
    ({"period": "custom", "start": "2025-01-01", "end": "2026-11-01"}, "end"),
])
def test_given_bad_periods_when_bounded_then_400_naming_the_parameter(kw, parameter):
    period = kw.pop("period")
    with pytest.raises(BadRatesQuery) as caught:
        period_bounds(period, "Asia/Shanghai", **kw)
    assert caught.value.status_code == 400 and caught.value.details == {"parameter": parameter}


# -- configuration ---------------------------------------------------------------------------------
def test_given_the_shipped_file_and_no_file_then_the_documented_defaults():
    assert load_rates(CONFIG / "supervision.yaml") == DEFAULTS
    assert load_rates(CONFIG / "no-such-file.yaml") == DEFAULTS
    assert DEFAULTS.satisfaction_weights == {"satisfied": 1.0, "basic": 0.8, "unsatisfied": 0.0}
    assert parse_rates("other_feature: {x: 1}\n") == DEFAULTS  # other sections are their owners' business


def test_given_a_misspelt_key_and_bad_values_when_parsed_then_every_problem_with_line_and_field():
    text = ("rates:\n  satisfction: {}\n  response: {within: hour}\n"
            "  satisfaction: {weights: {basic: 1.5, good: 1}}\n  rank_by: speed\n")
    with pytest.raises(ConfigError) as caught:
        parse_rates(text)
    fields = {(p["field"], p["line"]) for p in caught.value.details["problems"]}
    assert fields == {("rates.satisfction", 2), ("rates.response.within", 3), ("rates.satisfaction.weights.basic", 4),
                      ("rates.satisfaction.weights.good", 4), ("rates.rank_by", 5)}
    assert "did you mean 'satisfaction'" in str(caught.value)


def test_given_hours_mode_and_weights_when_parsed_then_taken():
    cfg = parse_rates("rates:\n  response: {within: hours, hours: 2}\n  satisfaction: {weights: {basic: 0.6}}\n"
                      "  timezone: Asia/Urumqi\n")
    assert (cfg.response_within, cfg.response_hours, cfg.satisfaction_weights["basic"], cfg.timezone) == (
        "hours", 2.0, 0.6, "Asia/Urumqi")
    assert cfg.satisfaction_weights["satisfied"] == 1.0


# -- on a database: hand-built tickets -------------------------------------------------------------
def _ticket(tid, decided, *, line=("12345", "12345市民服务热线", "primary"), category="投诉", place=None,
            dispatches=(), followup=None, confidential=False, status="submitted", handling="accepted"):
    number, name, mode = line
    batch = {"calls": [{"id": tid, "uniqueid": f"h-{tid}", "channel": "Local/x", "caller_number": "13800138000",
                        "dialled_number": number, "line_number": number, "line_name": name, "merge_mode": mode,
                        "menu_path": [], "status": "ended", "started_at": decided}],
             "tickets": [{"id": tid, "call_id": tid, "ticket_no": f"T{tid}", "status": status,
                          "caller_number": "13800138000", "dialled_number": number, "line_number": number,
                          "line_name": name, "merge_mode": mode, "category": category, "confidential": confidential,
                          "menu_path": [], "transcript_status": "none", "transcript_attempts": 0, "emergency": False,
                          "place": "朝阳区工体北路8号，电话13912345678" if confidential else "某处",
                          "summary": "s", "decided_at": decided, "handling": handling, "followup_opt_out": False,
                          "created_at": decided, "updated_at": decided, "version_id": 1}],
             "dispatches": [], "followups": [], "ticket_places": []}
    for i, (unit, accepted_h, dstatus) in enumerate(dispatches):
        batch["dispatches"].append({"id": tid * 10 + i, "ticket_id": tid, "unit_id": unit, "unit_name": unit.upper(),
                                    "status": dstatus, "due_at": decided + timedelta(hours=24),
                                    "accepted_at": None if accepted_h is None else decided + timedelta(hours=accepted_h),
                                    "created_at": decided, "updated_at": decided})
    if followup:
        fstatus, solved, sat = followup
        batch["followups"].append({"id": tid, "ticket_id": tid, "status": fstatus, "attempts": 1, "solved": solved,
                                   "satisfaction": sat, "created_at": decided, "updated_at": decided})
    if place:
        batch["ticket_places"].append({"ticket_id": tid, "district_id": place[0], "street_id": place[1],
                                       "source": "place", "resolved_at": decided})
    return batch


D = datetime(2026, 11, 10, 2, tzinfo=UTC)
HAND = [
    # water: responded in time x2, late x1, never (past due) x1 -> due 4, responded 2
    _ticket(1, D, dispatches=[("water", 3, "handled")], followup=("done", "yes", "satisfied"), place=("chaoyang", "sanlitun")),
    _ticket(2, D, dispatches=[("water", 20, "handled"), ("power", 30, "handled")], followup=("done", "no", "basic"),
            place=("chaoyang", "wangjing"), category="求助"),
    _ticket(3, D, dispatches=[("water", 30, "handled")], followup=("done", "yes", "unsatisfied"), place=("haidian", None)),
    _ticket(4, D, dispatches=[("water", None, "sent")], line=("12366", "12366纳税服务热线", "sub_centre")),
    # power: withdrawn dispatch does not count; its live one not due yet (dispatched 2 h before NOW-ish)
    _ticket(5, D, dispatches=[("power", None, "withdrawn"), ("power", 1, "handled")], followup=("unreachable", None, None),
            line=("12366", "12366纳税服务热线", "sub_centre"), category="求助"),
    _ticket(6, NOW - timedelta(hours=2), dispatches=[("power", None, "sent")]),  # not due yet (December)
    # not counted: before November (local), answered on the call, not dispatched
    _ticket(7, datetime(2026, 10, 31, 15, 59, tzinfo=UTC), dispatches=[("water", 1, "handled")]),
    _ticket(8, D, status="answered", handling=None),
    _ticket(9, D, dispatches=[("gas", 1, "handled")], followup=("done", "yes", "basic"), handling=None),
]


@pytest.fixture()
async def hand(store):
    await insert_async(store, HAND)
    return store


def _figures(rows):
    return {r.key: {f: getattr(r, f) for f in FIGURES} for r in rows}


async def test_given_hand_built_tickets_when_rated_per_unit_then_the_hand_computed_figures(hand):
    rows = await compute_rates(hand, "unit", *NOV, now=NOW)
    got = _figures(rows)
    assert got["water"] == {"tickets": 4, "dispatches": 4, "due": 4, "responded": 2, "surveyed": 3, "solved": 2,
                            "unsolved": 1, "satisfied": 1, "basic": 1, "unsatisfied": 1, "response_rate": 0.5,
                            "resolution_rate": 0.6667, "satisfaction_rate": 0.6}  # (1 + 0.8) / 3
    # power: ticket 2 (late, 30 h > 24 h), ticket 5's live dispatch (1 h); the withdrawn one left out
    assert got["power"] == {"tickets": 2, "dispatches": 2, "due": 2, "responded": 1, "surveyed": 1, "solved": 0,
                            "unsolved": 1, "satisfied": 0, "basic": 1, "unsatisfied": 0, "response_rate": 0.5,
                            "resolution_rate": 0.0, "satisfaction_rate": 0.8}
    assert set(got) == {"water", "power"}  # ranked by satisfaction (the default): power 0.8, water 0.6
    assert [(r.key, r.rank, r.label) for r in rows] == [("power", 1, "POWER"), ("water", 2, "WATER")]


async def test_given_hand_built_tickets_when_rated_per_place_line_type_then_the_hand_computed_figures(hand):
    district = _figures(await compute_rates(hand, "district", *NOV, now=NOW, labels={"chaoyang": "朝阳区"}))
    assert district["chaoyang"]["tickets"] == 2 and district["chaoyang"]["due"] == 3
    assert district["chaoyang"]["responded"] == 2 and district["chaoyang"]["satisfaction_rate"] == 0.9
    assert district[""]["tickets"] == 2  # tickets 4 and 5 have no place row: 未识别
    street = _figures(await compute_rates(hand, "street", *NOV, now=NOW))
    assert set(street) == {"sanlitun", "wangjing", ""} and street[""]["tickets"] == 3  # haidian without a street too
    sub = _figures(await compute_rates(hand, "sub_centre", *NOV, now=NOW))
    assert set(sub) == {"12366"} and sub["12366"]["tickets"] == 2 and sub["12366"]["due"] == 2
    assert sub["12366"]["responded"] == 1 and sub["12366"]["surveyed"] == 0 and sub["12366"]["satisfaction_rate"] is None
    types = _figures(await compute_rates(hand, "type", *NOV, now=NOW))
    assert types["求助"]["tickets"] == 2 and types["投诉"]["tickets"] == 3
    dec = _figures(await compute_rates(hand, "unit", *period_bounds("month", "Asia/Shanghai", day="2026-12-01"),
                                       now=NOW))
    assert dec["power"]["dispatches"] == 1 and dec["power"]["due"] == 0 and dec["power"]["response_rate"] is None
    total = await total_rates(hand, *NOV, now=NOW)
    assert (total.tickets, total.due, total.responded, total.surveyed) == (5, 6, 3, 3)
    sub_total = await total_rates(hand, *NOV, now=NOW, level="sub_centre")
    assert (sub_total.tickets, sub_total.due, sub_total.responded) == (2, 2, 1)


async def test_given_a_two_hour_response_when_rated_then_elapsed_time_is_counted_on_either_database(hand):
    cfg = RatesConfig(response_within="hours", response_hours=20)
    got = _figures(await compute_rates(hand, "unit", *NOV, cfg, now=NOW))
    assert (got["water"]["due"], got["water"]["responded"]) == (4, 2)  # 3 h and exactly 20 h are in time
    cfg = RatesConfig(response_within="hours", response_hours=2)
    got = _figures(await compute_rates(hand, "unit", *NOV, cfg, now=NOW))
    assert (got["water"]["responded"], got["power"]["responded"]) == (0, 1)  # only ticket 5's 1 h


async def test_given_a_figure_when_its_tickets_are_listed_then_the_same_count_and_no_caller_number(store):
    await insert_async(store, [_ticket(1, D, dispatches=[("water", 30, "handled")], followup=("done", "no", "basic"),
                                       confidential=True),
                               _ticket(2, D, dispatches=[("water", 3, "handled")], followup=("done", "yes", "satisfied"))])
    late = await rate_tickets(store, "unit", "water", "response", "late", *NOV, now=NOW)
    assert late["total"] == 1 and [i["ticket_no"] for i in late["items"]] == ["T1"]
    item = late["items"][0]
    assert item["confidential"] and "13912345678" not in str(late) and "13800138000" not in str(late)
    assert "caller_number" not in item and item["units"] == ["WATER"]
    surveyed = await rate_tickets(store, "type", "投诉", "satisfaction", None, *NOV, now=NOW, per_page=1, page=2)
    assert surveyed["total"] == 2 and [i["ticket_no"] for i in surveyed["items"]] == ["T2"]
    with pytest.raises(BadRatesQuery):
        await rate_tickets(store, "unit", "water", "response", "solved", *NOV, now=NOW)


# -- a generated month against the plain-Python reference --------------------------------------------
async def test_given_a_generated_month_with_followups_when_rated_per_level_then_exactly_the_reference(store):
    start, end = NOV
    batches = list(generate(1500, start - timedelta(days=4), end + timedelta(days=4), seed=7))
    await insert_async(store, batches)
    now = datetime(2026, 11, 25, tzinfo=UTC)  # some dispatches of late November are not due yet
    for level in (*LEVELS, "all"):
        want = expected(batches, level, start, end, now=now)
        if level == "all":
            rows = [await total_rates(store, start, end, now=now)]
        else:
            rows = await compute_rates(store, level, start, end, now=now)
        got = {k: {f: v for f, v in row.items() if v not in (0, None)} for k, row in _figures(rows).items()}
        want = {k: {f: v for f, v in row.items() if f in FIGURES and v not in (0, None)} for k, row in want.items()}
        assert got == want, level
    assert sum(r.tickets for r in await compute_rates(store, "line", start, end, now=now)) > 1000


# -- places ----------------------------------------------------------------------------------------
def test_given_the_catalogue_when_places_are_resolved_then_place_text_first_then_the_units_then_the_summary():
    def place(*args):
        found = resolve(CATALOGUE, *args)
        return found.district, found.street, found.source

    assert place("朝阳区工体北路8号", [], None) == ("chaoyang", "sanlitun", "place")
    assert place("某小区", ["water", "wangjing"], None) == ("chaoyang", "wangjing", "dispatch")
    assert place(None, ["haidian"], None) == ("haidian", None, "dispatch")
    assert place("", [], "回龙观龙泽苑停电") == ("changping", "huilongguan", "summary")
    assert place("某处", ["water"], "没有地点") == (None, None, "none")


async def test_given_submitted_tickets_without_a_place_row_when_resolved_then_once_each(store):
    batches = [_ticket(1, D, dispatches=[("wangjing", 1, "handled")]), _ticket(2, D, dispatches=[("water", 1, "sent")])]
    await insert_async(store, batches)
    cat = CATALOGUE
    assert await resolve_places(store, cat, NOW, since=NOV[0], until=NOV[1]) == 2
    assert await resolve_places(store, cat, NOW) == 0
    street = _figures(await compute_rates(store, "street", *NOV, now=NOW))
    assert street["wangjing"]["tickets"] == 1 and street[""]["tickets"] == 1


# -- the API ---------------------------------------------------------------------------------------
@pytest.fixture()
async def client(store):
    users = UserStore(store)
    tokens = {}
    for name, role in (("boss", "supervisor"), ("a1", "agent")):
        await users.create_user(name, f"{name}-password-1", role, agent_id="8001" if role == "agent" else None)
        uid = next(u["id"] for u in await users.list_users() if u["username"] == name)
        tokens[name] = {"Authorization": f"Bearer {(await users.create_session(uid))[0]}"}

    async def health():
        return {}

    app = build_app(store=store, health=health, users=users)
    app[RATES_SERVICE] = RatesService(store=store, clock=lambda: NOW, catalogue=CATALOGUE)
    add_rates_routes(app)
    await insert_async(store, HAND[:3] + [_ticket(10, D, dispatches=[("water", 30, "handled")], confidential=True,
                                                 followup=("done", "no", "unsatisfied"))])
    async with TestClient(TestServer(app)) as c:
        yield c, tokens


async def test_given_a_supervisor_when_asking_the_month_per_district_then_ranked_rows_with_their_bases(client):
    c, tok = client
    resp = await c.get("/api/supervisor/rates?level=district&period=month&date=2026-11-01", headers=tok["boss"])
    body = await resp.json()
    assert resp.status == 200, body
    rows = {r["key"]: r for r in body["rows"]}
    assert rows["chaoyang"]["label"] == "朝阳区" and rows["chaoyang"]["tickets"] == 3  # ticket 10 placed by the catalogue
    assert rows["chaoyang"]["surveyed"] == 3 and rows["chaoyang"]["rank"] == 1
    assert body["total"]["tickets"] == 4 and body["start"] == "2026-10-31T16:00:00+00:00"
    assert "基本满意×0.8" in body["formulas"]["satisfaction"]
    custom = await (await c.get("/api/supervisor/rates?level=unit&start=2026-11-10&end=2026-11-10&rank_by=response",
                                headers=tok["boss"])).json()
    assert custom["period"] == "custom" and custom["rank_by"] == "response" and custom["rows"][0]["key"] == "water"


@pytest.mark.parametrize("query, parameter", [
    ("level=planet", "level"), ("period=year", "period"), ("date=2026-02-30", "date"), ("rank_by=speed", "rank_by"),
    ("period=custom&start=2026-11-01", "end"), ("lvl=unit", "lvl"),
])
async def test_given_bad_parameters_when_asking_then_400_with_the_parameter_and_chinese(client, query, parameter):
    c, tok = client
    resp = await c.get(f"/api/supervisor/rates?{query}", headers=tok["boss"])
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "bad-rates-query"
    assert body["details"]["parameter"] == parameter and body["message_zh"]


async def test_given_the_tickets_behind_a_figure_then_paginated_confidential_masked_and_roles_checked(client):
    c, tok = client
    url = "/api/supervisor/rates/tickets?level=unit&key=water&rate=satisfaction&outcome=unsatisfied&date=2026-11-01"
    resp = await c.get(url, headers=tok["boss"])
    text = await resp.text()
    assert resp.status == 200, text
    body = await resp.json()
    assert body["total"] == 2 and {i["ticket_no"] for i in body["items"]} == {"T3", "T10"}
    assert "13912345678" not in text and "13800138000" not in text
    t10 = next(i for i in body["items"] if i["ticket_no"] == "T10")
    assert t10["confidential"] and t10["place"] == "朝阳区工体北路8号，电话139****5678"  # the house's masking
    bad = await c.get("/api/supervisor/rates/tickets?level=unit&rate=response", headers=tok["boss"])
    assert bad.status == 400 and (await bad.json())["details"]["parameter"] == "key"
    bad = await c.get("/api/supervisor/rates/tickets?level=unit&key=water&rate=speed", headers=tok["boss"])
    assert bad.status == 400 and (await bad.json())["details"]["parameter"] == "rate"
    assert (await c.get(url, headers=tok["a1"])).status == 403
    assert (await c.get(url)).status == 401
