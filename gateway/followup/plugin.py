"""The follow-up feature's wiring: :class:`FollowupService` under :data:`FOLLOWUP`, the scheduler
started and stopped with the application, the desk's follow-up API, ``/healthz`` → ``followup``
and ``/metrics`` → ``followup``.

Needs the hotlines feature (the live configuration: the ``followup`` flow and the calling
window) and the speech feature (the recogniser for comments) set up before it. Calls are
placed through the gateway's outbound calls when that feature is present (purpose
``followup``); without it the scheduler still creates the rows and the desk can follow up.
"""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from gateway.deps import Deps
from gateway.followup.http import FOLLOWUP, add_followup_routes
from gateway.followup.ivr import LivePrompts
from gateway.followup.service import PURPOSE, FollowupService, FollowupSettings
from gateway.followup.store import FollowupStore
from gateway.hotlines.keys import HOTLINES


def _outbound(app: web.Application):
    """The gateway's outbound calls (dialler, routes): set up by the calls feature."""
    from gateway.calls.plugin import OUTBOUND, OUTBOUND_ROUTES  # noqa: PLC0415

    return (app[OUTBOUND] if OUTBOUND in app else None), (app[OUTBOUND_ROUTES] if OUTBOUND_ROUTES in app else None)


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    admin = app[HOTLINES]

    def recording_path(recording) -> str:
        return str(s.local_path(f"{recording.path}.{recording.fmt}"))

    def transcriber():
        from gateway.speech.plugin import SPEECH  # noqa: PLC0415

        return app[SPEECH].engine if SPEECH in app else None

    dialler, routes = _outbound(app)
    service = FollowupService(store=FollowupStore(deps.store), config=lambda: admin.config, clock=deps.clock.now,
                              settings=FollowupSettings.of(s),
                              prompts=LivePrompts(prompts_dir=s.prompts_dir, cache_dir=s.cache_dir),
                              instance=deps.bus.instance_id, leader=lambda: deps.bus.leader, dialler=dialler,
                              recording_path=recording_path, transcriber=transcriber,
                              single_instance=deps.bus.backend == "local")
    if routes is not None:
        routes.register(PURPOSE, service.on_session)
    app[FOLLOWUP] = service
    add_followup_routes(app)
    deps.health.add("followup", service.health)
    deps.metrics.add("followup", lambda: dict(service.counters))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await service.stop()

    app.cleanup_ctx.append(lifecycle)
