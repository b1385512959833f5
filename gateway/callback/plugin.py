"""The callback feature's wiring (virtual hold): the IVR's offer, the dispatcher, the answered
call's route, the desk pop's flag and the supervisor's list.

Needs calls (the IVR handler; the outbound calls, when the gateway has them), desk and hotlines
set up before it. API::

    GET  /api/supervisor/callbacks                open callbacks, then recent ones [supervisor|admin]
    POST /api/supervisor/callbacks/{id}/cancel    cancel one that is not finished [supervisor|admin]
"""

from __future__ import annotations

import logging
import re
from typing import AsyncIterator

from aiohttp import web

from gateway.auth.http import USER, require_role
from gateway.callback.policy import RetryPolicy
from gateway.callback.service import PURPOSE, CallbackService
from gateway.callback.store import CallbackStore
from gateway.calls import plugin as calls_plugin
from gateway.deps import Deps
from gateway.desk.http import DESK
from gateway.errors import BadRequest
from gateway.hotlines.keys import HOTLINES
from gateway.ivr_flows.model import TransferNode

log = logging.getLogger(__name__)
CALLBACKS = web.AppKey("callbacks", CallbackService)


def notice_key(config) -> str | None:
    """The notice a called-back citizen hears: the primary flow's callback offer's ``notice``."""
    flow = config.flows.get(config.primary.flow)
    for node in (flow.nodes.values() if flow else ()):
        if isinstance(node, TransferNode) and node.callback is not None:
            return f"{flow.id}-{node.callback.notice}"
    return None


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    admin, desk = app[HOTLINES], app[DESK]
    outbound_key = getattr(calls_plugin, "OUTBOUND", None)
    routes_key = getattr(calls_plugin, "OUTBOUND_ROUTES", None)
    outbound = app.get(outbound_key) if outbound_key is not None else None
    service = CallbackService(
        store=CallbackStore(deps.store), ami=deps.ami, ami_nodes=deps.ami_nodes, clock=deps.clock.now,
        instance=deps.bus.instance_id,
        policy=RetryPolicy(attempts=s.callback_attempts, interval_s=s.callback_retry_seconds),
        over_seconds=s.callback_over_seconds, talk_seconds=s.callback_talk_seconds,
        ring_seconds=s.callback_ring_seconds, priority=s.callback_priority, check_seconds=s.callback_check_seconds,
        outbound=outbound, notice_key=lambda: notice_key(admin.config))
    app[CALLBACKS] = service
    app[calls_plugin.CALLS].callbacks = service  # the IVR's offer
    if routes_key is not None and routes_key in app:
        app[routes_key].register(PURPOSE, service.answered_call)
    else:
        log.warning("callbacks are kept but not placed: this gateway has no outbound calls")
    deps.ami.subscribe_raw(service.on_raw)  # a member free: maybe a callback's turn
    deps.ami_events.add(service.on_ami_event, stage="record")  # before the desk's pop reads the call's agent
    desk.callback_of = service.store.by_outbound
    desk.callback_of_ticket = service.store.of_ticket
    desk.overview_parts.append(service.overview)
    deps.metrics.add("callbacks", service.stats)
    app.router.add_get("/api/supervisor/callbacks", list_callbacks)
    app.router.add_post("/api/supervisor/callbacks/{callback_id}/cancel", cancel_callback)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app.cleanup_ctx.append(lifecycle)


def _callback_id(request: web.Request) -> int:
    raw = request.match_info["callback_id"]
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest("callback id must be a number (0-9)")
    return int(raw)


@require_role("supervisor", "admin")
async def list_callbacks(request: web.Request) -> web.Response:
    return web.json_response({"items": await request.app[CALLBACKS].store.recent()})


@require_role("supervisor", "admin")
async def cancel_callback(request: web.Request) -> web.Response:
    row = await request.app[CALLBACKS].cancel(_callback_id(request), actor=request[USER]["username"])
    return web.json_response(row)
