"""The SMS feature's wiring (issue 13): the outbox, its sender loop, health and the supervisor's list.

    GET  /api/sms                  texts not sent yet and dead ones, numbers masked [supervisor|admin]
    POST /api/sms/{id}/retry       send a failed or dead text again (audited)       [supervisor|admin]

``/healthz`` ``sms``: ``backlog`` (texts not sent yet), ``oldest_s``, ``dead``, ``sender``
(``webhook`` or ``none``) and a ``note`` when nothing can be sent; degraded when a configured
sender has left a text unsent for over 15 minutes.
"""

from __future__ import annotations

import re
from typing import AsyncIterator

from aiohttp import web

from gateway.auth.http import USER, require_role
from gateway.deps import Deps
from gateway.hotlines.keys import HOTLINES
from gateway.sms.outbox import Outbox
from gateway.sms.senders import sender_from_settings
from gateway.sms.worker import SmsWorker
from gateway.errors import BadRequest

OUTBOX = web.AppKey("sms_outbox", Outbox)
WORKER = web.AppKey("sms_worker", SmsWorker)
STALE_S = 900.0


@require_role("supervisor", "admin")
async def list_sms(request: web.Request) -> web.Response:
    items = await request.app[OUTBOX].listing()
    return web.json_response({"items": items, "stats": await request.app[OUTBOX].stats()})


@require_role("supervisor", "admin")
async def retry_sms(request: web.Request) -> web.Response:
    raw = request.match_info["sms_id"]
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest("sms id must be a number")
    row = await request.app[OUTBOX].retry(int(raw), actor=request[USER]["username"])
    request.app[WORKER].wake()
    return web.json_response(row)


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    admin = app[HOTLINES]
    if admin.config is not None:  # ticket numbers' dates: the centre's time zone (hotlines.yaml)
        deps.store.timezone = admin.config.timezone
    outbox = Outbox(deps.store, max_attempts=s.sms_max_attempts, retry_seconds=s.sms_retry_seconds)
    sender = sender_from_settings(s)
    worker = SmsWorker(outbox, sender, instance=deps.bus.instance_id, poll=s.sms_poll_seconds)
    app[OUTBOX] = outbox
    app[WORKER] = worker

    async def health() -> dict:
        try:
            stats = await outbox.stats()
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return {"error": type(exc).__name__, "sender": worker.sender.name if worker.sender else "none"}
        stats["sender"] = worker.sender.name if worker.sender else "none"
        if worker.sender is None:
            stats["note"] = "no SMS sender configured (GATEWAY_SMS_WEBHOOK_URL): texts are kept pending"
        stats.update({k: v for k, v in worker.counters.items() if k != "sent"})
        return stats

    deps.health.add("sms", health, ok=lambda v: "error" in v or v.get("sender") == "none"
                    or v.get("oldest_s", 0) <= STALE_S)
    app.router.add_get("/api/sms", list_sms)
    app.router.add_post("/api/sms/{sms_id}/retry", retry_sms)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await worker.start()
        try:
            yield
        finally:
            await worker.stop()

    app.cleanup_ctx.append(lifecycle)
