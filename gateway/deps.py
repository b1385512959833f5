"""What the composition root hands every feature: the shared parts and three registries.

Theory of operation: :mod:`gateway.app` builds one :class:`Deps` (settings, clock,
database store, AMI client) and calls each feature's ``setup(app, deps)`` in a fixed
order. A feature keeps its own services under typed ``web.AppKey``s on the application
and registers what it contributes to the shared views here:

* :class:`HealthSources`: ``deps.health.add("speech", fn)``; ``/healthz`` is the
  sources' values in registration order, ``status`` first ("degraded" as soon as a
  source registered with ``ok=`` says no).
* :class:`MetricSources`: ``deps.metrics.add("desk", fn)`` (a key of the JSON view) or
  ``deps.metrics.extend(fn)`` (several top-level keys); ``on_reset`` for
  ``POST /metrics?reset=1``. The Prometheus view is built from the same sources
  (:mod:`gateway.web.metrics`); a feature may also register its own collectors with
  ``deps.metrics.registry`` (one ``CollectorRegistry`` per application, never the
  process-wide default). ``deps.metrics.on_scrape(async_fn)``: awaited before each Prometheus
  scrape (figures read from the database), each within ``SCRAPE_TIMEOUT`` seconds.
* :class:`AmiEvents`: one subscription to the AMI client, handlers awaited one after
  the other by stage: every ``record`` handler (the call's row: hang-up, queue, agent)
  before any ``notify`` handler (the desk's screen pop reads who answered).

``deps.bus`` (:mod:`gateway.bus`) carries notifications of ids to every gateway instance
on the same database (PostgreSQL ``LISTEN``/``NOTIFY``; in-process with SQLite): features
``subscribe`` in ``setup`` and ``publish`` once running.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from prometheus_client import CollectorRegistry

from gateway.bus import LocalBus
from gateway.clock import Clock
from gateway.pbx.ami import AmiClient
from gateway.pbx.ami_events import AmiEvent
from gateway.settings import Settings
from gateway.ticketing.journal import Journal
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)

HealthFn = Callable[[], Any]  # a value, or an awaitable of one
EventHandler = Callable[[AmiEvent], Awaitable[None]]
SCRAPE_TIMEOUT = 2.0  # seconds each on_scrape refresher may take; then the scrape goes on without it


class HealthSources:
    def __init__(self) -> None:
        self._sources: dict[str, tuple[HealthFn, Callable[[Any], bool] | None]] = {}

    def add(self, key: str, fn: HealthFn, *, ok: Callable[[Any], bool] | None = None) -> None:
        """``fn()`` (sync or async) is the report's ``key``; with ``ok``, a value it refuses makes
        the gateway "degraded"."""
        if key in self._sources or key == "status":
            raise ValueError(f"health source {key!r} is already registered")
        self._sources[key] = (fn, ok)

    async def report(self) -> dict:
        values: dict[str, Any] = {}
        healthy = True
        for key, (fn, ok) in self._sources.items():
            value = fn()
            if inspect.isawaitable(value):
                value = await value
            values[key] = value
            if ok is not None and not ok(value):
                healthy = False
        return {"status": "ok" if healthy else "degraded", **values}


class MetricSources:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._sources: list[tuple[str | None, Callable[[], Any]]] = []
        self._resets: list[Callable[[], None]] = []
        self._refreshers: list[Callable[[], Awaitable[None]]] = []

    def add(self, key: str, fn: Callable[[], Any]) -> None:
        """``fn()`` is the JSON view's ``key``."""
        self._sources.append((key, fn))

    def extend(self, fn: Callable[[], dict]) -> None:
        """``fn()`` is a dict whose keys go to the top level of the JSON view."""
        self._sources.append((None, fn))

    def on_reset(self, fn: Callable[[], None]) -> None:
        self._resets.append(fn)

    def on_scrape(self, fn: Callable[[], Awaitable[None]]) -> None:
        """``await fn()`` before each Prometheus scrape (it updates its own collectors)."""
        self._refreshers.append(fn)

    async def refresh(self) -> None:
        """Every ``on_scrape`` refresher at once, each within ``SCRAPE_TIMEOUT``; one that fails or
        is late is logged and its collectors keep their last values (they say so themselves)."""
        results = await asyncio.gather(*(asyncio.wait_for(fn(), SCRAPE_TIMEOUT) for fn in self._refreshers),
                                       return_exceptions=True)
        for fn, result in zip(self._refreshers, results):
            if isinstance(result, BaseException):
                log.warning("metrics refresher %s failed: %r", getattr(fn, "__qualname__", fn), result)

    def snapshot(self, reset: bool = False) -> dict:
        out: dict[str, Any] = {}
        for key, fn in self._sources:
            if key is None:
                out.update(fn())
            else:
                out[key] = fn()
        if reset:
            for fn in self._resets:
                fn()
        return out


STAGES = ("record", "notify")


class AmiEvents:
    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = {stage: [] for stage in STAGES}

    def add(self, handler: EventHandler, *, stage: str) -> None:
        if stage not in self._handlers:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self._handlers[stage].append(handler)

    async def dispatch(self, event: AmiEvent) -> None:
        for stage in STAGES:
            for handler in self._handlers[stage]:
                try:
                    await handler(event)
                except Exception:  # noqa: BLE001 - one failing handler must not starve the next ones
                    log.exception("AMI %s handler %s failed on %s", stage, getattr(handler, "__qualname__", handler),
                                  type(event).__name__)


@dataclass(frozen=True)
class Deps:
    settings: Settings
    clock: Clock
    store: TicketStore
    ami: AmiClient
    health: HealthSources = field(default_factory=HealthSources)
    metrics: MetricSources = field(default_factory=MetricSources)
    ami_events: AmiEvents = field(default_factory=AmiEvents)
    journal: Journal | None = None  # the call path's writes (gateway.ticketing.journal); None: straight to the store
    # Every Asterisk node's own AMI client by node name (one entry with one node, then
    # it is ``ami`` itself; with several, ``ami`` is their gateway.pbx.ami_pool.AmiPool).
    ami_nodes: dict[str, AmiClient] = field(default_factory=dict)
    bus: LocalBus = field(default_factory=LocalBus)  # notifications to the other instances (gateway.bus)
