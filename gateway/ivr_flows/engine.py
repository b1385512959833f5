"""The flow interpreter: walks a validated :class:`Flow` over a :class:`CallChannel`.

Theory of operation
-------------------
A call starts with variables taken from its line (mode, department, the line's
skill or sub-centre queue). The interpreter then visits nodes from the flow's
``start``; each node kind is one small coroutine that returns the next node id
(or ``None`` when the call leaves the IVR). Every visit is appended to the
call's menu path and reported to the observer, which persists it.

The interpreter is pure: no Asterisk, no database. A :class:`FlowObserver`
gets told at the two moments the product cares about: ``ticket_point`` just
before the caller is recorded or handed to an agent (the draft ticket must
exist before Asterisk is told to go on), and ``recorded`` once the recording
exists. Hang-ups surface as :class:`ChannelHangup` from the channel and end
the walk; what was persisted up to then stays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Protocol

from gateway.errors import ChannelHangup, GatewayError
from gateway.ivr_flows.calendar import is_open
from gateway.ivr_flows.channel import CallChannel, Recording
from gateway.ivr_flows.model import (
    BroadcastNode,
    CalendarNode,
    GatewayConfig,
    HangupNode,
    Line,
    MenuNode,
    PlayNode,
    RecordNode,
    TransferNode,
)

log = logging.getLogger(__name__)
MAX_STEPS = 200  # a flow that loops forever is a configuration bug; stop it


class FlowError(GatewayError):
    """The flow could not continue (a bug or a loop in the configuration)."""


@dataclass
class CallState:
    uniqueid: str
    line: Line
    caller: str
    dialled: str
    vars: dict = field(default_factory=dict)
    path: list = field(default_factory=list)
    outcome: str = "in_ivr"  # queued / hangup / caller_hangup
    queue: str | None = None
    recording: Recording | None = None

    @property
    def path_text(self) -> str:
        return ">".join(format_step(step) for step in self.path)


def format_step(step: dict) -> str:
    text = step["node"]
    if "key" in step:
        text += f":{step['key'] or '-'}"
    if "queue" in step:
        text += f":{step['queue']}"
    if step.get("result") not in (None, "ok"):
        text += f"({step['result']})"
    return text


class FlowObserver(Protocol):
    async def step(self, state: CallState, entry: dict) -> None: ...

    async def ticket_point(self, state: CallState) -> None: ...

    async def recorded(self, state: CallState, recording: Recording) -> None: ...


class NullObserver:
    async def step(self, state, entry):
        return None

    async def ticket_point(self, state):
        return None

    async def recorded(self, state, recording):
        return None


def prompt_key(flow_id: str, line: Line, prompt_id: str, *, line_texts: bool = True) -> str:
    """The catalogue key of a prompt as heard on ``line`` (line texts override the flow's).

    ``line_texts=False`` once a call has overflowed to 12345 central (variable ``overflow``):
    from then on the caller hears 12345's own texts, not the sub-centre's greeting.
    """
    if line_texts and prompt_id in line.prompt_overrides():
        return f"line-{line.number}-{prompt_id}"
    return f"{flow_id}-{prompt_id}"


def broadcast_key(broadcast_id: str) -> str:
    return f"broadcast-{broadcast_id}"


def initial_vars(line: Line) -> dict:
    out = {"line_number": line.number, "mode": line.mode, "department": line.department or ""}
    if line.mode in ("dual_number", "sub_centre") and line.queue:
        out["line_queue"] = line.queue
    if line.mode == "sub_centre":
        out["handled_by"] = line.handled_by or line.department or ""
    return out


class Interpreter:
    def __init__(self, config: GatewayConfig, *, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.clock = clock

    async def run(self, state: CallState, channel: CallChannel, observer: FlowObserver) -> CallState:
        flow = self.config.flows[state.line.flow]
        state.vars.update(initial_vars(state.line))
        visit = _Visit(self, flow, state, channel, observer)
        try:
            visit.current = "announcement"
            if state.line.mode == "retired" and state.line.announce:
                await visit.play_prompt("announcement")
                await visit.record_step({"node": "announcement"})
            node_id: str | None = flow.start
            for _ in range(MAX_STEPS):
                if node_id is None:
                    break
                visit.current = node_id
                node_id = await visit.node(flow.nodes[node_id])
            else:
                raise FlowError(f"flow {flow.id!r} did not finish within {MAX_STEPS} steps")
        except ChannelHangup:
            state.outcome = "caller_hangup"
            await visit.record_step({"node": "caller_hangup", "at": visit.current})
        return state


class _Visit:
    """One call's walk through one flow."""

    def __init__(self, interp: Interpreter, flow, state: CallState, channel: CallChannel, observer) -> None:
        self.interp, self.flow, self.state, self.channel, self.observer = interp, flow, state, channel, observer
        self.current: str | None = None

    async def record_step(self, entry: dict) -> None:
        self.state.path.append(entry)
        await self.observer.step(self.state, entry)

    def key(self, prompt_id: str) -> str:
        return prompt_key(self.flow.id, self.state.line, prompt_id, line_texts=not self.state.vars.get("overflow"))

    async def play_prompt(self, prompt_id: str) -> None:
        await self.channel.play(self.key(prompt_id))

    async def node(self, node) -> str | None:
        handler = {
            PlayNode: self._play,
            MenuNode: self._menu,
            RecordNode: self._record,
            TransferNode: self._transfer,
            CalendarNode: self._calendar,
            HangupNode: self._hangup,
            BroadcastNode: self._broadcast,
        }[type(node)]
        return await handler(node)

    async def _play(self, node: PlayNode) -> str:
        await self.play_prompt(node.prompt)
        self.state.vars.update(node.set)
        await self.record_step({"node": node.id})
        return node.next

    async def _calendar(self, node: CalendarNode) -> str:
        schedule = self.interp.config.schedules[self.state.line.hours]
        opened = is_open(schedule, self.interp.clock())
        await self.record_step({"node": node.id, "result": "open" if opened else "closed"})
        return node.open if opened else node.closed[self.state.line.after_hours]

    async def _menu(self, node: MenuNode) -> str:
        prompt = self.key(node.prompt)
        for attempt in range(node.retries + 1):
            keys = await self.channel.collect_digits(prompt, max_digits=1, timeout=node.timeout)
            if not keys and node.default is not None:
                keys, result = node.default, "default"
            else:
                result = "ok"
            option = node.options.get(keys)
            if option is not None:
                self.state.vars.update(node.options[keys].set)
                await self.record_step({"node": node.id, "key": keys, "label": option.label, "result": result})
                return option.next
            result = "no_input" if not keys else "invalid"
            await self.record_step({"node": node.id, "key": keys, "result": result})
            retry_prompt = node.no_input_prompt if not keys and node.no_input_prompt else node.invalid_prompt
            if attempt < node.retries and retry_prompt:
                await self.play_prompt(retry_prompt)
        return node.on_failure

    async def _record(self, node: RecordNode) -> str | None:
        await self.observer.ticket_point(self.state)
        await self.play_prompt(node.prompt)
        beep = self.key(node.beep_prompt) if node.beep_prompt else None
        recording = await self.channel.record(
            self.state.uniqueid, max_seconds=node.max_seconds, silence_seconds=node.silence_seconds,
            beep_prompt_id=beep,
        )
        self.state.recording = recording
        await self.observer.recorded(self.state, recording)
        await self.record_step({"node": node.id, "result": recording.ended_by, "duration_ms": recording.duration_ms})
        if recording.ended_by == "hangup":
            raise ChannelHangup("caller hung up while recording")
        return node.next

    async def _broadcast(self, node: BroadcastNode) -> str:
        now = self.interp.clock()
        active = [b for b in self.interp.config.broadcasts if b.active(self.state.line.number, now)]
        for item in active:
            await self.channel.play(broadcast_key(item.id))
        await self.record_step({"node": node.id, "broadcasts": [b.id for b in active]})
        return node.next

    async def _transfer(self, node: TransferNode) -> None:
        candidates = [self.state.vars[v] for v in node.queue_from if self.state.vars.get(v)] + [node.default_queue]
        queue = candidates[0]
        overflow = None
        line = self.state.line
        if line.mode == "sub_centre" and self.state.vars.get("line_queue") == queue:
            # Unanswered at the sub-centre within its overflow time: 12345 central takes the call.
            overflow = next((q for q in candidates[1:] if q != queue), None)
        self.state.queue = queue
        await self.observer.ticket_point(self.state)
        if node.prompt:
            await self.play_prompt(node.prompt)
        step = {"node": node.id, "queue": queue}
        if overflow:
            step.update(overflow_queue=overflow, overflow_seconds=line.overflow_seconds)
        await self.record_step(step)
        if overflow:
            await self.channel.transfer_to_queue(queue, wait_seconds=line.overflow_seconds, overflow_queue=overflow)
        else:
            await self.channel.transfer_to_queue(queue)
        self.state.outcome = "queued"
        return None

    async def _hangup(self, node: HangupNode) -> None:
        if node.prompt:
            await self.play_prompt(node.prompt)
        await self.record_step({"node": node.id})
        self.state.outcome = "hangup"
        await self.channel.hangup()
        return None
