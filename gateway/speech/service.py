"""The speech feature's running parts and their state, as ``/healthz`` shows it.

Start: the AudioSocket server at once; the recogniser's models load in the
background. Until they are loaded (or if a language has no model) calls use keys and
recordings and their transcripts are recovered later: a gateway without speech still
takes every call. Stop: model loading cancelled, then the recovery job, the AudioSocket
server and the engine's workers, each stopped even if another failed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gateway.asr.config import SpeechConfig, load_speech_config
from gateway.asr.vosk_engine import VoskEngine
from gateway.errors import ConfigError
from gateway.pbx.audiosocket_server import AudioSocketServer
from gateway.pbx.speech import Listener
from gateway.settings import Settings
from gateway.speech.recovery import TranscriptRecovery
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)


class Speech:
    def __init__(self, settings: Settings, store: TicketStore) -> None:
        self.settings = settings
        self.store = store
        self.config: SpeechConfig | None = None
        self.engine: VoskEngine | None = None
        self.audiosocket: AudioSocketServer | None = None
        self.listener: Listener | None = None
        self.recovery: TranscriptRecovery | None = None
        self.problem: str | None = None
        self._engine_start: asyncio.Task | None = None

    async def start(self) -> None:
        s = self.settings
        if not s.speech:
            self.problem = "GATEWAY_SPEECH=off"
            return
        try:
            self.config = await asyncio.to_thread(load_speech_config, s.speech_config)
        except ConfigError as exc:
            self.problem = f"{s.speech_config}: {exc}"
            log.error("speech is off: %s is invalid:\n%s", s.speech_config, exc)
            return
        self.engine = VoskEngine(self.config, cache_dir=s.cache_dir)  # issue 10: per-language engine (vosk|whisper)
        self.audiosocket = AudioSocketServer(s.audiosocket_host, s.audiosocket_port, allowed_peers=s.pbx_peers)
        await self.audiosocket.start()
        self.listener = Listener(
            audiosocket=self.audiosocket, engine=self.engine,
            address=f"{s.audiosocket_host}:{self.audiosocket.port}",
            prompts_dir=s.prompts_dir, recordings_dir=s.recordings_dir, pbx_path=s.pbx_path,
            vad_threshold_dbfs=s.vad_threshold_dbfs, menu_fillers=self.config.menu_fillers,
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

    async def stop(self) -> None:
        if self._engine_start is not None:
            self._engine_start.cancel()
            await asyncio.gather(self._engine_start, return_exceptions=True)
        failures = []
        for name, closer in (
            ("transcript recovery", self.recovery.stop if self.recovery else None),
            ("audiosocket", self.audiosocket.stop if self.audiosocket else None),
            ("speech engine", self.engine.close if self.engine else None),
        ):
            if closer is None:
                continue
            try:
                await closer()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                failures.append(f"{name}: {exc}")
        if failures:
            raise RuntimeError("speech did not stop cleanly: " + "; ".join(failures))

    async def wait_started(self, timeout: float) -> bool:
        """Wait until the models are loaded and the capacity measured (False on timeout or off)."""
        task = self._engine_start
        if task is None:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - the start logs its own failure
            return False
        return self.engine is not None and self.engine.capacity.calibrated

    def capacity_line(self) -> str:
        """The banner's line: live streams this machine carries, per language."""
        if self.engine is None:
            return "off"
        return self.engine.capacity_line().removeprefix("speech: ")

    def guard_words(self) -> dict:
        if self.config is None:
            return {}
        return {lang: tuple(words) for lang, words in self.config.emergency_keywords.items()}

    def counters(self) -> dict:
        """The AudioSocket server's counters (``/metrics`` → ``audiosocket``)."""
        return self.audiosocket.counters() if self.audiosocket else {}

    def stats(self) -> dict:
        """``/healthz`` → ``speech``: off, or each language's state, the engine and the listener."""
        if self.engine is None:
            return {"status": "off", "reason": self.problem or "GATEWAY_SPEECH=off"}
        starting = self._engine_start is not None and not self._engine_start.done()
        languages = {}
        for lang, spec in (self.config.models if self.config else {}).items():
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
        capacity = self.engine.capacity
        out = {"status": "starting" if starting else "ready", "languages": languages,
               # measured at start (gateway.asr.capacity): live streams this machine carries
               "live_capacity": {"calibrated": capacity.calibrated,
                                 "streams": {lang: capacity.streams(lang) for lang in sorted(capacity.rtf)},
                                 "rtf": {lang: round(v, 3) for lang, v in sorted(capacity.rtf.items())},
                                 "cores": capacity.cores, "workers": capacity.workers,
                                 "headroom": capacity.headroom, "cap": capacity.cap},
               "engine": self.engine.stats()}
        if self.listener is not None:
            out["listening"] = dict(self.listener.counters)
        if self.recovery is not None:
            out["recovery"] = dict(self.recovery.counters)
        return out
