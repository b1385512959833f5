"""The supervisor's board with several gateway instances: every instance shows every call.

Queues and agents come from AMI, and every instance has its own AMI connection to every
Asterisk node, so each instance's board sees those events itself. Only the IVR part is
known to one instance alone: the one whose FastAGI server runs the call's flow. That
instance publishes ``board.ivr`` on the bus (:mod:`gateway.bus`) when a call enters and
leaves its IVR, and the others put the call on (or take it off) their own board.

After a gap on the bus (a reconnect: ``on_resync``) an instance drops the IVR calls it
learned from the others and publishes ``board.hello``; each instance answers a hello by
publishing its own IVR calls again. A desk's emergency transfer (``board.transferred``)
is shared the same way. Phone numbers travel masked, as the board shows them.
"""

from __future__ import annotations

import time

from gateway.bus import LocalBus, Message
from gateway.desk.live import LiveBoard
from gateway.masking import mask_number

IVR = "board.ivr"
HELLO = "board.hello"
TRANSFERRED = "board.transferred"


class SharedBoard(LiveBoard):
    def __init__(self, bus: LocalBus, monotonic=time.monotonic) -> None:
        super().__init__()
        self.bus = bus
        self.monotonic = monotonic
        self._mine: set[str] = set()  # IVR calls this instance runs
        self._remote: dict[str, str] = {}  # IVR calls of other instances -> their instance id
        bus.subscribe(IVR, self._on_ivr)
        bus.subscribe(HELLO, self._on_hello)
        bus.subscribe(TRANSFERRED, self._on_transferred)
        bus.on_resync(self._resync)

    # -- this instance's calls (CallHandler, DeskService) ------------------------------
    def ivr_started(self, uid: str, *, line: str, caller: str, now: float) -> None:
        super().ivr_started(uid, line=line, caller=caller, now=now)
        self._mine.add(uid)
        self.bus.publish(IVR, {"uniqueid": uid, "state": "started", "line": line, "caller": mask_number(caller)})

    def ivr_left(self, uid: str, outcome: str, now: float) -> None:
        super().ivr_left(uid, outcome, now)
        self._mine.discard(uid)
        self.bus.publish(IVR, {"uniqueid": uid, "state": "left", "outcome": outcome})

    def transferred(self, uid: str, service: str, now: float) -> None:
        super().transferred(uid, service, now)
        self.bus.publish(TRANSFERRED, {"uniqueid": uid, "service": service})

    # -- the others' ----------------------------------------------------------------
    async def _on_ivr(self, message: Message) -> None:
        if message.mine:
            return
        data, now = message.data, self.monotonic()
        uid = str(data.get("uniqueid") or "")
        if not uid:
            return
        if data.get("state") == "started":
            LiveBoard.ivr_started(self, uid, line=str(data.get("line") or ""), caller=str(data.get("caller") or ""),
                                  now=now)
            self._remote[uid] = message.origin
        else:
            LiveBoard.ivr_left(self, uid, str(data.get("outcome") or ""), now)
            self._remote.pop(uid, None)

    async def _on_transferred(self, message: Message) -> None:
        if not message.mine and message.data.get("uniqueid"):
            LiveBoard.transferred(self, str(message.data["uniqueid"]), str(message.data.get("service") or ""),
                                  self.monotonic())

    async def _on_hello(self, message: Message) -> None:
        if message.mine:
            return
        for uid in list(self._mine):
            call = self.calls.get(uid)
            if call is not None and call.state == "ivr":
                self.bus.publish(IVR, {"uniqueid": uid, "state": "started", "line": call.line, "caller": call.caller})

    async def _resync(self) -> None:
        for uid in list(self._remote):
            call = self.calls.get(uid)
            if call is not None and call.state == "ivr":
                self.calls.pop(uid, None)
        self._remote.clear()
        self.bus.publish(HELLO, {})

    def on_event(self, event, now: float) -> None:
        super().on_event(event, now)
        uid = getattr(event, "uniqueid", None)
        if uid is not None and uid not in self.calls:  # ended: forget who ran it
            self._mine.discard(uid)
            self._remote.pop(uid, None)
