"""The reports feature's wiring (日报告、周分析、月通报): :class:`ReportService` under
:data:`REPORTS`, its API (:mod:`.reports_http`), the scheduled job, ``/healthz`` → ``reports``
and ``/metrics`` → ``reports``.

Needs the hotlines feature (the centre's time zone from the live configuration) set up before
it. Reads ``config/reports.yaml`` (:mod:`.report_config`; the defaults when absent; an invalid
file stops the gateway at start with every problem) and ``config/catalogue.yaml`` (districts
and matters; when it is invalid the reports count them as 未识别/未归类). The archive is
``<instance dir>/<archive_dir>`` (default ``<state>/asterisk/reports``).

``/healthz`` → ``reports.font`` is "ok" or says the CJK font is missing (fonts-wqy-microhei):
then no PDF can be made, the gateway reports itself degraded, the job waits and on-demand
generation answers 503 ``report-font-missing``.

The section 三率及排名 is the rates feature's (:mod:`.report_rates` over its service, set up before
this one); the hot spots are the report's own matter × place counts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web

from gateway.deps import Deps
from gateway.desk.catalogue_load import load_catalogue
from gateway.errors import GatewayError
from gateway.hotlines.keys import HOTLINES
from gateway.supervision.report_config import load_reports_config
from gateway.supervision.report_service import ReportService
from gateway.supervision.rates_http import RATES_SERVICE
from gateway.supervision.report_rates import rates_section
from gateway.supervision.reports import report_sections
from gateway.supervision.reports_http import REPORTS, add_report_routes
from gateway.tasks import running

log = logging.getLogger(__name__)
JOB_INTERVAL = 60.0  # seconds between the job's looks for a due report


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    admin = app[HOTLINES]

    def timezone() -> str:
        return admin.config.timezone if admin.config is not None else "Asia/Shanghai"

    # the rates feature (set up before this one) gives the section 三率及排名 its figures
    sections = report_sections(rates=rates_section(app[RATES_SERVICE]))
    service = ReportService(store=deps.store, archive_dir=s.instance_dir / "reports", clock=deps.clock.now,
                            timezone=timezone, sections=sections, leader=lambda: deps.bus.leader,
                            interval=JOB_INTERVAL)
    app[REPORTS] = service
    add_report_routes(app)
    deps.health.add("reports", service.health, ok=lambda value: value["font"] == "ok")
    deps.metrics.add("reports", lambda: dict(service.counters))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        service.config = await asyncio.to_thread(load_reports_config, s.config_dir / "reports.yaml")
        service.archive_dir = service.config.archive_path(s.instance_dir)
        try:
            service.catalogue = await asyncio.to_thread(load_catalogue, s.config_dir / "catalogue.yaml")
        except GatewayError as exc:
            log.error("reports: catalogue.yaml is invalid, districts and matters are counted as unknown: %s", exc)
        if await service.check_font() != "ok":
            log.error("reports: %s", service.font)
        async with running(service.loop(), "reports-job"):
            yield

    app.cleanup_ctx.append(lifecycle)
