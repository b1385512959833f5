"""THE early-warning test (issue 14): a generated month of tickets (many matters × streets, daily and
weekly cycles, seeded) replayed run by run raises exactly the one injected surge, and nothing on the
normal days; the same surge stays one alert however often the run is repeated; repeated demands."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from gateway.desk.catalogue_load import load_catalogue
from gateway.supervision import places
from gateway.supervision.warnings_service import WarningService
from gateway.supervision.warnings_store import WarningAlert, WarningAlertTicket
from gateway.ticketing.models import AuditEvent
from tests.unit import warnings_data as data

CATALOGUE = load_catalogue(Path(__file__).resolve().parents[2] / "config" / "catalogue.yaml")
WARM_UP = 28  # days of history before the month replayed
DAYS = 30
SURGE_DAY = WARM_UP + 17  # a Saturday afternoon: a water main breaks in 望京


def test_given_the_generated_summaries_and_addresses_then_each_classifies_as_meant():
    rng = random.Random(1)
    for matter, (summary, _) in data.MATTERS.items():
        for street in data.STREETS:
            found = places.resolve(CATALOGUE, data.address(rng, street), [], summary)
            assert (found.matter, found.street) == (matter, street), (summary, street)


def _surge(rng: random.Random) -> list[data.Made]:
    day = data.START + timedelta(days=SURGE_DAY)
    return [data.Made(day + timedelta(hours=6, minutes=rng.randint(0, 300)), "water-outage", "wangjing",
                      data.address(rng, "wangjing"), "家里停水了，整栋楼都没水") for _ in range(16)]


async def test_given_a_month_with_one_injected_surge_when_replayed_every_six_hours_then_exactly_that_alert(store):
    made = data.month(seed=20270302, days=WARM_UP + DAYS)
    surge = _surge(random.Random(5))
    ids = await data.insert(store, made + surge)
    surge_ids = set(ids[len(made):])
    service = WarningService(store=store, clock=lambda: data.START, catalogue=CATALOGUE)
    raised: dict[int, list] = {}
    now = data.START + timedelta(days=WARM_UP)
    while now <= data.START + timedelta(days=WARM_UP + DAYS):
        run = await service.run_once(now)
        if run["created"] or run["updated"]:
            raised[(now - data.START).days] = run["created"]
        now += timedelta(hours=6)
    async with store.read_session() as session:
        alerts = (await session.execute(sa.select(WarningAlert))).scalars().all()
        linked = set((await session.execute(sa.select(WarningAlertTicket.ticket_id))).scalars())
        audits = (await session.execute(sa.select(AuditEvent.action).where(AuditEvent.object_type == "warning"))
                  ).scalars().all()
    assert len(made) > 4000  # a realistic month: ~150 tickets a day over 16 matters × 10 streets
    assert [(a.kind, a.matter, a.level, a.place_id) for a in alerts] == [("surge", "water-outage", "street", "wangjing")]
    assert set(raised) <= {SURGE_DAY, SURGE_DAY + 1}, raised  # the surge's day (and the runs still seeing it)
    alert = alerts[0]
    assert surge_ids <= linked and alert.count >= 16 and alert.expected < 2 and alert.place_name == "朝阳区望京街道"
    assert alert.units == [{"id": "water", "name": "市自来水集团"}] and alert.active_subject is None  # the episode ended
    assert audits == ["warning.created"]


async def test_given_the_same_surge_when_the_run_is_repeated_then_one_alert_updated_with_new_tickets(store):
    made = data.month(seed=11, days=WARM_UP + 1)
    rng = random.Random(2)
    first = _surge(rng)[:8]
    await data.insert(store, made + first)
    service = WarningService(store=store, clock=lambda: data.START, catalogue=CATALOGUE)
    at = data.START + timedelta(days=SURGE_DAY, hours=12)
    runs = [await service.run_once(at), await service.run_once(at), await service.run_once(at + timedelta(minutes=15))]
    assert len(runs[0]["created"]) == 1 and runs[1]["created"] == [] and runs[1]["updated"] == 1
    more = [data.Made(at + timedelta(minutes=5 + i), "water-outage", "wangjing", data.address(rng, "wangjing"),
                      "停水") for i in range(4)]
    await data.insert(store, more, first_id=len(made) + len(first) + 1)
    run = await service.run_once(at + timedelta(hours=1))
    assert run["created"] == [] and run["updated"] == 1
    async with store.read_session() as session:
        (alert,) = (await session.execute(sa.select(WarningAlert))).scalars().all()
        n = (await session.execute(sa.select(sa.func.count()).select_from(WarningAlertTicket))).scalar()
    assert alert.count == 12 and n == 12 and alert.active_subject == alert.subject
    # a day later the window no longer holds it: the episode ends; a new surge then is a new alert
    assert (await service.run_once(at + timedelta(days=1, hours=2)))["ended"] == 1


async def test_given_three_tickets_about_one_address_within_a_week_then_a_repeated_demand_alert(store):
    at = data.START + timedelta(days=3)
    place = "朝阳区工体北路8号院3号楼"
    made = [data.Made(at + timedelta(days=d), "noise", "sanlitun", place if d < 5 else "工体北路9号院",
                      "楼下酒吧噪音扰民，夜里太吵") for d in (0, 2, 5)]
    made += [data.Made(at + timedelta(days=1), "noise", "sanlitun", "朝阳区工体北路8号院3号楼", "酒吧噪音", confidential=True)]
    await data.insert(store, made)
    service = WarningService(store=store, clock=lambda: at, catalogue=CATALOGUE)
    first = await service.run_once(at + timedelta(days=1, hours=1))
    assert first["created"] == []  # two so far
    run = await service.run_once(at + timedelta(days=2, hours=1))
    (alert_id,) = run["created"]
    detail = await service.store.detail(alert_id)
    assert (detail["kind"], detail["matter"], detail["count"], detail["place_name"]) == ("repeat", "noise", 3, place)
    assert [t["confidential"] for t in detail["ticket_list"]] == [False, True, False]
    hidden = detail["ticket_list"][1]
    assert hidden["place"] is None and hidden["summary"] is None
    assert "13800138000" not in repr(detail)
