"""Progress by phone (issue 13): what a caller may hear about a ticket, and the node's walk.

Theory of operation
-------------------
A ``type: progress`` node (:class:`~gateway.ivr_flows.model.ProgressNode`) first asks the
:class:`ProgressDesk` (the gateway's side: the database, the live voice) for the calling
number's open tickets. With some, the caller hears them offered one per key (a sentence made
here and spoken live, since it holds dates and types) and 0 to key a number instead; without
any (or no valid caller ID), the caller is asked for the 11-digit ticket number followed by
``#``. A keyed number is checked by its Damm digit first
(:func:`gateway.ticketing.ticket_no.parse_ticket_no`), so a slip costs no database query;
a well-formed number that names no ticket is just as wrong. ``attempts`` wrong numbers in
one call, or too many from the same calling number across calls (the desk's hourly limit),
and the caller goes to the agent node. A found ticket is told as its status (a fixed prompt,
:func:`stage`) followed by the handling unit(s) and the latest public reply, synthesised
live (:func:`details_texts`, unit and reply apart) while the status plays; then 1 repeats, 2 asks about another
ticket, 0 reaches an agent, and anything else ends the call politely.

Privacy, all decided here (pure): a ticket is offered by caller ID only to the number that
filed it, only while open (submitted, not closed), only within the look-back window, and
never when it is confidential (:func:`listable`); a keyed number (knowing it is the proof)
reaches any ticket, confidential ones included. The call's path records the ticket's id and
how it was found, never the digits keyed (a wrong number may be someone else's).

No ticket is created by a pure query: the node never reaches the observer's ticket point.
A caller sent to an agent gets a draft ticket at the transfer, as every caller an agent
takes does (the desk needs one); its menu path shows what was asked.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from gateway.errors import GatewayError
from gateway.ticketing.ticket_no import LENGTH as TICKET_NO_LENGTH
from gateway.ticketing.ticket_no import BadTicketNumber, parse_ticket_no

if TYPE_CHECKING:
    from gateway.ivr_flows.model import ProgressNode

log = logging.getLogger(__name__)

MAX_OFFERED = 5  # open tickets offered by key (1..5), newest first
MAX_REPLY_CHARS = 160  # of the latest reply spoken; longer replies are cut at a sentence end
AGAIN, OTHER, AGENT = "1", "2", "0"  # keys after the details
KEY_NUMBER = "0"  # in the offer: key a ticket number instead


class ProgressUnavailable(GatewayError):
    """The desk cannot answer now (the database is away): the caller goes to an agent."""


class SpeechFailed(ProgressUnavailable):
    """A live text could not be spoken in time (synthesis failed, too slow or overloaded)."""


@dataclass(frozen=True)
class TicketView:
    """What progress by phone may know of one ticket (built by the desk from the database)."""

    id: int
    filed_at: datetime  # aware
    caller_number: str
    status: str  # draft / submitted / answered
    handling: str | None  # HANDLING_STAGES or None
    confidential: bool = False
    category: str | None = None
    units: tuple = ()  # names of the units handling it (withdrawn dispatches left out)
    reply: str | None = None  # the latest public ticket event's text
    followed_up: bool = False  # a 回访 happened (a followup event)


class ProgressDesk(Protocol):
    """The gateway's side of the progress node (gateway.progress.service.ProgressService)."""

    def prepare(self) -> None:
        """A caller entered the node: get the voice ready (without waiting for it)."""

    async def open_tickets(self, caller: str) -> list[TicketView]:
        """The caller's tickets that :func:`listable` allows, newest first."""

    async def find(self, ticket_no: str) -> TicketView | None:
        """The ticket with that (well-formed) number, if any."""

    async def too_many_guesses(self, caller: str, uniqueid: str, wrong_now: int) -> bool:
        """True when this calling number keyed too many wrong numbers lately (this call's
        ``wrong_now`` included); logs it, masked."""

    speech_timeout: float  # seconds a caller may wait in silence for a live text

    async def say(self, text: str) -> str:
        """``text`` spoken: the prompt id Asterisk plays; raises :class:`SpeechFailed`."""


def stage(view: TicketView) -> str:
    """The status role (``status_*`` prompt) a ticket is told with."""
    if view.status == "draft":
        return "status_draft"
    if view.status == "answered":
        return "status_answered"
    return {
        None: "status_received",
        "dispatched": "status_dispatched",
        "accepted": "status_in_progress",
        "review": "status_in_progress",  # an objection or an unsolved follow-up is internal: still being handled
        "handled": "status_handled",
        "closed": "status_followed_up" if view.followed_up else "status_handled",
    }.get(view.handling, "status_received")


def is_open(view: TicketView) -> bool:
    return view.status == "submitted" and view.handling != "closed"


def listable(view: TicketView, caller: str, now: datetime, lookback_days: float) -> bool:
    """May the ticket be offered to ``caller`` by caller ID alone (no number keyed)?"""
    return (bool(caller) and view.caller_number == caller and is_open(view) and not view.confidential
            and view.filed_at >= now - timedelta(days=lookback_days))


def _day(view: TicketView, tz: ZoneInfo, with_time: bool) -> str:
    local = view.filed_at.astimezone(tz)
    text = f"{local.month}月{local.day}日"
    return text + (f"{local.hour}:{local.minute:02d}" if with_time else "")


def offer_text(views: list[TicketView], tz: ZoneInfo) -> str:
    """``您有2件诉求正在办理。查询11月28日的投诉请按1，…；输入工单号请按0。`` (at most MAX_OFFERED)."""
    shown = views[:MAX_OFFERED]
    days = [_day(v, tz, False) for v in shown]
    parts = []
    for key, (view, day) in enumerate(zip(shown, days), 1):
        when = _day(view, tz, True) if days.count(day) > 1 else day  # two the same day: the time tells them apart
        parts.append(f"查询{when}的{view.category or '诉求'}请按{key}")
    return f"您有{len(views)}件诉求正在办理。" + "，".join(parts) + f"；输入工单号请按{KEY_NUMBER}。"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _reply(text: str) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) <= MAX_REPLY_CHARS:
        return text
    cut = text[:MAX_REPLY_CHARS]
    end = max(cut.rfind(p) for p in "。！？；")
    return cut[: end + 1] if end >= MAX_REPLY_CHARS // 2 else cut + "……"


def details_texts(view: TicketView) -> list[str]:
    """The live part, one sentence per piece so the caller hears the unit while the reply is
    still being synthesised: ``["承办单位：…。", "最新答复：…。"]`` (either may be missing)."""
    if view.status != "submitted":
        return []  # a draft or a ticket answered on the call: nothing from a unit
    out = []
    units = [" ".join(_CONTROL.sub(" ", u).split())[:60] for u in view.units if u and u.strip()]
    if units:
        out.append("承办单位：" + "、".join(dict.fromkeys(units)) + "。")
    if view.reply and view.reply.strip():
        reply = _reply(view.reply)
        out.append("最新答复：" + reply + ("" if reply.endswith(("。", "！", "？", "……")) else "。"))
    return out


def details_text(view: TicketView) -> str:
    return "".join(details_texts(view))


def keyed_number(keys: str) -> str:
    """What the caller keyed, as a checked number; raises BadTicketNumber (a '#' ends the entry)."""
    return parse_ticket_no(keys.rstrip("#"))


async def run_progress(visit, node: ProgressNode) -> str | None:
    """Walk one progress node on ``visit`` (the engine's _Visit); returns the next node id or None."""
    return await _Walk(visit, node).run()


class _Walk:
    def __init__(self, visit, node: ProgressNode) -> None:
        self.visit, self.node = visit, node
        self.state = visit.state
        self.channel = visit.channel
        self.desk: ProgressDesk | None = visit.interp.progress
        self.zone = ZoneInfo(visit.interp.config.timezone)
        self.tries = 0  # numbers asked for in this call (no input included)
        self.wrong = 0  # wrong numbers keyed in this call

    def prompt(self, role: str) -> str:
        return self.visit.key(self.node.prompts[role])

    async def step(self, **entry) -> None:
        await self.visit.record_step({"node": self.node.id, **entry})

    async def to_agent(self, role: str, why: str) -> str:
        await self.channel.play(self.prompt(role))
        await self.step(result="to_agent", reason=why, wrong_numbers=self.wrong)
        return self.node.agent

    async def run(self) -> str | None:
        await self.visit.take_keys()
        self.visit.typeahead = ""  # a menu key pressed ahead is no ticket number
        if self.desk is None:  # no database behind this flow (a dry run)
            return await self.to_agent("unavailable", "no_desk")
        self.desk.prepare()
        try:
            return await self.walk()
        except ProgressUnavailable as exc:  # never silence: the notice, then a person
            log.warning("call %s: progress by phone unavailable: %s", self.state.uniqueid, exc)
            return await self.to_agent("unavailable", "speech" if isinstance(exc, SpeechFailed) else "database")

    async def walk(self) -> str | None:
        listed = await self.desk.open_tickets(self.state.caller) if self.state.caller else []
        while True:
            view, via = None, "keyed"
            if listed:
                view, outcome = await self.choose(listed)
                if outcome is not None:
                    return outcome
                via = "list"
            if view is None:
                via = "keyed"
                view, outcome = await self.ask_number()
                if outcome is not None:
                    return outcome
            outcome = await self.tell(view, via)
            if outcome != OTHER:
                return outcome

    async def choose(self, listed: list[TicketView]) -> tuple[TicketView | None, str | None]:
        """Offer the open tickets: (the chosen one, or None to key a number; or the next node)."""
        speaking = asyncio.ensure_future(self.desk.say(offer_text(listed, self.zone)))
        try:
            await self.channel.play(self.prompt("searching"))  # 正在为您查询: no silence while it is synthesised
            offer = await asyncio.wait_for(asyncio.shield(speaking), self.desk.speech_timeout)
        except asyncio.TimeoutError:
            raise SpeechFailed(f"the offer took longer than {self.desk.speech_timeout:g} s") from None
        finally:
            if not speaking.done():
                speaking.cancel()
        shown = listed[:MAX_OFFERED]
        for _attempt in range(2):
            key = await self.channel.collect_digits(offer, max_digits=1, timeout=self.node.timeout)
            if key == KEY_NUMBER:
                await self.step(key=key, label="输入工单号", offered=len(shown))
                return None, None
            if key.isdigit() and 1 <= int(key) <= len(shown):
                return shown[int(key) - 1], None
            await self.step(key=key, result="no_input" if not key else "invalid", offered=len(shown))
        return None, None  # nothing chosen: ask for the number instead

    async def ask_number(self) -> tuple[TicketView | None, str | None]:
        """Ask for the number until a ticket is found (its view) or the tries run out (the agent node)."""
        role = "ask_number"
        while True:
            if await self.desk.too_many_guesses(self.state.caller, self.state.uniqueid, self.wrong):
                return None, await self.to_agent("too_many", "number_limit")
            # Room for one key more than a number has: the caller's closing '#' ends the entry (and
            # is not left over to end the next one at once); 12 digits are simply a wrong length.
            keys = await self.channel.collect_digits(self.prompt(role), max_digits=TICKET_NO_LENGTH + 1,
                                                     timeout=self.node.timeout)
            self.tries += 1
            view, reason = None, "no_input"
            if keys.strip("#"):
                try:
                    view, reason = await self.desk.find(keyed_number(keys)), "unknown"
                except BadTicketNumber as exc:
                    reason = _why(exc)
            if view is not None:
                return view, None
            if reason == "no_input":
                await self.step(result="no_input", attempt=self.tries)
                role = "ask_number"
            else:
                self.wrong += 1
                await self.step(result="wrong_number", reason=reason, attempt=self.tries)
                role = "wrong_number"
            if self.tries >= self.node.attempts:
                return None, await self.to_agent("too_many", "call_limit")

    async def tell(self, view: TicketView, via: str) -> str | None:
        """Speak one ticket; returns OTHER to ask about another, else the next node (None: hung up)."""
        texts = details_texts(view)
        role = stage(view)
        await self.step(result="found", ticket_id=view.id, via=via, status=role.removeprefix("status_"))
        labels = {AGAIN: "重听", OTHER: "查询其他工单", AGENT: "转人工服务"}
        for _round in range(3):
            await self.speak(role, texts)
            key = await self.channel.collect_digits(self.prompt("after"), max_digits=1, timeout=6)
            await self.step(key=key, **({"label": labels[key]} if key in labels else {"result": "end"}))
            if key == AGENT:
                return self.node.agent
            if key == OTHER:
                return OTHER
            if key != AGAIN:
                break
        await self.channel.play(self.prompt("goodbye"))
        await self.step(result="goodbye")
        self.state.outcome = "hangup"
        await self.channel.hangup()
        return None

    async def speak(self, role: str, texts: list[str]) -> None:
        """The status prompt while the details are synthesised, then each piece as it is ready.

        The caller never waits in silence longer than the desk's ``speech_timeout`` for a piece
        (SpeechFailed then); a piece still rendering goes on into the voice's cache."""
        pieces = [asyncio.ensure_future(self.desk.say(text)) for text in texts]
        try:
            await self.channel.play(self.prompt(role))
            for piece in pieces:
                try:
                    audio = await asyncio.wait_for(asyncio.shield(piece), self.desk.speech_timeout)
                except asyncio.TimeoutError:
                    raise SpeechFailed(f"a live text took longer than {self.desk.speech_timeout:g} s") from None
                await self.channel.play(audio)
        finally:
            for piece in pieces:
                if not piece.done():
                    piece.cancel()  # hung up or failed meanwhile (the voice still caches the audio)
                elif not piece.cancelled():
                    piece.exception()  # retrieved: a later piece's failure is no stray warning


def _why(exc: BadTicketNumber) -> str:
    """A short reason for the path (never the digits): length / check_digit / date / digits."""
    text = str(exc)
    if "check digit" in text:
        return "check_digit"
    if "month and day" in text:
        return "date"
    if "digits only" in text:
        return "digits"
    return "length"
