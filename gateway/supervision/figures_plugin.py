"""The call-centre figures' wiring (issue 14, part 2): queue legs from AMI, the figures API.

Needs the desk (the hotline's time zone) and hotlines set up before it. Reads the ``figures:``
section of ``config/supervision.yaml`` (defaults when absent; an invalid section stops the
gateway at start with every problem: file, line, field). The queue legs are written at the
AMI ``record`` stage by every instance (idempotent writes, see
:mod:`gateway.supervision.queue_legs`); the figures are read from the database and the agents'
states asked from every Asterisk node on each request, so several instances agree.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from aiohttp import web

from gateway.deps import Deps
from gateway.desk.http import DESK
from gateway.supervision.figures import FILE, load_figures
from gateway.supervision.figures_http import FIGURES, add_figures_routes
from gateway.supervision.figures_service import FiguresService
from gateway.supervision.queue_legs import QueueLegRecorder


def setup(app: web.Application, deps: Deps) -> None:
    desk = app[DESK]
    nodes = dict(deps.ami_nodes) or {"asterisk": deps.ami}
    service = FiguresService(store=deps.store, ami_nodes=nodes, clock=deps.clock.now,
                             timezone=lambda: desk.timezone)
    app[FIGURES] = service
    recorder = QueueLegRecorder(deps.store, deps.clock.now)
    deps.ami_events.add(recorder, stage="record")
    add_figures_routes(app)
    deps.metrics.add("figures", lambda: {**service.counters, **{f"legs_{k}": v for k, v in recorder.counters.items()}})

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        config = await asyncio.to_thread(load_figures, deps.settings.config_dir / FILE)
        service.config = config
        recorder.start()  # queue legs written by a task of their own: AMI's path never waits for them
        try:
            yield
        finally:
            await recorder.stop()

    app.cleanup_ctx.append(lifecycle)
