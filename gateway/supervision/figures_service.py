"""The figures service: periods from requests, figures counted by the database (:mod:`.figures_sql`),
agents' states from AMI."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

from gateway.errors import GatewayError
from gateway.masking import mask_text
from gateway.supervision import agent_states as states
from gateway.supervision.figures import DEFAULTS, FiguresConfig, Period, parse_period
from gateway.supervision.figures_sql import abandoned_sql, compute_sql, trend_sql
from gateway.supervision.figures_store import FiguresStore


class FiguresService:
    def __init__(self, *, store, ami_nodes: dict, clock: Callable[[], datetime],
                 timezone: Callable[[], str] = lambda: "Asia/Shanghai", config: FiguresConfig = DEFAULTS,
                 epoch: Callable[[], float] = time.time) -> None:
        self.store = store
        self.rows = FiguresStore(store)
        self.ami_nodes = ami_nodes  # node name -> AMI client: each is asked, none is trusted for another
        self.clock = clock
        self.timezone = timezone
        self.config = config
        self.epoch = epoch
        self.counters = {"requests": 0, "ami_errors": 0}

    def period(self, query) -> Period:
        tz = self.timezone()
        today = self.clock().astimezone(ZoneInfo(tz)).date()
        return parse_period(query, today=today, timezone=tz, max_days=self.config.max_days)

    async def figures(self, period: Period) -> dict:
        self.counters["requests"] += 1
        now = self.clock()
        out, pending, agents = await asyncio.gather(compute_sql(self.store, period.start, period.end, self.config),
                                                    self.rows.pending(now), self.agents())
        drafts_by_agent = pending["drafts"].pop("per_agent")
        load = {a["agent"]: a for a in out.pop("agents_load")}
        for agent in agents["items"]:
            mine = load.pop(agent["agent"], {"answered": 0, "talk_s": 0, "acw_s": 0})
            agent.update(answered=mine["answered"], talk_s=mine["talk_s"], acw_s=mine["acw_s"],
                         drafts_open=drafts_by_agent.get(agent["agent"], 0))
        for agent_id, mine in sorted(load.items()):  # answered in the period, no longer a member now
            agents["items"].append({"agent": agent_id, "name": "", "state": "unknown", "state_zh": "不在队列",
                                    "queues": [], "calls_taken": 0, "paused_reason": "", "last_call_s": None,
                                    "answered": mine["answered"], "talk_s": mine["talk_s"], "acw_s": mine["acw_s"],
                                    "drafts_open": drafts_by_agent.get(agent_id, 0)})
        return {"period": period.as_dict(), "generated_at": now.isoformat(),
                "config": {"service_level_seconds": self.config.service_level_seconds,
                           "short_abandon_seconds": self.config.short_abandon_seconds,
                           "after_call_max_seconds": self.config.after_call_max_seconds},
                **out, "pending": pending, "agents": agents}

    async def trend(self, period: Period) -> dict:
        self.counters["requests"] += 1
        return {"period": period.as_dict(), "bucket": period.bucket,
                "config": {"service_level_seconds": self.config.service_level_seconds},
                "points": await trend_sql(self.store, period, self.config)}

    async def agents(self) -> dict:
        """Every connected node's QueueStatus, asked now (Asterisk is the shared truth)."""
        messages: list = []
        asked, answered, errors = 0, 0, []
        for name, client in self.ami_nodes.items():
            if not client.connected:
                errors.append(f"{name}: not connected")
                continue
            asked += 1
            try:
                reply = await client.action({"Action": "QueueStatus"}, as_list=True,
                                            timeout=self.config.ami_timeout_seconds)
            except GatewayError as exc:
                self.counters["ami_errors"] += 1
                errors.append(f"{name}: {mask_text(str(exc))}")
                continue
            answered += 1
            messages += [dict(m.items()) if hasattr(m, "items") else m for m in reply]
        items = states.agent_states(messages, now_epoch=self.epoch(), wrapup_s=self.config.wrapup_seconds)
        return {"source": "ami", "nodes": len(self.ami_nodes), "nodes_answered": answered, "errors": errors,
                "summary": states.summary(items), "items": items}

    async def today_abandoned(self, since: datetime) -> dict:
        """Today's abandoned callers, in the queue and in the IVR (the overview's card)."""
        return await abandoned_sql(self.store, since, self.clock(), self.config)
