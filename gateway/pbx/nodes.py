"""The Asterisk nodes one gateway drives (issue 12): each with its own AMI and its own config.

``GATEWAY_ASTERISK_NODES`` lists them (:func:`gateway.settings.parse_asterisk_nodes`);
without it there is one node, the single Asterisk of ``GATEWAY_AMI_*``/``GATEWAY_SIP_PORT``
whose config goes to ``<state>/asterisk`` — exactly what the gateway did before.

A node's :class:`Settings` (:func:`node_settings`) is the gateway's own with that node's
AMI address, SIP port, instance directory and name: everything that renders Asterisk's
files (``gateway.pbx.dialplan``, ``gateway.pbx.prompts``) takes it unchanged.
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


def node_settings(settings: Settings, node: AsteriskNode) -> Settings:
    """The settings ``node``'s files are rendered with (the single default node: unchanged)."""
    if not settings.asterisk_nodes:
        return settings
    return settings.with_(ami_host=node.ami_host, ami_port=node.ami_port, sip_port=node.sip_port,
                          pbx_instance_dir=node.instance_dir, pbx_node=node.name)


def all_node_settings(settings: Settings) -> list[tuple[str, Settings]]:
    return [(node.name, node_settings(settings, node)) for node in nodes_of(settings)]
