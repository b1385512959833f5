"""Typed, immutable configuration: flows, lines, queues, agents, schedules.

Built only by :mod:`gateway.ivr_flows.validate` (flows by its :mod:`~gateway.ivr_flows.flowcheck`), which guarantees every
reference resolves; the interpreter can therefore trust these objects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Union

MERGE_MODES = ("primary", "retired", "dual_number", "sub_centre")
EMERGENCY_NUMBERS = frozenset({"110", "119", "120", "122"})
CATEGORIES = ("咨询", "建议", "举报", "投诉", "求助")


@dataclass(frozen=True)
class PlayNode:
    id: str
    prompt: str
    next: str
    set: dict = field(default_factory=dict)
    # Type-ahead: a key pressed while this prompt plays answers the next menu. When
    # interruptible (the default) the key also cuts the prompt short and the prompts
    # before that menu are skipped; when not, this prompt still plays to its end.
    interruptible: bool = True


@dataclass(frozen=True)
class MenuOption:
    key: str
    label: str
    next: str
    set: dict = field(default_factory=dict)
    say: tuple = ()  # words a caller may say instead of pressing the key (speech menus); default: the label

    @property
    def words(self) -> tuple:
        return self.say or (self.label,)


@dataclass(frozen=True)
class MenuNode:
    id: str
    prompt: str
    options: dict  # key -> MenuOption
    on_failure: str
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: str | None = None
    no_input_prompt: str | None = None
    default: str | None = None  # option taken when the caller presses nothing
    speech: bool = False  # the caller may say an option (when the flow's language has a model)


@dataclass(frozen=True)
class RecordNode:
    id: str
    prompt: str
    next: str
    beep_prompt: str | None = None
    max_seconds: float = 60.0
    silence_seconds: float = 3.0  # trailing silence that ends the description
    speech: bool = False  # transcribe live (AudioSocket + recogniser) when the language has a model
    no_input_seconds: float = 6.0  # speech: nothing said this long after the prompt -> retry once
    no_input_prompt: str | None = None


@dataclass(frozen=True)
class CallbackOffer:
    """A transfer's offer of a callback instead of waiting (virtual hold), when the queue's
    expected wait is over ``over_seconds`` (None: the gateway's GATEWAY_CALLBACK_OVER_SECONDS).

    Prompt ids of the flow: ``offer`` holds ``{minutes}`` (rendered once per step of
    gateway.callback.estimate.MINUTE_STEPS), ``offer_long`` is said beyond the last step or
    when nobody staffs the queue, ``confirm`` holds ``{number}`` (the number is read digit by
    digit between its two halves).
    """

    over_seconds: float | None = None
    timeout: float = 5.0
    offer: str = "callback_offer"
    offer_long: str = "callback_offer_long"
    confirm: str = "callback_confirm"
    enter: str = "callback_enter"
    invalid: str = "callback_invalid"
    accepted: str = "callback_accepted"
    notice: str = "callback_notice"  # played to the citizen who answers the callback

    def prompt_ids(self) -> dict:
        return {"offer": self.offer, "offer_long": self.offer_long, "confirm": self.confirm, "enter": self.enter,
                "invalid": self.invalid, "accepted": self.accepted, "notice": self.notice}


@dataclass(frozen=True)
class TransferNode:
    id: str
    default_queue: str
    queue_from: tuple = ()  # variable names tried in order; first non-empty wins
    prompt: str | None = None
    callback: CallbackOffer | None = None  # offer a callback when the wait is long


@dataclass(frozen=True)
class CalendarNode:
    id: str
    open: str
    closed: dict  # after-hours action ("central", "hangup") -> node id


@dataclass(frozen=True)
class HangupNode:
    id: str
    prompt: str | None = None


@dataclass(frozen=True)
class BroadcastNode:
    """Plays the hot-topic messages active for the line at that moment (none: plays nothing)."""

    id: str
    next: str


@dataclass(frozen=True)
class GotoFlowNode:
    """Continue the call in another flow (e.g. the Korean-language branch)."""

    id: str
    flow: str


@dataclass(frozen=True)
class SayTicketNode:
    """Reads the call's ticket number to the caller (issue 13), then goes on to ``next``.

    ``prompt`` introduces it ("您的工单号是"); the digits follow one by one in groups of 4-3-4
    with short pauses (prompts ``digit-0``..``digit-9`` and ``digit-pause`` of the flow,
    rendered once at apply in the flow's voice: :data:`DIGIT_TEXTS`); then ``repeat_prompt``
    offers ``repeat_key``: pressed within ``timeout`` seconds, the number is read again, at
    most ``repeats`` times. A call without a ticket number (a dry run) skips the node.
    """

    id: str
    prompt: str
    next: str
    repeat_prompt: str | None = None
    repeat_key: str = "*"
    repeats: int = 2
    timeout: float = 3.0


# How each digit is said when a number is read digit by digit, by flow voice (1 is 幺 in Mandarin,
# as in phone numbers; Korean reads Sino-Korean digits, 0 as 공 as on the phone).
DIGIT_TEXTS = {"cmn": "零幺二三四五六七八九", "ko": "공일이삼사오육칠팔구"}
DIGIT_PAUSE = "silence:350ms"  # between the 4-3-4 groups
DIGIT_GAP = "silence:150ms"  # between two digits of a group (bench/ticket_no.py: CER 0.27 without, 0.13 with)


# The prompts a progress node plays (role -> prompt id of its flow); every role is required.
PROGRESS_ROLES = (
    "searching",         # 正在为您查询，请稍候: while the offer of open tickets is synthesised
    "ask_number",        # 请输入11位工单号，以井号键结束
    "wrong_number",      # 工单号有误，请重新输入
    "too_many",          # too many wrong numbers (this call or this number): before the agent node
    "unavailable",       # the details cannot be spoken (synthesis failed or too slow): before the agent node
    "after",             # 重听请按1，查询其他工单请按2，转人工服务请按0
    "goodbye",           # nothing (or another key) after the details: then the call is hung up
    "status_draft",      # the ticket is still being registered (not yet submitted by the agent)
    "status_received",   # 受理: submitted, not yet dispatched
    "status_dispatched",  # 已派单
    "status_in_progress",  # 办理中 (accepted; also under review at the hotline)
    "status_handled",    # 已办结
    "status_followed_up",  # 已回访
    "status_answered",   # answered on the call (no dispatch)
)


@dataclass(frozen=True)
class ProgressNode:
    """Progress by phone (issue 13): the caller picks one of the calling number's open tickets
    or keys a ticket number, and hears its status, handling unit(s) and latest public reply
    (see :mod:`gateway.ivr_flows.progress`). ``agent`` is the node (a transfer) for key 0, too
    many wrong numbers, and details that cannot be spoken."""

    id: str
    agent: str
    prompts: dict  # role (PROGRESS_ROLES) -> prompt id
    attempts: int = 3  # wrong numbers in one call before the agent
    timeout: float = 8.0  # seconds to key the number (after the prompt, between keys)


Node = Union[PlayNode, MenuNode, RecordNode, TransferNode, CalendarNode, HangupNode, BroadcastNode, GotoFlowNode,
             SayTicketNode, ProgressNode]

SPEECH_LANGUAGES = {"cmn": "zh", "yue": "yue", "ko": "ko", "en": "en"}  # prompt voice -> recogniser language


@dataclass(frozen=True)
class EmergencyGuard:
    """Where a call goes when the caller reports an emergency (spoken keyword or ``key``).

    ``key_prompt`` offers the key; it is played before the first menu only when no speech
    model can listen for the flow's language (fail safe).
    """

    node: str
    key: str | None = None
    key_prompt: str | None = None


@dataclass(frozen=True)
class Flow:
    id: str
    language: str
    start: str
    prompts: dict  # prompt id -> text
    nodes: dict  # node id -> Node
    speech: str | None = None  # recogniser language (zh, ko...) of this flow's callers
    emergency: EmergencyGuard | None = None
    prompt_languages: dict = field(default_factory=dict)  # prompt id -> voice, when not the flow's


@dataclass(frozen=True)
class Schedule:
    """Opening hours. ``weekly`` maps 0..6 (Monday=0) to ((start_min, end_min), ...)."""

    name: str
    always_open: bool = False
    weekly: dict = field(default_factory=dict)
    holidays: frozenset = frozenset()  # ISO dates closed all day
    workdays: frozenset = frozenset()  # ISO dates (调休) that open with Monday's hours
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True)
class Queue:
    name: str
    label: str
    members: tuple = ()  # agent ids
    strategy: str = "rrmemory"
    timeout: int = 15  # seconds an agent's phone rings


@dataclass(frozen=True)
class Agent:
    id: str
    name: str


@dataclass(frozen=True)
class Line:
    number: str
    name: str
    mode: str
    flow: str = "main"
    department: str | None = None
    greeting: str | None = None
    announcement: str | None = None
    queue: str | None = None
    handled_by: str | None = None
    hours: str = "always"
    after_hours: str = "central"
    announce: bool = True  # retired lines: play "merged into 12345" (can be switched off later)
    overflow_seconds: int = 30  # sub-centre: unanswered this long -> 12345 central

    def prompt_overrides(self) -> dict:
        """Prompt ids of the flow that this line replaces with its own text."""
        out = {}
        if self.greeting:
            out["greeting"] = self.greeting
        if self.announcement and self.announce:
            out["announcement"] = self.announcement
        return out


@dataclass(frozen=True)
class Broadcast:
    """A hot-topic message (an outbreak, a citywide outage) played before the menu for a while."""

    id: str
    text: str
    start: datetime
    end: datetime
    lines: tuple = ("all",)

    def active(self, number: str, when: datetime) -> bool:
        return self.start <= when < self.end and ("all" in self.lines or number in self.lines)


@dataclass(frozen=True)
class EmergencyTransfer:
    """Where the desk's transfer sends a caller for one emergency service (110, 119, 120, 122):
    a queue of this configuration or a dial string (an Asterisk channel such as PJSIP/110@pstn)."""

    service: str
    name: str
    queue: str | None = None
    dial: str | None = None


@dataclass(frozen=True)
class GatewayConfig:
    lines: dict  # number -> Line
    queues: dict  # name -> Queue
    agents: dict  # id -> Agent
    schedules: dict  # name -> Schedule
    flows: dict  # id -> Flow
    timezone: str = "Asia/Shanghai"
    broadcasts: tuple = ()
    emergency_transfers: dict = field(default_factory=dict)  # service ("120") -> EmergencyTransfer

    @cached_property
    def version(self) -> str:
        """A short content hash: the same configuration always has the same version. Computed
        once per configuration (it serialises all of it; every call start reads it, issue 12's
        loop lag); the configuration is never changed in place, a new one is a new object."""
        blob = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False,
                          default=lambda v: v.isoformat() if isinstance(v, datetime) else sorted(v))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]

    def line(self, number: str) -> Line | None:
        return self.lines.get(number)

    @property
    def primary(self) -> Line:
        return next(line for line in self.lines.values() if line.mode == "primary")
