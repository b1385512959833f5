"""Asterisk follows the live configuration version: render its files and prompts, then reload.

The gateway's AMI user may not run CLI commands, so the reload is two specific actions
(``Reload Module=pbx_config`` and ``QueueReload``). A version that Asterisk did not take
is rendered back to the previous one: nothing changed, and the caller is told why.
"""

from __future__ import annotations

import asyncio

from gateway.errors import GatewayError, PbxError
from gateway.ivr_flows.model import GatewayConfig
from gateway.pbx import dialplan, prompts
from gateway.pbx.ami import AmiClient
from gateway.settings import Settings


class AsteriskUnavailable(PbxError):
    status_code = 503
    error_id = "asterisk-unavailable"


class AsteriskSync:
    def __init__(self, settings: Settings, ami: AmiClient) -> None:
        self.settings = settings
        self.ami = ami

    def render(self, config: GatewayConfig, previous: GatewayConfig | None) -> None:
        """Asterisk's files and the prompts for ``config`` (blocking: run it in a thread)."""
        s = self.settings
        dialplan.write_config(config, s, keep_queues_of=previous)
        prompts.render_all(config, out_dir=s.prompts_dir, cache_dir=s.cache_dir, override_dir=s.prompt_override_dir)

    async def reload_asterisk(self) -> None:
        # Specific actions, not `Command`: the gateway's AMI user may not run CLI commands.
        await self.ami.reload_module("pbx_config")
        await self.ami.queue_reload()

    async def apply(self, config: GatewayConfig, previous: GatewayConfig | None) -> None:
        """Render ``config`` for Asterisk and reload it; on failure put the previous one back."""
        if not self.ami.connected:
            raise AsteriskUnavailable("Asterisk is not reachable over AMI; nothing was changed")
        await asyncio.to_thread(self.render, config, previous)
        try:
            await self.reload_asterisk()
        except GatewayError as exc:
            if previous is not None:
                await asyncio.to_thread(self.render, previous, config)
            raise AsteriskUnavailable(f"Asterisk did not reload ({exc}); nothing was changed") from exc
