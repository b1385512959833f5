"""End to end, issue 12: the site. Kamailio, two Asterisk nodes, two gateways (gw-a, gw-b) on
one PostgreSQL database (``gateway_dev.topology.SiteSystem``).

Real parts on loopback, each started by the project's own commands; SIPp places real SIP
calls at Kamailio (bench/sipp/uac_12345.xml: key 1, talk, recorded, a simulated agent).
Node pbx1 tries gw-a's FastAGI first, pbx2 gw-b's (``GATEWAY_AGI_PEERS`` rotated per node):
the calls are shared, and each call's row names the gateway that ran its IVR (``instance``).
With gw-a SIGKILLed, pbx1's next calls fail over to gw-b.
"""

from __future__ import annotations

import pytest

from gateway_dev.postgres import BIN_DIR
from gateway_dev.topology import SiteSystem
from tests.e2e.conftest import running, skip_unless
from tests.e2e.test_two_nodes import SIP_TOOLS, _node, _sipp_calls, media  # noqa: F401 - media: fixture

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FIRST_CHOICE = {"pbx1": "gw-a", "pbx2": "gw-b"}


@pytest.fixture(scope="module")
def site():
    skip_unless(**SIP_TOOLS, **{"PostgreSQL 15 (apt-get install postgresql)": (BIN_DIR / "postgres").is_file()})
    site = SiteSystem(prefix="gw-e2e-site-", log_level="INFO")
    for gateway in site.gateways:
        gateway.env["GATEWAY_SPEECH"] = "off"  # keys and recordings: the recogniser is not tested here
    with running(site, start=lambda s: print(f"site up: {s.up()}"),
                 logs=lambda s: [(g.log_path, f"e2e-site-{g.log_path.name}") for g in s.gateways]):
        yield site


def _call(gateway, uniqueid: str) -> dict:
    status, call = gateway.http(f"/api/calls/{uniqueid}", token=gateway.token())
    assert status == 200, call
    return call


def _on_path(gateway, ticket: dict) -> dict:
    call = _call(gateway, ticket["uniqueid"])
    assert call.get("agent"), call  # a simulated agent answered
    assert any(s.get("node") == "type_menu" and s.get("key") == "1" for s in ticket["menu_path"]), ticket
    assert (ticket.get("recording_duration_ms") or 0) > 0, ticket
    return call


def test_given_the_site_when_sipp_calls_then_both_nodes_and_both_gateways_take_calls(site, media, tmp_path):
    a, b = site.gateways
    tickets = _sipp_calls(a, media, 4, tmp_path)

    ran = {t["uniqueid"]: _on_path(a, t)["instance"] for t in tickets}
    assert {_node(uid) for uid in ran} == {"pbx1", "pbx2"}, ran
    for uid, instance in ran.items():
        assert instance == FIRST_CHOICE[_node(uid)], ran  # each node's first gateway ran its IVR
    assert set(ran.values()) == {"gw-a", "gw-b"}
    assert _call(b, tickets[0]["uniqueid"]) == _call(a, tickets[0]["uniqueid"])  # one database


def test_given_the_site_when_gateway_a_is_killed_then_the_next_calls_complete_on_gateway_b(site, media, tmp_path):
    a, b = site.gateways
    a.kill_gateway()

    tickets = _sipp_calls(b, media, 2, tmp_path)

    ran = {t["uniqueid"]: _on_path(b, t)["instance"] for t in tickets}
    assert set(ran.values()) == {"gw-b"}, ran
    assert "pbx1" in {_node(uid) for uid in ran}, ran  # pbx1's first choice was down: it failed over
