"""The :class:`~gateway.ivr_flows.progress.ProgressDesk` of a running gateway: the database
(:mod:`gateway.progress.lookup`), the live voice (:mod:`gateway.progress.voice`) and the limits
from the settings."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable

from gateway.errors import GatewayError
from gateway.ivr_flows.progress import ProgressUnavailable, SpeechFailed, TicketView, listable
from gateway.masking import mask_number
from gateway.progress.lookup import ProgressLookup
from gateway.progress.voice import LiveVoice

log = logging.getLogger(__name__)
GUESS_WINDOW = timedelta(hours=1)


class ProgressService:
    def __init__(self, lookup: ProgressLookup, voice: LiveVoice, *, clock: Callable[[], datetime],
                 lookback_days: float = 90, wrong_per_hour: int = 10, speech_timeout: float = 8.0) -> None:
        self.speech_timeout = speech_timeout  # a caller's longest silence waiting for a live text
        self.lookup = lookup
        self.voice = voice
        self.clock = clock
        self.lookback_days = lookback_days
        self.wrong_per_hour = wrong_per_hour
        self.counts = {"queries": 0, "limited": 0}

    def prepare(self) -> None:
        self.voice.prepare()

    async def open_tickets(self, caller: str) -> list[TicketView]:
        if not caller:
            return []
        now = self.clock()
        self.counts["queries"] += 1
        views = await _read(self.lookup.open_tickets(caller, now - timedelta(days=self.lookback_days)))
        return [v for v in views if listable(v, caller, now, self.lookback_days)]  # the rules, once more

    async def find(self, ticket_no: str) -> TicketView | None:
        self.counts["queries"] += 1
        return await _read(self.lookup.find(ticket_no))

    async def too_many_guesses(self, caller: str, uniqueid: str, wrong_now: int) -> bool:
        """Callers without a caller ID share one count (they cannot be told apart)."""
        before = await _read(self.lookup.wrong_numbers(caller, self.clock() - GUESS_WINDOW, besides=uniqueid))
        if before + wrong_now < self.wrong_per_hour:
            return False
        self.counts["limited"] += 1
        log.warning("call %s: %s keyed %d wrong ticket numbers within an hour (limit %d): to an agent",
                    uniqueid, mask_number(caller) if caller else "a caller without caller ID",
                    before + wrong_now, self.wrong_per_hour)
        return True

    async def say(self, text: str) -> str:
        try:
            return await self.voice.say(text)
        except SpeechFailed:
            raise
        except GatewayError as exc:
            raise SpeechFailed(exc.message) from None


async def _read(query):
    """A database read; its failure (the database away, locked, a driver error) as ProgressUnavailable."""
    try:
        return await query
    except Exception as exc:  # noqa: BLE001 - any failure: the caller hears the notice and reaches an agent
        raise ProgressUnavailable(f"the database could not be read ({type(exc).__name__})") from None
