"""Two Asterisk nodes behind Kamailio and one or two gateways, on loopback (issue 12).

:class:`NodesSystem` is :class:`gateway_dev.system.System` with ``GATEWAY_ASTERISK_NODES``
(two sandbox Asterisk nodes, each with its own instance dir, AMI and SIP port; node 1 is
the System's own) and ``GATEWAY_SIP_PROXY`` (the Kamailio of :mod:`gateway_dev.kamailio`
in front of them). Everything is started by the project's own commands: ``gateway
sandbox up`` starts every node, ``gateway serve`` connects to every node's AMI.

``gateways=2, database="postgresql"`` is the site (:class:`SiteSystem`): a private
PostgreSQL server and two ``gateway serve`` instances (``gw-a``, ``gw-b``: each its own
HTTP, FastAGI and AudioSocket ports and log; :attr:`gateways`, each with ``http()`` and
``token()``), both FastAGI addresses in ``GATEWAY_AGI_PEERS``. The calls are shared: node
*i* tries the peers rotated by *i* (:func:`gateway.pbx.nodes.rotated_peers`): pbx1 tries
gw-a first, pbx2 gw-b first, each the other when its first is down. A call's IVR streams
speech to the AudioSocket of the instance that runs it (the AGI command names that
instance's own address), and ``calls.instance`` says which one it was.

    python -m gateway_dev.topology                                      # one gateway
    python -m gateway_dev.topology --gateways 2 --database postgresql   # the site
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from gateway.settings import Settings, load_settings
from gateway_dev import sandbox
from gateway_dev.kamailio import Destination, Kamailio
from gateway_dev.system import System, free_ports, free_udp_tcp_port


class NodesSystem(System):
    """Kamailio + ``len(names)`` sandbox Asterisk nodes + ``gateways`` gateway instances (more than
    one needs ``database="postgresql"``); use as a context manager."""

    def __init__(self, *, names: tuple[str, ...] = ("pbx1", "pbx2"), **options) -> None:
        super().__init__(**options)  # gateways > 1: self.peers, GATEWAY_AGI_PEERS on every instance
        ports = [(int(self.env["GATEWAY_AMI_PORT"]), int(self.env["GATEWAY_SIP_PORT"]))]
        for _ in names[1:]:
            ports.append((free_ports(1)[0], free_udp_tcp_port()))
        self.node_ports = dict(zip(names, ports))
        self.proxy_port = free_udp_tcp_port()
        self.env["GATEWAY_ASTERISK_NODES"] = ",".join(
            f"{name}=127.0.0.1:{ami}:{sip}" for name, (ami, sip) in self.node_ports.items())
        self.env["GATEWAY_SIP_PROXY"] = f"127.0.0.1:{self.proxy_port}"
        self.kamailio = Kamailio([Destination(name, "127.0.0.1", sip) for name, (_a, sip) in self.node_ports.items()],
                                 port=self.proxy_port, state_dir=self.state / "kamailio")
        for peer in self.peers:  # copied before the nodes were known: the same nodes and proxy
            for key in ("GATEWAY_ASTERISK_NODES", "GATEWAY_SIP_PROXY"):
                peer.env[key] = self.env[key]
            peer.node_ports, peer.proxy_port, peer.kamailio = self.node_ports, self.proxy_port, self.kamailio

    def instance_of(self, name: str) -> "NodesSystem":
        """The gateway instance called ``name`` (``gw-a``, ``gw-b``; the only one: its id or "")."""
        for gateway in self.gateways:
            if gateway.env.get("GATEWAY_INSTANCE_ID", "") == name:
                return gateway
        raise KeyError(name)

    # -- handles ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.node_ports)

    def node_instance_dir(self, name: str) -> Path:
        (node,) = [n for n in self.gateway_settings.asterisk_nodes if n.name == name]
        return node.instance_dir

    def node_sim_settings(self, name: str) -> Settings:
        """AMI of node ``name`` as the simulated caller (Originate, Getvar)."""
        ami, sip = self.node_ports[name]
        return self.settings.with_(ami_port=ami, sip_port=sip)

    def node_pid(self, name: str) -> int | None:
        return sandbox.running_pid(self.node_instance_dir(name))

    def kill_node(self, name: str) -> int:
        """SIGKILL node ``name``'s Asterisk (a crash: no shutdown, no BYE); returns its pid."""
        pid = self.node_pid(name)
        if pid is None:
            raise RuntimeError(f"Asterisk node {name} is not running")
        os.kill(pid, signal.SIGKILL)
        return pid

    # -- lifecycle -------------------------------------------------------------------------
    def up(self) -> dict:
        t_database = self.start_database()
        for peer in self.peers:  # the same database for every instance
            peer.env["DATABASE_URL"] = self.env["DATABASE_URL"]
        t_sandbox = self.sandbox_up()
        t_proxy = self.kamailio.start()
        t_gateway = self.start_gateway()
        for peer in self.peers:  # one after the other: each renders the nodes' (identical) files
            t_gateway += peer.start_gateway()
        return {"database_s": t_database, "sandbox_up_s": t_sandbox, "kamailio_up_s": t_proxy,
                "gateway_healthy_s": t_gateway, "total_s": t_database + t_sandbox + t_proxy + t_gateway}

    def down(self) -> None:
        try:
            self.kamailio.stop()
        finally:
            super().down()


class SiteSystem(NodesSystem):
    """The site: Kamailio, two Asterisk nodes, two gateways (gw-a, gw-b) on PostgreSQL."""

    def __init__(self, **options) -> None:
        options.setdefault("gateways", 2)
        options.setdefault("database", "postgresql")
        super().__init__(**options)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gateway_dev.topology", description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateways", type=int, default=1, choices=(1, 2, 3), help="gateway instances (default 1)")
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default=None,
                    help="default: sqlite for one gateway, postgresql for several")
    args = ap.parse_args(argv)
    database = args.database or ("postgresql" if args.gateways > 1 else "sqlite")
    if args.gateways > 1 and database != "postgresql":
        ap.error("several gateways share one database: --database postgresql")
    settings = load_settings()
    with NodesSystem(cache_dir=settings.cache_dir, prefix="gw-nodes-", log_level="INFO",
                     gateways=args.gateways, database=database) as topo:
        timings = topo.up()
        print(f"up in {timings['total_s']:.1f} s: Kamailio udp:127.0.0.1:{topo.proxy_port} -> "
              + ", ".join(f"{n} (AMI {a}, SIP {s})" for n, (a, s) in topo.node_ports.items())
              + "; gateways " + ", ".join(f"{g.env.get('GATEWAY_INSTANCE_ID') or 'gateway'} http://127.0.0.1:"
                                          f"{g.http_port} (FastAGI {g.env['GATEWAY_AGI_PORT']})" for g in topo.gateways)
              + f"; database {database}; state {topo.state}", flush=True)
        print("call it: sipp 127.0.0.1:%d -sf bench/sipp/uac_12345.xml -s 12345 ...; Ctrl-C stops everything"
              % topo.proxy_port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while topo.gateway is not None and topo.gateway.poll() is None:
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
