"""Typed AMI call-lifecycle events (pure: a dict of AMI headers in, an event out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class AmiEvent:
    name: str
    uniqueid: str
    channel: str


@dataclass(frozen=True)
class NewChannel(AmiEvent):
    caller: str
    exten: str
    context: str
    linkedid: str


@dataclass(frozen=True)
class Hangup(AmiEvent):
    cause: int | None
    cause_txt: str


@dataclass(frozen=True)
class QueueCallerJoin(AmiEvent):
    queue: str
    position: int | None


@dataclass(frozen=True)
class QueueCallerLeave(AmiEvent):
    queue: str


@dataclass(frozen=True)
class AgentComplete(AmiEvent):
    queue: str
    member_name: str
    interface: str
    talk_time: int | None


@dataclass(frozen=True)
class QueueCallerAbandon(AmiEvent):
    queue: str
    hold_time: int | None


@dataclass(frozen=True)
class AgentConnect(AmiEvent):
    queue: str
    member_name: str
    interface: str
    hold_time: int | None
    agent_uniqueid: str
    linkedid: str = ""  # the first channel of the call: the caller's own, also for a leg it dialled


@dataclass(frozen=True)
class AgiExec(AmiEvent):
    """AGIExecStart / AGIExecEnd: which AGI command a channel is running."""

    command: str
    command_id: str
    result: str


@dataclass(frozen=True)
class FullyBooted(AmiEvent):
    pass


def parse_event(headers: Mapping[str, str]) -> AmiEvent | None:
    """Turn an AMI event into a typed event; ``None`` for events the gateway ignores."""
    h = {str(k).lower(): str(v) for k, v in headers.items()}
    name = h.get("event", "")
    uid = h.get("uniqueid", "")
    chan = h.get("channel", "")
    if name == "Newchannel":
        return NewChannel(name, uid, chan, h.get("calleridnum", ""), h.get("exten", ""), h.get("context", ""),
                          h.get("linkedid", ""))
    if name == "Hangup":
        return Hangup(name, uid, chan, _int(h.get("cause")), h.get("cause-txt", ""))
    if name == "QueueCallerJoin":
        return QueueCallerJoin(name, uid, chan, h.get("queue", ""), _int(h.get("position")))
    if name == "QueueCallerLeave":
        return QueueCallerLeave(name, uid, chan, h.get("queue", ""))
    if name == "AgentComplete":
        return AgentComplete(name, uid, chan, h.get("queue", ""), h.get("membername", ""), h.get("interface", ""),
                             _int(h.get("talktime")))
    if name == "QueueCallerAbandon":
        return QueueCallerAbandon(name, uid, chan, h.get("queue", ""), _int(h.get("holdtime")))
    if name == "AgentConnect":
        # AgentConnect describes the caller with the plain Channel/Uniqueid headers and the
        # agent's leg with Dest*; the member's name and interface are separate headers.
        return AgentConnect(name, uid, chan, h.get("queue", ""), h.get("membername", ""),
                            h.get("interface", ""), _int(h.get("holdtime")), h.get("destuniqueid", ""),
                            h.get("linkedid", ""))
    if name in ("AGIExecStart", "AGIExecEnd"):
        return AgiExec(name, uid, chan, h.get("command", ""), h.get("commandid", ""), h.get("result", ""))
    if name == "FullyBooted":
        return FullyBooted(name, uid, chan)
    return None


def agent_id_of(interface: str, member_name: str = "") -> str:
    """The agent id (``8001``) of a queue member interface ``Local/8001@gw-agents/n``.

    A real deployment's members (``PJSIP/8001``) work too; otherwise the member name.
    """
    iface = interface.split("@", 1)[0]
    tail = iface.rsplit("/", 1)[-1]
    return tail if tail and tail.replace("-", "").isalnum() and len(tail) <= 32 else member_name[:32]
