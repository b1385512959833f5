"""The early warnings' wiring (预警): :class:`WarningService` under :data:`WARNINGS`, its periodic run
started and stopped with the application, the supervisors' and units' API, ``/healthz`` →
``warnings`` and ``/metrics`` → ``warnings``.

Needs the units feature (the catalogue's units to forward to, and their webhooks) set up before
it. Reads ``config/warnings.yaml`` (the defaults when absent; an invalid file stops the gateway at
start with every problem: file, line, field) and ``config/catalogue.yaml`` (matters and places;
an invalid catalogue turns the detection off and says so in ``/healthz``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web

from gateway.deps import Deps
from gateway.desk.catalogue_load import load_catalogue
from gateway.errors import GatewayError
from gateway.supervision.warnings import load_settings
from gateway.supervision.warnings_http import add_warning_routes
from gateway.supervision.warnings_service import WARNINGS, WarningService
from gateway.units.service import UNITS

log = logging.getLogger(__name__)


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    units = app[UNITS] if UNITS in app else None
    service = WarningService(store=deps.store, clock=deps.clock.now, leader=lambda: deps.bus.leader,
                             unit_names=lambda: units.unit_names if units else {},
                             unit_hooked=lambda uid: bool(units) and uid in units.hooks)
    app[WARNINGS] = service
    add_warning_routes(app)
    deps.health.add("warnings", service.health)
    deps.metrics.add("warnings", lambda: {**service.counters,
                                          **{f"hook_{k}": v for k, v in service.sender.counters.items()}})

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        service.set_settings(await asyncio.to_thread(load_settings, s.config_dir / "warnings.yaml"))
        try:
            service.catalogue = await asyncio.to_thread(load_catalogue, s.config_dir / "catalogue.yaml")
        except GatewayError as exc:
            service.catalogue_problem = str(exc)
            log.error("warnings: catalogue.yaml is invalid, no early warnings: %s", exc)
        service.start()
        try:
            yield
        finally:
            await service.stop()

    app.cleanup_ctx.append(lifecycle)
