"""The three rates' wiring: :class:`RatesService` under :data:`RATES_SERVICE`, the API
(``/api/supervisor/rates``, ``/api/supervisor/rates/tickets``), ``/healthz`` → ``rates`` and a
periodic job placing recent tickets (district, street/township) for the rankings and reports.

Needs the hotlines feature (the centre's time zone) set up before it. Reads
``config/supervision.yaml`` → ``rates:`` (an invalid section stops the gateway at start with
every problem: file, line, field) and ``config/catalogue.yaml`` (names and places; when it is
invalid the district and street rankings show every ticket under 未识别, and ``/healthz`` says so).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from gateway.deps import Deps
from gateway.errors import GatewayError
from gateway.hotlines.keys import HOTLINES
from gateway.supervision.rates_config import load_rates
from gateway.supervision.rates_http import RATES_SERVICE, RatesService, add_rates_routes
from gateway.supervision.places import resolve_places
from gateway.tasks import running

log = logging.getLogger(__name__)
JOB_INTERVAL = 300.0  # seconds between two runs of the places job
JOB_LOOKBACK = timedelta(days=40)  # tickets decided this recently are placed by the job


def _load_catalogue(config_dir: Path):
    from gateway.desk.catalogue_load import load_catalogue  # noqa: PLC0415

    return load_catalogue(Path(config_dir) / "catalogue.yaml")


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    admin = app[HOTLINES]
    service = RatesService(store=deps.store, clock=deps.clock.now,
                           timezone=lambda: getattr(admin.config, "timezone", None) or "Asia/Shanghai")
    app[RATES_SERVICE] = service
    add_rates_routes(app)
    problem: dict = {"catalogue": None}
    deps.health.add("rates", lambda: {"catalogue": problem["catalogue"] or "ok",
                                      "response": service.config.response_within, "rank_by": service.config.rank_by})

    async def job() -> None:
        while True:
            try:
                now = deps.clock.now()
                await resolve_places(deps.store, service.catalogue, now, since=now - JOB_LOOKBACK)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the job must outlive one bad run
                log.exception("rates: placing tickets failed; next run in %.0f s", JOB_INTERVAL)
            await asyncio.sleep(JOB_INTERVAL)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        service.config = await asyncio.to_thread(load_rates, s.config_dir / "supervision.yaml")
        try:
            service.catalogue = await asyncio.to_thread(_load_catalogue, s.config_dir)
        except GatewayError as exc:
            problem["catalogue"] = str(exc)
            log.error("rates: catalogue.yaml is invalid, districts and streets are 未识别: %s", exc)
        if service.catalogue is None:
            yield
            return
        async with running(job(), "rates-places"):
            yield

    app.cleanup_ctx.append(lifecycle)
