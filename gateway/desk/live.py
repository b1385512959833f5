"""The supervisor's live board: calls in the IVR, waiting in each queue, talking to agents.

Pure state fed by events (the call handler for the IVR, AMI for queues and agents);
``snapshot(now)`` is what ``/api/supervisor/overview`` shows. Phone numbers are masked
here already: the board is for watching load, not for calling anyone back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.masking import mask_number
from gateway.pbx.ami_events import (
    AgentComplete,
    AgentConnect,
    AmiEvent,
    Hangup,
    QueueCallerAbandon,
    QueueCallerJoin,
    agent_id_of,
)

MAX_CALLS = 5000  # a leak guard: events for calls the board never sees end are dropped beyond this


@dataclass
class _Call:
    uniqueid: str
    state: str  # ivr, waiting, talking
    since: float
    line: str = ""
    caller: str = ""
    queue: str = ""
    agent: str = ""
    extra: dict = field(default_factory=dict)


class LiveBoard:
    def __init__(self) -> None:
        self.calls: dict[str, _Call] = {}
        self.abandoned = 0

    def _get(self, uid: str, now: float) -> _Call | None:
        call = self.calls.get(uid)
        if call is None and len(self.calls) < MAX_CALLS:
            call = self.calls[uid] = _Call(uid, "ivr", now)
        return call

    def ivr_started(self, uid: str, *, line: str, caller: str, now: float) -> None:
        call = self._get(uid, now)
        if call is not None:
            call.state, call.since, call.line, call.caller = "ivr", now, line, mask_number(caller)

    def ivr_left(self, uid: str, outcome: str, now: float) -> None:
        call = self.calls.get(uid)
        if call is not None and call.state == "ivr" and outcome != "queued":
            self.calls.pop(uid, None)

    def on_event(self, event: AmiEvent, now: float) -> None:
        uid = event.uniqueid
        if isinstance(event, QueueCallerJoin):
            call = self._get(uid, now)
            if call is not None:
                call.state, call.since, call.queue = "waiting", now, event.queue
        elif isinstance(event, AgentConnect):
            call = self._get(uid, now)
            if call is not None:
                call.state, call.since, call.queue = "talking", now, event.queue
                call.agent = agent_id_of(event.interface, event.member_name)
        elif isinstance(event, QueueCallerAbandon):
            self.abandoned += 1
            self.calls.pop(uid, None)
        elif isinstance(event, (AgentComplete, Hangup)):
            self.calls.pop(uid, None)

    def transferred(self, uid: str, service: str, now: float) -> None:
        """The desk transferred the caller (110/119/120/122): no longer with the agent who answered
        (Asterisk reports that agent's AgentComplete only when the caller hangs up)."""
        call = self.calls.get(uid)
        if call is not None:
            call.state, call.since, call.queue, call.agent = "talking", now, f"转接 transfer {service}", service

    def snapshot(self, now: float) -> dict:
        def item(call: _Call) -> dict:
            return {"uniqueid": call.uniqueid, "line": call.line, "caller": call.caller, "queue": call.queue,
                    "agent": call.agent, "seconds": round(max(0.0, now - call.since), 1)}

        ivr = [item(c) for c in self.calls.values() if c.state == "ivr"]
        talking = [item(c) for c in self.calls.values() if c.state == "talking"]
        queues: dict[str, list] = {}
        for call in self.calls.values():
            if call.state == "waiting":
                queues.setdefault(call.queue, []).append(item(call))
        for waiting in queues.values():
            waiting.sort(key=lambda c: -c["seconds"])
        return {
            "in_ivr": sorted(ivr, key=lambda c: -c["seconds"]),
            "queues": {name: {"waiting": len(w), "longest_wait_s": w[0]["seconds"], "calls": w}
                       for name, w in sorted(queues.items())},
            "talking": sorted(talking, key=lambda c: c["agent"]),
            "abandoned_since_start": self.abandoned,
        }
