"""The event loop's lag in the JSON view of /metrics (gateway.api.metrics.LoopLag): exact
p50/p99/worst of the observations since the last reset, next to the Prometheus histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from gateway.api.metrics import LoopLag, loop_lag_histogram


def test_given_no_observation_when_snapshot_then_count_zero_and_no_figures():
    lag = LoopLag(loop_lag_histogram(CollectorRegistry()))
    assert lag.snapshot() == {"count": 0, "p50_ms": None, "p99_ms": None, "worst_ms": None}


def test_given_200_observations_when_snapshot_then_percentiles_and_worst_in_ms_and_the_histogram_has_them():
    registry = CollectorRegistry()
    lag = LoopLag(loop_lag_histogram(registry))
    for i in range(1, 201):  # 0.1 ms .. 20 ms
        lag.observe(i / 10000)
    lag.observe(0.15)  # one bad stall
    snap = lag.snapshot()
    assert snap["count"] == 201
    assert snap["p50_ms"] == 10.1
    assert snap["p99_ms"] == 19.9
    assert snap["worst_ms"] == 150.0
    text = generate_latest(registry).decode()
    assert "gateway_event_loop_lag_seconds_count 201.0" in text
    assert 'gateway_event_loop_lag_seconds_bucket{le="0.02"} 200.0' in text  # the goal's bound is a bucket


def test_given_observations_when_reset_then_the_json_view_starts_again_but_the_histogram_stays_cumulative():
    registry = CollectorRegistry()
    lag = LoopLag(loop_lag_histogram(registry))
    lag.observe(0.5)
    lag.reset()
    lag.observe(0.002)
    assert lag.snapshot() == {"count": 1, "p50_ms": 2.0, "p99_ms": 2.0, "worst_ms": 2.0}
    assert "gateway_event_loop_lag_seconds_count 2.0" in generate_latest(registry).decode()
