"""The call channel the flow interpreter talks to.

The interpreter never imports Asterisk code: it drives an object that
satisfies :class:`CallChannel`. ``gateway.pbx.fastagi.AgiChannel`` implements
it over FastAGI; tests use a scripted channel.

Every method raises :class:`gateway.errors.ChannelHangup` once the caller has
hung up, so a flow stops wherever it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Recording:
    """What a recording step left behind."""

    path: str  # path as the PBX wrote it, without extension (e.g. /srv/gw/recordings/<uid>)
    fmt: str  # file format/extension, e.g. "wav"
    duration_ms: int  # length of the recorded audio
    ended_by: str  # "dtmf", "silence", "max_length" or "hangup"


class CallChannel(Protocol):
    async def play(self, prompt_id: str) -> None:
        """Play a prompt to the end; keys pressed meanwhile are ignored."""

    async def collect_digits(self, prompt_id: str, *, max_digits: int, timeout: float) -> str:
        """Play ``prompt_id`` and collect up to ``max_digits`` keys.

        A key pressed during the prompt interrupts it and counts. Returns the
        keys pressed ('' when none within ``timeout`` seconds after the prompt).
        """

    async def record(
        self, name: str, *, max_seconds: float, silence_seconds: float, beep_prompt_id: str | None
    ) -> Recording:
        """Record the caller into a file named ``name`` (no directory, no extension).

        Ends on '#', after ``silence_seconds`` of silence, or at ``max_seconds``.
        """

    async def transfer_to_queue(
        self, queue: str, *, wait_seconds: int | None = None, overflow_queue: str | None = None
    ) -> None:
        """Hand the call to an Asterisk queue; the session ends afterwards.

        With ``overflow_queue``, a call nobody in ``queue`` answers within ``wait_seconds``
        goes on to ``overflow_queue`` (a sub-centre overflowing to 12345 central).
        """

    async def hangup(self) -> None:
        """Hang up the call."""
