"""``/metrics``: the features' figures in the Prometheus text format, or as JSON.

``GET /metrics`` (supervisor or admin) answers in the Prometheus text exposition format
from the application's own ``CollectorRegistry`` (``deps.metrics.registry``, never the
process-wide default): every number of the JSON view as a gauge named after its path
(``gateway_fastagi_accepted``, ``gateway_desk_pops``, ``gateway_agi_round_trip_p99_ms{command=...}``)
and the event loop's lag as a histogram (``gateway_event_loop_lag_seconds``); the JSON view's
``event_loop_lag`` has the same observations since the last reset as p50/p99/worst in ms.
``GET /metrics?format=json`` (or ``Accept: application/json``) is the JSON view the
benchmarks read; ``POST /metrics?reset=1`` (admin) returns it and zeroes the counters.
Prometheus may instead send the scrape token of ``GATEWAY_METRICS_TOKEN_FILE``, which opens
``GET /metrics`` only. The operators' metrics: :mod:`gateway.calls.metrics`,
:mod:`gateway.supervision.ops_metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
from collections import deque
from typing import Any, AsyncIterator, Iterator

from aiohttp import web
from prometheus_client import Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.auth.http import require_role
from gateway.deps import MetricSources
from gateway.errors import BadRequest

METRICS = web.AppKey("metrics", MetricSources)


class ScrapeToken:
    """The Prometheus scrape token as its SHA-256 (None: no token, ``/metrics`` is for staff only);
    loaded at start from ``GATEWAY_METRICS_TOKEN_FILE`` (gateway.supervision.ops_plugin)."""

    def __init__(self, digest: bytes | None = None) -> None:
        self.digest = digest

    def set(self, token: str) -> None:
        self.digest = hashlib.sha256(token.encode()).digest()

    def matches(self, authorization: str) -> bool:
        if self.digest is None or not authorization.startswith("Bearer "):
            return False
        return hmac.compare_digest(hashlib.sha256(authorization[7:].strip().encode()).digest(), self.digest)


SCRAPE_TOKEN = web.AppKey("metrics_scrape_token", ScrapeToken)
PREFIX = "gateway"
LAG_INTERVAL = 0.25  # seconds between two looks at the event loop
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# dicts whose keys are values (AGI commands), not names: a label instead of a name part
LABELLED = {("agi_round_trip",): "command"}
_NAME_PART = re.compile(r"[^a-zA-Z0-9_]")


# -- Prometheus ----------------------------------------------------------------------------------
class SourcesCollector:
    """The JSON view's numbers (bools as 0/1) as gauges; text and lists are left out."""

    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for path, labels, value in _leaves(self.sources.snapshot(), (), {}):
            name = "_".join([PREFIX, *(_NAME_PART.sub("_", part) for part in path)])
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, f"gateway figure {'.'.join(path)}",
                                                            labels=list(labels))
            family.add_metric(list(labels.values()), float(value))
        yield from families.values()


def _leaves(value: Any, path: tuple, labels: dict) -> Iterator[tuple[tuple, dict, float]]:
    if isinstance(value, bool) or (isinstance(value, (int, float)) and path):
        yield path, labels, float(value)
    elif isinstance(value, dict):
        label = LABELLED.get(path)
        for key, item in value.items():
            if label is not None:
                yield from _leaves(item, path, {**labels, label: str(key)})
            else:
                yield from _leaves(item, (*path, str(key)), labels)


class LoopLag:
    """The loop lag since the last reset: the histogram (Prometheus, cumulative) and the recent
    observations themselves (``keep`` of them: 5.5 h at 4 a second) for exact percentiles and
    the worst one, which the benchmarks compare with their goals (p99 < 20 ms, worst < 100 ms)."""

    def __init__(self, histogram: Histogram, keep: int = 80000) -> None:
        self.histogram = histogram
        self._recent: deque[float] = deque(maxlen=keep)
        self.count = 0
        self.worst = 0.0

    def observe(self, seconds: float) -> None:
        self.histogram.observe(seconds)
        self._recent.append(seconds)
        self.count += 1
        self.worst = max(self.worst, seconds)

    def snapshot(self) -> dict:
        ordered = sorted(self._recent)

        def ms(p: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3) if ordered else None

        return {"count": self.count, "p50_ms": ms(0.50), "p99_ms": ms(0.99),
                "worst_ms": round(self.worst * 1000, 3) if self.count else None}

    def reset(self) -> None:
        self._recent.clear()
        self.count, self.worst = 0, 0.0


def loop_lag_histogram(registry) -> Histogram:
    return Histogram("gateway_event_loop_lag_seconds", "how late the event loop woke a sleeper (seconds)",
                     buckets=LAG_BUCKETS, registry=registry)


async def watch_loop_lag(histogram: Histogram | LoopLag, interval: float = LAG_INTERVAL) -> None:
    """Sleep ``interval`` again and again; how much later than asked the loop woke us is its lag."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, loop.time() - started - interval))


def loop_lag_monitor(histogram: Histogram | LoopLag, interval: float = LAG_INTERVAL):
    """A ``cleanup_ctx`` entry: the lag monitor runs while the application does."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(watch_loop_lag(histogram, interval), name="loop-lag-monitor")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx


# -- handlers ------------------------------------------------------------------------------------
def _wants_json(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt not in (None, "json", "prometheus"):
        raise BadRequest("format is json or prometheus (the default)", details={"parameter": "format"})
    if fmt is not None:
        return fmt == "json"
    return "application/json" in request.headers.get("Accept", "")


def _scraper(request: web.Request) -> bool:
    """The request bears the Prometheus scrape token: it may read ``GET /metrics`` and nothing else."""
    token = request.app.get(SCRAPE_TOKEN)
    return token is not None and token.matches(request.headers.get("Authorization", ""))


async def metrics(request: web.Request) -> web.Response:
    if _scraper(request):
        return await _metrics(request)
    return await _staff_metrics(request)


@require_role("supervisor", "admin")
async def _staff_metrics(request: web.Request) -> web.Response:
    return await _metrics(request)


async def _metrics(request: web.Request) -> web.Response:
    sources = request.app[METRICS]
    if _wants_json(request):
        return web.json_response(sources.snapshot())
    await sources.refresh()  # the figures read from the database (gateway.supervision.ops_metrics)
    return web.Response(body=generate_latest(sources.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


@require_role("admin")
async def reset_metrics(request: web.Request) -> web.Response:
    """``POST /metrics?reset=1``: the figures so far (JSON), then zero (benchmarks between rounds)."""
    await request.read()  # enforces client_max_size: a huge body is a 413, not a hang
    if request.query.get("reset") != "1":
        raise BadRequest("POST /metrics resets the counters: say so with ?reset=1")
    return web.json_response(request.app[METRICS].snapshot(reset=True))


def add_metrics_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/metrics", reset_metrics)
