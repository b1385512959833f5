"""The agent desk: screen pops, the ticket as each viewer may see it, decisions.

Theory of operation
-------------------
When Asterisk's queue connects a caller to an agent (AMI ``AgentConnect``), the
interface of the member who answered names the agent (``Local/8001@...`` ->
``8001``); every user tied to that agent id gets a *screen pop*: the draft ticket
as that user may see it, the suggestions, and what the user had typed already.

Pops go through :class:`PopHub`: each event gets a sequence number and is kept in
a bounded per-user buffer, then delivered to every WebSocket of the user. A desk
that reconnects says the last number it saw and gets what it missed; if that is
older than the buffer, it is told to ``resync`` (reload its inbox over HTTP), so
nothing sent while it was away is lost either way.

Who sees the caller's number: supervisors and admins, and the agent whose call it
is (to call back); other agents see it masked. What the caller *said* (transcript,
word times, the guard's words, the recording) is shown only to supervisors, admins
and the agent who answered the call, whatever the ticket's status: another agent
may read a decided ticket's fields (category, place, summary, units) and nothing
the caller said. What goes to handling units (the
dispatch document) never carries the number of a caller who asked for
confidentiality (保密), and otherwise only masked.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from gateway.desk.live import LiveBoard
from gateway.errors import GatewayError, NotFound
from gateway.masking import mask_number, mask_text
from gateway.pii import mask_personal, mask_words
from gateway.pbx.ami_events import AgentConnect, AmiEvent, agent_id_of
from gateway.ticketing.desk_store import DeskStore
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)
BUFFER = 200  # pops kept per user for reconnecting desks
HISTORY_DAYS = 30
FULL_NUMBER_ROLES = ("supervisor", "admin")


def may_see_number(viewer: dict, call_agent: str | None) -> bool:
    if viewer.get("role") in FULL_NUMBER_ROLES:
        return True
    return answered_by(viewer, call_agent)


def may_hear_caller(viewer: dict, call_agent: str | None) -> bool:
    """Transcripts and recordings: supervisors, admins and the agent who answered the call."""
    return may_see_number(viewer, call_agent)


class NotYourCall(GatewayError):
    """What a caller said belongs to the agent who answered (and supervisors), at any status."""

    status_code = 403
    error_id = "not-your-call"


def check_hearing(viewer: dict, call_agent: str | None, ticket_id: int) -> None:
    if not may_hear_caller(viewer, call_agent):
        raise NotYourCall("只有接听该来电的坐席和班长可以收听录音 / only the agent who answered this call and "
                          "supervisors may hear its recording", details={"ticket_id": ticket_id})


SPOKEN = ("transcript", "transcript_words", "emergency_words", "transcript_error")


class DraftLocked(GatewayError):
    """Another agent's call: its draft is theirs until decided (supervisors may take over)."""

    status_code = 403
    error_id = "locked"


def check_lock(ticket: dict, viewer: dict, call_agent: str | None) -> None:
    """An agent may open a draft only of a call they answered (or one nobody answered)."""
    if viewer.get("role") != "agent" or ticket.get("status") != "draft" or not call_agent:
        return
    if viewer.get("agent_id") != call_agent:
        raise DraftLocked(f"此草稿由坐席 {call_agent} 受理中 / this draft belongs to agent {call_agent} "
                          "until it is submitted or closed", details={"agent": call_agent})


def ticket_view(ticket: dict, viewer: dict, *, call_agent: str | None) -> dict:
    """The ticket as ``viewer`` may see it (the caller's number masked unless allowed)."""
    out = dict(ticket)
    full = may_see_number(viewer, call_agent)
    out["caller_number"] = ticket["caller_number"] if full else mask_number(ticket["caller_number"])
    if ticket.get("caller_id_raw") and not full:
        out["caller_id_raw"] = mask_text(ticket["caller_id_raw"])
    out["caller_number_masked"] = not full
    out["recording_url"] = f"/api/tickets/{ticket['id']}/recording" if ticket.get("recording_path") else None
    out.pop("recording_path", None)
    if not may_hear_caller(viewer, call_agent):
        for key in SPOKEN:
            out.pop(key, None)
        out["recording_url"] = None
        out["spoken_withheld"] = True  # the desk says why there is nothing to read or play
    elif not answered_by(viewer, call_agent):
        out.update(mask_spoken(ticket))  # supervisors and admins: identifiers masked
    return out


def answered_by(viewer: dict, call_agent: str | None) -> bool:
    return bool(viewer.get("agent_id")) and viewer.get("agent_id") == call_agent


def mask_spoken(ticket: dict) -> dict:
    """What the caller said with identity, phone and bank card numbers and plates masked
    (:mod:`gateway.pii`): for everyone but the agent who answered the call."""
    return {"transcript": mask_personal(ticket.get("transcript") or "") or ticket.get("transcript"),
            "transcript_words": mask_words(list(ticket.get("transcript_words") or [])),
            "personal_data_masked": True}


def dispatch_document(ticket: dict) -> dict:
    """What a handling unit receives: never the number of a caller who asked for confidentiality."""
    keep = ("id", "category", "urgency", "place", "summary", "dispatch_mode", "units", "line_number",
            "line_name", "created_at", "decided_at", "linked_ticket_id", "emergency")
    out = {k: ticket.get(k) for k in keep}
    if ticket.get("confidential"):
        for key in ("place", "summary"):  # what the agent typed may quote the caller's numbers
            if out.get(key):
                out[key] = mask_personal(out[key])
        out["caller_number"] = None
        out["caller"] = "保密 (confidential: contact through 12345)"
    else:
        out["caller_number"] = mask_number(ticket.get("caller_number"))
    return out


class CallEnded(GatewayError):
    """The call is over: there is no caller left to transfer."""

    status_code = 409
    error_id = "call-ended"


class AlreadyTransferred(GatewayError):
    status_code = 409
    error_id = "already-transferred"


class UnknownService(GatewayError):
    status_code = 400
    error_id = "unknown-service"


TRANSFER_ROLES = ("supervisor", "admin")


def check_transfer(viewer: dict, call_agent: str | None, ticket_id: int) -> None:
    """Only the agent who answered the call (or a supervisor/admin) may transfer its caller."""
    if viewer.get("role") in TRANSFER_ROLES or answered_by(viewer, call_agent):
        return
    raise NotYourCall("只有接听该来电的坐席和班长可以转接 / only the agent who answered this call and supervisors "
                      "may transfer it", details={"ticket_id": ticket_id})


def transfer_choices(transfers: dict) -> list[dict]:
    """The destinations as the desk shows them (service, name, kind): not the dial strings."""
    return [{"service": t.service, "name": t.name, "kind": "queue" if t.queue else "dial"}
            for t in transfers.values()]


class PopHub:
    """Per-user numbered events with a replay buffer, fanned out to live WebSockets."""

    def __init__(self, buffer: int = BUFFER) -> None:
        import secrets

        self.epoch = secrets.token_hex(4)  # numbers restart with the process: desks compare this
        self._seq = itertools.count(1)
        self._buffers: dict[str, deque] = {}
        self._queues: dict[str, set[asyncio.Queue]] = {}
        self.buffer = buffer

    def publish(self, username: str, event: dict) -> dict:
        event = dict(event, seq=next(self._seq))
        self._buffers.setdefault(username, deque(maxlen=self.buffer)).append(event)
        for queue in list(self._queues.get(username, ())):
            if queue.qsize() < self.buffer:
                queue.put_nowait(event)
        return event

    def missed(self, username: str, since: int) -> list[dict]:
        """Events after ``since``; a leading ``resync`` event if some were dropped from the buffer."""
        events = list(self._buffers.get(username, ()))
        out = [e for e in events if e["seq"] > since]
        if since and events and events[0]["seq"] > since + 1 and (not out or out[0] is events[0]):
            out.insert(0, {"type": "resync", "seq": since})
        return out

    def last_seq(self, username: str) -> int:
        events = self._buffers.get(username)
        return events[-1]["seq"] if events else 0

    def subscribe(self, username: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.setdefault(username, set()).add(queue)
        return queue

    def unsubscribe(self, username: str, queue: asyncio.Queue) -> None:
        self._queues.get(username, set()).discard(queue)

    def connections(self) -> int:
        return sum(len(q) for q in self._queues.values())


class DeskService:
    def __init__(self, *, store: TicketStore, users, recordings_dir: Path, suggester: Callable[..., dict] | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] | None = None, timezone: str = "Asia/Shanghai",
                 ami=None, transfers: Callable[[], dict] | None = None) -> None:
        import time

        self.store = store
        self.timezone = timezone
        self.desk = DeskStore(store, timezone=timezone)
        self.users = users
        self.recordings_dir = Path(recordings_dir)  # resolved where it is checked, in a thread
        self.suggester = suggester
        self.clock = clock
        self.monotonic = monotonic or time.monotonic
        self.hub = PopHub()
        self.board = LiveBoard()
        self.counters = {"pops": 0, "pops_without_ticket": 0, "submitted": 0, "answered": 0, "conflicts": 0,
                         "transfers": 0}
        self.ami = ami  # Redirect of a caller's channel (the emergency transfer)
        self.transfers = transfers or dict  # service -> EmergencyTransfer of the live configuration
        self._transferred: dict[str, str] = {}  # uniqueid -> service, for calls this process transferred

    def use_timezone(self, name: str) -> None:
        """The hotline configuration's time zone (known once its live version is loaded)."""
        self.timezone = name
        self.desk = DeskStore(self.store, timezone=name)

    # -- events ------------------------------------------------------------------------
    async def on_ami_event(self, event: AmiEvent) -> None:
        self.board.on_event(event, self.monotonic())
        if isinstance(event, AgentConnect):
            agent_id = agent_id_of(event.interface, event.member_name)
            if event.linkedid in self._transferred and event.uniqueid != event.linkedid:
                await self.transferred_pop(event.linkedid, agent_id, event.queue)
            else:
                await self.screen_pop(event.uniqueid, agent_id, event.queue)

    async def transferred_pop(self, uniqueid: str, agent_id: str, queue: str) -> None:
        """A caller the desk transferred reached an agent of the destination queue (through a Local
        leg, whose own uniqueid has no ticket): that agent's desk is told whose call it is. The draft
        stays with the agent who answered first."""
        ticket = await self.desk.ticket_of_call(uniqueid)
        for viewer in await self.users.users_for_agent(agent_id) if agent_id else []:
            self.hub.publish(viewer["username"], {
                "type": "transferred_call", "uniqueid": uniqueid, "queue": queue, "at": self.clock().isoformat(),
                "service": self._transferred.get(uniqueid), "ticket_id": ticket["id"] if ticket else None})

    async def screen_pop(self, uniqueid: str, agent_id: str, queue: str) -> int:
        """Push the call's draft ticket to every user answering as ``agent_id``; how many got it."""
        viewers = await self.users.users_for_agent(agent_id) if agent_id else []
        if not viewers:
            return 0
        usernames = [viewer["username"] for viewer in viewers]
        ticket = await self.desk.ticket_of_call(uniqueid)
        delivered = 0
        for viewer in viewers:
            username = viewer["username"]
            if ticket is None:
                self.counters["pops_without_ticket"] += 1
                event = {"type": "call_without_ticket", "uniqueid": uniqueid, "queue": queue,
                         "at": self.clock().isoformat()}
            else:
                event = {"type": "screen_pop", "uniqueid": uniqueid, "queue": queue, "at": self.clock().isoformat(),
                         "ticket": await self.view(ticket["id"], viewer, ticket=ticket, audit=False)}
            self.hub.publish(username, event)
            delivered += 1
        if ticket is not None:
            self.counters["pops"] += 1
            await self.desk.audit("desk", "ticket.screen_pop", ticket["id"],
                                  {"agent_id": agent_id, "users": usernames[:10]})
        return delivered

    # -- reading -----------------------------------------------------------------------
    async def view(self, ticket_id: int, viewer: dict, *, ticket: dict | None = None, audit: bool = True) -> dict:
        ticket = ticket or await self.store.get_ticket(ticket_id)
        call = await self.desk.call_of_ticket(ticket_id) or {}
        check_lock(ticket, viewer, call.get("agent"))
        out = ticket_view(ticket, viewer, call_agent=call.get("agent"))
        out["call"] = {"uniqueid": call.get("uniqueid"), "agent": call.get("agent"), "status": call.get("status")}
        if out.get("spoken_withheld"):  # suggestions quote the transcript: not for this viewer
            out["suggestions"] = {"available": False, "reason": "not your call"}
        else:
            out["suggestions"] = await self.suggestions(ticket)
        draft = await self.desk.get_draft(ticket_id, viewer["username"])
        out["saved_draft"] = draft["data"] if draft else None
        if audit:
            await self.desk.audit(viewer["username"], "ticket.viewed", ticket_id,
                                  {"number": "full" if not out["caller_number_masked"] else "masked"})
        return out

    async def suggestions(self, ticket: dict) -> dict:
        if self.suggester is None:
            return {"available": False, "reason": "no catalogue loaded"}
        since = self.clock() - timedelta(days=HISTORY_DAYS)
        history = await self.desk.history(ticket["caller_number"], since=since, exclude_id=ticket["id"])
        candidates = await self.desk.open_tickets(since=since, exclude_id=ticket["id"])
        try:
            return await asyncio.to_thread(self.suggester, ticket, history=history, open_tickets=candidates)
        except Exception:  # noqa: BLE001 - suggestions are advice; a bug there must not hide the ticket
            log.exception("suggestions failed for ticket %s", ticket["id"])
            return {"available": False, "reason": "suggestions failed (see the gateway log)"}

    async def inbox(self, viewer: dict) -> list[dict]:
        if not viewer.get("agent_id"):
            return []
        return [await self.view(t["id"], viewer, ticket=t, audit=False)
                for t in await self.desk.inbox(viewer["agent_id"])]

    def recording_file(self, ticket: dict) -> Path:
        """The ticket's recording on disk; only files inside the recordings directory are served."""
        raw = ticket.get("recording_path")
        if not raw:
            raise NotFound("this ticket has no recording", details={"ticket_id": ticket["id"]})
        path = Path(raw).resolve()
        if self.recordings_dir.resolve() not in path.parents or path.suffix != ".wav" or not path.is_file():
            raise NotFound("the recording is not available", details={"ticket_id": ticket["id"]})
        return path

    # -- writing -----------------------------------------------------------------------
    async def decide(self, ticket_id: int, outcome: str, body, viewer: dict, *,
                     categories: tuple | None = None) -> dict:
        """``body``: the validated :mod:`gateway.desk.schemas` decision (a dict is validated here);
        ``categories``: a narrower set than the schema's, if any."""
        from gateway.desk.schemas import Decision, decision_model
        from gateway.errors import Conflict
        from gateway.ticketing.desk_store import BadDecision
        from gateway.web.schema import validate

        if not isinstance(body, Decision):
            body = validate(body, decision_model(outcome))
        fields = body.fields()
        if categories is not None and fields["category"] is not None and fields["category"] not in categories:
            raise BadDecision(f"category must be one of {', '.join(categories)}", details={"field": "category"})
        await self.check_lock(ticket_id, viewer)
        try:
            ticket = await self.desk.decide(ticket_id, outcome=outcome, version_id=body.version_id,
                                            fields=fields, actor=viewer["username"], now=self.clock())
        except Conflict:
            self.counters["conflicts"] += 1
            raise
        self.counters[outcome] += 1
        call = await self.desk.call_of_ticket(ticket_id) or {}
        return ticket_view(ticket, viewer, call_agent=call.get("agent"))

    async def check_hearing(self, ticket_id: int, viewer: dict) -> dict:
        """The ticket, if ``viewer`` may hear what its caller said (403 ``not-your-call`` otherwise)."""
        ticket = await self.store.get_ticket(ticket_id)
        call = await self.desk.call_of_ticket(ticket_id) or {}
        check_lock(ticket, viewer, call.get("agent"))
        check_hearing(viewer, call.get("agent"), ticket_id)
        return ticket

    async def check_lock(self, ticket_id: int, viewer: dict) -> None:
        ticket = await self.store.get_ticket(ticket_id)
        call = await self.desk.call_of_ticket(ticket_id) or {}
        check_lock(ticket, viewer, call.get("agent"))

    async def save_draft(self, ticket_id: int, viewer: dict, data: dict) -> dict:
        await self.check_lock(ticket_id, viewer)
        return await self.desk.save_draft(ticket_id, viewer["username"], data, now=self.clock())

    async def transfer(self, ticket_id: int, service: str, viewer: dict) -> dict:
        """Move the caller of ``ticket_id`` to the configured destination of ``service`` (AMI Redirect
        to the generated ``gw-emergency-transfer`` context); audited, also when it fails."""
        from gateway.errors import PbxError
        from gateway.pbx.dialplan import EMERGENCY_CONTEXT

        dest = self.transfers().get(service)
        if dest is None:
            raise UnknownService(f"未配置紧急转接 {service} / no transfer destination configured for {service!r}",
                                 details={"field": "service", "configured": sorted(self.transfers())})
        await self.store.get_ticket(ticket_id)  # 404 for an unknown ticket
        call = await self.desk.call_of_ticket(ticket_id) or {}
        check_transfer(viewer, call.get("agent"), ticket_id)
        uniqueid = call.get("uniqueid")
        if not uniqueid or call.get("status") == "ended":
            raise CallEnded("通话已结束，无法转接 / the call has already ended: nobody to transfer",
                            details={"ticket_id": ticket_id, "uniqueid": uniqueid})
        if uniqueid in self._transferred:
            done = self._transferred[uniqueid]
            raise AlreadyTransferred(f"该来电已转接至 {done} / this call was already transferred to {done}",
                                     details={"ticket_id": ticket_id, "service": done})
        where = {"queue": dest.queue} if dest.queue else {"dial": dest.dial}
        details = {"service": service, "name": dest.name, **where, "uniqueid": uniqueid, "agent": call.get("agent")}
        actor = viewer["username"]
        try:
            if self.ami is None:
                raise PbxError("AMI is not available")
            await self.ami.action({"Action": "Redirect", "Channel": uniqueid, "Context": EMERGENCY_CONTEXT,
                                   "Exten": service, "Priority": "1"})
        except PbxError as exc:
            await self.desk.audit(actor, "ticket.transfer_failed", ticket_id, {**details, "error": str(exc)[:200]})
            if "no such channel" in str(exc).lower():
                raise CallEnded("通话已结束，无法转接 / the call has already ended: nobody to transfer",
                                details={"ticket_id": ticket_id, "uniqueid": uniqueid}) from None
            raise
        self._transferred[uniqueid] = service
        self.board.transferred(uniqueid, service, self.monotonic())
        self.counters["transfers"] += 1
        await self.desk.audit(actor, "ticket.transferred", ticket_id, details)
        log.info("ticket %s: call %s transferred to %s by %s", ticket_id, uniqueid, service, actor)
        return {"ticket_id": ticket_id, "service": service, "name": dest.name, "kind": next(iter(where)),
                "by": actor, "at": self.clock().isoformat()}

    def overview_live(self) -> dict:
        return self.board.snapshot(self.monotonic())

    async def overview(self, *, today_since: datetime) -> dict:
        out = self.overview_live()
        out["today"] = await self.desk.today_counts(today_since)
        out["desks_connected"] = self.hub.connections()
        return out
