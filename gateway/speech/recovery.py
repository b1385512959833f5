"""The recovery job: transcripts for tickets whose caller could not be recognised live.

A ticket's transcript is ``pending`` when its recording exists but no live
transcript could be made (no model for the language at the time, the recogniser
was overloaded or a worker died). This job looks for such tickets every few
seconds and transcribes their recordings as soon as the engine can. A recording
that keeps failing is given up after ``give_up_after`` attempts (``failed``);
the recording itself stays on the ticket for the agent. Languages without a
model are skipped, not failed: installing the model later recovers them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

from gateway.asr.engine import EngineUnavailable, SpeechEngine
from gateway.errors import GatewayError
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)


class TranscriptRecovery:
    def __init__(self, *, store: TicketStore, engine: SpeechEngine, local_path: Callable[[str], Path],
                 interval: float = 3.0, give_up_after: int = 3, on_transcribed=None) -> None:
        self.store = store
        self.engine = engine
        self.local_path = local_path
        self.interval = interval
        self.give_up_after = give_up_after
        self.on_transcribed = on_transcribed  # callback(ticket_id), e.g. to notify agents' desks
        self.counters = {"recovered": 0, "failed_attempts": 0, "given_up": 0}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="transcript-recovery")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - the job must survive a bad round
                log.exception("transcript recovery round failed")
            await asyncio.sleep(self.interval)

    async def run_once(self) -> int:
        """One round; returns how many tickets got their transcript."""
        done = 0
        languages = [lang for lang in self.engine.languages() if self.engine.available(lang)]
        for ticket in await self.store.pending_transcripts(languages=languages, limit=20):
            language = ticket.get("language") or ""
            if not self.engine.available(language):
                continue  # suspended meanwhile: try again later
            path = self.local_path(ticket["recording_path"])
            try:
                transcript = await self.engine.transcribe_file(path, language)
            except EngineUnavailable:
                continue
            except (GatewayError, OSError) as exc:
                self.counters["failed_attempts"] += 1
                status = await self.store.transcript_attempt_failed(ticket["id"], str(exc),
                                                                    give_up_after=self.give_up_after)
                if status == "failed":
                    self.counters["given_up"] += 1
                log.warning("ticket %s: transcription of its recording failed (%s): %s",
                            ticket["id"], status, exc)
                continue
            await self.store.set_transcript(ticket["uniqueid"], transcript.to_json(), recovered=True)
            self.counters["recovered"] += 1
            done += 1
            log.info("ticket %s: pending transcript recovered (%.1f s of audio)", ticket["id"],
                     transcript.audio_seconds)
            if self.on_transcribed is not None:
                self.on_transcribed(ticket["id"])
        return done
