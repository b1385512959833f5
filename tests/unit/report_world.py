"""Generated tickets for the reports' tests: calls, decided tickets, dispatches and follow-ups,
written as rows into a real (migrated) database, with the exact counts the reports must show."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.ticketing.models import Call, Dispatch, Followup, Ticket
from gateway.ticketing.store import TicketStore

SECRET_NUMBER = "13912345678"  # said by a confidential caller: must never appear in a report
CALLER_NUMBER = "13800138000"  # every caller's number: must never appear in a report
SECRET_PLACE = "幸福村中纺里七号楼"  # a confidential caller's place: never quoted

PLACES = [("三里屯街道工体北路", "朝阳区", "朝阳区三里屯街道"), ("望京街道花家地", "朝阳区", "朝阳区望京街道"),
          ("海淀区中关村", "海淀区", None)]
MATTERS = [("楼下工地半夜施工打桩", "夜间施工扰民"), ("广场舞噪音太吵", "噪音扰民"), ("路边有人摆摊占道经营", "占道经营")]
LINES = [("12345", "市民服务热线", "primary"), ("12315", "市场监管热线", "dual_number")]


@dataclass
class World:
    tickets: int = 0
    answered: int = 0
    by_category: dict = field(default_factory=dict)
    by_district: dict = field(default_factory=dict)
    by_matter: dict = field(default_factory=dict)
    overdue: int = 0
    followups: int = 0
    satisfied: int = 0
    comments: int = 0


async def make_world(store: TicketStore, start: datetime, *, days: int = 1, per_day: int = 12,
                     seed: int = 14, confidential_every: int = 5) -> World:
    """``per_day`` decided tickets a day from ``start`` (aware UTC, inside the centre's day), plus one
    draft a day (never counted). Every ``confidential_every``-th ticket is confidential, says
    :data:`SECRET_NUMBER` and :data:`SECRET_PLACE` and leaves a comment saying them too."""
    rnd = random.Random(seed)
    w = World()
    categories = ["投诉", "咨询", "求助", "建议", "举报"]

    async def work(session) -> None:
        n = 0
        for day in range(days):
            for i in range(per_day + 1):
                n += 1
                at = start + timedelta(days=day, minutes=20 * i)
                number, line_name, mode = LINES[n % 2]
                call = Call(uniqueid=f"r{n}", channel=f"PJSIP/x-{n}", caller_number=CALLER_NUMBER,
                            dialled_number=number, line_number=number, line_name=line_name, merge_mode=mode,
                            started_at=at, status="ended")
                session.add(call)
                await session.flush()
                draft = i == per_day
                secret = not draft and n % confidential_every == 0
                place, district, _spot = PLACES[n % len(PLACES)]
                said, matter = MATTERS[n % len(MATTERS)]
                category = categories[n % len(categories)]
                answered = not draft and n % 4 == 0
                t = Ticket(call_id=call.id, ticket_no=f"R{n:07d}", caller_number=CALLER_NUMBER,
                           dialled_number=number, line_number=number, line_name=line_name, merge_mode=mode,
                           category=category, confidential=secret, created_at=at,
                           status="draft" if draft else ("answered" if answered else "submitted"),
                           place=(SECRET_PLACE + " 电话" + SECRET_NUMBER) if secret else place,
                           summary=f"{said}，联系电话 {SECRET_NUMBER if secret else '未留'}",
                           urgency="normal", decided_at=None if draft else at)
                session.add(t)
                await session.flush()
                if draft:
                    continue
                w.tickets += 1
                w.answered += answered
                w.by_category[category] = w.by_category.get(category, 0) + 1
                d_name = "朝阳区" if secret else district
                w.by_district[d_name] = w.by_district.get(d_name, 0) + 1
                w.by_matter[matter] = w.by_matter.get(matter, 0) + 1
                if answered:
                    continue
                due = at + timedelta(hours=6)
                late = n % 3 == 0
                d = Dispatch(ticket_id=t.id, unit_id="street", unit_name="三里屯街道办事处" if n % 2 else "市城市管理委",
                             status="accepted" if late else "handled", due_at=due, created_at=at,
                             handled_at=None if late else at + timedelta(hours=2))
                session.add(d)
                w.overdue += late
                if not late:
                    sat = rnd.choice(["satisfied", "basic", "unsatisfied"])
                    comment = (f"我住{SECRET_PLACE}，电话{SECRET_NUMBER}，处理得还行" if secret
                               else "处理及时，感谢，我的电话是13700001111")
                    session.add(Followup(ticket_id=t.id, status="done", attempts=1, via="ivr", solved="yes",
                                         satisfaction=sat, comment_transcript=comment,
                                         answered_at=at + timedelta(hours=3), created_at=at))
                    w.followups += 1
                    w.satisfied += sat == "satisfied"
                    w.comments += not secret

    await store.run_write(work)
    return w
