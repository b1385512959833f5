"""Simulated callers: place a call into the running system and drive it like a person.

The call is an AMI ``Originate`` of ``Local/s@gw-caller-sim``: the ``;1`` half
enters ``inbound`` at the dialled number (exactly where SIP calls arrive), the
``;2`` half is the caller. The caller listens to AMI's ``AGIExecStart`` events
of the IVR half: when a menu starts collecting keys it presses the next key
(``PlayDTMF`` on its own half, so the key travels through the call like a
real one); when the recording starts it plays the speech file into the call.
Listening steps (``SET VARIABLE GW_STEP listen-...`` then ``EXEC AudioSocket``)
are answered the same way: at a speech menu the caller says the next of
``say_options`` (or presses the next key), at a description it says ``say``
and, with ``hash_after_say``, presses ``#`` as soon as it has finished.
The result (menu path, hang-up cause, ticket) is read back from the gateway.

The same driver plays the *citizen* the gateway calls (:func:`answer_call`): the gateway's
``Originate`` of ``Local/<number>@gw-citizen-sim`` (gateway.pbx.outbound) is found by the
``Newchannel`` of its ``;2`` half (Uniqueid ``<gateway's uid>-c``), and from then on the
citizen answers the gateway's prompts and menus as a caller answers the IVR.
:func:`set_citizen` sets whether a number answers, rings out or is busy.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import GatewayError
from gateway.pbx.ami import AmiClient
from gateway.pbx.prompts import convert_recording
from gateway.settings import PRIVATE_FILE_MODE, Settings


class SimCallError(GatewayError):
    """The simulated call could not be placed or did not finish."""


@dataclass
class CallScript:
    number: str
    caller: str = "13800138000"
    digits: str = ""  # one key per menu; with an 's' in it, each 's' says the next say_options file there
    say: Path | None = None
    hangup_at_menu: int | None = None  # hang up when the Nth menu starts instead of pressing
    key_delay: float = 0.3
    timeout: float = 180.0
    uniqueid: str | None = None  # chosen by the caller of place_call, e.g. to watch the call meanwhile
    say_options: tuple = ()  # speech files said at speech menus, in order (keys are used after them)
    hash_after_say: bool = False  # press '#' right after saying the description
    early: str = ""  # keys pressed ~1 s into the first prompt (type-ahead), before any menu
    ears: bool = False  # record what the caller hears (MixMonitor on the caller's side): result["ears"]
    # (prompt name, keys): press keys as soon as that prompt has finished playing (AMI AGIExecEnd
    # of its STREAM FILE), i.e. while the gateway moves on to the next menu; not counted in digits
    keys_after_prompt: tuple = ()
    # Keys typed at each entry of several digits (a GET DATA of more than one key: a ticket
    # number), in order, e.g. ("05011234567#",); an entry with none left gets no key (no input)
    numbers: tuple = ()


@dataclass
class _Progress:
    uniqueid: str
    caller_uid: str
    caller_channel: str | None = None
    menus: int = 0
    pressed: str = ""
    said: bool = False
    options_said: int = 0
    step: str = ""  # the listening step announced by GW_STEP
    early_sent: bool = False
    numbers_typed: int = 0
    after_sent: bool = False
    heard: list = field(default_factory=list)  # prompts the IVR played to this caller
    queue: str | None = None  # the first Asterisk queue the call joined, seen on AMI
    queues: list = field(default_factory=list)  # every queue joined, with the time since the call began
    agent: str | None = None
    hangup_cause: int | None = None
    hangup_txt: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def place_call(settings: Settings, script: CallScript, *, ami: AmiClient | None = None) -> dict:
    """One simulated call (over ``ami`` if given, else a connection of its own)."""
    if ami is not None:
        await _wait_connected(settings, ami)
        return await _run(settings, script, ami)
    return (await place_calls(settings, [script]))[0]


async def place_calls(settings: Settings, scripts: list[CallScript]) -> list[dict]:
    """Several simulated calls at once over one AMI connection; results in the scripts' order."""
    ami = sim_ami_client(settings)
    await ami.start()
    try:
        await _wait_connected(settings, ami)
        return await asyncio.gather(*(_run(settings, script, ami) for script in scripts))
    finally:
        await ami.close()


def sim_ami_client(settings: Settings, **options) -> AmiClient:
    """An AMI client logged in as the simulated caller (its own user, which also reads AGI events)."""
    if not settings.sim_ami_secret:
        raise SimCallError(f"no AMI user for the simulated caller in {settings.state_dir} "
                           "(start the development sandbox: `gateway sandbox up` or `gateway run`)")
    options.setdefault("action_timeout", settings.ami_action_timeout)
    return AmiClient(host=settings.ami_host, port=settings.ami_port, username=settings.sim_ami_user,
                     secret=settings.sim_ami_secret, **options)


async def _wait_connected(settings: Settings, ami: AmiClient) -> None:
    if not await ami.wait_connected(10):
        raise SimCallError(f"cannot reach Asterisk's AMI on {settings.ami_host}:{settings.ami_port} "
                           f"({ami.last_error}); is the sandbox up? (`gateway sandbox up`)")


class _Driver:
    """Drives one simulated person on one call: the caller of ``place_call`` or the citizen of
    ``answer_call``. It listens to the AMI events of the gateway's side of the call
    (``prog.uniqueid``: the channel that runs the IVR or the outbound route) and acts on its own
    side (``prog.caller_uid``: the ``;2`` half of the Local channel). ``prog.uniqueid`` may be
    unknown at first (the gateway chooses it for its own calls): ``match`` then binds it from the
    ``Newchannel`` of our side."""

    def __init__(self, settings: Settings, script: CallScript, ami: AmiClient, prog: _Progress, *,
                 match=None) -> None:
        self.settings, self.script, self.ami, self.prog = settings, script, ami, prog
        self.match = match  # match(headers) -> the gateway side's uniqueid, for an unbound prog
        self.tasks: set[asyncio.Task] = set()
        self.say_pbx: str | None = None
        self.say_seconds = 0.0
        self.options_pbx: list[tuple[str, float]] = []
        self.started = time.monotonic()

    async def prepare(self, name: str) -> None:
        script = self.script
        if script.say is not None:
            self.say_pbx, self.say_seconds = await _prepare(self.settings, Path(script.say), name)
        self.options_pbx = [await _prepare(self.settings, Path(f), f"{name}-o{i}")
                            for i, f in enumerate(script.say_options)]

    async def act(self, fields: dict, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            await self.ami.action(fields)
        except GatewayError:
            pass  # the caller's channel may already be gone

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _key(self, digit: str, delay: float) -> None:
        self.spawn(self.act({"Action": "PlayDTMF", "Channel": self.prog.caller_channel, "Digit": digit,
                             "Duration": "120"}, delay))

    def on_event(self, h: dict) -> None:
        prog, script, act, spawn = self.prog, self.script, self.act, self.spawn
        name, euid = h.get("Event"), h.get("Uniqueid")
        if not prog.uniqueid:
            bound = self.match(h) if self.match is not None else None
            if not bound:
                return
            prog.uniqueid, prog.caller_uid = bound, f"{bound}-c"
            self.started = time.monotonic()
        uid = prog.uniqueid
        if name == "Newchannel" and euid == prog.caller_uid:
            prog.caller_channel = h.get("Channel")
        elif name == "AGIExecStart" and euid == uid and prog.caller_channel:
            command = h.get("Command", "")
            if command.startswith(("STREAM FILE", "GET DATA")):
                words = command.split()
                if len(words) > 2:
                    prog.heard.append(words[2].rsplit("/", 1)[-1])
                if script.early and not prog.early_sent:
                    prog.early_sent = True
                    for i, digit in enumerate(script.early):
                        self._key(digit, 1.0 + 0.4 * i)
            if command.startswith("SET VARIABLE GW_STEP "):
                prog.step, _, keys = command.split(" ", 3)[-1].strip('"').partition("/")
                prog.heard.extend(k for k in keys.split("+") if k)
            words = command.split()
            if command.startswith("GET DATA") and len(words) > 4 and words[4].isdigit() and int(words[4]) > 1:
                if prog.numbers_typed < len(script.numbers):  # a number entry: not a menu of the digits
                    number = script.numbers[prog.numbers_typed]
                    prog.numbers_typed += 1
                    for i, digit in enumerate(number):
                        spawn(act({"Action": "PlayDTMF", "Channel": prog.caller_channel, "Digit": digit,
                                   "Duration": "120"}, script.key_delay + 0.35 * i))
            elif command.startswith("GET DATA") or (command.startswith("EXEC AudioSocket")
                                                   and prog.step == "listen-menu"):
                prog.menus += 1
                if script.hangup_at_menu == prog.menus:
                    spawn(act({"Action": "Hangup", "Channel": prog.caller_channel}, script.key_delay))
                elif "s" in script.digits:  # explicit: one entry per menu, 's' = say the next option
                    if len(prog.pressed) < len(script.digits):
                        entry = script.digits[len(prog.pressed)]
                        prog.pressed += entry
                        if entry == "s" and prog.options_said < len(self.options_pbx):
                            path, _seconds = self.options_pbx[prog.options_said]
                            prog.options_said += 1
                            spawn(_say(act, prog.caller_channel, path))
                        elif entry != "s":
                            self._key(entry, script.key_delay)
                elif command.startswith("EXEC") and prog.options_said < len(self.options_pbx):
                    path, _seconds = self.options_pbx[prog.options_said]
                    prog.options_said += 1
                    spawn(_say(act, prog.caller_channel, path))
                elif len(prog.pressed) < len(script.digits):
                    digit = script.digits[len(prog.pressed)]
                    prog.pressed += digit
                    self._key(digit, script.key_delay)
            elif (command.startswith("RECORD FILE") or (command.startswith("EXEC AudioSocket")
                                                          and prog.step == "listen-describe")) \
                    and self.say_pbx and not prog.said:
                prog.said = True
                spawn(_say(act, prog.caller_channel, self.say_pbx))
                if script.hash_after_say:
                    self._key("#", 0.4 + self.say_seconds + 0.3)
        elif name == "AGIExecEnd" and euid == uid and prog.caller_channel and script.keys_after_prompt:
            command = h.get("Command", "").split()
            prompt, keys = script.keys_after_prompt
            if (command[:2] == ["STREAM", "FILE"] and len(command) > 2 and not prog.after_sent
                    and command[2].rsplit("/", 1)[-1] == prompt):
                prog.after_sent = True
                for i, digit in enumerate(keys):
                    self._key(digit, 0.1 + 0.4 * i)
        elif name == "QueueCallerJoin" and euid == uid:
            prog.queue = prog.queue or h.get("Queue")
            prog.queues.append({"queue": h.get("Queue"), "at_s": round(time.monotonic() - self.started, 2)})
        elif name == "AgentConnect" and euid == uid:
            prog.agent = h.get("MemberName") or h.get("Interface")
        elif name == "Hangup" and euid == uid:
            prog.hangup_cause = int(h["Cause"]) if h.get("Cause", "").isdigit() else None
            prog.hangup_txt = h.get("Cause-txt", "")
            prog.done.set()

    async def wait(self, timeout: float, what: str) -> None:
        """Until the gateway's side hangs up; then (or on a timeout) our side is hung up, tasks end."""
        try:
            await asyncio.wait_for(self.prog.done.wait(), timeout)
        except asyncio.TimeoutError:
            raise SimCallError(f"{what} did not end within {timeout:.0f} s") from None
        finally:
            if self.prog.caller_channel and not self.prog.done.is_set():
                await self.act({"Action": "Hangup", "Channel": self.prog.caller_channel})
            for task in list(self.tasks):
                task.cancel()
            self.ami.unsubscribe_raw(self.on_event)

    def result(self) -> dict:
        prog = self.prog
        return {
            "uniqueid": prog.uniqueid,
            "hangup_cause": prog.hangup_cause,
            "hangup_cause_txt": prog.hangup_txt,
            "duration_s": round(time.monotonic() - self.started, 2),
            "heard": prog.heard,
            "pressed": prog.pressed,
            "queue": prog.queue,
            "queues": prog.queues,
            "agent": prog.agent,
        }


async def _run(settings: Settings, script: CallScript, ami: AmiClient) -> dict:
    uid = script.uniqueid or f"sim-{uuid.uuid4().hex[:16]}"
    prog = _Progress(uniqueid=uid, caller_uid=f"{uid}-c")
    driver = _Driver(settings, script, ami, prog)
    await driver.prepare(uid)
    ami.subscribe_raw(driver.on_event)
    originate = {
        "Action": "Originate", "Channel": "Local/s@gw-caller-sim/n", "Context": "inbound",
        "Exten": script.number, "Priority": "1", "CallerID": f"<{script.caller}>", "ChannelId": uid,
        "OtherChannelId": prog.caller_uid, "Async": "true", "Timeout": "15000",
    }
    ears = settings.instance_dir / "prompts" / "sim" / f"ears-{uid}.wav" if script.ears else None
    if ears is not None:
        originate["Variable"] = f"GW_EARS={settings.pbx_path(ears)}"  # the Local channel's ;2 half inherits it
    try:
        await ami.action(originate)
    except BaseException:
        ami.unsubscribe_raw(driver.on_event)
        raise
    await driver.wait(script.timeout, f"call {uid}")
    call, ticket = await _fetch_call(settings, uid)
    heard = driver.result()
    return {
        "uniqueid": uid,
        "number": script.number,
        "menu_path": (call or {}).get("menu_path", []),
        "path": ">".join(_fmt(step) for step in (call or {}).get("menu_path", [])),
        "hangup_cause": heard["hangup_cause"],
        "hangup_cause_txt": heard["hangup_cause_txt"],
        "ticket_id": (call or {}).get("ticket_id"),
        "transcript": (ticket or {}).get("transcript"),
        "transcript_status": (ticket or {}).get("transcript_status"),
        "emergency": (ticket or {}).get("emergency"),
        "emergency_words": (ticket or {}).get("emergency_words"),
        "call_status": (call or {}).get("status"),
        "duration_s": heard["duration_s"],
        "heard": heard["heard"],
        "queue": heard["queue"],
        "queues": heard["queues"],
        "agent": heard["agent"],
        **({"ears": str(ears)} if ears is not None else {}),
    }


CITIZEN_MODES = ("answer", "noanswer", "busy")
CITIZEN_CONTEXT = "gw-citizen-sim"


def _digits(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits or not re.fullmatch(r"\+?[0-9]{3,20}", number):
        raise SimCallError(f"not a number for the simulated citizen: {number!r}")
    return digits


async def set_citizen(settings: Settings, number: str, mode: str, *, ami: AmiClient | None = None,
                      ears: str = "") -> None:
    """What the simulated citizen at ``number`` does when the gateway calls: ``answer``, ``noanswer``
    (rings for a minute, never answers) or ``busy`` (an Asterisk global, GW_CITIZEN_<digits>);
    ``ears``: a PBX path where the citizen's side records what it hears ("" = none)."""
    if mode not in CITIZEN_MODES:
        raise SimCallError(f"citizen mode must be one of {CITIZEN_MODES}, not {mode!r}")
    digits = _digits(number)
    own = ami is None
    if own:
        ami = sim_ami_client(settings)
        await ami.start()
    try:
        await _wait_connected(settings, ami)
        await ami.action({"Action": "Setvar", "Variable": f"GW_CITIZEN_{digits}", "Value": mode})
        await ami.action({"Action": "Setvar", "Variable": f"GW_CITIZEN_EARS_{digits}", "Value": ears})
    finally:
        if own:
            await ami.close()


async def answer_call(settings: Settings, number: str, script: CallScript | None = None, *,
                      ami: AmiClient | None = None, timeout: float = 120.0, mode: str = "answer",
                      ready: asyncio.Event | None = None) -> dict:
    """Be the citizen at ``number`` for the gateway's next call to it (gateway.pbx.outbound).

    Sets the number's ``mode`` (:func:`set_citizen`), waits for the call (the ``Newchannel`` of
    the ``;2`` half of ``Local/<number>@gw-citizen-sim``, whose Uniqueid is ``<uid>-c``), then
    drives the citizen exactly as :func:`place_call` drives a caller (``script``: keys per menu,
    speech, ``ears``, ``hangup_at_menu`` ...; its ``number`` is not used) until the gateway's side
    hangs up. ``ready`` is set once the citizen listens: place the call after that. Returns what
    place_call returns for the person (``heard``, ``pressed``, ``hangup_cause``, ``ears``) plus
    ``uniqueid`` (the gateway's side of the call) and ``outbound_call`` (its outbound_calls row).
    """
    script = script or CallScript(number=number)
    digits = _digits(number)
    own = ami is None
    if own:
        ami = sim_ami_client(settings)
        await ami.start()
    try:
        await _wait_connected(settings, ami)
        name = f"cit-{uuid.uuid4().hex[:12]}"
        ears = settings.instance_dir / "prompts" / "sim" / f"ears-{name}.wav" if script.ears else None
        prog = _Progress(uniqueid="", caller_uid="")
        prefix = f"Local/{number}@{CITIZEN_CONTEXT}-"

        def match(h: dict) -> str | None:
            uid, channel = h.get("Uniqueid") or "", h.get("Channel") or ""
            if (h.get("Event") == "Newchannel" and channel.startswith(prefix) and channel.endswith(";2")
                    and uid.endswith("-c")):
                return uid[:-2]
            return None

        driver = _Driver(settings, script, ami, prog, match=match)
        await driver.prepare(name)
        ami.subscribe_raw(driver.on_event)
        try:
            await set_citizen(settings, number, mode, ami=ami, ears=settings.pbx_path(ears) if ears else "")
        except BaseException:
            ami.unsubscribe_raw(driver.on_event)
            raise
        if ready is not None:
            ready.set()
        try:
            await driver.wait(timeout, f"the gateway's call to the citizen {digits[:3]}…")
        finally:
            if ears is not None:
                await driver.act({"Action": "Setvar", "Variable": f"GW_CITIZEN_EARS_{digits}", "Value": ""})
        row = await _fetch_outbound(settings, prog.uniqueid)
        return {**driver.result(), "number": number, "outbound_call": row,
                **({"ears": str(ears)} if ears is not None else {})}
    finally:
        if own:
            await ami.close()


async def _fetch_outbound(settings: Settings, uid: str, deadline: float = 5.0) -> dict | None:
    """The gateway's outbound_calls row of ``uid``, once it has ended (or what it is after ``deadline``)."""
    from gateway.calls.outbound import OutboundCalls
    from gateway.ticketing.store import TicketStore

    store = await TicketStore.open(settings.database_url)
    try:
        rows = OutboundCalls(store)
        end = time.monotonic() + deadline
        row = None
        while time.monotonic() < end:
            row = await rows.get(uid)
            if row and row.get("ended_at"):
                break
            await asyncio.sleep(0.2)
        return row
    finally:
        await store.close()


async def _prepare(settings: Settings, source: Path, name: str) -> tuple[str, float]:
    """Convert a speech file for the caller's channel; its PBX path and length in seconds."""
    local = settings.instance_dir / "prompts" / "sim" / f"{name}.wav"
    await asyncio.to_thread(convert_recording, source, local)
    os.chmod(local, PRIVATE_FILE_MODE)  # a caller's voice, even a simulated one, stays private
    seconds = await asyncio.to_thread(_wav_seconds, local)
    return settings.pbx_path(local.with_suffix("")), seconds


def _wav_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate() or 8000)


async def _say(act, channel: str, say_pbx: str) -> None:
    await act({"Action": "Setvar", "Channel": channel, "Variable": "GW_SAY", "Value": say_pbx})
    await act({"Action": "Redirect", "Channel": channel, "Context": "gw-caller-say", "Exten": "s",
               "Priority": "1"}, 0.4)


def _fmt(step: dict) -> str:
    from gateway.ivr_flows.engine import format_step

    return format_step(step)


async def _fetch_call(settings: Settings, uid: str, deadline: float = 5.0) -> tuple[dict | None, dict | None]:
    """The call and its ticket as the gateway stored them, waiting for the hang-up to be recorded.

    Read from the gateway's database (the simulated caller is a tool on the gateway's own
    machine; the HTTP API would need a login).
    """
    from gateway.ticketing.store import TicketStore

    store = await TicketStore.open(settings.database_url)
    try:
        end = time.monotonic() + deadline
        call = None
        while time.monotonic() < end:
            call = await store.get_call(uid)
            if call and call.get("status") == "ended":
                break
            await asyncio.sleep(0.2)
        ticket = await store.get_ticket(call["ticket_id"]) if call and call.get("ticket_id") else None
        return call, ticket
    finally:
        await store.close()
