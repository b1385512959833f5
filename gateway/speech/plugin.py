"""The speech feature's wiring: :class:`Speech` under :data:`SPEECH`, started and stopped with the
application; its state in ``/healthz`` (``speech``) and ``/metrics`` (``audiosocket``, ``speech``)."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from aiohttp import web

from gateway.asr.menu_match import preload
from gateway.deps import Deps
from gateway.speech.service import Speech

SPEECH = web.AppKey("speech", Speech)


def setup(app: web.Application, deps: Deps) -> None:
    speech = Speech(deps.settings, deps.store)
    app[SPEECH] = speech
    deps.health.add("speech", speech.stats)
    deps.metrics.add("audiosocket", speech.counters)
    deps.metrics.add("speech", speech.stats)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        try:
            if deps.settings.speech:  # the spoken-menu matcher's pinyin tables: at start, not in a call
                await asyncio.to_thread(preload)
            await speech.start()
            yield
        finally:
            await speech.stop()

    app.cleanup_ctx.append(lifecycle)
