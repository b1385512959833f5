"""Composition root: builds the services from settings and owns start and stop.

Start order: database (migrated), AMI client, FastAGI server, HTTP. Stop runs
in reverse and collects failures, so one broken part never leaves another
running.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web

from gateway.calls import CallHandler
from gateway.errors import ConfigError
from gateway.ivr_flows.channel import Recording
from gateway.ivr_flows.model import GatewayConfig
from gateway.ivr_flows.validate import load_config
from gateway.pbx import dialplan, prompts
from gateway.pbx.ami import AmiClient
from gateway.pbx.ami_events import AgentConnect, AmiEvent, Hangup, QueueCallerAbandon, QueueCallerJoin
from gateway.pbx.fastagi import AgiChannel, FastAgiServer
from gateway.settings import Settings
from gateway.ticketing import migrate
from gateway.ticketing.store import TicketStore
from gateway.web.app import build_app

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, settings: Settings, config: GatewayConfig | None = None) -> None:
        self.settings = settings
        self.config = config or load_config(settings.config_dir)
        self.store: TicketStore | None = None
        self.ami: AmiClient | None = None
        self.agi: FastAgiServer | None = None
        self.runner: web.AppRunner | None = None
        self.handler: CallHandler | None = None
        self.http_port: int | None = None
        self.last_reload: dict | None = None
        self._reload_lock = asyncio.Lock()

    # -- wiring --------------------------------------------------------------------------
    def _prompt_path(self, key: str) -> str:
        return self.settings.pbx_path(self.settings.prompts_dir / key)

    def _recording_path(self, recording: Recording) -> str:
        """The recording as the gateway sees it on disk."""
        return str(self.settings.local_path(f"{recording.path}.{recording.fmt}"))

    async def on_ami_event(self, event: AmiEvent) -> None:
        store = self.store
        if store is None:
            return
        if isinstance(event, Hangup):
            await store.finish_call(event.uniqueid, hangup_cause=event.cause, hangup_cause_txt=event.cause_txt,
                                    ended_at=datetime.now(timezone.utc))
        elif isinstance(event, QueueCallerJoin):
            await store.mark_queued(event.uniqueid, event.queue)
        elif isinstance(event, AgentConnect):
            await store.mark_agent(event.uniqueid, event.member_name or event.interface)
        elif isinstance(event, QueueCallerAbandon):
            log.info("call %s abandoned queue %s after %s s", event.uniqueid, event.queue, event.hold_time)

    async def reload(self) -> bool:
        """Load config/ again; apply it only if it is valid as a whole.

        A refused configuration leaves the running one (and Asterisk's dialplan) as it
        was; calls in progress keep the version they started with either way.
        """
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config, self.settings.config_dir)
            except ConfigError as exc:
                self.last_reload = {"ok": False, "errors": [p.as_dict() for p in exc.problems]}
                log.error("configuration refused; keeping version %s:\n%s", self.config.version, exc)
                return False
            await asyncio.to_thread(self._render, config)
            if self.ami and self.ami.connected:
                await self.ami.command("dialplan reload")
                await self.ami.command("queue reload all")
            previous, self.config = self.config.version, config
            self.last_reload = {"ok": True, "version": config.version, "previous": previous}
            log.info("configuration %s applied (was %s)", config.version, previous)
            return True

    def _render(self, config: GatewayConfig) -> None:
        s = self.settings
        dialplan.write_config(config, s)
        prompts.render_all(config, out_dir=s.prompts_dir, cache_dir=s.cache_dir, override_dir=s.prompt_override_dir)

    def metrics_snapshot(self, reset: bool = False) -> dict:
        if self.handler is None:
            return {}
        snap = self.handler.metrics.snapshot()
        snap["fastagi"] = self.agi.counters() if self.agi else {}
        if reset:
            self.handler.metrics.reset()
        return snap

    async def health(self) -> dict:
        db_ok = await self.store.ping() if self.store else False
        ami_ok = bool(self.ami and self.ami.connected)
        return {
            "status": "ok" if db_ok and ami_ok else "degraded",
            "database": "ok" if db_ok else "down",
            "ami": "connected" if ami_ok else f"disconnected: {self.ami.last_error if self.ami else 'not started'}",
            "config_version": self.config.version,
            "calls_in_ivr": self.handler.active if self.handler else 0,
            "fastagi_sessions": self.agi.sessions if self.agi else 0,
            "last_reload": self.last_reload,
        }

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        await asyncio.to_thread(migrate.upgrade, s.database_url)
        self.store = await TicketStore.open(s.database_url)
        self.ami = AmiClient(host=s.ami_host, port=s.ami_port, username=s.ami_user, secret=s.ami_secret,
                             action_timeout=s.ami_action_timeout, ping_interval=s.ami_ping_interval)
        self.ami.subscribe(self.on_ami_event)
        await self.ami.start()
        self.handler = CallHandler(
            store=self.store,
            config_source=lambda: self.config,
            channel_factory=lambda session: AgiChannel(
                session, self._prompt_path, s.pbx_path(s.recordings_dir)),
            recording_path=self._recording_path,
        )
        self.agi = FastAgiServer(self.handler, host=s.agi_host, port=s.agi_port, allowed_peers=s.pbx_peers,
                                 read_timeout=s.agi_read_timeout)
        await self.agi.start()
        self.runner = web.AppRunner(build_app(store=self.store, health=self.health,
                                              metrics_source=self.metrics_snapshot), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, s.http_host, s.http_port)
        await site.start()
        self.http_port = self.runner.addresses[0][1] if self.runner.addresses else s.http_port

    async def stop(self) -> None:
        failures = []
        for name, closer in (
            ("http", self.runner.cleanup if self.runner else None),
            ("fastagi", self.agi.stop if self.agi else None),
            ("ami", self.ami.close if self.ami else None),
            ("database", self.store.close if self.store else None),
        ):
            if closer is None:
                continue
            try:
                await closer()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                failures.append(f"{name}: {exc}")
        if failures:
            log.error("stop: %s", "; ".join(failures))

    def listening(self) -> dict:
        s = self.settings
        return {
            "fastagi": f"{s.agi_host}:{self.agi.port if self.agi else s.agi_port}",
            "http": f"http://{s.http_host}:{self.http_port}",
            "ami": f"{s.ami_host}:{s.ami_port}",
            "sip": f"127.0.0.1:{s.sip_port}",
            "database": _safe_url(s.database_url),
            "recordings": str(Path(s.recordings_dir)),
        }


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url
