"""In-process figures for the benchmarks: AGI round trips per command, call counts."""

from __future__ import annotations

from collections import defaultdict, deque
from statistics import median


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


class Metrics:
    def __init__(self, keep: int = 20000) -> None:
        self._rtt: dict[str, deque] = defaultdict(lambda: deque(maxlen=keep))
        self.calls_started = 0
        self.calls_finished = 0
        self.sessions_refused = 0  # FastAGI sessions for a call id already recorded (replay/forgery)

    def add_round_trips(self, timings: list[tuple[str, float]]) -> None:
        for verb, seconds in timings:
            self._rtt[verb].append(seconds)

    def snapshot(self) -> dict:
        rtt = {
            verb: {"count": len(values), "median_ms": round(median(values) * 1000, 3),
                   "p99_ms": round(_p99(list(values)) * 1000, 3)}
            for verb, values in sorted(self._rtt.items()) if values
        }
        return {"agi_round_trip": rtt, "calls_started": self.calls_started, "calls_finished": self.calls_finished,
                "sessions_refused": self.sessions_refused}

    def reset(self) -> None:
        self._rtt.clear()
        self.calls_started = self.calls_finished = self.sessions_refused = 0
