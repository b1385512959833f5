"""The Asterisk nodes one gateway drives (issue 12): each with its own AMI and its own config.

``GATEWAY_ASTERISK_NODES`` lists them (:func:`gateway.settings.parse_asterisk_nodes`);
without it there is one node, the single Asterisk of ``GATEWAY_AMI_*``/``GATEWAY_SIP_PORT``
whose config goes to ``<state>/asterisk`` — exactly what the gateway did before.

A node's :class:`Settings` (:func:`node_settings`) is the gateway's own with that node's
AMI address, SIP port, instance directory and name: everything that renders Asterisk's
files (``gateway.pbx.dialplan``, ``gateway.pbx.prompts``) takes it unchanged.

Several gateways (``GATEWAY_AGI_PEERS``) share the calls of several nodes: node *i* (its
place in ``GATEWAY_ASTERISK_NODES``, from 0) lists the FastAGI peers rotated by *i*, so
with nodes pbx1, pbx2 and peers A, B pbx1 tries A then B and pbx2 tries B then A. Every
gateway renders the same files for a node (the rotation depends only on the two lists,
which every instance is given alike), so instances that render and reload at start never
disagree about a node's ``extensions.conf``.
"""

from __future__ import annotations

from gateway.settings import AsteriskNode, Settings

DEFAULT_NODE = "asterisk"


def nodes_of(settings: Settings) -> tuple[AsteriskNode, ...]:
    """The configured nodes, or the single default node."""
    if settings.asterisk_nodes:
        return settings.asterisk_nodes
    return (AsteriskNode(DEFAULT_NODE, settings.ami_host, settings.ami_port, settings.sip_port,
                         settings.instance_dir),)


def rotated_peers(peers: tuple[str, ...], index: int) -> tuple[str, ...]:
    """``peers`` starting at ``index`` (modulo their number): the order node ``index`` tries them."""
    if not peers:
        return peers
    k = index % len(peers)
    return peers[k:] + peers[:k]


def node_settings(settings: Settings, node: AsteriskNode) -> Settings:
    """The settings ``node``'s files are rendered with (the single default node: unchanged).

    With several FastAGI peers, the node's own order of them (:func:`rotated_peers` by the
    node's place in ``GATEWAY_ASTERISK_NODES``): each gateway is some node's first choice."""
    if not settings.asterisk_nodes:
        return settings
    index = next((i for i, n in enumerate(settings.asterisk_nodes) if n.name == node.name), 0)
    return settings.with_(ami_host=node.ami_host, ami_port=node.ami_port, sip_port=node.sip_port,
                          pbx_instance_dir=node.instance_dir, pbx_node=node.name,
                          agi_peers=rotated_peers(settings.agi_peers, index))


def all_node_settings(settings: Settings) -> list[tuple[str, Settings]]:
    return [(node.name, node_settings(settings, node)) for node in nodes_of(settings)]
