"""The live-stream capacity derived from measurement (gateway.asr.capacity): pure logic."""

from __future__ import annotations

import pytest

from gateway.asr.capacity import Capacity, combine


def measured(**kw) -> Capacity:
    base = dict(cores=2, workers=2, headroom=0.6, rtf={"ko": 0.17, "zh": 0.3}, calibrated=True)
    return Capacity(**{**base, **kw})


def test_given_2_cores_and_rtf_0_17_when_derived_then_floor_of_cores_times_headroom_over_rtf():
    assert measured().streams("ko") == 7  # 2 * 0.6 / 0.17 = 7.06
    assert measured().streams("zh") == 4  # 2 * 0.6 / 0.3 = 4


def test_given_32_cores_when_derived_then_capacity_grows_with_the_machine():
    assert measured(cores=32, workers=32).streams("ko") == 112  # 32 * 0.6 / 0.17


def test_given_fewer_workers_than_cores_then_the_workers_bound_the_cores_used():
    assert measured(cores=32, workers=2).streams("ko") == 7


def test_given_a_cap_when_the_measurement_allows_more_then_the_cap_wins():
    assert measured(cap=3).streams("ko") == 3
    assert measured(cap=50).streams("ko") == 7


def test_given_no_measurement_yet_then_the_cap_else_one_stream_per_worker():
    assert measured(calibrated=False, rtf={}).streams("ko") == 2
    assert measured(calibrated=False, rtf={}, cap=5).streams("ko") == 5
    assert measured(rtf={"zh": 0.3}).streams("ko") == 2  # ko not measured: the fallback


def test_given_a_slow_engine_when_not_one_stream_fits_then_zero():
    assert measured(rtf={"ko": 1.5}).streams("ko") == 0
    assert not measured(rtf={"ko": 1.5}).admits([], "ko")


def test_given_one_busy_core_when_rtf_is_over_the_budget_but_under_1_then_one_stream():
    cap = measured(cores=1, workers=1, rtf={"ko": 0.8})  # 0.6 / 0.8 = 0.75
    assert cap.streams("ko") == 1 and cap.admits([], "ko") and not cap.admits(["ko"], "ko")


def test_given_a_measurement_of_zero_then_no_division_by_zero():
    assert measured(rtf={"ko": 0.0}, cap=None).streams("ko") == 240  # MIN_RTF 0.005


def test_given_mixed_languages_when_admitting_then_their_costs_add_up():
    cap = measured()  # budget 1.2 cores
    assert cap.admits(["zh", "zh", "zh"], "ko")  # 0.9 + 0.17 <= 1.2
    assert not cap.admits(["zh", "zh", "zh", "ko"], "ko")  # 1.07 + 0.17 > 1.2
    assert cap.admits(["ko"] * 6, "ko") and not cap.admits(["ko"] * 7, "ko")


def test_given_a_cap_when_admitting_then_the_count_is_capped_too():
    assert not measured(cap=2).admits(["ko", "ko"], "ko")
    assert not measured(cap=0).admits([], "ko")


def test_given_no_measurement_when_admitting_then_the_fallback_counts_heads():
    cap = measured(calibrated=False, rtf={})
    assert cap.admits(["ko"], "zh") and not cap.admits(["ko", "zh"], "ko")


def test_given_the_workers_measurements_then_the_slowest_counts():
    assert combine([0.2, 0.25, 0.22]) == 0.25
    with pytest.raises(ValueError):
        combine([])


def test_given_a_capacity_then_its_json_shows_streams_rtf_and_cores_over_rtf():
    out = measured(cap=None).to_json()
    assert out["max_streams"] == {"ko": 7, "zh": 4}
    assert out["cores_over_rtf"] == {"ko": 11.8, "zh": 6.7}
    assert out["calibrated"] and out["fallback"] is None


def test_given_a_test_floor_when_the_measured_capacity_is_lower_then_the_floor_is_admitted_but_never_past_the_cap():
    measured = Capacity(cores=2, workers=2, headroom=0.6, rtf={"ko": 0.6}, calibrated=True, floor=3)
    assert measured.streams("ko") == 3
    assert measured.admits(["ko", "ko"], "ko") and not measured.admits(["ko", "ko", "ko"], "ko")
    capped = Capacity(cores=2, workers=2, headroom=0.6, rtf={"ko": 0.6}, calibrated=True, floor=3, cap=1)
    assert capped.streams("ko") == 1 and not capped.admits(["ko"], "ko")
    assert measured.to_json()["floor"] == 3


@pytest.mark.parametrize("raw, floor", [("", 0), ("3", 3), ("x3", 0), ("-1", 0), ("999", 0)])
def test_given_the_test_floor_variable_when_read_then_only_a_number_up_to_64_counts(monkeypatch, raw, floor):
    from gateway.asr.vosk_engine import _test_floor

    monkeypatch.setenv("GATEWAY_SPEECH_MIN_STREAMS", raw)
    assert _test_floor() == floor
