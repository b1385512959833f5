"""In-process figures of the calls: the benchmarks' JSON view (AGI round trips per command,
call counts; zeroed by ``POST /metrics?reset=1``) and the operators' Prometheus metrics
(counters and histograms that only ever grow, in the application's registry):

* ``gateway_calls_total{line,outcome}``: calls that left the IVR, by configured line and
  outcome (``queued``, ``callback``, ``hangup``: the flow ended the call, ``caller_hangup``:
  the caller gave up in the IVR, ``error``); ``gateway_calls_in_ivr{line}`` now.
* ``gateway_ivr_abandoned_total{line,node}``: callers who hung up in the IVR, by the menu
  node they were at; ``gateway_ivr_duration_seconds{outcome}``: time spent in the IVR.
* ``gateway_agi_command_seconds{command}``: FastAGI round trips by command verb.
* ``gateway_fastagi_sessions_refused_total``: sessions for a call id already recorded.
"""

from __future__ import annotations

from collections import defaultdict, deque
from statistics import median

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.supervision.labels import LINE, Bounded

OUTCOMES = ("queued", "callback", "hangup", "caller_hangup")  # else "error" (the flow failed)
AGI_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
IVR_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


class Metrics:
    def __init__(self, keep: int = 20000, registry: CollectorRegistry | None = None) -> None:
        self._rtt: dict[str, deque] = defaultdict(lambda: deque(maxlen=keep))
        self.calls_started = 0
        self.calls_finished = 0
        self.sessions_refused = 0  # FastAGI sessions for a call id already recorded (replay/forgery)
        # the operators' metrics: the app's registry (deps.metrics.registry), else a private one
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._line, self._node, self._verb = Bounded(LINE), Bounded(), Bounded()
        self.calls = Counter("gateway_calls", "calls that left the IVR, by line and outcome",
                             ["line", "outcome"], registry=r)
        self.in_ivr = Gauge("gateway_calls_in_ivr", "calls in the IVR now, by line", ["line"], registry=r)
        self.abandoned = Counter("gateway_ivr_abandoned", "callers who hung up in the IVR, by line and menu node",
                                 ["line", "node"], registry=r)
        self.ivr_seconds = Histogram("gateway_ivr_duration_seconds", "time from the IVR's start to leaving it",
                                     ["outcome"], buckets=IVR_BUCKETS, registry=r)
        self.agi = Histogram("gateway_agi_command_seconds", "FastAGI command round trips, by command",
                             ["command"], buckets=AGI_BUCKETS, registry=r)
        self.refused = Counter("gateway_fastagi_sessions_refused", "FastAGI sessions refused: call id already recorded",
                               registry=r)

    def known_lines(self, numbers) -> None:
        """Every configured line's series at 0 (rates from the start; the dashboard's line list)."""
        for number in numbers:
            line = self._line(number)
            self.in_ivr.labels(line)
            for outcome in (*OUTCOMES, "error"):
                self.calls.labels(line, outcome)
        for outcome in (*OUTCOMES, "error"):
            self.ivr_seconds.labels(outcome)

    # -- events (gateway.calls.handler) ------------------------------------------------------
    def call_started(self, line: str) -> None:
        self.calls_started += 1
        self.in_ivr.labels(self._line(line)).inc()

    def call_left(self, line: str, outcome: str, *, node: str | None, seconds: float) -> None:
        """The call left the IVR with ``outcome``; ``node``: where a caller who hung up was."""
        self.calls_finished += 1
        label, outcome = self._line(line), outcome if outcome in OUTCOMES else "error"
        self.in_ivr.labels(label).dec()
        self.calls.labels(label, outcome).inc()
        self.ivr_seconds.labels(outcome).observe(max(0.0, seconds))
        if outcome == "caller_hangup":
            self.abandoned.labels(label, self._node(node or "unknown")).inc()

    def session_refused(self) -> None:
        self.sessions_refused += 1
        self.refused.inc()

    def add_round_trips(self, timings: list[tuple[str, float]]) -> None:
        for verb, seconds in timings:
            self._rtt[verb].append(seconds)
            self.agi.labels(self._verb(verb)).observe(seconds)

    # -- the JSON view -------------------------------------------------------------------------
    def snapshot(self) -> dict:
        rtt = {
            verb: {"count": len(values), "median_ms": round(median(values) * 1000, 3),
                   "p99_ms": round(_p99(list(values)) * 1000, 3)}
            for verb, values in sorted(self._rtt.items()) if values
        }
        return {"agi_round_trip": rtt, "calls_started": self.calls_started, "calls_finished": self.calls_finished,
                "sessions_refused": self.sessions_refused}

    def reset(self) -> None:
        """The JSON view's figures only: Prometheus counters never go back."""
        self._rtt.clear()
        self.calls_started = self.calls_finished = self.sessions_refused = 0
