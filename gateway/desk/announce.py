"""The desk's "向来电人播报工单号": the caller hears the ticket number during the agent's call.

    POST /api/desk/tickets/{id}/announce-number   [the agent who answered, supervisor|admin]

Asterisk 22's AMI has no "play a file to this channel" action, and the caller is in a bridge
with the agent (Queue) that must not be broken. So the gateway *originates* a short-lived
Local channel (AMI ``Originate``, needs the ``originate`` write class, see
:data:`gateway.pbx.dialplan.GATEWAY_AMI_WRITE`): its ``;2`` half runs ``ChanSpy`` on the
caller's channel in whisper mode (``w``: what the spy sends is mixed into what the caller
hears; ``q`` no beep, ``E`` ends with the caller's channel), its ``;1`` half plays the prompts
(the flow's "工单号是" and the per-digit prompts rendered at apply, 4-3-4 with pauses) and
hangs up, which ends the spy. The agent stays connected and talking throughout; the agent
does not hear the whisper (the Local channel only writes toward the caller).

The call must still be up: the call's row (``ended``) and a ``Getvar CHANNEL`` on its
unique id (``No such channel``) are checked first; either gives a clear 409 ``call-ended``.
Every attempt is audited (``ticket.number_announced`` / ``ticket.number_announce_failed``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timezone
from typing import Callable

from aiohttp import web

from gateway.auth.http import USER, require_role
from gateway.desk.access import CallEnded, check_transfer
from gateway.desk.http import DESK, DESK_ROLES
from gateway.errors import BadRequest, Conflict, PbxError
from gateway.ticketing.ticket_no import is_ticket_no, spoken_groups

log = logging.getLogger(__name__)
CONTEXT = "gw-announce"  # rendered by gateway.pbx.dialplan (announce_context)
FLOW = "main"  # whose prompts are used: the flow's "ticket_no" intro and its digits


class NoTicketNumber(Conflict):
    error_id = "no-ticket-number"


def playlist(ticket_no: str, prompt_path: Callable[[str], str], flow: str = FLOW) -> str:
    """The files Playback plays, joined by ``&``: intro, then the digits 4-3-4 with pauses."""
    keys = [f"{flow}-ticket_no"]
    for n, group in enumerate(spoken_groups(ticket_no)):
        if n:
            keys.append(f"{flow}-digit-pause")
        for i, digit in enumerate(group):
            keys += [f"{flow}-digit-gap"] * bool(i) + [f"{flow}-digit-{digit}"]
    return "&".join(prompt_path(k) for k in keys)


class Announcer:
    def __init__(self, *, ami, desk, prompt_path: Callable[[str], str], clock=lambda: datetime.now(timezone.utc)):
        self.ami = ami
        self.desk = desk  # DeskService: .store (tickets), .desk (calls, audit)
        self.prompt_path = prompt_path
        self.clock = clock
        self.counters = {"announced": 0, "failed": 0}

    def _client(self, uniqueid: str):
        """The AMI client of the node that has the call (several nodes: the pool knows)."""
        node_of = getattr(self.ami, "node_of", None)
        if node_of is not None:
            owner = node_of(uniqueid)
            if owner is not None:
                return self.ami.clients[owner]
        return self.ami

    async def announce(self, ticket_id: int, viewer: dict) -> dict:
        ticket = await self.desk.store.get_ticket(ticket_id)  # 404 for an unknown ticket
        number = ticket.get("ticket_no") or ""
        if not is_ticket_no(number):
            raise NoTicketNumber("该工单没有工单号 / this ticket has no ticket number", details={"ticket_id": ticket_id})
        call = await self.desk.desk.call_of_ticket(ticket_id) or {}
        check_transfer(viewer, call.get("agent"), ticket_id)
        uniqueid = call.get("uniqueid")
        actor = viewer["username"]
        details = {"ticket_no": number, "uniqueid": uniqueid, "agent": call.get("agent")}
        ended = CallEnded("通话已结束，无法播报工单号 / the call has ended: nobody to read the number to",
                          details={"ticket_id": ticket_id, "uniqueid": uniqueid})
        if not uniqueid or call.get("status") == "ended":
            await self.desk.desk.audit(actor, "ticket.number_announce_failed", ticket_id, {**details, "error": "ended"})
            raise ended
        client = self._client(uniqueid)
        try:
            answer = await client.action({"Action": "Getvar", "Channel": uniqueid, "Variable": "CHANNEL"})
            channel = str(answer.get("Value") or "")
            if not channel:
                raise PbxError("AMI Getvar: No such channel")
            await client.action({
                "Action": "Originate", "Channel": f"Local/spy@{CONTEXT}/n", "Context": CONTEXT, "Exten": "play",
                "Priority": "1", "Async": "true", "Timeout": "10000", "CallerID": "\"12345\" <12345>",
                "Variable": f"GW_ANNOUNCE_TARGET={channel},GW_ANNOUNCE={playlist(number, self.prompt_path)}",
            })
        except PbxError as exc:
            self.counters["failed"] += 1
            await self.desk.desk.audit(actor, "ticket.number_announce_failed", ticket_id,
                                       {**details, "error": str(exc)[:200]})
            if "no such channel" in str(exc).lower():
                raise ended from None
            raise
        self.counters["announced"] += 1
        await self.desk.desk.audit(actor, "ticket.number_announced", ticket_id, details)
        log.info("ticket %s: number read to the caller of call %s by %s", ticket_id, uniqueid, actor)
        return {"ticket_id": ticket_id, "ticket_no": number, "by": actor, "at": self.clock().isoformat()}


ANNOUNCER = web.AppKey("announcer", Announcer)


@require_role(*DESK_ROLES)
async def announce_number(request: web.Request) -> web.Response:
    raw = request.match_info["ticket_id"]
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise BadRequest("ticket id must be a number")
    return web.json_response(await request.app[ANNOUNCER].announce(int(raw), request[USER]))


def setup(app: web.Application, deps) -> None:
    s = deps.settings
    prompts: dict[str, str] = {}  # the prompts' directory as Asterisk sees it, resolved once at start
    announcer = Announcer(ami=deps.ami, desk=app[DESK], prompt_path=lambda key: f"{prompts['dir']}/{key}",
                          clock=deps.clock.now)
    app[ANNOUNCER] = announcer

    async def lifecycle(app: web.Application):
        prompts["dir"] = await asyncio.to_thread(s.pbx_path, s.prompts_dir)
        yield

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/api/desk/tickets/{ticket_id}/announce-number", announce_number)
    deps.metrics.add("announce_number", lambda: dict(announcer.counters))
