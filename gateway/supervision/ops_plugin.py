"""The operators' metrics wiring (issue 14, section 5): queue events, the features' state and
the database's figures into ``/metrics`` (Prometheus text; :mod:`gateway.supervision.ops_metrics`).

Set up after every feature it reads (speech, calls, callback, sms, units): last in
``gateway.app.FEATURES``. Adds no route: ``GET /metrics`` (supervisor or admin) is the api
feature's. The calls' own counters are registered by the calls feature
(:mod:`gateway.calls.metrics`).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from gateway.api.metrics import SCRAPE_TOKEN, ScrapeToken
from gateway.calls.plugin import CALLS
from gateway.deps import Deps
from gateway.errors import SettingsError
from gateway.hotlines.keys import HOTLINES
from gateway.sms.plugin import WORKER
from gateway.speech.plugin import SPEECH
from gateway.supervision.ops_metrics import DatabaseFigures, QueueMetrics, StateCollector
from gateway.units.service import UNITS

OPS_DB = web.AppKey("ops_database_figures", DatabaseFigures)
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{32,256}")


def read_scrape_token(path: Path) -> str:
    """``GATEWAY_METRICS_TOKEN_FILE``'s token: 32 to 256 characters of a bearer token, one line."""
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"GATEWAY_METRICS_TOKEN_FILE={path}: cannot read it ({type(exc).__name__})") from None
    if not _TOKEN.fullmatch(token):
        raise SettingsError(f"GATEWAY_METRICS_TOKEN_FILE={path}: the token must be 32 to 256 letters, digits or "
                            "._~+/=- on one line (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def setup(app: web.Application, deps: Deps) -> None:
    admin = app[HOTLINES]

    def queues():
        return admin.config.queues if admin.config is not None else None

    registry = deps.metrics.registry
    queue_metrics = QueueMetrics(registry, queues, leader=lambda: deps.bus.leader)  # one instance counts
    deps.ami_events.add(queue_metrics, stage="notify")
    calls = app.get(CALLS)

    scrape_token = app[SCRAPE_TOKEN] = ScrapeToken()

    async def known(app: web.Application) -> AsyncIterator[None]:
        """Once the live configuration is loaded: its lines and queues at 0 (rates from the start);
        the Prometheus scrape token read (a bad file stops the start)."""
        if deps.settings.metrics_token_file is not None:
            scrape_token.set(await asyncio.to_thread(read_scrape_token, deps.settings.metrics_token_file))
        if admin.config is not None:
            queue_metrics.known(admin.config.queues)
            if calls is not None:
                calls.metrics.known_lines(admin.config.lines)
        yield

    app.cleanup_ctx.append(known)
    speech, units, sms_worker = app.get(SPEECH), app.get(UNITS), app.get(WORKER)
    registry.register(StateCollector(
        journal=deps.journal,
        speech_engine=lambda: speech.engine if speech is not None else None,
        sms_counters=lambda: sms_worker.counters if sms_worker is not None else {},
        hook_counters=lambda: units.sender.counters if units is not None else {}))
    figures = DatabaseFigures(store=deps.store, database_url=deps.settings.database_url,
                              sms_outbox=sms_worker.outbox if sms_worker is not None else None, queues=queues)
    registry.register(figures)
    deps.metrics.on_scrape(figures.refresh)
    app[OPS_DB] = figures
