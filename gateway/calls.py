"""One call's life in the gateway: from the FastAGI session to the draft ticket.

This is where the pure flow interpreter meets the PBX channel and the ticket
store. The observer writes every step as it happens, creates the draft
ticket *before* the caller is recorded or handed to a queue (so the database,
not this process, holds the ticket when Asterisk goes on), and keeps the
recording's path on the ticket.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timezone
from typing import Callable

from gateway.errors import ChannelHangup
from gateway.ivr_flows.channel import Recording
from gateway.ivr_flows.engine import CallState, Interpreter
from gateway.ivr_flows.model import GatewayConfig
from gateway.masking import mask_number
from gateway.metrics import Metrics
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)


def _number(raw: str) -> str:
    """A phone number as stored: dial characters only, at most 32 (callers control caller ID)."""
    return re.sub(r"[^0-9+*#]", "", raw or "")[:32]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class StoreObserver:
    """Persists a call's progress through the flow."""

    def __init__(self, store: TicketStore, *, recording_path: Callable[[Recording], str]) -> None:
        self.store = store
        self.recording_path = recording_path

    async def step(self, state: CallState, entry: dict) -> None:
        await self.store.record_step(state.uniqueid, entry)

    async def ticket_point(self, state: CallState) -> None:
        v = state.vars
        await self.store.ensure_ticket(
            state.uniqueid,
            category=v.get("category") or None,
            channel_kind=v.get("channel_kind") or None,
            confidential=bool(v.get("confidential", False)),
            handled_by=v.get("handled_by") or None,
            queue=state.queue,
            department=v.get("department") or None,
            language=v.get("language") or None,
        )

    async def recorded(self, state: CallState, recording: Recording) -> None:
        await self.store.set_recording(
            state.uniqueid, path=self.recording_path(recording), duration_ms=recording.duration_ms
        )

    async def transcribed(self, state: CallState, transcript: dict) -> None:
        await self.store.set_transcript(state.uniqueid, transcript)

    async def transcript_pending(self, state: CallState, language: str, reason: str) -> None:
        await self.store.set_transcript_pending(state.uniqueid, language=language, reason=reason)

    async def emergency(self, state: CallState, words: list) -> None:
        log.warning("call %s: emergency guard fired (%d words)", state.uniqueid, len(words))
        await self.store.set_emergency(state.uniqueid, [str(w)[:40] for w in words])


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
    ) -> None:
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
        caller = _number(env.callerid)
        line = config.line(dialled)
        channel = self.channel_factory(session)
        if line is None:
            log.warning("call %s to %s: no such line; hanging up", env.uniqueid, dialled)
            await channel.hangup()
            return
        state = CallState(uniqueid=env.uniqueid, line=line, caller=caller, dialled=dialled)
        await self.store.start_call(
            uniqueid=env.uniqueid, channel=env.channel[:128], caller_number=caller, dialled_number=dialled,
            line_number=line.number, line_name=line.name, merge_mode=line.mode, department=line.department,
            flow_version=config.version, started_at=self.clock(),
        )
        log.info("call %s from %s to %s (%s) started", env.uniqueid, mask_number(caller), dialled, line.mode)
        if self.board is not None:
            self.board.ivr_started(env.uniqueid, line=line.number, caller=caller, now=time.monotonic())
        self.active += 1
        self.metrics.calls_started += 1
        try:
            await Interpreter(config, clock=self.clock, guard_words=self.guard_words()).run(state, channel, StoreObserver(
                self.store, recording_path=self.recording_path))
        except ChannelHangup:
            pass
        finally:
            if self.board is not None:
                self.board.ivr_left(env.uniqueid, state.outcome, time.monotonic())
            self.active -= 1
            self.completed += 1
            self.metrics.calls_finished += 1
            self.metrics.add_round_trips(getattr(session, "timings", []))
        log.info("call %s left the IVR: %s %s", env.uniqueid, state.outcome, state.path_text)
