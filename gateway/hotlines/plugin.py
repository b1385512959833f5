"""The hotlines feature's wiring: the live configuration version, Asterisk following it,
``SIGHUP`` reloads, the scheduler of changes, and the admin page and API.

Start: the live version is loaded (version 1 seeded from ``config/`` on a new
database), rendered for Asterisk, and Asterisk reloaded once AMI is up (it follows the
live version, not only ``config/``); then the scheduler applies due changes every
second. Stop: the scheduler ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from aiohttp import web

from gateway.deps import Deps
from gateway.hotlines.asterisk import AsteriskSync
from gateway.hotlines.http import add_admin_routes
from gateway.hotlines.keys import HOTLINES, PROMPT_DIRS, PromptDirs
from gateway.hotlines.reload import ConfigReloader
from gateway.hotlines.service import HotlineAdmin
from gateway.ivr_flows.validate import read_files
from gateway.pbx.ami_pool import AmiPool
from gateway.pbx.nodes import all_node_settings

log = logging.getLogger(__name__)
RELOADER = web.AppKey("hotline_reload", ConfigReloader)
SCHEDULER_TICK = 1.0
AMI_WAIT = 10.0  # seconds to wait for AMI at start before Asterisk is reloaded (it follows later changes anyway)


def voice_status() -> dict:
    """The prompts' voice (gateway.tts): engine, voice and the reason of a fallback; no I/O."""
    from gateway import tts

    state = tts.status()
    return {"engine": state["engine"], "voice": state["voice"], "problem": state["problem"],
            "loaded": state["loaded"]}


async def schedule_loop(admin: HotlineAdmin, tick: float = SCHEDULER_TICK) -> None:
    while True:
        await asyncio.sleep(tick)
        try:
            await admin.run_due()
        except Exception:  # noqa: BLE001 - the scheduler must survive a bad tick
            log.exception("scheduler tick failed")


def _nodes(deps: Deps) -> dict | None:
    """Each Asterisk node's settings and AMI client (issue 12); None for the single node of old."""
    if not deps.settings.asterisk_nodes:
        return None
    return {name: (node_s, deps.ami_nodes[name]) for name, node_s in all_node_settings(deps.settings)}


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    asterisk = AsteriskSync(s, deps.ami, _nodes(deps))
    if isinstance(deps.ami, AmiPool):  # several nodes: a node back is reloaded if it missed a version
        deps.ami.on_connected(asterisk.node_connected)
    admin = HotlineAdmin(store=deps.store, clock=deps.clock.now, applier=asterisk.apply,
                         initial_files=lambda: read_files(s.config_dir))
    reloader = ConfigReloader(admin, s.config_dir)
    app[HOTLINES] = admin
    app[PROMPT_DIRS] = PromptDirs(rendered=s.prompts_dir, recorded=s.prompt_override_dir,
                                  cache=s.cache_dir)
    app[RELOADER] = reloader
    add_admin_routes(app)
    deps.health.add("config_version", lambda: admin.config.version if admin.config else None)
    deps.health.add("config_version_id", lambda: admin.version_id)
    deps.health.add("last_reload", lambda: reloader.last_reload)
    if len(asterisk.nodes) > 1:
        deps.health.add("config_nodes", lambda: dict(asterisk.last_apply))  # per node: reloaded, or down
    deps.health.add("voice", voice_status)  # issue 10: which engine speaks the Mandarin prompts, and why

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        config = await admin.bootstrap()
        await asyncio.to_thread(asterisk.render, config, None)
        if await deps.ami.wait_connected(AMI_WAIT):
            await asterisk.reload_asterisk()  # Asterisk follows the live version, not only config/
        scheduler = asyncio.create_task(schedule_loop(admin), name="config-scheduler")
        try:
            yield
        finally:
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler

    app.cleanup_ctx.append(lifecycle)
