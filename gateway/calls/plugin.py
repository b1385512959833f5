"""The calls feature's wiring: :class:`CallHandler` behind the FastAGI server, and the AMI
events that complete a call's row.

Needs the hotlines (the live configuration), speech (the listener, the emergency
words) and desk (the supervisor's live board) features set up before it. AMI events
are written at the ``record`` stage: before the desk's ``notify`` handlers, so a screen
pop on ``AgentConnect`` finds the agent already on the call's row.
"""

from __future__ import annotations

import logging
from typing import AsyncIterator

from aiohttp import web

from gateway.calls.handler import CallHandler
from gateway.clock import Clock
from gateway.deps import Deps
from gateway.desk.http import DESK
from gateway.hotlines.keys import HOTLINES
from gateway.ivr_flows.channel import Recording
from gateway.pbx.ami_events import AgentConnect, AmiEvent, Hangup, QueueCallerAbandon, QueueCallerJoin, agent_id_of
from gateway.pbx.fastagi import AgiChannel, FastAgiServer
from gateway.speech.plugin import SPEECH
from gateway.ticketing.journal import JournaledStore
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)
CALLS = web.AppKey("calls", CallHandler)
FASTAGI = web.AppKey("fastagi", FastAgiServer)


class CallEvents:
    """AMI events into the call's row: hang-up cause, queue joined, agent connected."""

    def __init__(self, store: TicketStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def __call__(self, event: AmiEvent) -> None:
        store = self.store
        if isinstance(event, Hangup):
            await store.finish_call(event.uniqueid, hangup_cause=event.cause, hangup_cause_txt=event.cause_txt,
                                    ended_at=self.clock.now())
        elif isinstance(event, QueueCallerJoin):
            await store.mark_queued(event.uniqueid, event.queue)
        elif isinstance(event, AgentConnect):
            await store.mark_agent(event.uniqueid, agent_id_of(event.interface, event.member_name))
        elif isinstance(event, QueueCallerAbandon):
            log.info("call %s abandoned queue %s after %s s", event.uniqueid, event.queue, event.hold_time)


def setup(app: web.Application, deps: Deps) -> None:
    s = deps.settings
    admin, speech, desk = app[HOTLINES], app[SPEECH], app[DESK]

    def prompt_path(key: str) -> str:
        return s.pbx_path(s.prompts_dir / key)

    def recording_path(recording: Recording) -> str:
        """The recording as the gateway sees it on disk."""
        return str(s.local_path(f"{recording.path}.{recording.fmt}"))

    # the call path's writes go through the journal: a locked or absent database costs no ticket
    writes = JournaledStore(deps.journal) if deps.journal is not None else deps.store
    handler = CallHandler(
        store=writes,
        config_source=lambda: admin.config,
        channel_factory=lambda session: AgiChannel(session, prompt_path, s.pbx_path(s.recordings_dir),
                                                   listener=speech.listener),
        recording_path=recording_path,
        clock=deps.clock.now,
        guard_words=speech.guard_words,
        board=desk.board,
    )
    agi = FastAgiServer(handler, host=s.agi_host, port=s.agi_port, allowed_peers=s.pbx_peers,
                        read_timeout=s.agi_read_timeout)
    app[CALLS] = handler
    app[FASTAGI] = agi
    deps.ami_events.add(CallEvents(writes, deps.clock), stage="record")
    deps.health.add("calls_in_ivr", lambda: handler.active)
    deps.health.add("fastagi_sessions", lambda: agi.sessions)
    deps.metrics.extend(handler.metrics.snapshot)  # agi_round_trip, calls_started, calls_finished, ...
    deps.metrics.add("fastagi", agi.counters)
    deps.metrics.on_reset(handler.metrics.reset)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await agi.start()
        try:
            yield
        finally:
            await agi.stop()

    app.cleanup_ctx.append(lifecycle)
