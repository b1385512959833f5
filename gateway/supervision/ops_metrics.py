"""The operators' Prometheus metrics that are not counted on the call path itself.

Theory of operation. Three kinds of figures, all in the application's own registry
(``deps.metrics.registry``) and all with labels from the configuration only
(:mod:`gateway.supervision.labels`):

* :class:`QueueMetrics` counts Asterisk's queue events as they come (an AMI ``notify``
  handler): callers joining a queue, answered (``AgentConnect``) or abandoned
  (``QueueCallerAbandon``), each with the seconds waited (Asterisk's ``HoldTime``) in a
  histogram, and the callers waiting now. Every gateway instance with an AMI connection to a
  node sees that node's events, so with several instances each would count them all. Only the
  instance holding the bus's leadership (``bus.leader``: always the only one with SQLite) counts
  the events and exports these series; the others follow the callers waiting (to export them
  the moment they lead) but count and export nothing. Leadership moves within seconds when its
  holder stops, so at any time one instance's series grow: ``sum`` over instances is the site's
  figure (the dashboard does). An instance that leads again goes on from its own last values (it
  counted nothing meanwhile), so ``increase()`` over its series never adds what another counted.
* :class:`StateCollector` reads, at scrape time, what the features keep in memory: the
  journal of the call path's writes, the speech engine, the SMS sender's and the units'
  webhook sender's counters. Counters of this instance since it started.
* :class:`DatabaseFigures` asks the database before each scrape (``deps.metrics.on_scrape``):
  can it take a write now (``gateway.ticketing.dbcheck``), callbacks pending, the SMS outbox
  and the units' webhook deliveries. These are the whole site's figures, the same on every
  instance (``max`` over instances). ``gateway_metrics_source_up{source}`` says whether each
  answered at the last scrape; a source that did not keeps its last values.

The call path's own counters (calls by line and outcome, IVR abandonment by node, AGI
round trips) are in :mod:`gateway.calls.metrics`; the event loop's lag in
:mod:`gateway.api.metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.callback.policy import OPEN_STATUSES
from gateway.pbx.ami_events import AgentConnect, AmiEvent, Hangup, QueueCallerAbandon, QueueCallerJoin, QueueCallerLeave
from gateway.supervision.labels import NAME, Bounded
from gateway.ticketing.dbcheck import database_state
from gateway.ticketing.models import Callback, UnitHookDelivery

log = logging.getLogger(__name__)
# seconds a caller waited in a queue; 20 s is the usual service-level threshold
WAIT_BUCKETS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)
DB_STATES = ("ok", "locked", "read-only", "slow", "down")
SOURCE_TIMEOUT = 1.5  # seconds each database figure may take at a scrape (gateway.deps.SCRAPE_TIMEOUT: 2 s)
MAX_TRACKED = 20000  # callers waiting that we follow at most (a lost Leave must not grow memory)


class QueueMetrics:
    """Asterisk's queue events into counters, a wait histogram and a waiting-now gauge."""

    def __init__(self, registry: CollectorRegistry, queues: Callable[[], object] | None = None,
                 leader: Callable[[], bool] = lambda: True) -> None:
        self._queue = Bounded(NAME, known=queues)
        self.leader = leader  # counts and exports only while this is true (see the module's notes)
        self.joined = Counter("gateway_queue_joined", "callers who joined a queue (counted by the leader "
                              "instance only: sum over instances)", ["queue"], registry=None)
        self.left = Counter("gateway_queue_left", "callers who left a queue answered or abandoned (leader only)",
                            ["queue", "outcome"], registry=None)
        self.wait = Histogram("gateway_queue_wait_seconds", "seconds a caller waited in a queue until answered "
                              "or abandoned (leader only)", ["queue", "outcome"], buckets=WAIT_BUCKETS, registry=None)
        self.waiting = Gauge("gateway_queue_waiting", "callers waiting in a queue now (leader only)", ["queue"],
                             registry=None)
        self._where: dict[str, str] = {}  # call id -> queue label, while the caller waits
        registry.register(self)

    def describe(self) -> list:
        return []  # names unique by construction, as the other collectors here

    def collect(self) -> Iterator:
        """The series, from the leader only (a prometheus_client collector)."""
        if self.leader():
            for metric in (self.joined, self.left, self.wait, self.waiting):
                yield from metric.collect()

    def known(self, queues) -> None:
        """Every configured queue's series at 0, so rates and sums start from the beginning."""
        for name in queues:
            queue = self._queue(name)
            self.joined.labels(queue)
            self.waiting.labels(queue)
            for outcome in ("answered", "abandoned"):
                self.left.labels(queue, outcome)  # (the wait histogram's series appear with their first caller)

    async def __call__(self, event: AmiEvent) -> None:
        if isinstance(event, QueueCallerJoin):
            queue = self._queue(event.queue)
            if self.leader():
                self.joined.labels(queue).inc()
            self._gone(event.uniqueid)  # moved from another queue
            if len(self._where) < MAX_TRACKED:
                self._where[event.uniqueid] = queue
                self.waiting.labels(queue).inc()
        elif isinstance(event, AgentConnect):
            self._left(event.queue, "answered", event.hold_time)
        elif isinstance(event, QueueCallerAbandon):
            self._left(event.queue, "abandoned", event.hold_time)
        elif isinstance(event, (QueueCallerLeave, Hangup)):
            self._gone(event.uniqueid)

    def _left(self, raw_queue: str, outcome: str, hold_time: int | None) -> None:
        if not self.leader():
            return
        queue = self._queue(raw_queue)
        self.left.labels(queue, outcome).inc()
        if hold_time is not None and hold_time >= 0:
            self.wait.labels(queue, outcome).observe(hold_time)

    def _gone(self, uniqueid: str) -> None:
        queue = self._where.pop(uniqueid, None)
        if queue is not None:
            self.waiting.labels(queue).dec()


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def _gauge(name: str, doc: str, value: float | None = None, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value, labels=labels)


class StateCollector:
    """What the features keep in memory, read at scrape time (a prometheus_client collector).

    ``journal``: :class:`gateway.ticketing.journal.Journal` or None; ``speech_engine()``: the
    speech engine or None (off, or not started yet); ``sms_counters()`` and
    ``hook_counters()``: the senders' counters dicts.
    """

    JOURNAL_WRITES = ("journaled", "applied", "refused", "dropped")

    def __init__(self, *, journal=None, speech_engine: Callable[[], object] = lambda: None,
                 sms_counters: Callable[[], dict] = dict, hook_counters: Callable[[], dict] = dict) -> None:
        self.journal = journal
        self.speech_engine = speech_engine
        self.sms_counters = sms_counters
        self.hook_counters = hook_counters
        self._language = Bounded(NAME, limit=16)

    def describe(self) -> list:
        return []  # names are not checked against the registry's: they are unique by construction (a test says so)

    def collect(self) -> Iterator:
        yield from self._journal()
        yield from self._speech()
        sms = self.sms_counters() or {}
        attempts = _counter("gateway_sms_send_attempts", "texts handed to the SMS sender, by result", ["result"])
        for key, result in (("sent", "sent"), ("failed", "failed"), ("dead", "dead"), ("errors", "error")):
            attempts.add_metric([result], float(sms.get(key, 0)))
        yield attempts
        hooks = self.hook_counters() or {}
        deliveries = _counter("gateway_unit_hook_attempts", "units' webhook delivery attempts, by result", ["result"])
        deliveries.add_metric(["delivered"], float(hooks.get("delivered", 0)))
        deliveries.add_metric(["failed"], float(hooks.get("failed_attempts", 0)))
        yield deliveries
        yield _counter_value("gateway_unit_hook_given_up", "units' webhook deliveries this instance gave up",
                             hooks.get("given_up", 0))

    def _journal(self) -> Iterator:
        if self.journal is None:
            return
        stats = self.journal.stats()
        yield _gauge("gateway_journal_pending_writes", "call-path writes in the journal not yet in the database",
                     stats["backlog"])
        yield _gauge("gateway_journal_pending_bytes", "bytes of the journal's pending writes", stats["bytes"])
        yield _gauge("gateway_journal_oldest_pending_seconds", "age of the oldest write waiting for the database",
                     stats["oldest_s"])
        yield _gauge("gateway_journal_waiting_for_database", "1 while the database refuses or fails the journal's "
                     "writes", 1.0 if stats["waiting_for_database"] else 0.0)
        # gateway_journal_over_bound (0/1) comes from the JSON view (gateway.api.metrics.SourcesCollector)
        writes = _counter("gateway_journal_writes", "the journal's writes by what became of them", ["result"])
        for result in self.JOURNAL_WRITES:
            writes.add_metric([result], float(stats.get(result, 0)))
        yield writes
        yield _counter_value("gateway_journal_write_retries", "database attempts of journal writes that failed "
                             "and were retried", stats.get("retries", 0))
        yield _counter_value("gateway_journal_file_append_errors", "journal file appends that failed",
                             stats.get("append_errors", 0))

    def _speech(self) -> Iterator:
        engine = self.speech_engine()
        yield _gauge("gateway_speech_enabled", "1 when the speech recogniser is configured and started",
                     0.0 if engine is None else 1.0)
        stats = engine.stats() if engine is not None else {}  # off: every figure 0 (the families stay)
        yield _gauge("gateway_speech_streams_live", "live recognition streams now", stats.get("live_streams", 0))
        yield _gauge("gateway_speech_streams_queued", "streams waiting for a speech worker (theirs died)",
                     stats.get("waiting_for_worker", 0))
        yield _gauge("gateway_speech_streams_max", "live streams allowed (max_streams)", stats.get("max_streams", 0))
        yield _gauge("gateway_speech_workers_alive", "speech workers ready", stats.get("workers_alive", 0))
        yield _gauge("gateway_speech_workers", "speech workers configured", stats.get("workers", 0))
        yield _counter_value("gateway_speech_worker_restarts", "speech worker processes restarted",
                             stats.get("restarts", 0))
        streams = _counter("gateway_speech_streams", "recognition streams by what became of them", ["result"])
        for key, result in (("streams_opened", "opened"), ("streams_failed", "failed"),
                            ("streams_recovered", "recovered"), ("overloaded", "refused_overloaded")):
            streams.add_metric([result], float(stats.get(key, 0)))
        yield streams
        decoded = engine.decoded() if engine is not None else {}
        transcripts = _counter("gateway_speech_transcripts", "finished transcripts by language", ["language"])
        audio = _counter("gateway_speech_audio_seconds", "seconds of audio in finished transcripts", ["language"])
        decode = _counter("gateway_speech_decode_seconds", "seconds the workers spent decoding finished "
                          "transcripts (÷ audio seconds = real-time factor)", ["language"])
        for language, totals in decoded.items():
            label = [self._language(language)]
            transcripts.add_metric(label, float(totals["transcripts"]))
            audio.add_metric(label, float(totals["audio_seconds"]))
            decode.add_metric(label, float(totals["decode_seconds"]))
        yield from (transcripts, audio, decode)


def _counter_value(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


class DatabaseFigures:
    """The site's figures from the database, refreshed before each scrape (``refresh``)."""

    def __init__(self, *, store, database_url: str, sms_outbox=None,
                 queues: Callable[[], object] | None = None) -> None:
        self.store = store
        self.database_url = database_url
        self.sms_outbox = sms_outbox  # gateway.sms.outbox.Outbox, when the SMS feature is set up
        self._queue = Bounded(NAME, known=queues)
        self.up: dict[str, bool] = {}
        self.db_state: str | None = None
        self.db_check_seconds = 0.0
        self.callbacks: dict[tuple[str, str], int] = {}
        self.sms: dict[str, float] = {}
        self.hooks: dict[str, int] = {}

    def describe(self) -> list:
        return []

    async def refresh(self) -> None:
        """Every source at once, each within ``SOURCE_TIMEOUT`` (under the scrape's own limit, so a
        hung database marks its sources down instead of leaving them looking fresh)."""
        sources = (("database", self._database), ("callbacks", self._callbacks), ("sms", self._sms),
                   ("unit_hooks", self._hooks))
        results = await asyncio.gather(*(asyncio.wait_for(fn(), SOURCE_TIMEOUT) for _, fn in sources),
                                       return_exceptions=True)
        for (source, _), result in zip(sources, results):
            if isinstance(result, Exception):  # a scrape reports, never fails
                log.warning("metrics: %s figures not read: %s", source, type(result).__name__)
            self.up[source] = not isinstance(result, Exception)

    async def _database(self) -> None:
        started = time.monotonic()
        self.db_state = await database_state(self.database_url, self.store.engine)
        self.db_check_seconds = time.monotonic() - started

    async def _callbacks(self) -> None:
        async with self.store.read_session() as session:
            rows = (await session.execute(
                sa.select(Callback.queue, Callback.status, sa.func.count(Callback.id))
                .where(Callback.status.in_(OPEN_STATUSES)).group_by(Callback.queue, Callback.status))).all()
        counts: dict[tuple[str, str], int] = {}
        for queue, status, count in rows:
            key = (self._queue(queue), status)
            counts[key] = counts.get(key, 0) + int(count)
        self.callbacks = counts

    async def _sms(self) -> None:
        if self.sms_outbox is not None:
            self.sms = await self.sms_outbox.stats()

    async def _hooks(self) -> None:
        d = UnitHookDelivery
        async with self.store.read_session() as session:
            pending = await session.scalar(sa.select(sa.func.count(d.id)).where(
                d.delivered_at.is_(None), d.failed_at.is_(None)))
            failing = await session.scalar(sa.select(sa.func.count(d.id)).where(
                d.delivered_at.is_(None), d.failed_at.is_(None), d.attempts > 0))
            given_up = await session.scalar(sa.select(sa.func.count(d.id)).where(d.failed_at.is_not(None)))
        self.hooks = {"pending": int(pending or 0), "failing": int(failing or 0), "given_up": int(given_up or 0)}

    def collect(self) -> Iterator:
        up = _gauge("gateway_metrics_source_up", "1 when the source answered at the last scrape", labels=["source"])
        for source, ok in sorted(self.up.items()):
            up.add_metric([source], 1.0 if ok else 0.0)
        yield up
        if self.db_state is not None:
            yield _gauge("gateway_database_up", "1 when the database takes a write now", float(self.db_state == "ok"))
            state = _gauge("gateway_database_state", "the database check's answer (1 for the current one)",
                           labels=["state"])
            for name in DB_STATES:
                state.add_metric([name], 1.0 if self.db_state == name else 0.0)
            yield state
            yield _gauge("gateway_database_check_seconds", "how long the database's write check took",
                         self.db_check_seconds)
        pending = _gauge("gateway_callbacks_pending", "callbacks not finished, by queue and status",
                         labels=["queue", "status"])
        for (queue, status), count in sorted(self.callbacks.items()):
            pending.add_metric([queue, status], float(count))
        yield pending
        if self.sms:
            yield _gauge("gateway_sms_outbox_dead", "texts given up (status dead), waiting for a supervisor's retry",
                         self.sms.get("dead", 0))
            yield _gauge("gateway_sms_outbox_backlog", "texts not sent yet", self.sms.get("backlog", 0))
            yield _gauge("gateway_sms_outbox_oldest_pending_seconds", "age of the oldest text not sent yet",
                         self.sms.get("oldest_s", 0.0))
        if self.hooks:
            yield _gauge("gateway_unit_hook_deliveries_pending", "units' webhook deliveries not delivered yet",
                         self.hooks["pending"])
            yield _gauge("gateway_unit_hook_deliveries_failing", "pending webhook deliveries that failed at least "
                         "once", self.hooks["failing"])
            yield _gauge("gateway_unit_hook_deliveries_given_up", "webhook deliveries given up",
                         self.hooks["given_up"])
