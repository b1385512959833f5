"""How a call ended, from its row alone (pure): answered, abandoned in the queue or in the IVR...

The IVR writes every step on the call's ``menu_path``; a caller who hangs up while the flow
runs leaves ``{"node": "caller_hangup", "at": <node id>}`` as a step (the node they gave up
at). A caller who took the callback offer leaves a step with ``"result": "callback"`` and is
hung up by the gateway: that is no abandonment. ``queue`` is set by AMI's ``QueueCallerJoin``
(the call reached a queue), ``agent`` by ``AgentConnect``. When the gateway's callback call is
answered by an agent, the callback service writes that agent on the *original* call's row too
(the desk's inbox follows it): such a call (ended, no queue, no queue leg, a "callback" step)
stays a ``callback`` here, its answer is counted as the callback call's queue leg
(:mod:`gateway.supervision.figures`), not as the original call's.

    no queue nor leg, ended, a "callback" step  callback          (whatever the agent)
    agent set                                   answered
    queue set, ended, a leg abandoned / no legs abandoned_queue   (the caller hung up waiting)
    queue set, ended, legs only timed out       queue_timeout     (the dialplan gave up on the queue)
    queue set, not ended                        in_queue
    no queue, not ended                         in_ivr
    no queue, a "callback" step                 callback
    no queue, a caller_hangup step              abandoned_ivr     (node: where they gave up)
    no queue, otherwise                         ended_in_ivr      (the flow ended it: closed, self-service...)
"""

from __future__ import annotations

from typing import Any, Iterable

OUTCOMES = ("answered", "abandoned_queue", "queue_timeout", "in_queue", "in_ivr", "callback", "abandoned_ivr",
            "ended_in_ivr")


def ivr_exit(menu_path: Iterable[dict[str, Any]] | None) -> tuple[str, str | None]:
    """``(outcome, node)`` of a call that ended without reaching a queue."""
    steps = [s for s in (menu_path or []) if isinstance(s, dict)]
    if any(s.get("result") == "callback" for s in steps):
        return "callback", None
    for step in reversed(steps):
        if step.get("node") == "caller_hangup":
            return "abandoned_ivr", str(step.get("at") or "?")
    return "ended_in_ivr", None


def call_outcome(*, status: str, queue: str | None, agent: str | None, menu_path=None,
                 legs_abandoned: bool | None = None) -> tuple[str, str | None]:
    """``(outcome, node)`` of one call (see the module's table); ``legs_abandoned`` is None
    when the call's queue legs are unknown (then a call that reached a queue and ended
    unanswered counts as abandoned there)."""
    if agent:
        if not queue and status == "ended" and legs_abandoned is None and ivr_exit(menu_path)[0] == "callback":
            return "callback", None  # the agent is the callback call's (see the module's notes)
        return "answered", None
    if queue:
        if status != "ended":
            return "in_queue", None
        return ("queue_timeout" if legs_abandoned is False else "abandoned_queue"), None
    if status != "ended":
        return "in_ivr", None
    return ivr_exit(menu_path)
