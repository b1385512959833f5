"""The units feature's service: the catalogue's units, the deadlines, the calendar of the live
configuration, the store of dispatches and the periodic job (see :mod:`gateway.units.plugin`)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from gateway.errors import GatewayError
from gateway.units.deadlines import DEFAULTS, Calendar, calendar_from_hotlines
from gateway.units.hooks import HookSender
from gateway.units.store import UnitStore

log = logging.getLogger(__name__)


def load_units(config_dir: Path) -> dict[str, str]:
    """Catalogue unit id -> name (every unit: departments, police, enterprises, districts, streets)."""
    from gateway.desk.catalogue_load import load_catalogue

    catalogue = load_catalogue(Path(config_dir) / "catalogue.yaml")
    return {uid: unit.name for uid, unit in catalogue.units.items()}


def check_unit_id(config_dir: Path, unit_id: str | None) -> str | None:
    """Why ``unit_id`` cannot be a unit account's unit, or None (for the CLI)."""
    if not unit_id:
        return "a unit account needs --unit <id> (a unit id of catalogue.yaml, e.g. water)"
    try:
        units = load_units(config_dir)
    except GatewayError as exc:
        return f"catalogue.yaml is invalid, cannot check the unit: {exc}"
    if unit_id not in units:
        import difflib

        hint = difflib.get_close_matches(unit_id, sorted(units), n=3)
        return (f"unknown unit {unit_id!r}: not in catalogue.yaml" + (f" (did you mean {', '.join(hint)}?)"
                                                                        if hint else "")
                + f" / 未知的承办单位 {unit_id!r}（职责目录中没有）")
    return None


class UnitService:
    def __init__(self, *, store, clock, units: dict | None = None, deadlines=DEFAULTS, hooks: dict | None = None,
                 hotlines_text=lambda: None, interval: float = 30.0, post=None) -> None:
        self.clock = clock
        self.unit_names: dict = dict(units or {})
        self.deadline_table = deadlines
        self.hooks = dict(hooks or {})
        self.hotlines_text = hotlines_text  # the live hotlines.yaml text (public holidays, time zone)
        self._calendar: tuple[object, Calendar] | None = None
        self.interval = interval
        self.catalogue_problem: str | None = None
        self.store = UnitStore(store, units=lambda: self.unit_names, deadlines=lambda: self.deadline_table,
                               calendar=self.calendar, hooked=lambda uid: uid in self.hooks)
        self.sender = HookSender(store, self.hooks, post=post)
        self.counters = {"reminders": 0, "job_runs": 0, "job_errors": 0}

    def calendar(self) -> Calendar:
        text = self.hotlines_text()
        if self._calendar is None or self._calendar[0] is not text:
            self._calendar = (text, calendar_from_hotlines(text))
        return self._calendar[1]

    async def run_jobs(self) -> int:
        """One run of the periodic job: reminders and overdue notices, then webhook deliveries."""
        now = self.clock()
        sent = await self.store.due_reminders(now)
        self.counters["reminders"] += sent
        if self.hooks:
            await self.sender.run_once(self.clock())
        self.counters["job_runs"] += 1
        return sent

    async def loop(self) -> None:
        while True:
            try:
                await self.run_jobs()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away: try again next period
                self.counters["job_errors"] += 1
                log.exception("units job failed; retrying in %.0f s", self.interval)
            await asyncio.sleep(self.interval)  # the job's period, not a synchronisation


UNITS = web.AppKey("units", UnitService)
