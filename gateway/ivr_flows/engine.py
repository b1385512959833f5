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

No key is lost between a prompt and the menu that reads it. The PBX drops keys that
arrive while it waits for the gateway's next command (Asterisk's AGI idle loop reads and
frees them), and between a prompt and its menu the gateway does real work: it saves the
menu path, asks the recogniser for a stream at a speech menu, falls back to keys when none
is free. So the interpreter asks the channel to *watch* for keys (``watch_keys``: after
every prompt played ahead of a menu, and while a menu's answer is being saved) and the
next menu first *takes* what was caught (``take_keys``), before it listens or reads keys,
and again when a speech menu falls back to keys. A caught key is type-ahead: the menu's
answer, exactly as a key pressed during the prompt. A channel without these methods (a
dry run) simply has no watch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Protocol

from gateway.callback.estimate import spoken_minutes
from gateway.callback.policy import BadCallbackNumber, callback_number
from gateway.errors import ChannelHangup, GatewayError
from gateway.ivr_flows.calendar import is_open
from gateway.ivr_flows.channel import CallChannel, Heard, Recording, SpeechUnavailable
from gateway.ivr_flows.model import (
    SPEECH_LANGUAGES,
    BroadcastNode,
    CalendarNode,
    CallbackOffer,
    Flow,
    GatewayConfig,
    GotoFlowNode,
    HangupNode,
    Line,
    MenuNode,
    PlayNode,
    ProgressNode,
    RecordNode,
    SayTicketNode,
    TransferNode,
)
from gateway.ticketing.ticket_no import is_ticket_no, spoken_groups
from gateway.ivr_flows.progress import ProgressDesk, run_progress

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

    async def transcribed(self, state: CallState, transcript: dict) -> None: ...

    async def transcript_pending(self, state: CallState, language: str, reason: str) -> None: ...

    async def emergency(self, state: CallState, words: list) -> None: ...

    # Optional (the interpreter calls it when present): False when the caller cannot be recorded
    # now (no room for the recording); the record step is then skipped and the flow goes on.
    # async def may_record(self, state: CallState) -> bool: ...

    # Optional, for a transfer's callback offer (virtual hold; without them no offer is made):
    # async def expected_wait(self, state, queue) -> tuple[float | None, float] | None:
    #     (expected seconds, None when nobody staffs the queue; the default limit in seconds),
    #     or None when the wait cannot be known now (no offer then).
    # async def callback_requested(self, state, queue, number, source) -> None:
    #     keep the caller's place; raises GatewayError if it cannot (the caller then waits).


class NullObserver:
    async def step(self, state, entry):
        return None

    async def ticket_point(self, state):
        return None

    async def recorded(self, state, recording):
        return None

    async def transcribed(self, state, transcript):
        return None

    async def transcript_pending(self, state, language, reason):
        return None

    async def emergency(self, state, words):
        return None


def speech_language(flow: Flow) -> str | None:
    """The recogniser language of a flow's callers (``speech:``, else from the prompt voice)."""
    return flow.speech or SPEECH_LANGUAGES.get(flow.language)


def match_option(text: str, options: dict) -> str | None:
    """The key of the one option whose spoken words occur in ``text`` (None if none or several)."""
    said = "".join(text.split()).lower()
    if not said:
        return None
    hits = {key for key, option in options.items()
            if any("".join(word.split()).lower() in said for word in option.words)}
    return hits.pop() if len(hits) == 1 else None


def menu_grammar(options: dict, guard_words) -> list:
    """The recogniser's runtime grammar at a speech menu: emergency words, option words, [unk].

    Emergency words first: Whisper reads the list as the preceding text, and with them after a
    longer option list it wrote a caller's 着火了 as 找火了 (no guard); first, both 着火了 and
    投诉 come out right (tests/e2e/test_mandarin.py). Vosk's grammar ignores the order."""
    words = list(guard_words) + [w for option in options.values() for w in option.words]
    return list(dict.fromkeys(words)) + ["[unk]"]


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


TYPEAHEAD_KEYS = "0123456789*#"

# What the dialplan's fail-safe keeps of a call if the gateway is lost mid-call (channel
# variables, set through ``CallChannel.remember``): GW_IVR=started once the flow runs (the
# dialplan then sends the caller to the fail-safe rather than restarting the menu on another
# gateway), GW_CHOICE_QUEUE (the queue the choices so far lead to), GW_CHOICE_CATEGORY and
# GW_CHOICE_PATH (the menu keys so far, ``type_menu:4>confidential_menu:1``).
CHOICE_PATH_MAX = 120


def emergency_queue(flow: Flow) -> str:
    """The queue the flow's emergency node leads to when the caller does nothing ('' if none)."""
    guard = flow.emergency
    node = flow.nodes.get(guard.node) if guard is not None else None
    if not isinstance(node, MenuNode):
        return ""
    default = node.options.get(node.default) if node.default else None
    for target in (getattr(default, "next", None), node.on_failure):
        transfer = flow.nodes.get(target) if target else None
        if isinstance(transfer, TransferNode):
            return transfer.default_queue
    return ""


def choice_queue(flow: Flow, variables: Mapping) -> str:
    """The queue the caller's choices so far lead to ('' when none): after the emergency guard
    fired, the emergency queue (a gateway lost then must not send an emergency to the category's
    queue); else the first variable set among the ``queue_from`` of the flow's transfer that
    names the most of them."""
    if variables.get("emergency") and (queue := emergency_queue(flow)):
        return queue
    transfers = [n for n in flow.nodes.values() if isinstance(n, TransferNode) and n.queue_from]
    for node in sorted(transfers, key=lambda n: -len(n.queue_from)):
        for name in node.queue_from:
            if variables.get(name):
                return str(variables[name])
    return ""


def choice_path(path: list) -> str:
    """The menu keys chosen so far, ``node:key`` joined by ``>`` (at most CHOICE_PATH_MAX characters)."""
    steps = [f"{e['node']}:{e['key']}" for e in path if e.get("key") and e.get("label") is not None]
    text = ">".join(steps)
    while len(text) > CHOICE_PATH_MAX and steps:
        steps.pop(0)
        text = "...>" + ">".join(steps)
    return text


class Interpreter:
    def __init__(self, config: GatewayConfig, *, clock: Callable[[], datetime],
                 guard_words: Mapping[str, tuple] | None = None, progress: ProgressDesk | None = None) -> None:
        self.config = config
        self.clock = clock
        self.guard_words = dict(guard_words or {})  # recogniser language -> emergency keywords
        self.progress = progress  # progress by phone's database and live voice (None: such nodes go to an agent)

    async def run(self, state: CallState, channel: CallChannel, observer: FlowObserver) -> CallState:
        flow = self.config.flows[state.line.flow]
        state.vars.update(initial_vars(state.line))
        state.vars["language"] = speech_language(flow) or ""
        visit = _Visit(self, flow, state, channel, observer)
        try:
            await visit.remember()
            visit.current = "announcement"
            if state.line.mode == "retired" and state.line.announce:
                key = await visit.play_ahead("announcement")
                await visit.record_step({"node": "announcement", **({"typeahead": key} if key else {})})
            node_id: str | None = flow.start
            for _ in range(MAX_STEPS):
                if node_id is None:
                    break
                visit.current = node_id
                node_id = await visit.node(visit.flow.nodes[node_id])
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
        # Type-ahead: keys pressed during the prompts before a menu, oldest first; each menu
        # takes one (as Asterisk's Background() does). Dropped at a recording or a transfer.
        self.typeahead = ""
        self.remembered: dict[str, str] = {}

    async def remember(self) -> None:
        """Tell the channel the caller's choices so far (what the fail-safe routes by), changes only."""
        remember = getattr(self.channel, "remember", None)
        if remember is None:  # a channel without a fail-safe (a dry run, a scripted test channel)
            return
        wanted = {
            "GW_IVR": "started",
            "GW_CHOICE_QUEUE": choice_queue(self.flow, self.state.vars),
            "GW_CHOICE_CATEGORY": str(self.state.vars.get("category") or ""),
            "GW_CHOICE_PATH": choice_path(self.state.path),
        }
        changed = {k: v for k, v in wanted.items() if self.remembered.get(k, "" if k != "GW_IVR" else None) != v}
        if changed:
            await remember(changed)
            self.remembered.update(changed)

    async def record_step(self, entry: dict) -> None:
        self.state.path.append(entry)
        await self.observer.step(self.state, entry)

    def key(self, prompt_id: str) -> str:
        line_texts = not self.state.vars.get("overflow") and self.flow.id == self.state.line.flow
        return prompt_key(self.flow.id, self.state.line, prompt_id, line_texts=line_texts)

    @property
    def language(self) -> str | None:
        return speech_language(self.flow)

    def guard_words(self) -> tuple:
        if self.flow.emergency is None or not self.language:
            return ()
        return tuple(self.interp.guard_words.get(self.language, ()))

    def can_listen(self) -> bool:
        return bool(self.language) and self.channel.can_listen(self.language)

    async def emergency(self, words: list, via: str) -> str:
        """The guard fired: flag the ticket at once and go to the flow's emergency node."""
        self.state.vars["emergency"] = True
        await self.observer.ticket_point(self.state)
        await self.observer.emergency(self.state, list(words))
        await self.record_step({"node": "emergency_guard", "via": via, "words": list(words)})
        await self.remember()  # the fail-safe now routes to the emergency queue
        return self.flow.emergency.node

    async def offer_emergency_key(self) -> None:
        """No recogniser for this language: tell the caller the emergency key instead (once)."""
        guard = self.flow.emergency
        if guard is None or not guard.key_prompt or self.state.vars.get("emergency_key_offered"):
            return
        if self.guard_words() and self.can_listen():
            return
        self.state.vars["emergency_key_offered"] = True
        await self.play_ahead(guard.key_prompt)

    async def play_prompt(self, prompt_id: str) -> None:
        await self.channel.play(self.key(prompt_id))

    async def play_ahead(self, prompt_id: str, *, interruptible: bool = True) -> str | None:
        """A prompt before a menu: keys pressed meanwhile are kept for that menu.

        Returns the key pressed during it, '' for none, or None when it was not played
        because the caller had already answered (an interruptible prompt after type-ahead).
        """
        self.typeahead += await self.take_keys()
        if self.typeahead and interruptible:
            self.watch_keys()
            return None
        key = await self.channel.play(self.key(prompt_id), keys=TYPEAHEAD_KEYS, interruptible=interruptible)
        self.typeahead += key
        self.watch_keys()  # and after it, until the menu reads keys
        return key

    def watch_keys(self) -> None:
        """Keys pressed from now until the next menu are its answer (the channel's key watch)."""
        watch = getattr(self.channel, "watch_keys", None)  # optional: a dry run has none
        if watch is not None:
            watch(TYPEAHEAD_KEYS)

    async def take_keys(self) -> str:
        """The keys the channel caught between commands since watch_keys (ends the watch)."""
        take = getattr(self.channel, "take_keys", None)
        return await take() if take is not None else ""

    async def node(self, node) -> str | None:
        handler = {
            PlayNode: self._play,
            MenuNode: self._menu,
            RecordNode: self._record,
            TransferNode: self._transfer,
            CalendarNode: self._calendar,
            HangupNode: self._hangup,
            BroadcastNode: self._broadcast,
            GotoFlowNode: self._goto_flow,
            SayTicketNode: self._say_ticket,
            ProgressNode: self._progress,
        }[type(node)]
        return await handler(node)

    async def _play(self, node: PlayNode) -> str:
        key = await self.play_ahead(node.prompt, interruptible=node.interruptible)
        self.state.vars.update(node.set)
        entry = {"node": node.id}
        if key is None:
            entry["skipped"] = "typeahead"
        elif key:
            entry["typeahead"] = key
        await self.record_step(entry)
        if node.set:
            await self.remember()
        return node.next

    async def _calendar(self, node: CalendarNode) -> str:
        schedule = self.interp.config.schedules[self.state.line.hours]
        opened = is_open(schedule, self.interp.clock())
        await self.record_step({"node": node.id, "result": "open" if opened else "closed"})
        return node.open if opened else node.closed[self.state.line.after_hours]

    async def _menu(self, node: MenuNode) -> str:
        prompt = self.key(node.prompt)
        guard = self.flow.emergency
        emergency_key = guard.key if guard is not None else None
        await self.offer_emergency_key()
        speech = node.speech and self.can_listen()
        for attempt in range(node.retries + 1):
            said, heard, ahead = "", None, False
            self.typeahead += await self.take_keys()
            if not self.typeahead and speech:
                try:
                    heard = await self._listen_menu(node, prompt, emergency_key)
                except SpeechUnavailable as exc:
                    log.info("call %s: speech menu %s falls back to keys: %s", self.state.uniqueid, node.id, exc)
                    speech = False
                    # a key pressed while the stream was being sought is the answer
                    self.typeahead += await self.take_keys()
            if heard is None and self.typeahead:  # pressed during the prompts before this menu
                keys, self.typeahead, ahead = self.typeahead[0], self.typeahead[1:], True
            if ahead:
                pass
            elif heard is not None:
                if heard.ended_by == "emergency":
                    return await self.emergency(list(heard.emergency_words), via="speech")
                if heard.ended_by == "hangup":
                    raise ChannelHangup("caller hung up at a speech menu")
                said = heard.text
                keys = heard.digit or (match_option(said, node.options) or "" if said else "")
            else:
                keys = await self.channel.collect_digits(prompt, max_digits=1, timeout=node.timeout)
            if emergency_key and keys == emergency_key:
                return await self.emergency([f"key {keys}"], via="key")
            if not keys and not said and node.default is not None:
                keys, result = node.default, "default"
            else:
                result = "ok"
            option = node.options.get(keys)
            entry = {"node": node.id, "key": keys}
            if ahead:
                entry["via"] = "typeahead"
            if said:
                entry["said"] = said[:200]
            if option is not None:
                self.state.vars.update(option.set)
                entry.update(label=option.label, result=result)
                if said and not (heard and heard.digit):
                    entry["via"] = "speech"
                self.watch_keys()  # a key for the next menu may come while this one is saved
                await self.record_step(entry)
                await self.remember()
                return option.next
            result = "no_input" if not keys and not said else "invalid"
            entry["result"] = result
            self.watch_keys()
            await self.record_step(entry)
            retry_prompt = node.no_input_prompt if result == "no_input" and node.no_input_prompt else node.invalid_prompt
            if attempt < node.retries and retry_prompt:
                await self.play_prompt(retry_prompt)
            if speech and (result == "no_input" or said):
                # nothing said, or said but matching no option surely (a recogniser hears short
                # words badly): from now on the keypad, whose answer is certain
                speech = False
        return node.on_failure

    async def _listen_menu(self, node: MenuNode, prompt: str, emergency_key: str | None) -> Heard:
        guard = self.guard_words()
        # Any key ends a speech menu: a caller on the keypad gets the keypad's answer at once
        # (an option, or "invalid" for a key that is none), never a wait for no_input.
        return await self.channel.listen(
            None, language=self.language, prompt_ids=[prompt], grammar=menu_grammar(node.options, guard),
            guard_words=guard, max_seconds=node.timeout + 5, silence_seconds=0.8,
            no_input_seconds=node.timeout, end_keys=TYPEAHEAD_KEYS,
        )

    async def _record(self, node: RecordNode) -> str | None:
        await self.take_keys()
        self.typeahead = ""  # keys are not a description
        await self.observer.ticket_point(self.state)
        may_record = getattr(self.observer, "may_record", None)  # optional: free space for recordings
        if may_record is not None and not await may_record(self.state):
            # Nowhere to keep the caller's words: an agent takes the description instead.
            await self.record_step({"node": node.id, "result": "skipped", "reason": "recording_unavailable"})
            return node.next
        if node.speech and self.language:
            heard = await self._describe_by_speech(node) if self.can_listen() else None
            if heard is not None:
                return await self._described(node, heard)
        await self.play_prompt(node.prompt)
        beep = self.key(node.beep_prompt) if node.beep_prompt else None
        recording = await self.channel.record(
            self.state.uniqueid, max_seconds=node.max_seconds, silence_seconds=node.silence_seconds,
            beep_prompt_id=beep,
        )
        self.state.recording = recording
        await self.observer.recorded(self.state, recording)
        if node.speech and self.language and recording.duration_ms > 0:
            await self.observer.transcript_pending(self.state, self.language, "no live recogniser")
        await self.record_step({"node": node.id, "result": recording.ended_by, "duration_ms": recording.duration_ms})
        if recording.ended_by == "hangup":
            raise ChannelHangup("caller hung up while recording")
        return node.next

    async def _describe_by_speech(self, node: RecordNode) -> Heard | None:
        prompts = [self.key(node.prompt)] + ([self.key(node.beep_prompt)] if node.beep_prompt else [])
        heard = None
        for attempt in range(2):
            try:
                heard = await self.channel.listen(
                    self.state.uniqueid, language=self.language, prompt_ids=prompts, grammar=None,
                    guard_words=self.guard_words(), max_seconds=node.max_seconds,
                    silence_seconds=node.silence_seconds, no_input_seconds=node.no_input_seconds, end_keys="#",
                )
            except SpeechUnavailable as exc:
                log.info("call %s: live speech unavailable (%s); recording instead", self.state.uniqueid, exc)
                return None if heard is None else heard
            if heard.ended_by != "no_input" or attempt == 1 or not node.no_input_prompt:
                return heard
            await self.record_step({"node": node.id, "result": "no_input"})
            prompts = [self.key(node.no_input_prompt)] + prompts[1:]
        return heard

    async def _described(self, node: RecordNode, heard: Heard) -> str | None:
        if heard.recording is not None:
            self.state.recording = heard.recording
            await self.observer.recorded(self.state, heard.recording)
        if heard.transcript is not None and heard.transcript_status == "done":
            await self.observer.transcribed(self.state, heard.transcript)
        elif heard.transcript_status == "pending" and heard.recording is not None:
            await self.observer.transcript_pending(self.state, self.language, heard.error or "recognition failed")
        entry = {"node": node.id, "result": heard.ended_by,
                 "duration_ms": heard.recording.duration_ms if heard.recording else 0, "via": "speech"}
        await self.record_step(entry)
        if heard.ended_by == "emergency":
            return await self.emergency(list(heard.emergency_words), via="speech")
        if heard.emergency_words:  # heard after the caller finished (final result only)
            await self.observer.emergency(self.state, list(heard.emergency_words))
        if heard.ended_by == "hangup":
            raise ChannelHangup("caller hung up while describing")
        return node.next

    async def _broadcast(self, node: BroadcastNode) -> str:
        now = self.interp.clock()
        active = [b for b in self.interp.config.broadcasts if b.active(self.state.line.number, now)]
        heard = []
        for item in active:
            self.typeahead += await self.take_keys()
            if self.typeahead:
                break  # the caller has answered the menu already
            self.typeahead += await self.channel.play(broadcast_key(item.id), keys=TYPEAHEAD_KEYS)
            heard.append(item.id)
        self.watch_keys()
        entry = {"node": node.id, "broadcasts": [b.id for b in active]}
        if len(heard) < len(active):
            entry["skipped"] = "typeahead"
        await self.record_step(entry)
        return node.next

    async def _goto_flow(self, node: GotoFlowNode) -> str:
        self.flow = self.interp.config.flows[node.flow]
        self.state.vars["language"] = self.language or ""
        await self.record_step({"node": node.id, "flow": node.flow})
        await self.remember()
        return self.flow.start

    async def _progress(self, node: ProgressNode) -> str | None:
        return await run_progress(self, node)  # gateway.ivr_flows.progress

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
        if node.callback is not None and overflow is None and await self._callback(node, queue):
            return None
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

    async def _say_ticket(self, node: SayTicketNode) -> str:
        """Read the ticket number digit by digit (4-3-4), offer the repeat key (issue 13).

        The ticket (and its number) exists before the first digit: a caller who hangs up
        meanwhile keeps it. The observer's optional ``ticket_told`` is told first (the SMS).
        """
        await self.take_keys()
        self.typeahead = ""
        if not is_ticket_no(str(self.state.vars.get("ticket_no") or "")):
            await self.observer.ticket_point(self.state)  # draws the number (a real call's observer)
        number = str(self.state.vars.get("ticket_no") or "")
        if not is_ticket_no(number):  # a dry run, a scripted test: no ticket number to say
            await self.record_step({"node": node.id, "result": "no_number"})
            return node.next
        told = getattr(self.observer, "ticket_told", None)  # optional: the SMS with the number
        if told is not None:
            await told(self.state)
        reading = [node.prompt]
        for n, group in enumerate(spoken_groups(number)):
            if n:  # no pause after the intro: the recogniser then hears words, not digits (bench)
                reading.append("digit-pause")
            for i, digit in enumerate(group):
                reading += ["digit-gap"] * bool(i) + [f"digit-{digit}"]
        sequence = getattr(self.channel, "play_sequence", None)  # optional: one command, exact pacing
        said = 0
        for attempt in range(node.repeats + 1):
            if sequence is not None:
                await sequence([self.key(p) for p in reading])
            else:
                for prompt in reading:
                    await self.play_prompt(prompt)
            said += 1
            if attempt == node.repeats or not node.repeat_prompt:
                break
            key = await self.channel.collect_digits(self.key(node.repeat_prompt), max_digits=1, timeout=node.timeout)
            if key != node.repeat_key:
                break
        await self.record_step({"node": node.id, "times": said})
        return node.next
    # -- a callback instead of waiting (virtual hold) -----------------------------------------
    async def _callback(self, node: TransferNode, queue: str) -> bool:
        """Offer a callback when the queue's wait is long. True once the caller's place is kept
        and the call was hung up; False to go on into the queue (no offer, declined, nothing
        pressed, no usable number): the caller is never lost."""
        offer: CallbackOffer = node.callback
        estimate = getattr(self.observer, "expected_wait", None)
        requested = getattr(self.observer, "callback_requested", None)
        if estimate is None or requested is None:
            return False
        figures = await estimate(self.state, queue)
        if figures is None:
            return False
        seconds, default_limit = figures
        limit = offer.over_seconds if offer.over_seconds is not None else default_limit
        if seconds is not None and seconds <= limit:
            return False
        await self.take_keys()
        self.typeahead = ""
        minutes = spoken_minutes(seconds)
        prompt = f"{self.key(offer.offer)}-{minutes}" if minutes is not None else self.key(offer.offer_long)
        key = await self.channel.collect_digits(prompt, max_digits=1, timeout=offer.timeout)
        entry = {"node": node.id, "callback_offer": minutes if minutes is not None else "long", "key": key}
        if key != "1":
            await self.record_step({**entry, "result": "keep_waiting"})
            return False
        number, source = await self._callback_number(offer)
        if not number:
            await self.record_step({**entry, "result": "no_number"})
            return False
        try:
            await requested(self.state, queue, number, source)
        except GatewayError as exc:
            log.warning("call %s: callback could not be kept (%s); the caller waits", self.state.uniqueid, exc)
            await self.record_step({**entry, "result": "not_kept"})
            return False
        await self.record_step({**entry, "result": "callback", "number_source": source})
        await self.play_prompt(offer.accepted)
        self.state.outcome = "callback"
        await self.channel.hangup()
        return True

    async def _callback_number(self, offer: CallbackOffer) -> tuple[str, str]:
        """``(number, source)``: the calling number confirmed, or a keyed one ('' if none)."""
        try:
            number, source = callback_number(self.state.caller), "caller_id"
        except BadCallbackNumber:
            number, source = "", "keyed"
        for _ in range(3):
            if not number:
                number = await self._key_number(offer)
                source = "keyed"
                if not number:
                    return "", source
            answer = await self._confirm(offer, number)
            if answer == "1":
                return number, source
            if answer != "2":
                return "", source  # nothing pressed: the caller keeps waiting in the queue
            number = ""
        return "", source

    async def _confirm(self, offer: CallbackOffer, number: str) -> str:
        """"回拨号码为 <digits>，确认请按1，使用其他号码请按2": the caller's key ('' for none)."""
        head = self.key(offer.confirm)
        for part in [f"{head}-a"] + [f"{self.flow.id}-digit-{d}" for d in number]:
            key = await self.channel.play(part, keys="12")
            if key:
                return key
        return await self.channel.collect_digits(f"{head}-b", max_digits=1, timeout=offer.timeout)

    async def _key_number(self, offer: CallbackOffer) -> str:
        prompt = self.key(offer.enter)
        for attempt in range(2):
            keyed = (await self.channel.collect_digits(prompt, max_digits=12, timeout=offer.timeout + 3)).rstrip("#")
            if not keyed:
                return ""
            try:
                return callback_number(keyed)
            except BadCallbackNumber as exc:
                await self.record_step({"node": "callback_number", "result": "invalid", "reason": exc.message})
                if attempt == 0:
                    await self.play_prompt(offer.invalid)
        return ""

    async def _hangup(self, node: HangupNode) -> None:
        if node.prompt:
            await self.play_prompt(node.prompt)
        await self.record_step({"node": node.id})
        self.state.outcome = "hangup"
        await self.channel.hangup()
        return None
