"""A broken configuration is refused on reload and the running one stays."""

from __future__ import annotations

import asyncio

import pytest

from gateway_dev.eventually import eventually
from gateway_dev.simcall import CallScript, place_call

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _wait_reload(system, previous):
    def reported() -> dict | None:
        status, health = system.http("/healthz", token=system.token())
        return health if health.get("last_reload") and health["last_reload"] != previous else None

    return eventually(reported, interval=0.1, what="the gateway reporting the reload")


def test_given_a_running_gateway_when_hotlines_yaml_breaks_then_reload_is_refused_and_calls_go_on(system):
    hotlines = system.config_dir / "hotlines.yaml"
    original = hotlines.read_text(encoding="utf-8")
    _, before = system.http("/healthz", token=system.token())
    extensions = system.state / "var" / "asterisk" / "etc" / "extensions.conf"
    dialplan_before = extensions.read_text()
    broken = original.replace("    mode: dual_number\n", "    mode: dual_numbr\n", 1).replace(
        '  - number: "12360"', '  - number: "110"', 1)
    seen = before.get("last_reload")
    try:
        hotlines.write_text(broken, encoding="utf-8")
        system.reload_gateway()
        health = _wait_reload(system, seen)
        seen = health["last_reload"]

        assert health["last_reload"]["ok"] is False
        errors = health["last_reload"]["errors"]
        fields = {e["field"] for e in errors}
        assert any(f.endswith(".mode") for f in fields) and any(f.endswith(".number") for f in fields)
        assert all(e["file"].endswith("hotlines.yaml") and e["line"] for e in errors)
        assert health["config_version"] == before["config_version"]
        assert extensions.read_text() == dialplan_before
        result = asyncio.run(place_call(system.settings, CallScript(number="12360", digits="12")))
        assert result["ticket_id"] is not None  # the line the broken file removed still works
    finally:
        hotlines.write_text(original, encoding="utf-8")
        system.reload_gateway()
        assert _wait_reload(system, seen)["last_reload"]["ok"] is True
