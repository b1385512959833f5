"""Generated tickets for the early warnings' tests: a month of realistic demand (seeded), written
straight into the calls and tickets tables (as the desk leaves them once decided)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from gateway.ticketing.models import Call, Ticket

START = datetime(2027, 3, 1, 16, 0, tzinfo=timezone.utc)  # 2027-03-02 00:00 in Beijing, a Tuesday

# matter -> (what the agent writes: it names the matter and nothing else, mean tickets a day per street / 2)
MATTERS = {
    "noise": ("楼下广场舞噪音很大", 1.2),
    "street-vending": ("小区门口有人摆摊", 0.6),
    "garbage": ("垃圾桶满了没人清运", 0.8),
    "property": ("物业不管事", 0.9),
    "water-outage": ("家里停水了", 0.4),
    "power-outage": ("楼里停电了", 0.3),
    "heating": ("暖气不热", 0.7),
    "telecom-service": ("宽带网速很慢", 0.4),
    "unpaid-wages": ("公司拖欠工资", 0.5),
    "consumer": ("商家不给退货", 0.8),
    "food-safety": ("买到过期食品", 0.2),
    "medical-insurance": ("医保报销有问题", 0.3),
    "public-transport": ("公交车总是晚点", 0.4),
    "pollution": ("工厂冒黑烟", 0.15),
    "illegal-building": ("邻居私搭乱建", 0.25),
    "shared-bikes": ("共享单车乱停堵路", 0.3),
}
# street -> (its landmarks as agents write them, how busy it is)
STREETS = {
    "sanlitun": (("工体北路", "幸福村", "中纺里"), 1.3), "wangjing": (("花家地", "南湖东园", "望京西园"), 1.5),
    "shuangjing": (("富力城", "广渠家园", "九龙山"), 1.0), "zhongguancun": (("中关村大街", "知春里", "黄庄"), 1.1),
    "xueyuanlu": (("五道口", "成府路", "学清路"), 0.9), "sujiatuo": (("稻香湖", "西小营村", "北安河"), 0.3),
    "donghuamen": (("南池子", "东安门", "北河沿"), 0.6), "hepingli": (("和平里北街", "青年湖", "安德路"), 0.8),
    "huilongguan": (("龙泽苑", "龙禧苑", "育知东路"), 1.6), "xiaotangshan": (("大东流", "葫芦河村"), 0.4),
}
WEEKDAY = (1.05, 1.1, 1.05, 1.0, 0.95, 0.6, 0.5)  # Monday .. Sunday
HOURS = [0.2] * 7 + [1.0, 2.0, 2.5, 2.5, 2.0, 1.5, 2.0, 2.2, 2.0, 1.8, 1.5, 1.2, 1.0, 0.8, 0.6, 0.4, 0.3]  # local hours


@dataclass(frozen=True)
class Made:
    at: datetime
    matter: str
    street: str
    place: str
    summary: str
    category: str = "投诉"
    confidential: bool = False


def poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def address(rng: random.Random, street: str) -> str:
    landmark = rng.choice(STREETS[street][0])
    return f"{landmark}{rng.randint(1, 90)}号院{rng.randint(1, 12)}号楼{rng.randint(1, 24)}0{rng.randint(1, 4)}"


def month(seed: int, days: int = 30) -> list[Made]:
    """``days`` days from :data:`START`: every matter in every street, Poisson around its mean, with
    a weekly cycle, a day-to-day swing of ±15 % and the day's hours as callers call."""
    rng = random.Random(seed)
    out = []
    for day in range(days):
        local_midnight = START + timedelta(days=day)
        swing = rng.uniform(0.85, 1.15)
        factor = WEEKDAY[(local_midnight + timedelta(hours=8)).weekday()] * swing
        for matter, (summary, mean) in MATTERS.items():
            for street, (_, busy) in STREETS.items():
                for _ in range(poisson(rng, 2 * mean * busy * factor)):
                    hour = rng.choices(range(24), weights=HOURS)[0]
                    at = local_midnight + timedelta(hours=hour, seconds=rng.randint(0, 3599))
                    out.append(Made(at, matter, street, address(rng, street), summary))
    return out


async def insert(store, made: list[Made], *, first_id: int = 1) -> list[int]:
    """Write the tickets (with their calls) as the desk leaves submitted ones; returns their ids."""
    calls, tickets = [], []
    for n, m in enumerate(made, start=first_id):
        calls.append({"id": n, "uniqueid": f"w{n}", "channel": "Local/x;1", "caller_number": "13800138000",
                      "dialled_number": "12345", "line_number": "12345", "line_name": "12345市民服务热线",
                      "merge_mode": "primary", "menu_path": [], "status": "ended", "started_at": m.at})
        tickets.append({"id": n, "call_id": n, "ticket_no": f"{n:011d}", "status": "submitted",
                        "caller_number": "13800138000", "dialled_number": "12345", "line_number": "12345",
                        "line_name": "12345市民服务热线", "merge_mode": "primary", "category": m.category,
                        "confidential": m.confidential, "menu_path": [], "transcript_status": "none",
                        "transcript_attempts": 0, "emergency": False, "urgency": "normal", "place": m.place,
                        "summary": m.summary, "dispatch_mode": "direct", "units": [],
                        "followup_opt_out": False, "handling": "dispatched", "created_at": m.at, "updated_at": m.at,
                        "decided_at": m.at, "version_id": 1})

    async def work(session) -> None:
        for i in range(0, len(calls), 2000):
            await session.execute(sa.insert(Call), calls[i:i + 2000])
            await session.execute(sa.insert(Ticket), tickets[i:i + 2000])

    await store.run_write(work)
    return [c["id"] for c in calls]
