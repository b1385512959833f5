"""Calls the gateway places to citizens (the callback of virtual hold, the 回访 follow-up call).

Theory of operation
-------------------
:meth:`Outbound.dial` sends one AMI ``Originate`` with ``Async: true``:

* ``Channel`` is ``GATEWAY_OUTBOUND_DIAL`` with the number in it (``PJSIP/{number}@trunk``; the
  development sandbox's simulated citizen is ``Local/{number}@gw-citizen-sim``);
* once answered the channel runs ``[gw-outbound]`` exten ``s`` (:mod:`gateway.pbx.dialplan`):
  ``AGI(agi://<gateway>/outbound,${GW_PURPOSE},${GW_REF})``, which the gateway routes by purpose
  (:class:`gateway.calls.outbound.OutboundRoutes`);
* ``ChannelId`` is chosen here (``out-<random>``, prefixed ``<node>-`` with several Asterisk
  nodes as their own uniqueids are, so reconciliation's ``owns`` still tells the node), so the
  FastAGI session of the call carries the same ``agi_uniqueid``; ``OtherChannelId`` is that id +
  ``-c`` (used by Local channels only: their ``;2`` half, e.g. the simulated citizen).

Asterisk 22 (main/manager.c, ``fast_originate``) answers the action at once ("Originate
successfully queued") and sends ``OriginateResponse`` (class ``call``) when the call was
answered or failed, with the action's ``ActionID``, ``Response`` Success/Failure,
``Reason`` (the last control frame the dial saw: 4 answered, 5 busy, 3 rang until the
timeout, 8 congestion, 1 hung up, 0 no channel / no progress) and ``Uniqueid`` (ours). The
gateway waits for that event on the node's raw event stream, matched by the ActionID it chose
(``<uid>-originate``) or by the Uniqueid. :func:`outcome_of` maps it.

``dial`` never retries: the caller (callback, follow-up) owns its retry policy. Every attempt
is written through the ``recorder`` (the ``outbound_calls`` table) when it starts and when it
ends; :meth:`Outbound.hung_up` (the AMI Hangup of an answered call) closes the row.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol

from gateway.errors import GatewayError, PbxError
from gateway.masking import mask_number, mask_text
from gateway.pbx.nodes import nodes_of

log = logging.getLogger(__name__)

OUTCOMES = ("answered", "no_answer", "busy", "failed")
CONTEXT = "gw-outbound"
ANSWER_MARGIN_S = 10.0  # waited beyond timeout_s for Asterisk's OriginateResponse
MAX_TIMEOUT_S = 600.0
LINK_CHECK_S = 0.5  # while waiting for the answer, the AMI link is checked this often

_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_PURPOSE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_REF = re.compile(r"[A-Za-z0-9._:-]{0,64}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_VAR_VALUE = re.compile(r"[^,;\x00-\x1f\x7f\\$\[\]{}]{0,200}")
_RESERVED = {"GW_PURPOSE", "GW_REF"}
_ID_LETTERS = "abcdefghijklmnopqrstuvwxyz"

# OriginateResponse Reason: the AST_CONTROL_* frame the dial ended on (include/asterisk/frame.h).
REASON_OUTCOME = {"4": "answered", "5": "busy", "3": "no_answer", "1": "no_answer", "0": "failed",
                  "8": "failed"}
REASON_TEXT = {"0": "no channel or no progress", "1": "hung up before answer", "3": "rang, not answered",
               "4": "answered", "5": "busy", "8": "congestion"}


class BadOutboundCall(GatewayError):
    """dial() was given a number, purpose, ref or variable it cannot place a call with."""

    status_code = 400
    error_id = "bad-outbound-call"


@dataclass(frozen=True)
class OutboundResult:
    outcome: str  # "answered" | "no_answer" | "busy" | "failed" (congestion, unreachable, AMI down)
    uniqueid: str  # the uniqueid the gateway chose for the call (its FastAGI session has it)
    node: str | None  # the Asterisk node it went through
    reason: str  # Asterisk's OriginateResponse Reason (e.g. "4"/"5"/"8") or the error, for logs

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")


class OutboundRecorder(Protocol):
    """Where every attempt is written (gateway.calls.outbound.OutboundCalls: the outbound_calls table)."""

    async def started(self, *, uniqueid: str, purpose: str, ref: str, number: str, node: str | None,
                      started_at: datetime) -> None: ...

    async def finished(self, uniqueid: str, *, outcome: str, reason: str, answered_at: datetime | None,
                       ended_at: datetime | None) -> None: ...

    async def hung_up(self, uniqueid: str, *, ended_at: datetime) -> None: ...


# -- pure parts -------------------------------------------------------------------------------------
def check_number(number: str) -> str:
    """The number to dial: ASCII digits with an optional leading +, 3 to 20 digits."""
    text = number.strip() if isinstance(number, str) else ""
    if not _NUMBER.fullmatch(text):
        raise BadOutboundCall(f"cannot call {mask_number(str(number))!r}: a number is 3 to 20 digits, "
                              "optionally after a leading +")
    return text


def check_call(purpose: str, ref: str, variables: dict[str, str] | None, caller_id: str) -> dict[str, str]:
    """Validate what goes into the dialplan; the channel variables, GW_PURPOSE and GW_REF first."""
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise BadOutboundCall(f"purpose {purpose!r}: 1-32 lower-case letters, digits, '_' or '-', a letter first")
    if not isinstance(ref, str) or not _REF.fullmatch(ref):
        raise BadOutboundCall(f"ref {mask_text(str(ref))!r}: at most 64 letters, digits, '.', '_', ':' or '-'")
    if not isinstance(caller_id, str) or not re.fullmatch(r"\+?[0-9]{1,20}", caller_id):
        raise BadOutboundCall(f"caller_id {caller_id!r}: digits only")
    out = {"GW_PURPOSE": purpose, "GW_REF": ref}
    for name, value in (variables or {}).items():
        if not isinstance(name, str) or not _VAR_NAME.fullmatch(name) or name.upper() in _RESERVED:
            raise BadOutboundCall(f"channel variable name {name!r} is not allowed")
        if not isinstance(value, str) or not _VAR_VALUE.fullmatch(value):
            raise BadOutboundCall(f"channel variable {name}: a value of at most 200 characters, "
                                  "without , ; \\ $ [ ] { } or control characters")
        out[name] = value
    return out


def dial_channel(template: str, number: str) -> str:
    """``GATEWAY_OUTBOUND_DIAL`` with the number in it."""
    if template.count("{number}") != 1:
        raise BadOutboundCall("GATEWAY_OUTBOUND_DIAL must hold {number} once")
    return template.replace("{number}", number)


def new_uniqueid(node: str | None, several_nodes: bool) -> str:
    """A channel id of our own: ``out-<16 letters>``, ``<node>-out-<16 letters>`` with several nodes
    (letters: the log filter masks runs of digits as phone numbers, an id must stay readable)."""
    uid = "out-" + "".join(secrets.choice(_ID_LETTERS) for _ in range(16))
    return f"{node}-{uid}" if several_nodes and node else uid


def originate_fields(*, channel: str, uniqueid: str, variables: dict[str, str], timeout_s: float,
                     caller_id: str) -> dict:
    """The AMI Originate action (Async: the answer comes as an OriginateResponse event)."""
    return {
        "Action": "Originate", "Channel": channel, "Context": CONTEXT, "Exten": "s", "Priority": "1",
        "Timeout": str(int(timeout_s * 1000)), "CallerID": f"<{caller_id}>", "Async": "true",
        "ChannelId": uniqueid, "OtherChannelId": f"{uniqueid}-c", "ActionID": f"{uniqueid}-originate",
        "Variable": [f"{name}={value}" for name, value in variables.items()],
    }


def outcome_of(event: dict | None) -> tuple[str, str]:
    """``(outcome, reason)`` of an OriginateResponse event (None: it never came)."""
    if event is None:
        return "failed", "no OriginateResponse from Asterisk"
    reason = str(event.get("Reason", "")).strip()
    if event.get("Response") == "Success":
        return "answered", reason or "4"
    return REASON_OUTCOME.get(reason, "failed"), reason or "no reason given"


# -- the service --------------------------------------------------------------------------------------
class Outbound:
    """Places calls over AMI (one node, or a connected node of several, round robin)."""

    def __init__(self, settings, ami, *, clock: Callable[[], datetime] | None = None,
                 recorder: OutboundRecorder | None = None) -> None:
        from gateway.clock import Clock

        self.settings = settings
        self.ami = ami
        self.clock = clock or Clock().now
        self.recorder = recorder
        self._nodes = [n.name for n in nodes_of(settings)]
        self._turn = itertools.count()
        self._live: dict[str, str] = {}  # uniqueid -> purpose, from Originate until its Hangup
        self.counts = {"placed": 0, "answered": 0, "no_answer": 0, "busy": 0, "failed": 0}

    @property
    def several_nodes(self) -> bool:
        return len(getattr(self.ami, "clients", {})) > 1

    def is_ours(self, uniqueid: str) -> bool:
        """A call placed by this gateway that has not hung up yet."""
        return uniqueid in self._live

    def stats(self) -> dict:
        return {**self.counts, "live": len(self._live)}

    def _pick(self) -> tuple[str | None, object | None]:
        """(node name, its AMI client): the next connected node (round robin), or (None, None)."""
        clients = getattr(self.ami, "clients", None)
        if not clients:  # one AmiClient
            return (self._nodes[0] if self._nodes else None), (self.ami if self.ami.connected else None)
        connected = [name for name, client in clients.items() if client.connected]
        if not connected:
            return None, None
        name = connected[next(self._turn) % len(connected)]
        return name, clients[name]

    async def dial(self, number: str, *, purpose: str, ref: str, timeout_s: float = 30.0,
                   caller_id: str = "12345", variables: dict[str, str] | None = None) -> OutboundResult:
        """Call ``number``; return when it was answered (its FastAGI session is then under way)
        or could not be. Bad arguments raise :class:`BadOutboundCall`; nothing is retried."""
        number = check_number(number)
        channel_vars = check_call(purpose, ref, variables, caller_id)
        if not (isinstance(timeout_s, (int, float)) and 1 <= timeout_s <= MAX_TIMEOUT_S):
            raise BadOutboundCall(f"timeout_s must be 1..{MAX_TIMEOUT_S:g} s, not {timeout_s!r}")
        node, client = self._pick()
        uid = new_uniqueid(node, self.several_nodes)
        masked = mask_number(number)
        self.counts["placed"] += 1
        await self._record("started", uniqueid=uid, purpose=purpose, ref=ref, number=number, node=node,
                           started_at=self.clock())
        template = self.settings.outbound_dial
        if not template:
            outcome, reason = "failed", "outbound calls are off (GATEWAY_OUTBOUND_DIAL is not set)"
        elif client is None:
            outcome, reason = "failed", f"AMI not connected ({mask_text(str(self.ami.last_error or 'starting'))})"
        else:
            fields = originate_fields(channel=dial_channel(template, number), uniqueid=uid, variables=channel_vars,
                                      timeout_s=timeout_s, caller_id=caller_id)
            self._live[uid] = purpose
            log.info("outbound %s (%s, ref %s) to %s via %s", uid, purpose, ref, masked, node)
            try:
                outcome, reason = await self._originate(client, fields, timeout_s + ANSWER_MARGIN_S)
            except asyncio.CancelledError:  # the caller gave up: the row still says how it ended
                self._live.pop(uid, None)
                self.counts["failed"] += 1
                await asyncio.shield(self._record("finished", uid, outcome="failed", reason="dial() was cancelled",
                                                  answered_at=None, ended_at=self.clock()))
                raise
            if outcome != "answered":
                self._live.pop(uid, None)
        now = self.clock()
        self.counts[outcome] += 1
        await self._record("finished", uid, outcome=outcome, reason=reason,
                           answered_at=now if outcome == "answered" else None,
                           ended_at=None if outcome == "answered" else now)
        level = logging.INFO if outcome in ("answered", "no_answer", "busy") else logging.WARNING
        log.log(level, "outbound %s (%s, ref %s) to %s: %s (%s)", uid, purpose, ref, masked, outcome,
                f"Reason {reason}: {REASON_TEXT[reason]}" if reason in REASON_TEXT else reason)
        return OutboundResult(outcome=outcome, uniqueid=uid, node=node, reason=reason)

    async def _originate(self, client, fields: dict, wait_s: float) -> tuple[str, str]:
        """Send the Originate and wait for its OriginateResponse (matched by ActionID or Uniqueid)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future = loop.create_future()
        action_id, uid = fields["ActionID"], fields["ChannelId"]

        def on_raw(headers: dict) -> None:
            if (headers.get("Event") == "OriginateResponse" and not answer.done()
                    and (headers.get("ActionID") == action_id or headers.get("Uniqueid") == uid)):
                answer.set_result(dict(headers))

        client.subscribe_raw(on_raw)  # before sending: the answer may come at once
        try:
            await client.action(fields)  # "Originate successfully queued" (or refused: PbxError)
            deadline = loop.time() + wait_s
            while not answer.done():
                left = deadline - loop.time()
                if left <= 0:
                    return "failed", f"no OriginateResponse within {wait_s:g} s"
                if not client.connected:  # the answer would never reach us on this link
                    return "failed", "AMI connection lost while the call was placed (it may still ring)"
                await asyncio.wait({answer}, timeout=min(left, LINK_CHECK_S))
            return outcome_of(answer.result())
        except PbxError as exc:  # refused, AMI lost, no answer to the action
            return "failed", mask_text(str(exc))[:200]
        finally:
            client.unsubscribe_raw(on_raw)

    async def hung_up(self, uniqueid: str) -> None:
        """The AMI Hangup of a call we placed (answered, or not yet answered): its row's end."""
        if self._live.pop(uniqueid, None) is None:
            return
        await self._record("hung_up", uniqueid, ended_at=self.clock())

    async def _record(self, what: str, *args, **kwargs) -> None:
        if self.recorder is None:
            return
        try:
            await getattr(self.recorder, what)(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a lost row must not lose the call
            log.error("outbound %s: could not record %s: %s", args[0] if args else kwargs.get("uniqueid"), what,
                      mask_text(repr(exc)))
