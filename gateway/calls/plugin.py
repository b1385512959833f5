"""The calls feature's wiring: :class:`CallHandler` behind the FastAGI server, and the AMI
events that complete a call's row.

Needs the hotlines (the live configuration), speech (the listener, the emergency
words) and desk (the supervisor's live board) features set up before it. AMI events
are written at the ``record`` stage: before the desk's ``notify`` handlers, so a screen
pop on ``AgentConnect`` finds the agent already on the call's row.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web

from gateway.calls.handler import CallHandler
from gateway.calls.metrics import Metrics
from gateway.calls.outbound import OutboundCalls, OutboundRoutes, OutboundSessions
from gateway.calls.reconcile import Reconciler
from gateway.calls.recordings import RecordingGuard
from gateway.clock import Clock
from gateway.deps import Deps
from gateway.desk.http import DESK
from gateway.hotlines.keys import HOTLINES
from gateway.ivr_flows.channel import Recording
from gateway.pbx.ami_events import AgentConnect, AmiEvent, Hangup, QueueCallerAbandon, QueueCallerJoin, agent_id_of
from gateway.pbx.dialplan import cdr_path
from gateway.pbx.fastagi import AgiChannel, FastAgiServer
from gateway.pbx.nodes import node_settings, nodes_of
from gateway.pbx.outbound import Outbound
from gateway.progress import plugin as progress_plugin
from gateway.speech.plugin import SPEECH
from gateway.ticketing.journal import JournaledStore
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)
CALLS = web.AppKey("calls", CallHandler)
FASTAGI = web.AppKey("fastagi", FastAgiServer)
RECONCILER = web.AppKey("reconciler", Reconciler)
# The gateway's own calls to citizens (gateway.calls.outbound explains how to use them): features set
# up after this one register a purpose with app[OUTBOUND_ROUTES].register(purpose, handler) and
# place calls with await app[OUTBOUND].dial(number, purpose=..., ref=...).
OUTBOUND = web.AppKey("outbound", Outbound)
OUTBOUND_ROUTES = web.AppKey("outbound_routes", OutboundRoutes)


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
    recordings = RecordingGuard(s.recordings_dir, min_free_mb=s.recordings_min_free_mb)
    # resolved on disk once at start (in a thread), not per call on the loop (issue 12's loop lag)
    pbx_dirs: dict[str, str] = {}
    handler = CallHandler(
        recordings=recordings,
        store=writes,
        config_source=lambda: admin.config,
        channel_factory=lambda session: AgiChannel(session, prompt_path, pbx_dirs["recordings"],
                                                   listener=speech.listener),
        recording_path=recording_path,
        clock=deps.clock.now,
        guard_words=speech.guard_words,
        board=desk.board,
        instance=deps.bus.instance_id,  # the call's row names the instance that ran its IVR
        progress=progress_plugin.build(app, deps),  # progress by phone (issue 13)
        metrics=Metrics(registry=deps.metrics.registry),  # the operators' counters in the app's registry
    )
    routes = OutboundRoutes()
    outbound_rows = OutboundCalls(deps.store)
    outbound = Outbound(s, deps.ami, clock=deps.clock.now, recorder=outbound_rows)
    sessions = OutboundSessions(handler, routes, channel_factory=handler.channel_factory)
    agi = FastAgiServer(sessions, host=s.agi_host, port=s.agi_port, allowed_peers=s.pbx_peers,
                        read_timeout=s.agi_read_timeout)
    app[CALLS] = handler
    app[FASTAGI] = agi
    app[OUTBOUND] = outbound
    app[OUTBOUND_ROUTES] = routes
    deps.ami_events.add(CallEvents(writes, deps.clock), stage="record")
    deps.ami_events.add(_outbound_hangups(outbound), stage="record")
    deps.health.add("calls_in_ivr", lambda: handler.active)
    deps.health.add("fastagi_sessions", lambda: agi.sessions)
    deps.health.add("recordings", recordings.health, ok=recordings.healthy)  # free_mb, problems_recent
    deps.metrics.extend(handler.metrics.snapshot)  # agi_round_trip, calls_started, calls_finished, ...
    deps.metrics.add("fastagi", agi.counters)
    deps.metrics.add("outbound", lambda: {**outbound.stats(), **routes.counters()})
    deps.metrics.on_reset(handler.metrics.reset)
    # Reconciliation with Asterisk, one per node: on every AMI login (start, reconnects) and periodically.
    several = len(deps.ami_nodes) > 1
    pending = deps.journal.pending_for if deps.journal is not None else None
    reconcilers = []
    for node in nodes_of(s):
        client = deps.ami_nodes.get(node.name, deps.ami)
        reconciler = Reconciler(
            ami=client, store=deps.store, node=node.name, cdr_path=cdr_path(node_settings(s, node)),
            recordings_dir=s.recordings_dir, clock=deps.clock.now, dispatch=deps.ami_events.dispatch,
            lines=lambda number: admin.config.lines.get(number), interval=s.reconcile_interval,
            owns=(lambda uid, prefix=f"{node.name}-": uid.startswith(prefix)) if several else None, pending=pending,
            outbound=outbound_rows.close_from_cdr)
        reconciler.attach()
        reconcilers.append(reconciler)
    app[RECONCILER] = reconcilers[0]
    deps.health.add("reconcile", lambda: reconcilers[0].health() if not several
                    else {r.node: r.health() for r in reconcilers})
    deps.metrics.add("reconcile", lambda: _reconcile_totals(reconcilers))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        pbx_dirs["recordings"] = await asyncio.to_thread(s.pbx_path, s.recordings_dir)
        await agi.start()
        for reconciler in reconcilers:
            await reconciler.start()
        try:
            yield
        finally:
            for reconciler in reconcilers:
                await reconciler.stop()
            await agi.stop()

    app.cleanup_ctx.append(lifecycle)


def _outbound_hangups(outbound: Outbound):
    async def on_event(event: AmiEvent) -> None:
        if isinstance(event, Hangup) and outbound.is_ours(event.uniqueid):
            await outbound.hung_up(event.uniqueid)

    return on_event


def _reconcile_totals(reconcilers: list[Reconciler]) -> dict:
    """Every node's reconciliation counts added up, with the number of runs."""
    totals: dict[str, int] = {"runs": 0}
    for reconciler in reconcilers:
        totals["runs"] += reconciler.runs
        for key, value in reconciler.totals.items():
            totals[key] = totals.get(key, 0) + value
    return totals
