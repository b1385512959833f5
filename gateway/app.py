"""Composition root: the shared parts, then every feature's ``setup(app, deps)`` in a fixed order.

:func:`create_app` builds only what the features share (:class:`gateway.deps.Deps`:
settings, clock, the database store, the AMI client, and the registries of health and
metrics sources and of AMI event handlers) and hands it to each feature, which
registers its routes, keeps its services under typed ``web.AppKey``s and owns its start
and stop through ``app.cleanup_ctx``. Running the application (``web.AppRunner``,
see ``gateway.cli``) starts the contexts in this order and stops them in reverse, also
when a later one failed to start:

    database (migrated)  →  journal (the call path's writes, replayed)  →  bus (gateway.bus)
    →  AMI client  →  auth  →  hotlines (live version, Asterisk reloaded, scheduler)  →  speech
    (AudioSocket, models in the background)  →  desk
    →  calls (FastAGI)  →  api (tickets, /healthz, /metrics, event-loop lag)

With ``GATEWAY_TEST_CLOCK=true`` the test-only routes of ``gateway_dev.test_routes`` are
added last (imported only then).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from gateway.api import plugin as api
from gateway.auth import plugin as auth
from gateway.bus import make_bus
from gateway.callback import plugin as callback
from gateway.calls import plugin as calls
from gateway.clock import AdjustableClock, Clock
from gateway.deps import Deps
from gateway.desk import announce
from gateway.desk import plugin as desk
from gateway.followup import plugin as followup
from gateway.hotlines import plugin as hotlines
from gateway.pbx.ami import AmiClient
from gateway.pbx.ami_pool import AmiPool
from gateway.pbx.nodes import nodes_of
from gateway.settings import Settings
from gateway.sms import plugin as sms
from gateway.speech import plugin as speech
from gateway.supervision import figures_plugin as figures
from gateway.supervision import ops_plugin as ops
from gateway.supervision import rates_plugin as rates
from gateway.supervision import reports_plugin as reports
from gateway.supervision import warnings_plugin as early_warnings
from gateway.ticketing import migrate
from gateway.ticketing.dbcheck import database_state
from gateway.ticketing.journal import Journal, OrphanJournals
from gateway.ticketing.store import TicketStore
from gateway.units import plugin as units
from gateway.web.app import new_app
from gateway.web.edge import EdgePolicy

DEPS = web.AppKey("deps", Deps)
JOURNAL_LOCK_WAIT = 30.0  # seconds the own journal waits for a sibling that is replaying it
FEATURES = (auth, hotlines, speech, desk, units, calls, callback, api, sms, announce, followup, figures, rates,
            reports, early_warnings, ops)  # each needs only those before it


def _database(deps: Deps):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate.upgrade, deps.settings.database_url)
        try:
            yield
        finally:
            await deps.store.close()

    return ctx


def _journal(journal: Journal, orphans: OrphanJournals):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await journal.start()  # what is left from the last run is replayed while calls are taken
        await orphans.start()  # and what stopped siblings left, if they share this state dir
        try:
            yield
        finally:
            await orphans.stop()
            await journal.stop()

    return ctx


def _ami(deps: Deps):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await deps.ami.start()
        try:
            yield
        finally:
            await deps.ami.close()

    return ctx


def _bus(deps: Deps):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await deps.bus.start()
        try:
            yield
        finally:
            await deps.bus.close()

    return ctx


def _ami_state(ami: AmiClient) -> str:
    return "connected" if ami.connected else f"disconnected: {ami.last_error}"


async def create_app(settings: Settings) -> web.Application:
    """The gateway as one aiohttp application; nothing runs until it is started (AppRunner)."""
    s = settings
    ami_nodes = {node.name: AmiClient(host=node.ami_host, port=node.ami_port, username=s.ami_user, secret=s.ami_secret,
                                      action_timeout=s.ami_action_timeout, ping_interval=s.ami_ping_interval,
                                      probe_interval=s.ami_probe_interval)
                 for node in nodes_of(s)}  # one AMI client per Asterisk node
    ami = next(iter(ami_nodes.values())) if len(ami_nodes) == 1 else AmiPool(ami_nodes)
    store = await TicketStore.open(s.database_url)
    # lock_wait: a sibling instance may be replaying this journal (OrphanJournals) as we start
    journal = Journal(store, s.journal_dir, max_bytes=int(s.journal_max_mb * 2**20), max_age=s.journal_max_age,
                      lock_wait=JOURNAL_LOCK_WAIT)
    orphans = OrphanJournals(store, s.journal_dir, interval=s.journal_adopt_interval)
    deps = Deps(settings=s, clock=AdjustableClock() if s.test_clock else Clock(), store=store, ami=ami,
                ami_nodes=ami_nodes, journal=journal, bus=make_bus(s.database_url, s.instance_id or None))
    ami.subscribe(deps.ami_events.dispatch)  # one subscriber: record handlers, then notify handlers
    app = new_app(EdgePolicy(trusted_proxies=s.trusted_proxies, public_hosts=s.public_hosts, bind_host=s.http_host))
    app[DEPS] = deps
    app.cleanup_ctx.append(_database(deps))
    app.cleanup_ctx.append(_journal(journal, orphans))
    app.cleanup_ctx.append(_bus(deps))
    app.cleanup_ctx.append(_ami(deps))
    deps.health.add("database", lambda: _ping(deps.store, s.database_url), ok=lambda value: value == "ok")
    deps.health.add("journal", journal.stats, ok=journal.healthy)
    deps.metrics.add("journal", journal.metrics)  # gateway_journal_backlog, _bytes, _oldest_s, ...
    deps.metrics.add("journal_orphans", lambda: dict(orphans.counters))  # sweeps, adopted, replayed
    deps.health.add("ami", lambda: _ami_state(ami), ok=lambda value: value == "connected")
    if isinstance(ami, AmiPool):  # several nodes: each node's AMI, degraded while one is away
        deps.health.add("asterisk_nodes", ami.states, ok=lambda states: all(v == "connected" for v in states.values()))
    deps.health.add("bus", deps.bus.state, ok=lambda value: value["connected"])
    for feature in FEATURES:
        feature.setup(app, deps)
    if s.test_clock:
        from gateway_dev import test_routes  # development harness: never imported in production

        test_routes.setup(app, deps)
    return app


async def _ping(store: TicketStore, database_url: str) -> str:
    """Whether the database takes a write now: ok, locked, read-only, slow or down."""
    return await database_state(database_url, store.engine)


def listening(app: web.Application, http_port: int) -> dict:
    """Where the running gateway listens (the start banner)."""
    s = app[DEPS].settings
    audiosocket = app[speech.SPEECH].audiosocket
    return {
        "fastagi": f"{s.agi_host}:{app[calls.FASTAGI].port}",
        "http": f"http://{s.http_host}:{http_port}",
        "admin": f"http://{s.http_host}:{http_port}/admin",
        "ami": ", ".join(f"{n.name} {n.ami_host}:{n.ami_port}" for n in nodes_of(s)) if s.asterisk_nodes
        else f"{s.ami_host}:{s.ami_port}",
        "audiosocket": f"{s.audiosocket_host}:{audiosocket.port}" if audiosocket else "off",
        "sip": f"127.0.0.1:{s.sip_port}",
        "database": _safe_url(s.database_url),
        "recordings": str(Path(s.recordings_dir)),
        "instance": f"{app[DEPS].bus.instance_id} (bus: {app[DEPS].bus.backend})",
    }


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url
