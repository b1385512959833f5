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

from gateway.errors import GatewayError


@dataclass(frozen=True)
class Recording:
    """What a recording step left behind."""

    path: str  # path as the PBX wrote it, without extension (e.g. /srv/gw/recordings/<uid>)
    fmt: str  # file format/extension, e.g. "wav"
    duration_ms: int  # length of the recorded audio
    ended_by: str  # "dtmf", "silence", "max_length" or "hangup"


class SpeechUnavailable(GatewayError):
    """Live speech could not start (no model, overload, AudioSocket not connected).

    Raised before anything was played, so the flow can fall back to keys or a plain recording.
    """


@dataclass(frozen=True)
class Heard:
    """What a listening step heard."""

    ended_by: str  # "speech_end", "dtmf", "max_length", "no_input", "emergency" or "hangup"
    text: str = ""  # final text (menus: what the grammar matched)
    digit: str = ""  # the key that ended the step, if any
    emergency_words: tuple = ()
    transcript: dict | None = None  # Transcript.to_json() when recognition finished
    transcript_status: str = "none"  # "done", "pending" (recording kept, recognition failed) or "none"
    recording: Recording | None = None
    error: str = ""  # why recognition failed (no personal data)


class CallChannel(Protocol):
    async def play(self, prompt_id: str, *, keys: str = "", interruptible: bool = True) -> str:
        """Play a prompt; returns the key the caller pressed meanwhile, if any.

        Without ``keys`` the prompt plays to the end and keys are ignored ('').
        With ``keys`` the first of them pressed is returned (type-ahead); an
        ``interruptible`` prompt stops at that key, another plays on to its end.
        """

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

    async def remember(self, values: dict[str, str]) -> None:
        """Optional: keep ``values`` (GW_IVR, GW_CHOICE_*) on the call for the PBX's fail-safe,
        which routes by them when the gateway is lost mid-call. A channel without this method
        (a dry run) has no fail-safe; the interpreter then skips it."""

    def can_listen(self, language: str) -> bool:
        """True when live speech recognition is available for ``language`` right now."""

    async def listen(
        self,
        name: str | None,
        *,
        language: str,
        prompt_ids: list[str],
        grammar: list[str] | None,
        guard_words: tuple,
        max_seconds: float,
        silence_seconds: float,
        no_input_seconds: float,
        end_keys: str,
    ) -> Heard:
        """Play ``prompt_ids`` (interruptible by speech or a key) and listen to the caller.

        Ends when the caller stops talking (``silence_seconds`` after speech), presses one of
        ``end_keys``, says one of ``guard_words`` (``ended_by="emergency"``, at once, on partial
        results), reaches ``max_seconds``, or says nothing for ``no_input_seconds``. With
        ``name`` the caller's audio is also kept as a recording of that name. Raises
        :class:`SpeechUnavailable` if listening cannot start.
        """
