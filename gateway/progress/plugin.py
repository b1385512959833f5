"""Progress by phone's wiring: the :class:`ProgressService` the calls feature hands its
interpreter (see :func:`gateway.calls.plugin.setup`), the live voice's lifecycle and counters."""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from gateway.deps import Deps
from gateway.progress.lookup import ProgressLookup
from gateway.progress.service import ProgressService
from gateway.progress.voice import LIVE_DIR, LiveVoice


def build(app: web.Application, deps: Deps) -> ProgressService:
    s = deps.settings
    # the caller's wait is bounded by the walk (speech_timeout); the voice's own cap only ends a
    # render that hangs, so a slow one still lands in the cache for the next caller
    voice = LiveVoice(s.prompts_dir / LIVE_DIR, timeout=max(120.0, 4 * s.progress_speech_timeout),
                      max_bytes=int(s.progress_cache_mb * (1 << 20)))
    service = ProgressService(ProgressLookup(deps.store), voice, clock=deps.clock.now,
                              lookback_days=s.progress_lookback_days, wrong_per_hour=s.progress_wrong_per_hour,
                              speech_timeout=s.progress_speech_timeout)
    deps.metrics.add("progress", lambda: {**service.counts, **voice.stats})

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        try:
            yield
        finally:
            voice.close()

    app.cleanup_ctx.append(lifecycle)
    return service
