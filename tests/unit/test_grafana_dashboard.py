"""The Grafana dashboard and the Prometheus config under docker/ (never run here: no Docker
engine): the JSON parses, panel ids are unique, every panel has a Chinese and an English title,
and every metric its PromQL names exists in a real /metrics scrape of the gateway."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.ops_scrape import scrape_after_a_call

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "gateway-12345.json"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                "unless", "inf", "nan"}
HAN = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{3,}")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, label names or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, $__range
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)\b(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_given_the_dashboard_then_ids_unique_titles_in_chinese_and_english_and_one_data_source(dashboard):
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)) and len(ids) >= 20
    for panel in panels(dashboard):
        assert HAN.search(panel["title"]) and LATIN.search(panel["title"]), panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
            assert panel["datasource"]["uid"] == "prometheus-12345"
    provisioned = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert [d["uid"] for d in provisioned["datasources"]] == ["prometheus-12345"]
    assert metric_names('sum by (le) (rate(x_bucket{a="b"}[5m])) / clamp_min(y, 1)') == {"x_bucket", "y"}


def test_given_the_prometheus_config_then_it_scrapes_both_gateways_with_a_bearer_token_file():
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "gateway")
    assert job["metrics_path"] == "/metrics" and job["authorization"]["credentials_file"]
    assert sorted(t for s in job["static_configs"] for t in s["targets"]) == ["127.0.0.1:8080", "127.0.0.1:8081"]
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert {"prometheus", "grafana"} <= set(compose["services"])
    assert "GATEWAY_METRICS_TOKEN_FILE" in compose["x-gateway-env"]


async def test_given_a_real_scrape_then_every_metric_of_the_dashboard_is_exposed(dashboard, tmp_path, monkeypatch):
    scrape = await scrape_after_a_call(tmp_path, monkeypatch)
    exposed = set()
    for family in text_string_to_metric_families(scrape):
        exposed.add(family.name)
        exposed.update(sample.name for sample in family.samples)
        if family.type == "histogram":  # a family without observations yet has no samples
            exposed.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        if family.type == "counter":
            exposed.add(f"{family.name}_total")
    used = {name for panel in panels(dashboard) for target in panel.get("targets", [])
            for name in metric_names(target["expr"])}
    assert used and all(name.startswith("gateway_") for name in used), used
    assert not used - exposed, sorted(used - exposed)
