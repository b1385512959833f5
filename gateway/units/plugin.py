"""The units feature's wiring: dispatch on submit, the /unit page and API, the supervisor's
review and 督办 lists, deadline reminders and units' webhooks (a periodic job).

Needs the desk (its DeskStore calls :meth:`UnitStore.dispatch_submitted` inside the submit's
transaction) and the hotlines feature (public holidays and the time zone of the live
configuration) set up before it. Reads ``config/catalogue.yaml`` (the units),
``config/deadlines.yaml`` (time limits; the defaults when absent) and the units' webhooks
(``GATEWAY_UNIT_HOOKS``, default ``config/unit_hooks.yaml``; none when absent). An invalid
deadlines or webhooks file stops the gateway at start with every problem (file, line, field);
an invalid catalogue leaves every submitted ticket at the hotline (``review``/``no_unit``) and
says so in ``/healthz`` (``units.catalogue``).

The job (every ``GATEWAY_UNIT_JOB_INTERVAL`` s) runs on every instance; each reminder and each
webhook delivery is claimed in the database first, so it happens once across instances and
after a restart (``dispatches.reminded_at``/``overdue_at``, ``unit_hook_deliveries``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web

from gateway.deps import Deps
from gateway.desk.http import DESK
from gateway.errors import GatewayError
from gateway.hotlines.keys import HOTLINES
from gateway.tasks import running
from gateway.units.deadlines import load_deadlines
from gateway.units.hooks import load_hooks
from gateway.units.http import add_unit_routes
from gateway.units.service import UNITS, UnitService, check_unit_id, load_units  # noqa: F401 (check_unit_id: the CLI's)

log = logging.getLogger(__name__)


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    admin = app[HOTLINES]
    service = UnitService(store=deps.store, clock=deps.clock.now, interval=s.unit_job_interval,
                          hotlines_text=lambda: (admin.files or {}).get("hotlines.yaml"))
    app[UNITS] = service
    app[DESK].desk.on_submitted = service.store.dispatch_submitted
    add_unit_routes(app)
    deps.health.add("units", lambda: {"catalogue": service.catalogue_problem or "ok",
                                      "hooks": len(service.hooks)})
    deps.metrics.add("units", lambda: {**service.counters, **{f"hook_{k}": v for k, v in service.sender.counters.items()}})

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        try:
            service.unit_names = await asyncio.to_thread(load_units, s.config_dir)
        except GatewayError as exc:
            service.catalogue_problem = str(exc)
            log.error("units: catalogue.yaml is invalid, submitted tickets stay at the hotline: %s", exc)
        service.deadline_table = await asyncio.to_thread(load_deadlines, s.config_dir / "deadlines.yaml")
        hooks = await asyncio.to_thread(load_hooks, s.unit_hooks_file, service.unit_names)
        service.hooks.clear()
        service.hooks.update(hooks)
        async with running(service.loop(), "units-job"):
            yield

    app.cleanup_ctx.append(lifecycle)
