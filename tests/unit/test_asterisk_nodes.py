"""Issue 12: several Asterisk nodes behind Kamailio. Settings, rendering, the AMI pool and
the per-node config apply, with in-memory AMI clients; Kamailio's config checked by
``kamailio -c`` when Kamailio is installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.errors import AmiNotConnected, PbxError, SettingsError
from gateway.hotlines.asterisk import AsteriskSync, AsteriskUnavailable
from gateway.ivr_flows.validate import load_config
from gateway.pbx import dialplan
from gateway.pbx.ami_pool import AmiPool
from gateway.pbx.nodes import all_node_settings, nodes_of
from gateway.settings import load_settings
from gateway_dev import kamailio

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config")


def _env(tmp_path: Path, **extra: str) -> dict:
    return {"GATEWAY_STATE_DIR": str(tmp_path / "var"), "GATEWAY_CONFIG_DIR": str(tmp_path / "cfg"),
            "GATEWAY_CACHE_DIR": str(tmp_path / "cache"), "GATEWAY_AMI_SECRET": "s3cret", **extra}


# -- settings ---------------------------------------------------------------------------------
def test_given_no_node_list_then_there_is_the_single_node_of_before(tmp_path):
    s = load_settings(_env(tmp_path, GATEWAY_AMI_PORT="6038", GATEWAY_SIP_PORT="6060"))
    (node,) = nodes_of(s)
    assert (node.ami_port, node.sip_port, node.instance_dir) == (6038, 6060, s.instance_dir)
    assert all_node_settings(s) == [("asterisk", s)]  # rendered exactly as before
    assert s.sip_proxy is None


def test_given_two_nodes_then_each_has_its_ports_and_own_instance_dir(tmp_path):
    s = load_settings(_env(tmp_path, GATEWAY_ASTERISK_NODES="pbx1=127.0.0.1:5038:5060, pbx2=127.0.0.1:5039:5061",
                           GATEWAY_SIP_PROXY="127.0.0.1:5070"))
    (n1, s1), (n2, s2) = all_node_settings(s)
    assert (n1, n2) == ("pbx1", "pbx2")
    assert s1.instance_dir == s.state_dir / "asterisk" and s2.instance_dir == s.state_dir / "asterisk-pbx2"
    assert (s2.ami_port, s2.sip_port, s2.pbx_node) == (5039, 5061, "pbx2")
    assert s2.recordings_dir == s.state_dir / "asterisk-pbx2" / "recordings"
    assert s.sip_proxy == ("127.0.0.1", 5070)


@pytest.mark.parametrize("raw", ["pbx1", "pbx1=127.0.0.1:5038", "pb x=127.0.0.1:5038:5060",
                                 "pbx1=localhost:5038:5060", "pbx1=127.0.0.1:99999:5060",
                                 "pbx1=127.0.0.1:5038:5060,pbx1=127.0.0.1:5039:5061",
                                 "a=127.0.0.1:5038:5060,b=127.0.0.1:5038:5061"])
def test_given_a_bad_node_list_then_the_setting_is_refused_by_name(tmp_path, raw):
    with pytest.raises(SettingsError, match="GATEWAY_ASTERISK_NODES"):
        load_settings(_env(tmp_path, GATEWAY_ASTERISK_NODES=raw))


@pytest.mark.parametrize("raw", ["127.0.0.1", "proxy:5070", "127.0.0.1:0", "127.0.0.1:x"])
def test_given_a_bad_proxy_address_then_it_is_refused(tmp_path, raw):
    with pytest.raises(SettingsError, match="GATEWAY_SIP_PROXY"):
        load_settings(_env(tmp_path, GATEWAY_SIP_PROXY=raw))


# -- rendering --------------------------------------------------------------------------------
def test_given_a_proxy_then_pjsip_identifies_it_by_address_and_port_into_inbound(tmp_path):
    files = dialplan.render_files(CONFIG, load_settings(_env(tmp_path, GATEWAY_SIP_PROXY="127.0.0.1:5070")))
    pjsip = files["pjsip.conf"]
    assert "[proxy]\ntype = identify\nendpoint = proxy\nmatch = 127.0.0.1:5070\n" in pjsip
    proxy_endpoint = pjsip.split("[proxy]\ntype = endpoint\n", 1)[1].split("\n\n", 1)[0]
    assert "context = inbound" in proxy_endpoint and "aors = proxy" in proxy_endpoint
    without = dialplan.render_files(CONFIG, load_settings(_env(tmp_path)))["pjsip.conf"]
    assert "[proxy]" not in without


def test_given_two_nodes_then_each_node_has_its_systemname_and_ports(tmp_path):
    s = load_settings(_env(tmp_path, GATEWAY_ASTERISK_NODES="pbx1=127.0.0.1:5038:5060,pbx2=127.0.0.1:5039:5061"))
    rendered = {name: dialplan.render_files(CONFIG, node) for name, node in all_node_settings(s)}
    assert "systemname = pbx2\n" in rendered["pbx2"]["asterisk.conf"]
    assert "systemname = pbx1\n" in rendered["pbx1"]["asterisk.conf"]
    assert "port = 5039\n" in rendered["pbx2"]["manager.conf"]
    assert "bind = 127.0.0.1:5061\n" in rendered["pbx2"]["pjsip.conf"]
    single = dialplan.render_files(CONFIG, load_settings(_env(tmp_path)))["asterisk.conf"]
    assert "systemname" not in single  # one node: call ids as before


# -- Kamailio ---------------------------------------------------------------------------------
def test_kamailio_dispatcher_list_names_every_node():
    text = kamailio.dispatcher_list([kamailio.Destination("pbx1", "127.0.0.1", 5060),
                                     kamailio.Destination("pbx2", "127.0.0.1", 5061)])
    assert text.splitlines()[1:] == ["1 sip:127.0.0.1:5060 0 0 duid=pbx1", "1 sip:127.0.0.1:5061 0 0 duid=pbx2"]
    with pytest.raises(ValueError):
        kamailio.dispatcher_list([])
    with pytest.raises(ValueError):
        kamailio.Destination("bad name", "127.0.0.1", 5060)


def test_kamailio_config_probes_with_options_and_fails_over(tmp_path):
    cfg = kamailio.render_config(listen_host="127.0.0.1", listen_port=5070, list_file=tmp_path / "d.list",
                                 ctl_socket=tmp_path / "k.ctl", ping_interval=1, threshold=2)
    for needle in ('"ds_ping_interval", 1', '"ds_probing_mode", 1', '"ds_probing_threshold", 2',
                   'ds_select_dst("1", "4")', "ds_next_dst()", "record_route()", "listen=udp:127.0.0.1:5070"):
        assert needle in cfg, needle
    with pytest.raises(ValueError):
        kamailio.render_config(listen_host="127.0.0.1", listen_port=5070, list_file=tmp_path / "d",
                               ctl_socket=tmp_path / "c", ping_interval=0)


@pytest.mark.skipif(shutil.which(kamailio.KAMAILIO) is None, reason="kamailio not installed")
def test_kamailio_accepts_the_rendered_config(tmp_path):
    proxy = kamailio.Kamailio([kamailio.Destination("pbx1", "127.0.0.1", 5060),
                               kamailio.Destination("pbx2", "127.0.0.1", 5061)], port=5070, state_dir=tmp_path)
    cfg = proxy.write()  # runs `kamailio -c -f`; raises with its output when refused
    assert cfg.is_file() and (tmp_path / "dispatcher.list").is_file()


def test_the_compose_topologys_kamailio_files_are_what_the_renderer_makes():
    # docker/compose.yaml cannot run here (no Docker engine): at least its proxy config is the tested one.
    for name, text in kamailio.docker_files().items():
        assert (ROOT / "docker" / "kamailio" / name).read_text() == text, (
            f"docker/kamailio/{name} is stale: python -m gateway_dev.kamailio docker")


def test_the_compose_topologys_settings_match_its_kamailio(tmp_path):
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    env = {k: str(v) for k, v in compose["x-gateway-env"].items() if "${" not in str(v)}
    s = load_settings({**env, "GATEWAY_AMI_SECRET": "x", "GATEWAY_CACHE_DIR": str(tmp_path)})
    assert [(n.name, n.sip_port) for n in s.asterisk_nodes] == [(d.name, d.port) for d in kamailio.COMPOSE_NODES]
    assert s.sip_proxy == ("127.0.0.1", kamailio.COMPOSE_PORT)
    assert {str(n.instance_dir) for n in s.asterisk_nodes} == {
        m.split(":", 1)[1] for m in compose["x-gateway-volumes"] if m.startswith("pbx")}


# -- AMI pool ---------------------------------------------------------------------------------
class FakeClient:
    """What AmiPool and AsteriskSync use of an AmiClient, in memory."""

    def __init__(self, connected: bool = True, channels: tuple[str, ...] = ()) -> None:
        self.connected = connected
        self.connects = 1 if connected else 0
        self.last_error = None if connected else "refused"
        self.channels = set(channels)
        self.actions: list[dict] = []
        self.raw = []
        self.hooks = []
        self.fail_reload = False

    def on_connected(self, hook) -> None:
        self.hooks.append(hook)

    async def login(self) -> None:
        """What AmiClient does after a login: connected, then its on-connected hooks."""
        self.connected, self.connects, self.last_error = True, self.connects + 1, None
        for hook in self.hooks:
            await hook()

    def subscribe(self, cb) -> None:
        pass

    def subscribe_raw(self, cb) -> None:
        self.raw.append(cb)

    def unsubscribe_raw(self, cb) -> None:
        self.raw.remove(cb)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def wait_connected(self, timeout: float) -> bool:
        return self.connected

    def emit(self, headers: dict) -> None:
        for cb in self.raw:
            cb(headers)

    async def action(self, fields: dict, **options):
        if not self.connected:
            raise AmiNotConnected("down")
        self.actions.append(fields)
        if "Channel" in fields and fields["Channel"] not in self.channels:
            raise PbxError("AMI Redirect: Channel specified does not exist")
        return {"Response": "Success"}

    async def reload_module(self, module: str, **options) -> None:
        if self.fail_reload:
            raise PbxError("AMI Reload: failed")
        await self.action({"Action": "Reload", "Module": module})

    async def queue_reload(self, **options) -> None:
        await self.action({"Action": "QueueReload"})

    def reloads(self) -> int:
        return sum(1 for a in self.actions if a["Action"] == "QueueReload")


REDIRECT = {"Action": "Redirect", "Context": "gw-emergency-transfer", "Exten": "s", "Priority": "1"}


async def test_given_a_channel_seen_on_a_node_then_its_actions_go_to_that_node():
    a, b = FakeClient(), FakeClient(channels=("pbx2-1.5",))
    pool = AmiPool({"pbx1": a, "pbx2": b})
    b.emit({"Event": "Newchannel", "Uniqueid": "pbx2-1.5", "Channel": "PJSIP/proxy-00000001"})
    assert pool.node_of("pbx2-1.5") == "pbx2"
    await pool.action({**REDIRECT, "Channel": "pbx2-1.5"})
    assert (a.actions, len(b.actions)) == ([], 1)
    b.emit({"Event": "Hangup", "Uniqueid": "pbx2-1.5", "Channel": "PJSIP/proxy-00000001"})
    assert pool.node_of("pbx2-1.5") is None and pool.node_of("PJSIP/proxy-00000001") is None


async def test_given_an_unknown_channel_then_each_connected_node_is_asked_until_one_knows_it():
    a, b = FakeClient(), FakeClient(channels=("old-call",))
    pool = AmiPool({"pbx1": a, "pbx2": b})
    assert (await pool.action({**REDIRECT, "Channel": "old-call"}))["Response"] == "Success"
    assert len(a.actions) == 1 and len(b.actions) == 1
    with pytest.raises(PbxError, match="does not exist"):
        await pool.action({**REDIRECT, "Channel": "nobody"})


async def test_given_one_node_down_then_the_pool_works_reports_it_and_refuses_only_when_all_are_down():
    a, b = FakeClient(), FakeClient(connected=False)
    pool = AmiPool({"pbx1": a, "pbx2": b})
    assert pool.connected and not pool.all_connected
    assert pool.states() == {"pbx1": "connected", "pbx2": "disconnected: refused"}
    assert await pool.wait_connected(0.1)
    await pool.queue_reload()
    assert a.reloads() == 1
    a.connected = False
    with pytest.raises(AmiNotConnected, match="no Asterisk node"):
        await pool.action({"Action": "Ping"})


async def test_given_a_node_that_reconnects_then_the_on_connected_hooks_run():
    a, b = FakeClient(), FakeClient(connected=False)
    pool = AmiPool({"pbx1": a, "pbx2": b})
    seen = []

    async def hook(name, client):
        seen.append(name)

    pool.on_connected(hook)
    await pool.start()
    try:
        await a.login()
        assert seen == ["pbx1"]
        await b.login()
        await a.login()
        assert seen == ["pbx1", "pbx2", "pbx1"]
    finally:
        await pool.close()


# -- config apply on every node -------------------------------------------------------------------
@pytest.fixture
def two_nodes(tmp_path):
    return load_settings(_env(tmp_path, GATEWAY_ASTERISK_NODES="pbx1=127.0.0.1:5038:5060,pbx2=127.0.0.1:5039:5061"))


def _sync(s, clients: dict) -> tuple[AsteriskSync, list]:
    nodes = {name: (node, clients[name]) for name, node in all_node_settings(s)}
    sync = AsteriskSync(s, AmiPool(clients), nodes)
    rendered: list = []
    sync.render = lambda config, previous: rendered.append(config)  # files: see the rendering tests
    return sync, rendered


async def test_given_two_connected_nodes_when_a_version_is_applied_then_both_reload(two_nodes):
    a, b = FakeClient(), FakeClient()
    sync, rendered = _sync(two_nodes, {"pbx1": a, "pbx2": b})
    await sync.apply(CONFIG, None)
    assert (a.reloads(), b.reloads()) == (1, 1)
    assert sync.last_apply == {"pbx1": "reloaded", "pbx2": "reloaded"}
    assert rendered == [CONFIG]


async def test_given_a_node_down_when_a_version_is_applied_then_it_is_reported_and_reloaded_when_back(
        two_nodes, caplog):
    a, b = FakeClient(), FakeClient(connected=False)
    sync, _ = _sync(two_nodes, {"pbx1": a, "pbx2": b})
    await sync.apply(CONFIG, None)
    assert sync.last_apply["pbx1"] == "reloaded"
    assert sync.last_apply["pbx2"].startswith("down (refused)")
    assert "pbx2 is not connected" in caplog.text
    b.connected = True
    await sync.node_connected("pbx2", b)
    assert b.reloads() == 1 and sync.last_apply["pbx2"] == "reloaded after reconnecting"
    await sync.node_connected("pbx2", b)  # nothing missed any more: no second reload
    assert b.reloads() == 1


async def test_given_no_node_connected_then_the_apply_is_refused_and_nothing_rendered(two_nodes):
    sync, rendered = _sync(two_nodes, {"pbx1": FakeClient(connected=False), "pbx2": FakeClient(connected=False)})
    with pytest.raises(AsteriskUnavailable, match="no Asterisk node"):
        await sync.apply(CONFIG, None)
    assert rendered == []


async def test_given_a_node_refusing_the_reload_then_the_previous_version_goes_back_on_every_node(two_nodes):
    a, b = FakeClient(), FakeClient()
    b.fail_reload = True
    sync, rendered = _sync(two_nodes, {"pbx1": a, "pbx2": b})
    previous = object()
    with pytest.raises(AsteriskUnavailable, match="nothing was changed"):
        await sync.apply(CONFIG, previous)
    assert rendered == [CONFIG, previous]
    assert a.reloads() == 2  # the new version, then the previous one again



# -- two gateways: each node tries a different gateway first (the site topology) ---------------
def _site_env(tmp_path: Path, agi_port: str, instance: str) -> dict:
    return _env(tmp_path, GATEWAY_ASTERISK_NODES="pbx1=127.0.0.1:5038:5060,pbx2=127.0.0.1:5039:5061",
                GATEWAY_SIP_PROXY="127.0.0.1:5070", GATEWAY_AGI_PORT=agi_port, GATEWAY_INSTANCE_ID=instance,
                GATEWAY_AGI_PEERS="127.0.0.1:4573,127.0.0.1:4574")


def _agi_order(extensions_conf: str) -> list[str]:
    return [line.split("agi://", 1)[1].split("/", 1)[0] for line in extensions_conf.splitlines()
            if "AGI(agi://" in line and "/ivr," in line]  # the IVR's ([gw-outbound] tries them alike)


def test_given_two_nodes_and_two_gateways_then_each_node_tries_a_different_gateway_first(tmp_path):
    s = load_settings(_site_env(tmp_path, "4573", "gw-a"))
    (n1, s1), (n2, s2) = all_node_settings(s)
    assert s1.agi_addresses == ("127.0.0.1:4573", "127.0.0.1:4574")
    assert s2.agi_addresses == ("127.0.0.1:4574", "127.0.0.1:4573")
    files1 = dialplan.render_files(CONFIG, s1)
    files2 = dialplan.render_files(CONFIG, s2)
    assert _agi_order(files1["extensions.conf"]) == ["127.0.0.1:4573", "127.0.0.1:4574"]
    assert _agi_order(files2["extensions.conf"]) == ["127.0.0.1:4574", "127.0.0.1:4573"]


def test_given_two_gateways_then_both_render_identical_files_for_every_node(tmp_path):
    """Both instances render and reload the nodes at start: they must not fight over the files."""
    a = load_settings(_site_env(tmp_path, "4573", "gw-a"))
    b = load_settings(_site_env(tmp_path, "4574", "gw-b"))
    for (name_a, node_a), (name_b, node_b) in zip(all_node_settings(a), all_node_settings(b), strict=True):
        assert name_a == name_b
        assert dialplan.render_files(CONFIG, node_a) == dialplan.render_files(CONFIG, node_b), name_a


def test_given_more_nodes_than_gateways_then_the_rotation_wraps():
    from gateway.pbx.nodes import rotated_peers

    peers = ("a:1", "b:2")
    assert [rotated_peers(peers, i) for i in range(3)] == [("a:1", "b:2"), ("b:2", "a:1"), ("a:1", "b:2")]
    assert rotated_peers((), 5) == ()
