"""The agent desk and supervisor API, their pages, and the desk's WebSocket.

Routes (all behind a login; roles in brackets)::

    GET  /desk, /supervisor                      pages [agent|supervisor|admin], [supervisor|admin]
    GET  /api/desk/inbox                         my drafts + the last pop number [desk roles]
    GET  /api/desk/ws?since=N                    WebSocket: screen pops, missed ones first
    GET  /api/desk/tickets/{id}                  the ticket as I may see it, with suggestions
    PUT  /api/desk/tickets/{id}/draft            save what I typed (no version change)
    POST /api/desk/tickets/{id}/submit           dispatch (version_id required; 409 if decided)
    POST /api/desk/tickets/{id}/close            answered on the call (same rules)
    POST /api/desk/tickets/{id}/transfer         {"service": "120"}: the caller to the emergency service
                                                 [the agent who answered, supervisor|admin]
    GET  /api/desk/tickets/{id}/dispatch         what the handling unit receives
    GET  /api/tickets/{id}/recording             the caller's recording (audio/wav)
    GET  /api/tickets/{id}/audit                 the ticket's audit trail [supervisor|admin]
    GET  /api/supervisor/overview                live calls, queues, agents; today's counts
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web

from gateway.auth.http import AUTH, USER, require_role, session_token
from gateway.desk.schemas import DraftBody, TransferBody, decision_model
from gateway.desk.access import dispatch_document, transfer_choices
from gateway.desk.service import DeskService
from gateway.errors import BadRequest
from gateway.ivr_flows.model import CATEGORIES
from gateway.web.schema import parse
from gateway.web.edge import same_origin
from gateway.web.params import ticket_id

log = logging.getLogger(__name__)
DESK = web.AppKey("desk", DeskService)
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
DESK_ROLES = ("agent", "supervisor", "admin")
SESSION_CHECK = 30.0  # seconds between session checks of an open WebSocket
MAX_DRAFT = 32_000


_ticket_id = ticket_id


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC / name)  # CSP, framing, referrer and caching: gateway.web.edge


@require_role(*DESK_ROLES, page=True)
async def desk_page(request: web.Request) -> web.StreamResponse:
    return _page("desk.html")


@require_role("supervisor", "admin", page=True)
async def supervisor_page(request: web.Request) -> web.StreamResponse:
    return _page("supervisor.html")


STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_STATIC_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


async def static_file(request: web.Request) -> web.StreamResponse:
    """A script or style sheet under ``web/static`` (subfolders too: ES modules import each other).

    Only ``.js`` and ``.css``, each served with its type (a module script needs a JavaScript
    type under ``nosniff``); no dot-files, no ``..``, nothing outside the folder.
    """
    parts = request.match_info["name"].split("/")
    if not all(_STATIC_PART.fullmatch(p) for p in parts) or Path(parts[-1]).suffix not in STATIC_TYPES:
        raise web.HTTPNotFound()
    path = STATIC.joinpath(*parts)
    if not await asyncio.to_thread(path.is_file):
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-store",
                                           "Content-Type": STATIC_TYPES[path.suffix]})


@require_role(*DESK_ROLES)
async def inbox(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    user = request[USER]
    last_seq = desk.hub.last_seq(user["username"])  # before the query: a pop meanwhile is replayed, not lost
    items = await desk.inbox(user)
    return web.json_response({"items": items, "last_seq": last_seq, "epoch": desk.hub.epoch,
                              "agent_id": user.get("agent_id"), "transfers": transfer_choices(desk.transfers())})


@require_role(*DESK_ROLES)
async def get_desk_ticket(request: web.Request) -> web.Response:
    return web.json_response(await request.app[DESK].view(_ticket_id(request), request[USER]))


@require_role(*DESK_ROLES)
async def save_draft(request: web.Request) -> web.Response:
    body = await parse(request, DraftBody, limit=MAX_DRAFT)
    desk = request.app[DESK]
    saved = await desk.save_draft(_ticket_id(request), request[USER], body.data)
    return web.json_response(saved)


async def _decide(request: web.Request, outcome: str) -> web.Response:
    body = await parse(request, decision_model(outcome))
    desk = request.app[DESK]
    ticket = await desk.decide(_ticket_id(request), outcome, body, request[USER], categories=CATEGORIES)
    return web.json_response(ticket)


@require_role(*DESK_ROLES)
async def submit(request: web.Request) -> web.Response:
    return await _decide(request, "submitted")


@require_role(*DESK_ROLES)
async def close(request: web.Request) -> web.Response:
    return await _decide(request, "answered")


@require_role(*DESK_ROLES)
async def transfer(request: web.Request) -> web.Response:
    """The emergency banner's action: the caller's live channel to the service's configured destination."""
    service = (await parse(request, TransferBody, limit=1_000)).service
    return web.json_response(await request.app[DESK].transfer(_ticket_id(request), service, request[USER]))


@require_role(*DESK_ROLES)
async def dispatch(request: web.Request) -> web.Response:
    ticket = await request.app[DESK].store.get_ticket(_ticket_id(request))
    return web.json_response(dispatch_document(ticket))


@require_role(*DESK_ROLES)
async def recording(request: web.Request) -> web.StreamResponse:
    desk = request.app[DESK]
    ticket = await desk.check_hearing(_ticket_id(request), request[USER])
    path = await asyncio.to_thread(desk.recording_file, ticket)
    await desk.desk.audit(request[USER]["username"], "ticket.recording_played", ticket["id"])
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})


@require_role("supervisor", "admin")
async def ticket_audit(request: web.Request) -> web.Response:
    """Who did what to a ticket (IVR, desk, supervisor), oldest first."""
    ticket_id = _ticket_id(request)
    desk = request.app[DESK]
    await desk.store.get_ticket(ticket_id)  # 404 for an unknown ticket
    return web.json_response({"items": await desk.store.list_audit("ticket", str(ticket_id))})


@require_role("supervisor", "admin")
async def overview(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    tz = ZoneInfo(desk.timezone)
    now = desk.clock().astimezone(tz)
    midnight = datetime.combine(now.date(), time(0), tzinfo=tz)
    return web.json_response(await desk.overview(today_since=midnight))


@require_role(*DESK_ROLES)
async def websocket(request: web.Request) -> web.StreamResponse:
    """Screen pops as they happen; ``?since=N`` replays what this desk missed after pop N."""
    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-site WebSocket refused")
    raw = request.query.get("since", "0")
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest("since must be the number of the last event received")
    epoch = request.query.get("epoch")
    desk = request.app[DESK]
    user = request[USER]
    username = user["username"]
    token, _bearer = session_token(request)
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
    await ws.prepare(request)
    queue = desk.hub.subscribe(username)
    users = request.app[AUTH]
    ended = users.watch_session(token, user["id"])  # set at logout: the socket closes at once
    ending = asyncio.ensure_future(ended.wait())
    try:
        await ws.send_json({"type": "hello", "user": username, "agent_id": user.get("agent_id"),
                            "last_seq": desk.hub.last_seq(username), "epoch": desk.hub.epoch})
        since = int(raw)
        if epoch is not None and epoch != desk.hub.epoch and since:
            # the gateway restarted since the desk's last number: it cannot know what it missed
            await ws.send_json({"type": "resync", "seq": since, "reason": "gateway restarted"})
            since = 0
        for event in desk.hub.missed(username, since):
            await ws.send_json(event)
        reader = asyncio.ensure_future(_drain(ws))
        getter: asyncio.Future | None = None
        while not ws.closed and not reader.done():
            getter = getter or asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader, ending}, timeout=SESSION_CHECK,
                                         return_when=asyncio.FIRST_COMPLETED)
            if ending in done:
                await ws.close(code=4401, message=b"session ended")
                break
            if getter in done:
                await ws.send_json(getter.result())
                getter = None
            elif not done and await users.session_user(token) is None:
                await ws.close(code=4401, message=b"session expired")
                break
        for task in (reader, getter):
            if task is not None:
                task.cancel()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        ending.cancel()
        users.unwatch_session(token, ended)
        desk.hub.unsubscribe(username, queue)
        if not ws.closed:
            await ws.close()
    return ws


async def _drain(ws: web.WebSocketResponse) -> None:
    """The desk sends nothing we need (pings are automatic); read until it goes away."""
    async for msg in ws:
        if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break


def add_desk_routes(app: web.Application) -> None:
    """The desk and supervisor pages and API (the feature's setup puts :data:`DESK`)."""
    r = app.router
    r.add_get("/desk", desk_page)
    r.add_get("/supervisor", supervisor_page)
    r.add_get("/static/{name:.+}", static_file)
    r.add_get("/api/desk/inbox", inbox)
    r.add_get("/api/desk/ws", websocket)
    r.add_get("/api/desk/tickets/{ticket_id}", get_desk_ticket)
    r.add_put("/api/desk/tickets/{ticket_id}/draft", save_draft)
    r.add_post("/api/desk/tickets/{ticket_id}/submit", submit)
    r.add_post("/api/desk/tickets/{ticket_id}/close", close)
    r.add_post("/api/desk/tickets/{ticket_id}/transfer", transfer)
    r.add_get("/api/desk/tickets/{ticket_id}/dispatch", dispatch)
    r.add_get("/api/tickets/{ticket_id}/recording", recording)
    r.add_get("/api/tickets/{ticket_id}/audit", ticket_audit)
    r.add_get("/api/supervisor/overview", overview)
