"""Early warnings' service: one run (resolve new tickets' places, detect, open/update alerts, notify) and
the periodic loop. The detectors are :mod:`gateway.supervision.warnings` (pure); the tables and
queries :mod:`gateway.supervision.warnings_store`.

A run is idempotent: an alert is an episode of its subject (kind, matter, place) held by a unique
column, so running again (on demand, or the next period) updates the alert a surge already has.
The periodic detection runs on the instance holding the bus's leadership (one per site); webhook
deliveries are claimed row by row, so any instance may send them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from aiohttp import web

from gateway.desk.catalogue import Catalogue
from gateway.supervision import places
from gateway.supervision import warnings as w
from gateway.supervision.warnings_store import WEBHOOK, Finding, WarningDelivery, WarningStore
from gateway.tasks import cancel_and_wait
from gateway.units.hooks import Hook, HookSender

log = logging.getLogger(__name__)


class WarningService:
    def __init__(self, *, store, clock: Callable[[], datetime], settings: w.WarningSettings = w.DEFAULTS,
                 catalogue: Catalogue | None = None, leader: Callable[[], bool] = lambda: True,
                 unit_names: Callable[[], dict] = dict, unit_hooked: Callable[[str], bool] = lambda _u: False,
                 post=None) -> None:
        self.clock = clock
        self.settings = settings
        self.catalogue = catalogue
        self.catalogue_problem: str | None = None
        self.leader = leader
        self.unit_names = unit_names  # catalogue unit id -> name (forwarding targets)
        self.hooks: dict[str, Hook] = {}
        self.store = WarningStore(store, webhook=lambda: WEBHOOK in self.hooks, unit_hooked=unit_hooked)
        self.sender = HookSender(store, self.hooks, post=post, model=WarningDelivery)
        self.set_settings(settings)
        self.counters = {"runs": 0, "run_errors": 0, "classified": 0, "alerts_created": 0, "alerts_updated": 0,
                         "alerts_grown": 0}
        self.last_run: dict | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    def set_settings(self, settings: w.WarningSettings) -> None:
        self.settings = settings
        self.hooks.clear()
        if settings.webhook is not None:
            self.hooks[WEBHOOK] = Hook(WEBHOOK, settings.webhook.url, settings.webhook.secret)

    # -- one run --------------------------------------------------------------------------------
    async def classify_new(self, now: datetime) -> int:
        """Resolve the look-back's tickets not resolved yet (or edited since): :mod:`places`."""
        return await places.resolve_places(self.store.store, self.catalogue, now, since=now - self.settings.lookback,
                                           on="created_at", max_batches=None)

    async def findings(self, now: datetime) -> list[Finding]:
        cfg = self.settings
        s = cfg.surge
        now_hour = w.hour_of(now)
        width = s.window_hours
        start = datetime.fromtimestamp((now_hour - width + 1) * w.HOUR, timezone.utc)
        hourly = await self.store.hourly_counts(now_hour - (s.baseline_windows + 1) * width + 1, now_hour)
        series = w.window_series(hourly, now_hour, width, s.baseline_windows)
        usable = w.usable_windows(now_hour, await self.store.first_hour(), width, s.baseline_windows)
        out: list[Finding] = []
        for surge in w.detect_surges(series, usable, s, w.districts_of(self.catalogue)):
            matter, level, place = surge.key
            ids = await self.store.tickets_of(matter, level, place, now_hour - width + 1, now_hour)
            street, district = (place, self._district(place)) if level == "street" else (None, place)
            out.append(Finding("surge", surge.subject, matter, w.matter_name(self.catalogue, matter), level, place,
                               self._place_name(street, district), surge.count, start, now, tuple(ids),
                               baseline=surge.baseline, expected=round(surge.expected, 4), p_value=surge.p_value,
                               units=w.responsible_units(self.catalogue, matter, street, district)))
        days = cfg.repeat.days
        rows = await self.store.repeat_rows(now_hour - days * 24 + 1, now_hour)
        for rep in w.detect_repeats(rows, cfg.repeat):
            places = await self.store.places_of(list(rep.ticket_ids))
            street = next((p[3] for p in places if p[3]), None)
            shown = next((p[1] for p in reversed(places) if p[1] and not p[2]), None)
            name = w.mask_place(shown) if shown else f"{self._place_name(street, self._district(street))}（地址保密）"
            out.append(Finding("repeat", rep.subject, rep.matter, w.matter_name(self.catalogue, rep.matter),
                               "address", street, name, len(rep.ticket_ids), now - timedelta(days=days), now,
                               rep.ticket_ids,
                               units=w.responsible_units(self.catalogue, rep.matter, street, self._district(street))))
        return out

    def _district(self, street: str | None) -> str | None:
        unit = self.catalogue.units.get(street) if self.catalogue and street else None
        return unit.district if unit else None

    def _place_name(self, street: str | None, district: str | None) -> str:
        units = self.catalogue.units if self.catalogue else {}
        parts = [(units[i].place_name or units[i].name) if i in units else i for i in (district, street) if i]
        return "".join(parts) or "地点未识别"

    async def run_once(self, now: datetime | None = None) -> dict:
        """Classify, detect, open or update alerts, queue and send notices. Returns what it did."""
        async with self._lock:  # on-demand and periodic runs never overlap in one instance
            now = now or self.clock()
            classified = await self.classify_new(now)
            found = await self.findings(now) if self.settings.enabled and self.catalogue is not None else []
            s = self.settings
            keep = {"surge": timedelta(hours=s.surge.window_hours), "repeat": timedelta(days=s.repeat.days)}
            applied = await self.store.apply(found, now, keep=lambda kind: keep[kind], grown=s.grown)
            sent = await self.sender.run_once(now) if self.hooks else 0
            self.counters["runs"] += 1
            self.counters["classified"] += classified
            self.counters["alerts_created"] += len(applied["created"])
            self.counters["alerts_updated"] += applied["updated"]
            self.counters["alerts_grown"] += len(applied["grown"])
            self.last_run = {"at": now.isoformat(), "classified": classified, "found": len(found),
                             "created": applied["created"], "updated": applied["updated"], "grown": applied["grown"],
                             "ended": applied["ended"], "sent": sent}
            log.info("warnings: run at %s: %d classified, %d found, %d new, %d updated (%d grown), %d ended",
                     now.isoformat(), classified, len(found), len(applied["created"]), applied["updated"],
                     len(applied["grown"]), applied["ended"])
            return self.last_run

    # -- the loop -------------------------------------------------------------------------------
    async def tick(self) -> None:
        if self.leader():
            await self.run_once()
        elif self.hooks:
            await self.sender.run_once(self.clock())

    async def loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away: try again next period
                self.counters["run_errors"] += 1
                log.exception("warnings run failed; retrying in %.0f min", self.settings.run_every_minutes)
            await asyncio.sleep(self.settings.run_every_minutes * 60)  # the period, not a synchronisation

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.loop(), name="warnings")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def health(self) -> dict:
        out = {"enabled": self.settings.enabled, "catalogue": self.catalogue_problem or "ok",
               "webhook": WEBHOOK in self.hooks, "leader": self.leader(), "last_run": self.last_run}
        out["deliveries"] = await self.store.delivery_counts()
        return out


WARNINGS = web.AppKey("warnings", WarningService)
