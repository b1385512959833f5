"""The early warnings' detectors and configuration (pure): Poisson tails, windows, surges on
generated counts, repeated demands, classification by the catalogue, warnings.yaml."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from gateway.desk.catalogue_load import load_catalogue
from gateway.errors import ConfigError
from gateway.supervision import places
from gateway.supervision import warnings as w

CONFIG = Path(__file__).resolve().parents[2] / "config"
CATALOGUE = load_catalogue(CONFIG / "catalogue.yaml")


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@pytest.mark.parametrize("count, mean", [(0, 1.0), (1, 0.5), (5, 0.2), (12, 3.0), (40, 10.0), (3, 7.5)])
def test_given_a_count_and_a_mean_when_the_tail_is_computed_then_it_matches_one_minus_the_cdf(count, mean):
    cdf = sum(math.exp(-mean) * mean ** k / math.factorial(k) for k in range(count))
    assert w.poisson_tail(count, mean) == pytest.approx(1 - cdf, rel=1e-9, abs=1e-15)


def test_given_a_tiny_tail_when_computed_then_it_is_not_lost_to_rounding():
    assert 0 < w.poisson_tail(30, 1.0) < 1e-30


def test_given_hourly_counts_when_put_in_windows_then_window_zero_ends_at_the_current_hour():
    key = ("noise", "street", "sanlitun")
    hourly = [(key, 100, 2), (key, 77, 1), (key, 76, 4), (key, 52, 3), (key, 101, 9), (key, 0, 5)]
    assert w.window_series(hourly, 100, 24, 3) == {key: [3, 4, 3, 0]}
    assert w.usable_windows(100, 53, 24, 3) == 1  # window 1 is hours 53..76: wholly after the first
    assert w.usable_windows(100, 52, 24, 3) == 1 and w.usable_windows(100, 29, 24, 3) == 2
    assert w.usable_windows(100, None, 24, 3) == 0
    assert w.usable_windows(1000, 0, 24, 28) == 28


def _generated_series(rng: random.Random, keys: int, windows: int = 28) -> dict:
    """Daily counts of many keys: each its own mean (0.1-8 a day), weekends lower, day-to-day noise."""
    out = {}
    for i in range(keys):
        mean = rng.choice((0.1, 0.3, 0.5, 1, 2, 4, 8))
        counts = []
        for day in range(windows + 1):
            weekday = 0.6 if day % 7 in (2, 3) else 1.1
            counts.append(_poisson(rng, mean * weekday * rng.uniform(0.85, 1.15)))
        out[(f"m{i % 30}", "street", f"s{i}")] = counts
    return out


@pytest.mark.parametrize("seed", range(20))
def test_given_a_normal_day_of_many_keys_when_detected_then_nothing_is_raised(seed):
    series = _generated_series(random.Random(seed), 600)
    assert w.detect_surges(series, 28, w.SurgeSettings()) == []


def test_given_one_injected_surge_among_normal_keys_when_detected_then_exactly_that_key():
    rng = random.Random(7)
    series = _generated_series(rng, 600)
    key = ("m3", "street", "s123")
    series[key] = [14] + [_poisson(rng, 1.0) for _ in range(28)]
    (surge,) = w.detect_surges(series, 28, w.SurgeSettings())
    assert surge.key == key and surge.count == 14 and surge.p_value < 0.001 / 600 and surge.ratio >= 3
    assert surge.subject == "surge|m3|street|s123"


def test_given_the_gates_when_one_fails_then_no_alert():
    base = [0] * 28
    cfg = w.SurgeSettings()
    assert w.detect_surges({("m", "street", "s"): [4] + base}, 28, cfg) == []  # under min_count
    big = [100 + (i % 5) for i in range(28)]
    assert w.detect_surges({("m", "street", "s"): [150] + big}, 28, cfg) == []  # rare for Poisson, not 3x
    assert w.detect_surges({("m", "street", "s"): [5] + base}, 28, cfg)  # 5 after four silent weeks
    assert w.detect_surges({("m", "street", "s"): [5] + base}, 6, cfg) == []  # too little history


def test_given_a_street_surge_when_its_district_surges_too_then_only_the_street_is_raised():
    base = [1] * 28
    series = {("noise", "street", "sanlitun"): [20] + base, ("noise", "district", "chaoyang"): [24] + [3] * 28,
              ("gas", "district", "haidian"): [20] + base}
    found = w.detect_surges(series, 28, w.SurgeSettings(), w.districts_of(CATALOGUE))
    assert {s.key for s in found} == {("noise", "street", "sanlitun"), ("gas", "district", "haidian")}


def test_given_tickets_about_places_when_grouped_then_three_at_one_address_is_a_repeat():
    rows = [(1, "noise", "三里屯工体北路8号"), (2, "noise", "三里屯工体北路8号"), (3, "water-outage", "三里屯工体北路8号"),
            (4, "noise", "三里屯工体北路8号"), (5, "noise", None), (6, "noise", "三里屯工体北路9号")]
    (rep,) = w.detect_repeats(rows, w.RepeatSettings())
    assert (rep.matter, rep.address, rep.ticket_ids) == ("noise", "三里屯工体北路8号", (1, 2, 4))
    assert w.detect_repeats(rows, w.RepeatSettings(min_tickets=4)) == []


def test_given_decided_tickets_when_classified_then_matter_street_district_and_address():
    f = places.resolve(CATALOGUE, "朝阳区 工体北路8号院，3号楼", [], "广场舞噪音太吵")
    assert f == places.Resolved("chaoyang", "sanlitun", "place", "noise", "朝阳区工体北路8号院3号楼")
    f = places.resolve(CATALOGUE, None, ["wangjing"], "家里没有暖和的衣服")
    assert (f.matter, f.street, f.district, f.address) == (None, "wangjing", "chaoyang", None)
    assert w.matter_name(CATALOGUE, "type:求助") == "求助（未归入事项）"
    assert w.matter_name(CATALOGUE, "noise") == "噪音扰民"
    assert w.responsible_units(CATALOGUE, "water-outage", "wangjing", "chaoyang") == [{"id": "water",
                                                                                         "name": "市自来水集团"}]
    assert w.responsible_units(CATALOGUE, "noise", None, "chaoyang") == [{"id": "chaoyang", "name": "朝阳区政府"}]


# -- warnings.yaml ------------------------------------------------------------------------------
def test_given_the_shipped_file_and_no_file_then_the_documented_defaults():
    assert w.load_settings(CONFIG / "warnings.yaml") == w.DEFAULTS
    assert w.load_settings(CONFIG / "no-such-warnings.yaml") == w.DEFAULTS


def test_given_a_file_with_mistakes_when_loaded_then_every_problem_names_its_field_and_line():
    text = ("surge:\n  window_hour: 24\n  alpha: 2\n  min_count: 2.5\nrepeat:\n  days: 0\n"
            "webhook: {url: 'ftp://x'}\nrun_every_minutes: 0\n")
    with pytest.raises(ConfigError) as caught:
        w.parse_settings(text)
    problems = {p.field: p for p in caught.value.problems}
    assert set(problems) == {"surge.window_hour", "surge.alpha", "surge.min_count", "repeat.days", "webhook.url",
                             "run_every_minutes"}
    assert "did you mean 'window_hours'" in problems["surge.window_hour"].message
    assert problems["surge.window_hour"].line == 2 and problems["surge.window_hour"].message_zh.startswith("未知的键")
    assert all(p.message_zh and "暂无中文" not in p.message_zh for p in caught.value.problems)


def test_given_tuned_values_and_a_webhook_secret_file_when_loaded_then_they_are_used(tmp_path):
    (tmp_path / "secret").write_text("0123456789abcdef-secret\n")
    (tmp_path / "warnings.yaml").write_text(
        "run_every_minutes: 5\nsurge: {window_hours: 12, min_ratio: 4, bonferroni: false}\n"
        "repeat: {min_tickets: 5, days: 3}\nwebhook: {url: 'http://127.0.0.1:9/w', secret_file: secret}\n")
    s = w.load_settings(tmp_path / "warnings.yaml")
    assert (s.run_every_minutes, s.surge.window_hours, s.surge.min_ratio, s.surge.bonferroni) == (5.0, 12, 4.0, False)
    assert (s.repeat.min_tickets, s.repeat.days, s.webhook.url) == (5, 3, "http://127.0.0.1:9/w")
    assert s.webhook.secret == "0123456789abcdef-secret" and "secret" not in repr(s.webhook)
    with pytest.raises(ConfigError, match="at least 16"):
        (tmp_path / "secret").write_text("short")
        w.load_settings(tmp_path / "warnings.yaml")


# -- an episode that grows --------------------------------------------------------------------------
def test_given_the_last_notified_count_and_ratio_when_an_episode_grows_then_grown_only_past_both_thresholds():
    cfg = w.GrownSettings()  # min_more 2, factor 1.5
    assert w.grown(cfg, notified=8, notified_ratio=4.0, count=12, ratio=6.0)  # 12 >= 8 + 2 and 12 >= 8 × 1.5
    assert not w.grown(cfg, notified=8, notified_ratio=4.0, count=11, ratio=5.5)  # neither count nor ratio × 1.5
    assert w.grown(cfg, notified=8, notified_ratio=4.0, count=11, ratio=6.0)  # the baseline fell: ratio × 1.5
    assert not w.grown(cfg, notified=8, notified_ratio=2.0, count=9, ratio=9.0)  # one ticket more is no growth
    assert not w.grown(cfg, notified=None, notified_ratio=None, count=50, ratio=None)  # never notified
    assert w.grown(cfg, notified=3, notified_ratio=None, count=5, ratio=None)  # a repeat: count only


def test_given_a_grown_section_when_loaded_then_used_and_a_misspelt_key_is_refused_with_its_line():
    assert w.parse_settings("grown: {min_more: 5, factor: 2}\n").grown == w.GrownSettings(min_more=5, factor=2.0)
    with pytest.raises(ConfigError) as caught:
        w.parse_settings("enabled: true\ngrown:\n  min_mor: 5\n  factor: 0.5\n")
    problems = {p.field: p for p in caught.value.problems}
    assert set(problems) == {"grown.min_mor", "grown.factor"} and problems["grown.min_mor"].line == 3
