"""Asterisk follows the live configuration version: render its files and prompts, then reload.

The gateway's AMI user may not run CLI commands, so the reload is two specific actions
(``Reload Module=pbx_config`` and ``QueueReload``). A version that Asterisk did not take
is rendered back to the previous one: nothing changed, and the caller is told why.

Several Asterisk nodes (issue 12, ``GATEWAY_ASTERISK_NODES``): the files are rendered for
every node (each into its own instance directory) and every connected node is reloaded;
:attr:`AsteriskSync.last_apply` says per node what happened. A node whose AMI is down is
not a refusal as long as one node took the version: its files are written (a restarted
Asterisk reads them) and it is reloaded as soon as its AMI connects again (logged both
times). A version that a connected node refused is put back on every node.
"""

from __future__ import annotations

import asyncio

import logging

from gateway.errors import GatewayError, PbxError
from gateway.ivr_flows.model import GatewayConfig
from gateway.pbx import dialplan, prompts
from gateway.pbx.ami import AmiClient
from gateway.settings import Settings

log = logging.getLogger(__name__)


class AsteriskUnavailable(PbxError):
    status_code = 503
    error_id = "asterisk-unavailable"


class AsteriskSync:
    def __init__(self, settings: Settings, ami: AmiClient,
                 nodes: dict[str, tuple[Settings, AmiClient]] | None = None) -> None:
        self.settings = settings
        self.ami = ami
        # name -> (the node's settings, its AMI client); one node: the gateway's own settings and client
        self.nodes = nodes or {"asterisk": (settings, ami)}
        self.pending: set[str] = set()  # nodes that missed a reload while their AMI was down
        self.last_apply: dict[str, str] = {}

    def render(self, config: GatewayConfig, previous: GatewayConfig | None) -> None:
        """Asterisk's files and the prompts for ``config`` (blocking: run it in a thread), on every node."""
        for node_settings, _client in self.nodes.values():
            s = node_settings
            dialplan.write_config(config, s, keep_queues_of=previous)
            prompts.render_all(config, out_dir=s.prompts_dir, cache_dir=s.cache_dir,
                               override_dir=s.prompt_override_dir)

    @staticmethod
    async def _reload(client: AmiClient) -> None:
        # Specific actions, not `Command`: the gateway's AMI user may not run CLI commands.
        await client.reload_module("pbx_config")
        await client.queue_reload()

    async def reload_asterisk(self) -> dict[str, str]:
        """Reload every connected node; a node away is remembered and reloaded when it is back."""
        result: dict[str, str] = {}
        for name, (_s, client) in self.nodes.items():
            if not client.connected and len(self.nodes) > 1:  # one node: AmiNotConnected, as before
                self.pending.add(name)
                result[name] = f"down ({client.last_error}): files written, reloads when its AMI is back"
                log.warning("Asterisk node %s is not connected: config written, reload deferred", name)
                continue
            await self._reload(client)
            self.pending.discard(name)
            result[name] = "reloaded"
        self.last_apply = result
        return result

    async def node_connected(self, name: str, client: AmiClient) -> None:
        """A node's AMI (re)connected: reload it if it missed a version (AmiPool.on_connected)."""
        if name not in self.pending:
            return
        try:
            await self._reload(client)
        except GatewayError as exc:
            log.error("Asterisk node %s is back but did not reload: %s", name, exc)
            return
        self.pending.discard(name)
        self.last_apply[name] = "reloaded after reconnecting"
        log.warning("Asterisk node %s is back: reloaded with the live config", name)

    async def apply(self, config: GatewayConfig, previous: GatewayConfig | None) -> None:
        """Render ``config`` for Asterisk and reload it; on failure put the previous one back."""
        if not any(client.connected for _s, client in self.nodes.values()):
            what = "Asterisk is" if len(self.nodes) == 1 else "no Asterisk node is"
            raise AsteriskUnavailable(f"{what} not reachable over AMI; nothing was changed")
        await asyncio.to_thread(self.render, config, previous)
        try:
            await self.reload_asterisk()
        except GatewayError as exc:
            if previous is not None:
                await asyncio.to_thread(self.render, previous, config)
                if len(self.nodes) > 1:  # nodes that took the new version go back too
                    for name, (_s, client) in self.nodes.items():
                        if client.connected:
                            try:
                                await self._reload(client)
                            except GatewayError as again:
                                log.error("node %s: reload of the previous version failed: %s", name, again)
            raise AsteriskUnavailable(f"Asterisk did not reload ({exc}); nothing was changed") from exc
