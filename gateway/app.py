"""Composition root: builds the services from settings and owns start and stop.

Start order: database (migrated), the live configuration version (seeded from
``config/`` on a new database), AMI client, FastAGI server, the scheduler of
configuration changes, HTTP. Stop runs in reverse and collects failures, so one
broken part never leaves another running.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from gateway.asr.config import SpeechConfig, load_speech_config
from gateway.asr.vosk_engine import VoskEngine
from gateway.calls import CallHandler
from gateway.clock import AdjustableClock, Clock
from gateway.desk.service import DeskService
from gateway.errors import ConfigError, GatewayError, PbxError
from gateway.hotlines.service import HotlineAdmin
from gateway.ivr_flows.channel import Recording
from gateway.ivr_flows.model import GatewayConfig
from gateway.ivr_flows.validate import read_files
from gateway.pbx import dialplan, prompts
from gateway.pbx.ami import AmiClient
from gateway.pbx.ami_events import AgentConnect, AmiEvent, Hangup, QueueCallerAbandon, QueueCallerJoin, agent_id_of
from gateway.pbx.audiosocket import AudioSocketServer
from gateway.pbx.fastagi import AgiChannel, FastAgiServer
from gateway.pbx.speech import Listener
from gateway.settings import Settings
from gateway.ticketing import migrate
from gateway.ticketing.store import TicketStore
from gateway.ticketing.transcripts import TranscriptRecovery
from gateway.web.app import build_app
from gateway.web.edge import EdgePolicy
from gateway.web.auth import UserStore

log = logging.getLogger(__name__)
SCHEDULER_TICK = 1.0


class AsteriskUnavailable(PbxError):
    status_code = 503
    error_id = "asterisk-unavailable"


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock: Clock = AdjustableClock() if settings.test_clock else Clock()
        self.store: TicketStore | None = None
        self.admin: HotlineAdmin | None = None
        self.ami: AmiClient | None = None
        self.agi: FastAgiServer | None = None
        self.runner: web.AppRunner | None = None
        self.handler: CallHandler | None = None
        self.http_port: int | None = None
        self.last_reload: dict | None = None
        self._scheduler: asyncio.Task | None = None
        self.speech_config: SpeechConfig | None = None
        self.engine: VoskEngine | None = None
        self.audiosocket: AudioSocketServer | None = None
        self.listener: Listener | None = None
        self.recovery: TranscriptRecovery | None = None
        self._engine_start: asyncio.Task | None = None
        self.speech_problem: str | None = None
        self.desk: DeskService | None = None
        self.suggest_problem: str | None = None

    @property
    def config(self) -> GatewayConfig:
        return self.admin.config

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
                                    ended_at=self.clock.now())
        elif isinstance(event, QueueCallerJoin):
            await store.mark_queued(event.uniqueid, event.queue)
        elif isinstance(event, AgentConnect):
            await store.mark_agent(event.uniqueid, agent_id_of(event.interface, event.member_name))
        elif isinstance(event, QueueCallerAbandon):
            log.info("call %s abandoned queue %s after %s s", event.uniqueid, event.queue, event.hold_time)
        if self.desk is not None:
            await self.desk.on_ami_event(event)  # after mark_agent: the pop reads who answered

    # -- configuration -----------------------------------------------------------------------
    def _render(self, config: GatewayConfig, previous: GatewayConfig | None) -> None:
        s = self.settings
        dialplan.write_config(config, s, keep_queues_of=previous)
        prompts.render_all(config, out_dir=s.prompts_dir, cache_dir=s.cache_dir, override_dir=s.prompt_override_dir)

    async def _reload_asterisk(self) -> None:
        # Specific actions, not `Command`: the gateway's AMI user may not run CLI commands.
        await self.ami.reload_module("pbx_config")
        await self.ami.queue_reload()

    async def apply_config(self, config: GatewayConfig, previous: GatewayConfig | None) -> None:
        """Render ``config`` for Asterisk and reload it; on failure put the previous one back."""
        if not (self.ami and self.ami.connected):
            raise AsteriskUnavailable("Asterisk is not reachable over AMI; nothing was changed")
        await asyncio.to_thread(self._render, config, previous)
        try:
            await self._reload_asterisk()
        except GatewayError as exc:
            if previous is not None:
                await asyncio.to_thread(self._render, previous, config)
            raise AsteriskUnavailable(f"Asterisk did not reload ({exc}); nothing was changed") from exc

    async def reload(self) -> bool:
        """SIGHUP: take ``config/`` as a new version if it changed and is valid as a whole.

        A refused configuration leaves the running one (and Asterisk's dialplan) as it
        was; calls in progress keep the version they started with either way.
        """
        files = await asyncio.to_thread(read_files, self.settings.config_dir)
        if files == self.admin.files:
            self.last_reload = {"ok": True, "version": self.config.version, "changed": False}
            return True
        try:
            version = await self.admin.submit({"op": "replace_files", "files": files},
                                              comment="config/ reloaded (SIGHUP)", user="config/")
        except ConfigError as exc:
            self.last_reload = {"ok": False, "errors": [p.as_dict() for p in exc.problems]}
            log.error("configuration refused; keeping version %s:\n%s", self.config.version, exc)
            return False
        except GatewayError as exc:
            self.last_reload = {"ok": False, "errors": [{"message": exc.message}]}
            log.error("configuration not applied: %s", exc)
            return False
        self.last_reload = {"ok": True, "version": self.config.version, "config_version": version["id"]}
        return True

    async def _schedule_loop(self) -> None:
        while True:
            await asyncio.sleep(SCHEDULER_TICK)
            try:
                await self.admin.run_due()
            except Exception:  # noqa: BLE001 - the scheduler must survive a bad tick
                log.exception("scheduler tick failed")

    # -- health --------------------------------------------------------------------------
    def metrics_snapshot(self, reset: bool = False) -> dict:
        if self.handler is None:
            return {}
        snap = self.handler.metrics.snapshot()
        snap["fastagi"] = self.agi.counters() if self.agi else {}
        snap["audiosocket"] = self.audiosocket.counters() if self.audiosocket else {}
        snap["speech"] = self.speech_stats()
        snap["desk"] = dict(self.desk.counters) if self.desk else {}
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
            "config_version": self.config.version if self.admin and self.admin.config else None,
            "config_version_id": self.admin.version_id if self.admin else None,
            "calls_in_ivr": self.handler.active if self.handler else 0,
            "fastagi_sessions": self.agi.sessions if self.agi else 0,
            "last_reload": self.last_reload,
            "speech": self.speech_stats(),
            "voice": _voice_status(),  # issue 10: which engine speaks the Mandarin prompts, and why
            "desk": {"suggestions": self.suggest_problem or "on",
                     "connections": self.desk.hub.connections() if self.desk else 0},
        }

    def speech_stats(self) -> dict:
        if self.engine is None:
            return {"status": "off", "reason": self.speech_problem or "GATEWAY_SPEECH=off"}
        starting = self._engine_start is not None and not self._engine_start.done()
        languages = {}
        for lang, spec in (self.speech_config.models if self.speech_config else {}).items():
            name = self.engine.model_name(lang)
            if not name:
                state = f"no model (expected {spec.path or spec.package})"
            elif self.engine.available(lang):
                state = f"ready ({name})"
            elif starting:
                state = f"loading ({name})"
            else:
                state = f"{'suspended' if self.engine.suspended else 'unavailable: no worker up'} ({name})"
            languages[lang] = state
        out = {"status": "starting" if starting else "ready", "languages": languages,
               "engine": self.engine.stats()}
        if self.listener is not None:
            out["listening"] = dict(self.listener.counters)
        if self.recovery is not None:
            out["recovery"] = dict(self.recovery.counters)
        return out

    # -- speech ----------------------------------------------------------------------------
    async def _start_speech(self) -> None:
        """AudioSocket server at once; the recogniser's models load in the background.

        Until they are loaded (or if a language has no model) calls use keys and
        recordings and their transcripts are recovered later: a gateway without speech
        still takes every call.
        """
        s = self.settings
        if not s.speech:
            self.speech_problem = "GATEWAY_SPEECH=off"
            return
        try:
            self.speech_config = await asyncio.to_thread(load_speech_config, s.speech_config)
        except ConfigError as exc:
            self.speech_problem = f"{s.speech_config}: {exc}"
            log.error("speech is off: %s is invalid:\n%s", s.speech_config, exc)
            return
        self.engine = VoskEngine(self.speech_config, cache_dir=s.cache_dir)  # issue 10: per-language engine (vosk|whisper) from speech.yaml
        self.audiosocket = AudioSocketServer(s.audiosocket_host, s.audiosocket_port, allowed_peers=s.pbx_peers)
        await self.audiosocket.start()
        self.listener = Listener(
            audiosocket=self.audiosocket, engine=self.engine,
            address=f"{s.audiosocket_host}:{self.audiosocket.port}",
            prompts_dir=s.prompts_dir, recordings_dir=s.recordings_dir, pbx_path=s.pbx_path,
            vad_threshold_dbfs=s.vad_threshold_dbfs, menu_fillers=self.speech_config.menu_fillers,
        )
        self.recovery = TranscriptRecovery(store=self.store, engine=self.engine, local_path=Path)
        self._engine_start = asyncio.create_task(self._load_models(), name="speech-models")

    async def _load_models(self) -> None:
        try:
            await self.engine.start()  # the engine logs its own progress (models, workers)
        except Exception:  # noqa: BLE001 - the gateway runs on without speech
            log.exception("speech recogniser did not start; calls go on with keys and recordings")
            return
        self.recovery.start()

    def guard_words(self) -> dict:
        if self.speech_config is None:
            return {}
        return {lang: tuple(words) for lang, words in self.speech_config.emergency_keywords.items()}

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        await asyncio.to_thread(migrate.upgrade, s.database_url)
        self.store = await TicketStore.open(s.database_url)
        self.admin = HotlineAdmin(store=self.store, clock=self.clock.now, applier=self.apply_config,
                                  initial_files=lambda: read_files(s.config_dir))
        config = await self.admin.bootstrap()
        await asyncio.to_thread(self._render, config, None)
        self.ami = AmiClient(host=s.ami_host, port=s.ami_port, username=s.ami_user, secret=s.ami_secret,
                             action_timeout=s.ami_action_timeout, ping_interval=s.ami_ping_interval)
        self.ami.subscribe(self.on_ami_event)
        await self.ami.start()
        if await self.ami.wait_connected(10):
            await self._reload_asterisk()  # Asterisk follows the live version, not only config/
        await self._start_speech()
        self.users = UserStore(self.store)  # sessions follow the wall clock, never the test clock
        self.desk = DeskService(store=self.store, users=self.users, recordings_dir=s.recordings_dir,
                                suggester=self._load_suggester(), clock=self.clock.now,
                                timezone=config.timezone, ami=self.ami,
                                transfers=lambda: self.admin.config.emergency_transfers)
        self.handler = CallHandler(
            store=self.store,
            config_source=lambda: self.admin.config,
            channel_factory=lambda session: AgiChannel(session, self._prompt_path, s.pbx_path(s.recordings_dir),
                                                       listener=self.listener),
            recording_path=self._recording_path,
            clock=self.clock.now,
            guard_words=self.guard_words,
            board=self.desk.board,
        )
        self.agi = FastAgiServer(self.handler, host=s.agi_host, port=s.agi_port, allowed_peers=s.pbx_peers,
                                 read_timeout=s.agi_read_timeout)
        await self.agi.start()
        self._scheduler = asyncio.create_task(self._schedule_loop(), name="config-scheduler")
        app = build_app(store=self.store, health=self.health, metrics_source=self.metrics_snapshot, users=self.users,
                        edge_policy=EdgePolicy(trusted_proxies=s.trusted_proxies, public_hosts=s.public_hosts,
                                               bind_host=s.http_host))
        self.extend_app(app)
        # keepalive_timeout is also the deadline for a request's headers: aiohttp closes a
        # connection that has not completed a request (first, or next one) within it.
        self.runner = web.AppRunner(app, access_log=None, keepalive_timeout=s.http_header_timeout)
        await self.runner.setup()
        site = web.TCPSite(self.runner, s.http_host, s.http_port)
        await site.start()
        self.http_port = self.runner.addresses[0][1] if self.runner.addresses else s.http_port

    def extend_app(self, app: web.Application) -> None:
        """Routes that need the whole gateway (admin API, test clock)."""
        from gateway.desk.http import add_desk_routes
        from gateway.hotlines.http import add_admin_routes

        add_admin_routes(app, gateway=self)
        add_desk_routes(app, desk=self.desk, timezone=self.config.timezone)

    def _load_suggester(self):
        """Suggestions from config/catalogue.yaml and config/knowledge/; None (and logged) if invalid."""
        from gateway.desk.suggestions import load_suggester

        try:
            return load_suggester(self.settings.config_dir)
        except GatewayError as exc:
            self.suggest_problem = str(exc)
            log.error("desk suggestions are off: %s", exc)
            return None

    async def stop(self) -> None:
        failures = []
        if self._scheduler:
            self._scheduler.cancel()
        if self._engine_start:
            self._engine_start.cancel()
            await asyncio.gather(self._engine_start, return_exceptions=True)
        for name, closer in (
            ("http", self.runner.cleanup if self.runner else None),
            ("fastagi", self.agi.stop if self.agi else None),
            ("transcript recovery", self.recovery.stop if self.recovery else None),
            ("audiosocket", self.audiosocket.stop if self.audiosocket else None),
            ("speech engine", self.engine.close if self.engine else None),
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
            "admin": f"http://{s.http_host}:{self.http_port}/admin",
            "ami": f"{s.ami_host}:{s.ami_port}",
            "audiosocket": f"{s.audiosocket_host}:{self.audiosocket.port}" if self.audiosocket else "off",
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


def _voice_status() -> dict:
    """The prompts' voice (gateway.tts): engine, voice and the reason of a fallback; no I/O."""
    from gateway import tts

    state = tts.status()
    return {"engine": state["engine"], "voice": state["voice"], "problem": state["problem"],
            "loaded": state["loaded"]}
