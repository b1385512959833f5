"""One call's life in the gateway: from the FastAGI session to the draft ticket.

This is where the pure flow interpreter meets the PBX channel and the ticket
store. The observer writes every step as it happens, creates the draft
ticket *before* the caller is recorded or handed to a queue (so the database,
not this process, holds the ticket when Asterisk goes on), and keeps the
recording's path on the ticket.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

from gateway.errors import CallExists, ChannelHangup, GatewayError, TicketDecided
from gateway.ivr_flows.channel import Recording
from gateway.ivr_flows.engine import CallState, Interpreter
from gateway.ivr_flows.model import GatewayConfig
from gateway.masking import mask_number
from gateway.calls.metrics import Metrics
from gateway.calls.recordings import RecordingGuard
from gateway.ticketing import numbering
from gateway.ticketing.numbering import local_day
from gateway.ticketing.store import TicketStore
from gateway.ticketing.ticket_no import new_ticket_no

log = logging.getLogger(__name__)


def _number(raw: str) -> str:
    """A dialled number as routed: dial characters only, at most 32."""
    return re.sub(r"[^0-9+*#]", "", raw or "")[:32]


_CALLER_NUMBER = re.compile(r"\+?[0-9]{1,31}")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def caller_id(raw: str | None) -> tuple[str, str | None]:
    """``(number, raw)``: a caller ID as stored.

    Callers (and their carriers) control caller ID. A valid number (ASCII digits, an
    optional leading +) is the number and ``raw`` is None. Anything else is *not*
    turned into a number by dropping characters (``1380000%3Cb%3E1`` is not
    ``13800001``, somebody else's real-looking number): the number is empty and what
    was received is kept, without control characters and at most 80 characters, marked
    as not a valid number. ``None``/empty means no caller ID at all.
    """
    text = (raw or "").strip()
    if not text:
        return "", None
    if _CALLER_NUMBER.fullmatch(text):
        return text, None
    return "", _UNPRINTABLE.sub("\ufffd", text)[:80]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class StoreObserver:
    """Persists a call's progress through the flow.

    Once an agent or supervisor has decided the ticket the IVR may no longer change it
    (the store refuses with :class:`TicketDecided`); the call goes on and the refusal
    is logged, so a decision made while the caller is still in the menu stands.
    """

    def __init__(self, store: TicketStore, *, recording_path: Callable[[Recording], str],
                 recordings: RecordingGuard | None = None, today: Callable[[], date] | None = None,
                 lookup_timeout: float = 0.5, callbacks=None) -> None:
        self.today = today or (lambda: local_day(None, "Asia/Shanghai"))  # the centre's date
        self.lookup_timeout = lookup_timeout  # asking the database whether a drawn number is free
        self.store = store
        self.recording_path = recording_path
        self.recordings = recordings  # free space before, the file after (None: unchecked)
        self.callbacks = callbacks  # gateway.callback.service.CallbackService (None: no callback offer)

    async def expected_wait(self, state: CallState, queue: str):
        """The queue's expected wait and the default limit for a callback offer (None: no offer)."""
        return await self.callbacks.expected_wait(state, queue) if self.callbacks is not None else None

    async def callback_requested(self, state: CallState, queue: str, number: str, source: str) -> None:
        if self.callbacks is None:
            raise GatewayError("callbacks are not available")
        await self.callbacks.callback_requested(state, queue, number, source)

    async def step(self, state: CallState, entry: dict) -> None:
        await self.store.record_step(state.uniqueid, entry)

    async def ticket_point(self, state: CallState) -> None:
        v = state.vars
        if not v.get("ticket_no"):
            v["ticket_no"] = await self._draw_ticket_no(state.uniqueid)
        await self._ivr_write(
            state, self.store.ensure_ticket,
            category=v.get("category") or None,
            channel_kind=v.get("channel_kind") or None,
            confidential=bool(v.get("confidential", False)),
            handled_by=v.get("handled_by") or None,
            queue=state.queue,
            department=v.get("department") or None,
            language=v.get("language") or None,
            ticket_no=v["ticket_no"],
        )

    async def _draw_ticket_no(self, uniqueid: str) -> str:
        """A number for the call's ticket, free in the database if it answers in time.

        Drawn here, not in the database: the caller hears it even while the database is
        down (the journal stores it with the ticket; a number taken meanwhile is replaced at
        replay and the caller texted, :mod:`gateway.ticketing.numbering`).
        """
        number = new_ticket_no(self.today())
        for _ in range(numbering.DRAWS):
            lookup = asyncio.ensure_future(self.store.ticket_no_taken(number))
            try:
                if not await asyncio.wait_for(asyncio.shield(lookup), self.lookup_timeout):
                    return number
            except Exception as exc:  # noqa: BLE001 - the database not answering must not stop the call
                lookup.add_done_callback(lambda t: t.cancelled() or t.exception())
                log.warning("call %s: could not check the ticket number in time (%s); checked when stored",
                            uniqueid, type(exc).__name__)
                return number
            log.info("call %s: ticket number drawn is taken; drawing again", uniqueid)
            number = new_ticket_no(self.today())
        return number

    async def ticket_told(self, state: CallState) -> None:
        """The caller is about to hear the number: audit it, queue the SMS (journaled)."""
        sms = state.vars.get("sms")
        await self._ivr_write(state, self.store.record_ticket_told, sms=sms if isinstance(sms, bool) else None)

    async def recorded(self, state: CallState, recording: Recording) -> None:
        path = self.recording_path(recording)
        await self._ivr_write(state, self.store.set_recording, path=path, duration_ms=recording.duration_ms)
        if self.recordings is not None:
            problem = await self.recordings.file_problem(Path(path), recording.duration_ms)
            if problem:
                await self._recording_problem(state, problem)

    async def may_record(self, state: CallState) -> bool:
        """Is there room to record the caller? If not, the ticket is flagged and the caller goes on."""
        if self.recordings is None:
            return True
        problem = await self.recordings.space_problem()
        if problem:
            await self._recording_problem(state, problem)
        return problem is None

    async def _recording_problem(self, state: CallState, problem: str) -> None:
        log.warning("call %s: recording problem: %s", state.uniqueid, problem)
        await self._ivr_write(state, self.store.set_recording_problem, problem)

    async def transcribed(self, state: CallState, transcript: dict) -> None:
        await self._ivr_write(state, self.store.set_transcript, transcript)

    async def transcript_pending(self, state: CallState, language: str, reason: str) -> None:
        await self._ivr_write(state, self.store.set_transcript_pending, language=language, reason=reason)

    async def emergency(self, state: CallState, words: list) -> None:
        log.warning("call %s: emergency guard fired (%d words)", state.uniqueid, len(words))
        await self._ivr_write(state, self.store.set_emergency, [str(w)[:40] for w in words])

    @staticmethod
    async def _ivr_write(state: CallState, write, *args, **kwargs) -> None:
        try:
            await write(state.uniqueid, *args, **kwargs)
        except TicketDecided as exc:
            log.warning("call %s: %s; the call goes on, the ticket stays as decided", state.uniqueid, exc.message)


class CallHandler:
    """Runs the IVR for each FastAGI session, on the configuration current when the call starts."""

    def __init__(
        self,
        *,
        store: TicketStore,
        config_source: Callable[[], GatewayConfig],
        channel_factory: Callable,
        recording_path: Callable[[Recording], str],
        clock: Callable[[], datetime] = _utcnow,
        metrics: Metrics | None = None,
        guard_words: Callable[[], dict] | None = None,
        board=None,
        recordings: RecordingGuard | None = None,
        instance: str | None = None,
        progress=None,
    ) -> None:
        self.progress = progress  # progress by phone (gateway.progress.service.ProgressService), if any
        self.recordings = recordings
        self.callbacks = None  # gateway.callback (virtual hold) sets its service here when set up
        self.instance = instance  # this gateway's instance id, written on the call's row
        self.board = board  # the supervisor's live board (gateway.desk.live.LiveBoard), if any
        self.guard_words = guard_words or dict
        self.metrics = metrics or Metrics()
        self.store = store
        self.config_source = config_source
        self.channel_factory = channel_factory
        self.recording_path = recording_path
        self.clock = clock
        self.active = 0
        self.completed = 0

    async def __call__(self, session) -> None:
        config = self.config_source()  # a call finishes on the version it started with
        env = session.env
        dialled = _number((env.args[0] if env.args else "") or env.extension)
        caller, caller_raw = caller_id(env.callerid)
        line = config.line(dialled)
        channel = self.channel_factory(session)
        if line is None:
            log.warning("call %s to %s: no such line; hanging up", env.uniqueid, dialled)
            await channel.hangup()
            return
        state = CallState(uniqueid=env.uniqueid, line=line, caller=caller, dialled=dialled)
        try:
            await self.store.start_call(
                uniqueid=env.uniqueid, channel=env.channel[:128], caller_number=caller, dialled_number=dialled,
                line_number=line.number, line_name=line.name, merge_mode=line.mode, department=line.department,
                flow_version=config.version, started_at=self.clock(), caller_id_raw=caller_raw,
                **({"instance": self.instance} if self.instance else {}),
            )
        except CallExists:
            # Asterisk runs the IVR once per channel: this is a replay or a forged peer. Send
            # nothing (a real channel falls through to the dialplan's fail-safe queue).
            self.metrics.session_refused()
            log.warning("FastAGI session for call %s refused: that call id is already recorded "
                        "(replayed or forged session)", env.uniqueid)
            return
        log.info("call %s from %s to %s (%s) started", env.uniqueid, mask_number(caller), dialled, line.mode)
        if self.board is not None:
            self.board.ivr_started(env.uniqueid, line=line.number, caller=caller, now=time.monotonic())
        self.active += 1
        self.metrics.call_started(line.number)
        entered = time.monotonic()
        try:
            await Interpreter(config, clock=self.clock, guard_words=self.guard_words(),
                              progress=self.progress).run(state, channel, StoreObserver(
                self.store, recording_path=self.recording_path, recordings=self.recordings,
                today=lambda: local_day(self.clock(), config.timezone), callbacks=self.callbacks))
        except ChannelHangup:
            pass
        finally:
            if self.board is not None:
                self.board.ivr_left(env.uniqueid, state.outcome, time.monotonic())
            self.active -= 1
            self.completed += 1
            self.metrics.call_left(line.number, state.outcome, node=_hung_up_at(state),
                                   seconds=time.monotonic() - entered)
            self.metrics.add_round_trips(getattr(session, "timings", []))
        log.info("call %s left the IVR: %s %s", env.uniqueid, state.outcome, state.path_text)


def _hung_up_at(state: CallState) -> str | None:
    """The node a caller who hung up in the IVR was at (the interpreter's last step says)."""
    last = state.path[-1] if state.path else {}
    return last.get("at") if last.get("node") == "caller_hangup" else None
