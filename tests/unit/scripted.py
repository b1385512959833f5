"""A scripted call channel for flow tests: a caller who presses keys, stays silent or hangs up."""

from __future__ import annotations

from gateway.errors import ChannelHangup
from gateway.ivr_flows.channel import Heard, Recording


class ScriptedChannel:
    """Replays a caller script.

    ``keys`` is consumed one entry per menu: a key string, '' for no key, or
    ``"HANGUP"`` to hang up at that menu. ``hangup_on_prompt`` hangs up when
    the named prompt starts; ``record_end`` says how the recording ends.
    """

    def __init__(self, keys=(), *, hangup_on_prompt: str | None = None, record_end: str = "silence",
                 languages=(), heard=(), ahead=None, gaps=None) -> None:
        # Keys pressed while no command reads keys (the PBX drops them unless the channel's key
        # watch is on, as AgiChannel's is from watch_keys() until take_keys()): a prompt id
        # suffix -> key pressed just after that prompt ended; "listen" -> key pressed while a
        # speech menu seeks a recogniser stream (AgiChannel.listen watches for its end_keys).
        self.gaps = dict(gaps or {})
        self.watching = ""
        self.caught = ""
        self.lost: list[str] = []
        self._between = ""  # a gap key pressed after the last command, not yet caught or lost
        self.ahead = dict(ahead or {})  # prompt id suffix -> key pressed while it plays (type-ahead)
        self.interrupted: list[str] = []  # prompts a type-ahead key cut short
        self.languages = set(languages)  # recogniser languages live right now
        self.heard = list(heard)  # one Heard (or SpeechUnavailable) per listen() call
        self.listens: list[dict] = []
        self.keys = list(keys)
        self.hangup_on_prompt = hangup_on_prompt
        self.record_end = record_end
        self.played: list[str] = []
        self.transferred: str | None = None
        self.hung_up = False
        self.recordings: list[str] = []

    def _next_command(self) -> None:
        """A command starts: a key pressed before it is caught by a watch, else lost."""
        if self._between:
            if self._between in self.watching:
                self.caught += self._between
            else:
                self.lost.append(self._between)
            self._between = ""

    def _gap_after(self, prompt_id: str) -> None:
        for suffix, key in list(self.gaps.items()):
            if suffix != "listen" and prompt_id.endswith(suffix):
                del self.gaps[suffix]
                self._between = key

    def watch_keys(self, keys: str) -> None:
        self.watching = keys
        self._next_command()

    async def take_keys(self) -> str:
        self._next_command()
        self.watching, keys, self.caught = "", self.caught, ""
        return keys

    def _prompt(self, prompt_id: str) -> None:
        self._next_command()
        if self.hung_up:
            raise ChannelHangup("already hung up")
        self.played.append(prompt_id)
        if self.hangup_on_prompt and prompt_id.endswith(self.hangup_on_prompt):
            self.hung_up = True
            raise ChannelHangup("caller hung up")

    async def play(self, prompt_id: str, *, keys: str = "", interruptible: bool = True) -> str:
        self._prompt(prompt_id)
        for suffix, key in list(self.ahead.items()):
            if prompt_id.endswith(suffix) and keys:
                del self.ahead[suffix]
                if interruptible:
                    self.interrupted.append(prompt_id)
                return key if key in keys else ""
        self._gap_after(prompt_id)
        return ""

    async def collect_digits(self, prompt_id: str, *, max_digits: int, timeout: float) -> str:
        self._prompt(prompt_id)
        self.watching = ""  # a menu reads keys itself: the watch ends
        key = self.keys.pop(0) if self.keys else ""
        if key == "HANGUP":
            self.hung_up = True
            raise ChannelHangup("caller hung up in a menu")
        return key

    async def record(self, name, *, max_seconds, silence_seconds, beep_prompt_id) -> Recording:
        self._next_command()
        self.watching = ""
        if beep_prompt_id:
            self._prompt(beep_prompt_id)
        self.recordings.append(name)
        if self.record_end == "hangup":
            self.hung_up = True
        return Recording(path=f"/srv/gw/recordings/{name}", fmt="wav", duration_ms=2300, ended_by=self.record_end)

    def can_listen(self, language: str) -> bool:
        return language in self.languages

    async def listen(self, name, *, language, prompt_ids, grammar, guard_words, max_seconds, silence_seconds,
                     no_input_seconds, end_keys) -> Heard:
        self._next_command()
        if self.hung_up:
            raise ChannelHangup("already hung up")
        item = self.heard.pop(0) if self.heard else Heard(ended_by="no_input")
        if name is None and "listen" in self.gaps:  # pressed while the stream is sought: watched
            self.caught += self.gaps.pop("listen")
        self.watching = ""
        if isinstance(item, Exception):
            raise item  # no stream: what the watch caught stays for take_keys()
        if name is None and self.caught:  # a stream opened: the caught key answers the menu
            key, self.caught = self.caught[0], self.caught[1:]
            item = Heard(ended_by="dtmf", digit=key)
        for prompt_id in prompt_ids:
            self.played.append(prompt_id)
        self.listens.append({"name": name, "language": language, "grammar": grammar, "guard": tuple(guard_words),
                             "end_keys": end_keys, "prompts": list(prompt_ids)})
        if item.ended_by == "hangup":
            self.hung_up = True
        return item

    async def transfer_to_queue(self, queue: str, *, wait_seconds=None, overflow_queue=None) -> None:
        self._next_command()
        self.watching = ""
        self.transferred = queue
        self.overflow = (overflow_queue, wait_seconds)

    async def hangup(self) -> None:
        self.hung_up = True


class RecordingObserver:
    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.ticket_points: list[dict] = []
        self.recordings: list = []

    async def step(self, state, entry):
        self.steps.append(entry)

    async def ticket_point(self, state):
        self.ticket_points.append(dict(state.vars, queue=state.queue))

    async def recorded(self, state, recording):
        self.recordings.append(recording)

    async def transcribed(self, state, transcript):
        self.transcripts = getattr(self, "transcripts", []) + [transcript]

    async def transcript_pending(self, state, language, reason):
        self.pending = getattr(self, "pending", []) + [(language, reason)]

    async def emergency(self, state, words):
        self.emergencies = getattr(self, "emergencies", []) + [list(words)]
