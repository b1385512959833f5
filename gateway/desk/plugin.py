"""The desk feature's wiring: :class:`DeskService` under :data:`DESK` (screen pops, decisions,
suggestions, the supervisor's live board), its pages and API, and the AMI events it
reacts to (after the call's row is written: the pop reads who answered).

Needs the auth feature (users) and the hotlines feature (the configuration's time zone)
set up before it. Suggestions come from ``config/catalogue.yaml`` and
``config/knowledge/``; when those are invalid the desk runs without them and says so
in ``/healthz`` (``desk.suggestions``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import AsyncIterator

from aiohttp import web

from gateway.auth.http import AUTH
from gateway.deps import Deps
from gateway.desk.http import DESK, add_desk_routes
from gateway.desk.service import DeskService
from gateway.errors import GatewayError
from gateway.hotlines.keys import HOTLINES

log = logging.getLogger(__name__)


@dataclass
class SuggestionState:
    problem: str | None = None  # why suggestions are off, if they are


def _load_suggester(config_dir, state: SuggestionState):
    """Suggestions from config/catalogue.yaml and config/knowledge/; None (and logged) if invalid."""
    from gateway.desk.suggestions import load_suggester

    try:
        return load_suggester(config_dir)
    except GatewayError as exc:
        state.problem = str(exc)
        log.error("desk suggestions are off: %s", exc)
        return None


def setup(app: web.Application, deps: Deps) -> None:
    admin = app[HOTLINES]
    desk = DeskService(store=deps.store, users=app[AUTH], recordings_dir=deps.settings.recordings_dir,
                       suggester=None, clock=deps.clock.now, ami=deps.ami,
                       transfers=lambda: admin.config.emergency_transfers,  # the live version's, at each use
                       journal=deps.journal,
                       bus=deps.bus)  # pops, board and transfers shared with the other instances
    app[DESK] = desk
    add_desk_routes(app)
    suggestions = SuggestionState()
    deps.ami_events.add(desk.on_ami_event, stage="notify")
    deps.health.add("desk", lambda: {"suggestions": suggestions.problem or "on",
                                     "connections": desk.hub.connections()})
    deps.metrics.add("desk", lambda: dict(desk.counters))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        desk.use_timezone(admin.config.timezone)  # the hotlines feature loaded the live version
        desk.suggester = await asyncio.to_thread(_load_suggester, deps.settings.config_dir, suggestions)
        yield

    app.cleanup_ctx.append(lifecycle)
