"""The follow-up IVR: the flow ``followup`` (``config/flows/followup.yaml``) run on an answered
outbound call, and what its answers mean.

Theory of operation: the flow is ordinary flow data run by the intake's interpreter
(:class:`gateway.ivr_flows.engine.Interpreter`): a play, two menus, a recording, hang-ups. Its
options set variables (``solved``, ``satisfaction``, ``refused``); :func:`result_of` reads them
once the walk ends. The one per-call text is the greeting's day (``{date}`` → 十二月一日, the
day the citizen called): :class:`LivePrompts` renders it before the call is placed (cached by
its text, so there are at most 366 of them) and :class:`_PerCall` plays that file where the
flow says ``intro``. The comment is a ``record`` step with ``speech: true``: transcribed live
when the Mandarin recogniser listens, else recorded and transcribed right after the call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from gateway.ivr_flows.channel import Recording
from gateway.ivr_flows.engine import CallState, Interpreter
from gateway.ivr_flows.flowcheck import TEMPLATE_FIELD
from gateway.ivr_flows.model import Flow, GatewayConfig, Line

log = logging.getLogger(__name__)

FLOW_ID = "followup"
LINE = Line(number="followup", name="12345回访", mode="primary", flow=FLOW_ID)
LIVE_DIR = "live"  # under the prompts directory; render_all leaves subdirectories alone


class FlowMissing(LookupError):
    """The live configuration has no ``followup`` flow (or it lacks what the follow-up reads)."""


def followup_flow(config: GatewayConfig) -> Flow:
    flow = config.flows.get(FLOW_ID)
    if flow is None:
        raise FlowMissing("the configuration has no flows/followup.yaml (flow id 'followup')")
    return flow


def day_zh(when: datetime, timezone: str) -> str:
    local = when.astimezone(ZoneInfo(timezone))
    return f"{local.month}月{local.day}日"


def fill(text: str, values: dict) -> str:
    return TEMPLATE_FIELD.sub(lambda m: str(values.get(m.group(1), "")), text)


def templates(flow: Flow) -> dict[str, str]:
    """The flow's per-call prompts: prompt id -> template text."""
    return {pid: text for pid, text in flow.prompts.items() if TEMPLATE_FIELD.search(text)}


class LivePrompts:
    """Per-call prompt texts rendered like the flow's (same voice, same cache), off the event loop."""

    def __init__(self, *, prompts_dir: Path, cache_dir: Path) -> None:
        self.prompts_dir = Path(prompts_dir)
        self.cache_dir = Path(cache_dir)
        self._lock = asyncio.Lock()  # one rendering at a time: the voice is one model, the same text once

    async def ensure(self, text: str, language: str) -> str:
        """The prompt key (``live/<digest>``) of ``text``, rendered now unless it already was."""
        async with self._lock:
            return await asyncio.to_thread(self._ensure, text, language)

    def _ensure(self, text: str, language: str) -> str:
        from gateway.pbx.prompts import PromptText, synthesize

        prompt = PromptText("live", text, language)
        digest = prompt.digest
        target = self.prompts_dir / LIVE_DIR / f"{digest}.wav"
        if not target.is_file():
            cache = self.cache_dir / "prompts" / f"{digest}.wav"
            if not cache.is_file():
                cache.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(prefix=".gw-live-", dir=cache.parent) as tmp:
                    fresh = Path(tmp) / "new.wav"
                    said = synthesize(prompt, fresh)
                    cache = cache.parent / f"{prompt.digest_for(said['engine'], said['voice'])}.wav"
                    os.replace(fresh, cache)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".live-", suffix=".tmp", dir=target.parent)
            os.close(fd)
            try:
                shutil.copyfile(cache, tmp_name)
                os.replace(tmp_name, target)  # atomic: another instance may write the same file
            finally:
                if os.path.exists(tmp_name):
                    os.unlink(tmp_name)
        return f"{LIVE_DIR}/{digest}"

    async def for_ticket(self, config: GatewayConfig, *, called_at: datetime) -> dict[str, str]:
        """prompt key -> live key for every template prompt of the follow-up flow, for this ticket."""
        flow = followup_flow(config)
        values = {"date": day_zh(called_at, config.timezone)}
        out = {}
        for pid, text in templates(flow).items():
            out[f"{flow.id}-{pid}"] = await self.ensure(fill(text, values), flow.prompt_languages.get(pid, flow.language))
        return out


class _PerCall:
    """The call's channel, playing this call's rendering of a template prompt where the flow names it."""

    def __init__(self, channel, aliases: dict[str, str]) -> None:
        self._channel = channel
        self._aliases = aliases

    def __getattr__(self, name):
        return getattr(self._channel, name)

    def _key(self, key: str) -> str:
        return self._aliases.get(key, key)

    async def play(self, prompt_id: str, **kw) -> str:
        return await self._channel.play(self._key(prompt_id), **kw)

    async def collect_digits(self, prompt_id: str, **kw) -> str:
        return await self._channel.collect_digits(self._key(prompt_id), **kw)

    async def listen(self, name, *, prompt_ids: list[str], **kw):
        return await self._channel.listen(name, prompt_ids=[self._key(p) for p in prompt_ids], **kw)


@dataclass
class IvrResult:
    outcome: str  # answered, refused, no_input (a question left unanswered), hangup
    solved: str | None = None
    satisfaction: str | None = None
    comment_path: str | None = None  # the recording as the gateway sees it on disk
    comment_transcript: str | None = None
    comment_status: str | None = None  # done, pending, none
    path: list = field(default_factory=list)


class _Observer:
    """What the follow-up keeps of the walk: no ticket is drafted, the answers are read at the end."""

    def __init__(self, recording_path: Callable[[Recording], str]) -> None:
        self.recording_path = recording_path
        self.recording: str | None = None
        self.transcript: str | None = None
        self.status: str | None = None

    async def step(self, state, entry) -> None:
        log.debug("follow-up %s: %s", state.uniqueid, entry)

    async def ticket_point(self, state) -> None:
        return None

    async def recorded(self, state, recording: Recording) -> None:
        if recording.duration_ms > 0 and recording.ended_by != "write_failed":
            self.recording = self.recording_path(recording)
            self.status = self.status or "pending"

    async def transcribed(self, state, transcript: dict) -> None:
        text = str(transcript.get("text") or "").strip()
        self.transcript = text[:2000] or None
        self.status = "done"

    async def transcript_pending(self, state, language, reason) -> None:
        if self.status != "done":
            self.status = "pending"

    async def emergency(self, state, words) -> None:
        return None


def result_of(state: CallState, observer: _Observer) -> IvrResult:
    v = state.vars
    common = dict(path=list(state.path))
    if v.get("refused"):
        return IvrResult("refused", **common)
    solved, satisfaction = v.get("solved"), v.get("satisfaction")
    if solved and satisfaction:
        status = observer.status or ("none" if observer.recording is None else "pending")
        return IvrResult("answered", solved=str(solved), satisfaction=str(satisfaction),
                         comment_path=observer.recording, comment_transcript=observer.transcript,
                         comment_status=status, **common)
    return IvrResult("hangup" if state.outcome == "caller_hangup" else "no_input", solved=solved,
                     satisfaction=satisfaction, **common)


async def run_followup_ivr(config: GatewayConfig, channel, *, uniqueid: str, number: str, aliases: dict[str, str],
                           clock: Callable[[], datetime],
                           recording_path: Callable[[Recording], str]) -> IvrResult:
    """Walk the follow-up flow with the citizen on ``channel``; the answers as an :class:`IvrResult`."""
    followup_flow(config)
    state = CallState(uniqueid=f"followup-{uniqueid}", line=LINE, caller=number, dialled="")
    observer = _Observer(recording_path)
    await Interpreter(config, clock=clock).run(state, _PerCall(channel, aliases), observer)
    return result_of(state, observer)
