"""The web edge's own routes: the read-only ticket API, ``/healthz`` and ``/metrics``, built
from the sources the other features registered; and the event loop's lag monitor."""

from __future__ import annotations

from aiohttp import web

from gateway.api.health import HEALTH, add_health_routes
from gateway.api.metrics import METRICS, SourcesCollector, add_metrics_routes, loop_lag_histogram, loop_lag_monitor
from gateway.api.metrics import LoopLag
from gateway.api.tickets import STORE, add_ticket_routes
from gateway.deps import Deps


def setup(app: web.Application, deps: Deps) -> None:
    app[STORE] = deps.store
    app[HEALTH] = deps.health.report
    app[METRICS] = deps.metrics
    deps.metrics.registry.register(SourcesCollector(deps.metrics))
    lag = LoopLag(loop_lag_histogram(deps.metrics.registry))
    deps.metrics.add("event_loop_lag", lag.snapshot)  # the benchmarks' p50/p99/worst (reset with the rest)
    deps.metrics.on_reset(lag.reset)
    app.cleanup_ctx.append(loop_lag_monitor(lag))
    add_ticket_routes(app)
    add_health_routes(app)
    add_metrics_routes(app)
