"""The agent desk: screen pops, the ticket as each viewer may see it, decisions.

When Asterisk's queue connects a caller to an agent (AMI ``AgentConnect``), the
interface of the member who answered names the agent (``Local/8001@...`` ->
``8001``); every user tied to that agent id gets a *screen pop*: the draft ticket
as that user may see it, the suggestions, and what the user had typed already.
Pops go out through :class:`gateway.desk.hub.PopHub`; what each viewer may see is
decided by :mod:`gateway.desk.access`.

Several gateway instances (one database, :mod:`gateway.bus`): every instance has its own
AMI connection, so each receives the ``AgentConnect`` and records it (the writes are
idempotent: the same agent, queue and first end again) and pops the desks connected to
it. It also publishes ``desk.pop`` (call id, agent id, queue: ids only) so that an
instance that missed the event (its AMI was down, or a pop made by reconciliation or
after a journal replay) pops its desks too. Each instance pops a ``(call, agent, kind)``
once (:data:`POP_MEMORY` recent pops remembered): the second copy, from AMI or from the
bus, is dropped; a pop without a ticket may be followed by the ticket's pop once the
ticket is in the database. The ``ticket.screen_pop`` audit line is written by the
leader instance only (``bus.leader``), so once per pop. Emergency transfers made on one
instance are told to the others (``board.transferred``), whose pops of the transferred
caller then name the ticket. After a gap on the bus every connected desk is told to
``resync`` (reload its inbox).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Awaitable, Callable

from gateway.desk.access import (AlreadyTransferred, CallEnded, UnknownService, check_hearing, check_lock,
                                 check_transfer, ticket_view)
from gateway.desk.hub import PopHub
from gateway.desk.live import LiveBoard
from gateway.errors import NotFound
from gateway.pbx.ami_events import AgentConnect, AmiEvent, agent_id_of
from gateway.ticketing.desk_store import DeskStore
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)
HISTORY_DAYS = 30
POP_MEMORY = 5000  # recent (call, agent, kind) pops, so a pop from AMI and from the bus shows once
POP = "desk.pop"


class DeskService:
    def __init__(self, *, store: TicketStore, users, recordings_dir: Path, suggester: Callable[..., dict] | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] | None = None, timezone: str = "Asia/Shanghai",
                 ami=None, transfers: Callable[[], dict] | None = None, journal=None, bus=None) -> None:
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
        self.bus = bus  # gateway.bus: pops and transfers shared with the other instances (None: alone)
        self._popped: OrderedDict[tuple, None] = OrderedDict()
        if bus is None:
            self.board = LiveBoard()
        else:
            from gateway.desk.board_sync import TRANSFERRED, SharedBoard

            self.board = SharedBoard(bus, monotonic=self.monotonic)
            bus.subscribe(POP, self._on_bus_pop)
            bus.subscribe(TRANSFERRED, self._on_bus_transferred)
            bus.on_resync(self._on_bus_resync)
        self.counters = {"pops": 0, "pops_without_ticket": 0, "submitted": 0, "answered": 0, "conflicts": 0,
                         "transfers": 0}
        self.ami = ami  # Redirect of a caller's channel (the emergency transfer)
        self.transfers = transfers or dict  # service -> EmergencyTransfer of the live configuration
        self._transferred: dict[str, str] = {}  # uniqueid -> service, for calls this process transferred
        self.journal = journal  # the call path's journal (gateway.ticketing.journal): pops wait for its replay
        # A callback's call (gateway.callback): its outbound uniqueid -> the callback (ticket_id...), or None.
        self.callback_of: Callable[[str], Awaitable[dict | None]] | None = None
        self.callback_of_ticket: Callable[[int], Awaitable[dict | None]] | None = None  # its latest callback
        self.overview_parts: list[Callable[[], Awaitable[dict]]] = []  # more of the supervisor's overview

    def use_timezone(self, name: str) -> None:
        """The hotline configuration's time zone (known once its live version is loaded)."""
        self.timezone = name
        on_submitted = self.desk.on_submitted  # the units feature's dispatch stays
        self.desk = DeskStore(self.store, timezone=name)
        self.desk.on_submitted = on_submitted

    # -- events ------------------------------------------------------------------------
    async def on_ami_event(self, event: AmiEvent) -> None:
        self.board.on_event(event, self.monotonic())
        if isinstance(event, AgentConnect):
            agent_id = agent_id_of(event.interface, event.member_name)
            if event.linkedid in self._transferred and event.uniqueid != event.linkedid:
                pop, call = (lambda: self.transferred_pop(event.linkedid, agent_id, event.queue)), event.linkedid
            else:
                pop, call = (lambda: self.pop_everywhere(event.uniqueid, agent_id, event.queue)), event.uniqueid
            if self.journal is not None and self.journal.pending_for(call):
                # the call's ticket or agent is not in the database yet: pop once the journal has written them
                self.journal.when_applied(call, pop)
            else:
                await pop()

    async def pop_everywhere(self, uniqueid: str, agent_id: str, queue: str) -> int:
        """``agent_id`` answered ``uniqueid``: pop the desks connected here and tell the other
        instances (``desk.pop``). For AMI's ``AgentConnect`` and for whatever learns it otherwise
        (reconciliation after a blind spell, a journal replay that wrote the ticket late)."""
        delivered = await self.screen_pop(uniqueid, agent_id, queue, once=self.bus is not None)
        if self.bus is not None and uniqueid and agent_id:
            self.bus.publish(POP, {"uniqueid": uniqueid, "agent": agent_id, "queue": queue})
        return delivered

    async def _on_bus_pop(self, message) -> None:
        """Another instance saw an agent answer."""
        if message.mine:
            return  # popped here already
        data = message.data
        await self.screen_pop(str(data.get("uniqueid") or ""), str(data.get("agent") or ""),
                              str(data.get("queue") or ""), once=True)

    async def _on_bus_transferred(self, message) -> None:
        if not message.mine and message.data.get("uniqueid"):
            self._transferred[str(message.data["uniqueid"])] = str(message.data.get("service") or "")

    async def _on_bus_resync(self) -> None:
        """Pops of the gap may be lost: every desk connected here reloads its inbox."""
        for username in self.hub.users():
            self.hub.publish(username, {"type": "resync", "reason": "notifications between gateways resumed"})

    def _first_pop(self, key: tuple) -> bool:
        if key in self._popped:
            self._popped.move_to_end(key)
            return False
        self._popped[key] = None
        while len(self._popped) > POP_MEMORY:
            self._popped.popitem(last=False)
        return True

    async def transferred_pop(self, uniqueid: str, agent_id: str, queue: str) -> None:
        """A caller the desk transferred reached an agent of the destination queue (through a Local
        leg, whose own uniqueid has no ticket): that agent's desk is told whose call it is. The draft
        stays with the agent who answered first."""
        ticket = await self.desk.ticket_of_call(uniqueid)
        for viewer in await self.users.users_for_agent(agent_id) if agent_id else []:
            self.hub.publish(viewer["username"], {
                "type": "transferred_call", "uniqueid": uniqueid, "queue": queue, "at": self.clock().isoformat(),
                "service": self._transferred.get(uniqueid), "ticket_id": ticket["id"] if ticket else None})

    async def screen_pop(self, uniqueid: str, agent_id: str, queue: str, *, once: bool = False) -> int:
        """Push the call's draft ticket to every user answering as ``agent_id``; how many got it.
        With ``once``, nothing if this instance popped that call to that agent already (with a
        ticket, or without one while there still is none)."""
        viewers = await self.users.users_for_agent(agent_id) if agent_id else []
        if not viewers or not uniqueid:
            return 0
        usernames = [viewer["username"] for viewer in viewers]
        ticket = await self.desk.ticket_of_call(uniqueid)
        callback = None
        if ticket is None and self.callback_of is not None:
            # the gateway called the citizen back: the original call's ticket is the ticket
            callback = await self.callback_of(uniqueid)
            if callback is not None and callback.get("ticket_id"):
                ticket = await self.store.get_ticket(callback["ticket_id"])
        if once and not self._first_pop((uniqueid, agent_id, ticket is not None)):
            return 0
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
                if callback is not None:
                    event["callback"] = {"id": callback["id"], "requested_at": callback["requested_at"],
                                         "attempts": callback["attempts"], "call_uniqueid": callback["call_uniqueid"]}
            self.hub.publish(username, event)
            delivered += 1
        if ticket is not None:
            self.counters["pops"] += 1
        if ticket is not None and (self.bus is None or self.bus.leader):  # one audit line for all instances
            await self.desk.audit("desk", "ticket.screen_pop", ticket["id"],
                                  {"agent_id": agent_id, "users": usernames[:10],
                                   **({"callback_id": callback["id"]} if callback is not None else {})})
        return delivered

    # -- reading -----------------------------------------------------------------------
    async def view(self, ticket_id: int, viewer: dict, *, ticket: dict | None = None, audit: bool = True) -> dict:
        ticket = ticket or await self.store.get_ticket(ticket_id)
        call = await self.desk.call_of_ticket(ticket_id) or {}
        check_lock(ticket, viewer, call.get("agent"))
        out = ticket_view(ticket, viewer, call_agent=call.get("agent"))
        out["call"] = {"uniqueid": call.get("uniqueid"), "agent": call.get("agent"), "status": call.get("status")}
        if self.callback_of_ticket is not None:  # a callback (virtual hold): the desk labels it 回拨
            callback = await self.callback_of_ticket(ticket_id)
            out["callback"] = None if callback is None else {
                k: callback[k] for k in ("id", "status", "attempts", "requested_at", "outbound_uniqueid")}
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
        for part in self.overview_parts:
            out.update(await part())
        return out
