"""Agents' states from AMI (``QueueStatus``): available, talking, ringing, wrap-up, paused, unavailable.

Theory of operation
-------------------
Asterisk is the shared truth about its queue members. Each gateway instance asks every
Asterisk node it is connected to (``QueueStatus``, one ``QueueMember`` per member and queue)
when a supervisor's board asks, so several instances always agree: none keeps a copy of its
own that could drift (the board's live calls, :mod:`gateway.desk.live`, are fed by events;
states are asked for). :func:`agent_states` is pure: messages in, one entry per agent out.

A member's state, in this order:

    InCall=1, or device in use / busy / on hold      talking
    device ringing                                   ringing
    Paused=1                                         paused  (with Asterisk's PausedReason)
    device invalid / unavailable                     unavailable (logged off)
    LastCall + wrap-up > now                         wrapup  (the longer of the member's Wrapuptime
                                                              and figures.wrapup_seconds)
    otherwise                                        available

An agent in several queues (or on several nodes) is one entry: the first state of the table
found in any of them, its queues listed, ``calls_taken`` (Asterisk's count since the member
was added) summed.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from gateway.pbx.ami_events import agent_id_of

STATES = ("talking", "ringing", "paused", "unavailable", "wrapup", "available")
STATE_ZH = {"talking": "通话中", "ringing": "振铃", "paused": "示忙", "unavailable": "未登录",
            "wrapup": "话后整理", "available": "空闲"}
_TALKING = {"2", "3", "8"}  # ast_device_state: in use, busy, on hold
_RINGING = {"6", "7"}  # ringing, ring in use
_UNAVAILABLE = {"4", "5"}  # invalid, unavailable


def _int(value, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def member_state(h: Mapping[str, str], *, now_epoch: float, wrapup_s: int = 0) -> str:
    status = h.get("status", "")
    if h.get("incall", "0") == "1" or status in _TALKING:
        return "talking"
    if status in _RINGING:
        return "ringing"
    if h.get("paused", "0") == "1":
        return "paused"
    if status in _UNAVAILABLE:
        return "unavailable"
    last = _int(h.get("lastcall"))
    wrap = max(_int(h.get("wrapuptime")), wrapup_s)
    if last > 0 and wrap > 0 and now_epoch - last < wrap:
        return "wrapup"
    return "available"


def agent_states(messages: Iterable[Mapping[str, str]], *, now_epoch: float, wrapup_s: int = 0) -> list[dict]:
    """``QueueStatus`` messages (from one or several nodes) -> one dict per agent, by agent id."""
    agents: dict[str, dict] = {}
    for raw in messages:
        h = {str(k).lower(): str(v) for k, v in dict(raw).items()}
        if h.get("event") != "QueueMember":
            continue
        interface = h.get("location") or h.get("interface") or h.get("stateinterface") or ""
        name = h.get("name") or h.get("membername") or ""
        agent = agent_id_of(interface, name) or name or interface
        if not agent:
            continue
        state = member_state(h, now_epoch=now_epoch, wrapup_s=wrapup_s)
        entry = agents.setdefault(agent, {"agent": agent, "name": name, "state": state, "queues": [],
                                          "calls_taken": 0, "paused_reason": "", "last_call_s": None})
        if STATES.index(state) < STATES.index(entry["state"]):
            entry["state"] = state
        queue = h.get("queue", "")
        if queue and queue not in entry["queues"]:
            entry["queues"].append(queue)
        entry["calls_taken"] += _int(h.get("callstaken"))
        if h.get("paused", "0") == "1" and h.get("pausedreason"):
            entry["paused_reason"] = h["pausedreason"][:64]
        last = _int(h.get("lastcall"))
        if last > 0:
            ago = max(0, int(now_epoch - last))
            entry["last_call_s"] = ago if entry["last_call_s"] is None else min(entry["last_call_s"], ago)
    out = []
    for entry in sorted(agents.values(), key=lambda e: e["agent"]):
        entry["queues"].sort()
        entry["state_zh"] = STATE_ZH[entry["state"]]
        out.append(entry)
    return out


def summary(agents: list[dict]) -> dict[str, int]:
    """How many agents are in each state (every state present, zeros too)."""
    counts = {state: 0 for state in STATES}
    for agent in agents:
        counts[agent["state"]] += 1
    return counts
