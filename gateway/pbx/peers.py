"""Which peers may open a session on the gateway's PBX-facing listeners (FastAGI, AudioSocket).

Neither protocol has authentication of its own, so both servers accept only the addresses
in ``GATEWAY_PBX_PEERS`` (networks, CIDR allowed).
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(peers) -> tuple[Network, ...]:
    """``("127.0.0.1", "10.0.0.0/8")`` -> networks; raises ValueError for a bad entry."""
    return tuple(ipaddress.ip_network(p, strict=False) for p in peers)


def peer_allowed(peer: object, networks: tuple[Network, ...]) -> bool:
    """Is ``peer`` (a socket's peername: ``(host, port, ...)``) in one of ``networks``?

    IPv6 zone ids are ignored and IPv4-mapped IPv6 addresses count as IPv4; anything that is
    not an address is refused.
    """
    try:
        address = ipaddress.ip_address(peer[0].split("%")[0])  # type: ignore[index]
    except (TypeError, ValueError, IndexError, AttributeError):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
