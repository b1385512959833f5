"""Voice prompts: rendered from the flow and line texts (gateway.tts), converted with sox.

Every prompt has a catalogue key (``main-greeting``, ``line-12315-greeting``);
Asterisk plays ``<prompts_dir>/<key>.wav`` (8 kHz, mono, 16-bit). Mandarin texts are
normalised for the telephone (12345 → 幺二三四五, 按1 → 按一) and spoken by the neural
voice (Kokoro ``zf_xiaobei``); Korean by espeak-ng ``ko``; espeak-ng ``cmn-latn-pinyin``
speaks Mandarin only when the neural voice cannot load (``gateway.tts.status()`` says why).
Rendered audio is cached under the cache directory by a hash of (engine, voice, spoken
text), so a restart renders nothing new and an edited text is rendered again. A recorded
file named ``<key>.wav`` placed in the override directory (``config/prompts/``) wins over
the synthetic voice. Texts of the form ``tone:1000Hz:300ms`` are rendered as a sine tone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gateway import tts
from gateway.tts import espeak
from gateway.tts.errors import TtsError
from gateway.errors import GatewayError
from gateway.ivr_flows.engine import broadcast_key, prompt_key
from gateway.ivr_flows.flowcheck import is_template
from gateway.ivr_flows.model import DIGIT_GAP, DIGIT_PAUSE, DIGIT_TEXTS, GatewayConfig, SayTicketNode

log = logging.getLogger(__name__)
_TONE = re.compile(r"^tone:(\d{2,5})Hz:(\d{2,5})ms$")
_SILENCE = re.compile(r"^silence:(\d{2,4})ms$")  # a pause (the ticket number's groups)
# Played by the dialplan's fail-safe (gateway.pbx.dialplan) when the gateway is down or lost
# mid-call: not part of any flow, so the gateway need not be up for a caller to hear it.
FAILSAFE_NOTICE = ("failsafe-notice", "系统繁忙，正在为您转接人工服务，请稍候。")
RENDER_VERSION = "3"  # bump to invalidate every cached prompt (3: Kokoro, telephony normalisation)


class PromptError(GatewayError):
    """A prompt could not be rendered."""


@dataclass(frozen=True)
class PromptText:
    key: str
    text: str
    language: str

    @property
    def is_tone(self) -> bool:
        return bool(_TONE.match(self.text) or _SILENCE.match(self.text))

    @property
    def spoken(self) -> str:
        """The text the engine is given (Mandarin normalised for the telephone)."""
        return self.text if self.is_tone else tts.spoken_text(self.text, self.language)

    def voice(self) -> tuple[str, str]:
        """(engine, voice) that speaks this prompt now."""
        return ("sox", "tone") if self.is_tone else tts.engine_for(self.language)

    def digest_for(self, engine: str, voice: str) -> str:
        blob = f"{RENDER_VERSION}\0{engine}\0{voice}\0{self.spoken}".encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:20]

    @property
    def digest(self) -> str:
        return self.digest_for(*self.voice())


def catalogue(config: GatewayConfig) -> dict[str, PromptText]:
    """Every prompt any line can play, by catalogue key."""
    out: dict[str, PromptText] = {}
    for flow in config.flows.values():
        for pid, text in flow.prompts.items():
            if is_template(text):
                continue  # a per-call text ({date}...): rendered for each call (gateway.followup.ivr)
            key = f"{flow.id}-{pid}"
            language = flow.prompt_languages.get(pid, flow.language)
            for variant, said in prompt_variants(key, text, flow.id).items():
                out[variant] = PromptText(variant, said, language)
        for line in config.lines.values():
            if line.flow != flow.id:
                continue
            for pid, text in line.prompt_overrides().items():
                key = prompt_key(flow.id, line, pid)
                out[key] = PromptText(key, text, flow.language)
    for item in config.broadcasts:
        key = broadcast_key(item.id)
        language = config.flows[config.primary.flow].language
        out[key] = PromptText(key, item.text, language)
    key, text = FAILSAFE_NOTICE
    out[key] = PromptText(key, text, config.flows[config.primary.flow].language)
    out.update(digit_prompts(config))
    return out


def digit_prompts(config: GatewayConfig) -> dict[str, PromptText]:
    """The digits a ``say_ticket`` node reads (``<flow>-digit-0``..``9``, ``<flow>-digit-pause``),
    rendered once at apply in the flow's voice and played one after the other at call time."""
    out: dict[str, PromptText] = {}
    for flow in config.flows.values():
        if not any(isinstance(n, SayTicketNode) for n in flow.nodes.values()) or flow.language not in DIGIT_TEXTS:
            continue
        for digit, text in enumerate(DIGIT_TEXTS[flow.language]):
            key = f"{flow.id}-digit-{digit}"
            # as the voice says them (its own short silences kept: trimmed digits run together and
            # the recogniser loses some), joined with digit-gap / digit-pause (bench/ticket_no.py)
            out[key] = PromptText(key, text, flow.language)
        key = f"{flow.id}-digit-pause"
        out[key] = PromptText(key, DIGIT_PAUSE, flow.language)
        key = f"{flow.id}-digit-gap"
        out[key] = PromptText(key, DIGIT_GAP, flow.language)
    return out


# Digits as read in a phone number (1 is 幺), for prompts that say a number ({number}).
PHONE_DIGITS = {"0": "零", "1": "幺", "2": "二", "3": "三", "4": "四", "5": "五", "6": "六", "7": "七",
                "8": "八", "9": "九"}


def prompt_variants(key: str, text: str, flow_id: str) -> dict[str, str]:
    """The catalogue entries of one flow prompt: itself, or for a callback prompt with a
    placeholder its renderings: ``{minutes}`` -> ``<key>-<N>`` per step of
    :data:`gateway.callback.estimate.MINUTE_STEPS`; ``{number}`` -> ``<key>-a`` and ``<key>-b``
    (the text before and after it) and ``<flow>-digit-0`` … ``-9`` (the number said between)."""
    from gateway.callback.estimate import MINUTE_STEPS

    if "{minutes}" in text:
        return {f"{key}-{n}": text.replace("{minutes}", str(n)) for n in MINUTE_STEPS}
    if "{number}" in text:
        head, _, tail = text.partition("{number}")
        out = {f"{key}-a": head.strip() or "，", f"{key}-b": tail.strip().lstrip("，,") or "，"}
        out.update({f"{flow_id}-digit-{d}": word for d, word in PHONE_DIGITS.items()})
        return out
    return {key: text}


def _run(cmd: list[str]) -> None:
    """One sox/espeak-ng command (argv, never a shell), its failure as a :class:`PromptError`."""
    try:
        espeak.run(cmd)
    except TtsError as exc:
        raise PromptError(exc.message) from None


def synthesize(prompt: PromptText, target: Path) -> dict:
    """Render one prompt to an 8 kHz mono 16-bit WAV at ``target`` (atomically).

    Returns what spoke it (``engine``, ``voice``, ``seconds``): the engine may differ from
    :meth:`PromptText.voice` when the neural voice failed to load just now.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    pause = _SILENCE.match(prompt.text)
    if pause:
        with tempfile.TemporaryDirectory(prefix=".gw-prompt-", dir=target.parent) as tmp:
            out = Path(tmp) / "out.wav"
            _run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out), "trim", "0.0",
                  f"{int(pause.group(1)) / 1000:.3f}"])
            os.replace(out, target)
        return {"engine": "sox", "voice": "tone", "seconds": int(pause.group(1)) / 1000}
    return _synthesize_voice(prompt, target)


def _synthesize_voice(prompt: PromptText, target: Path) -> dict:
    tone = _TONE.match(prompt.text)
    if tone:
        with tempfile.TemporaryDirectory(prefix=".gw-prompt-", dir=target.parent) as tmp:
            out = Path(tmp) / "out.wav"
            hz, ms = tone.groups()
            _run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out),
                  "synth", f"{int(ms) / 1000:.3f}", "sine", hz, "vol", "0.5"])
            os.replace(out, target)
        return {"engine": "sox", "voice": "tone", "seconds": int(tone.group(2)) / 1000}
    try:
        return tts.render_wav(prompt.text, target, language=prompt.language)
    except tts.TtsError as exc:
        raise PromptError(f"prompt {prompt.key}: {exc.message}") from exc


def convert_recording(source: Path, target: Path) -> None:
    """Convert any audio file sox reads into the 8 kHz mono 16-bit WAV Asterisk plays."""
    if not Path(source).is_file():
        raise PromptError(f"{source}: no such file")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.wav")
    _run(["sox", str(source), "-r", "8000", "-c", "1", "-b", "16", str(tmp)])
    os.replace(tmp, target)


def render_all(
    config: GatewayConfig,
    *,
    out_dir: Path,
    cache_dir: Path,
    override_dir: Path,
    progress: Callable[[str], None] = lambda msg: None,
) -> dict[str, str]:
    """Make ``out_dir/<key>.wav`` for every prompt; returns key -> source ("cache", "new", "override")."""
    prompts = catalogue(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir / "prompts"
    cache.mkdir(parents=True, exist_ok=True)
    if any(tts.is_mandarin(p.language) and not p.is_tone for p in prompts.values()):
        state = tts.check(progress)  # which engine speaks Mandarin: decides the cache keys
        if state["problem"]:
            progress(f"Mandarin prompts fall back to espeak-ng {state['voice']}: {state['problem']}")
    wanted = {p.key: p.digest for p in prompts.values()}
    todo = [p for p in prompts.values() if not (override_dir / f"{p.key}.wav").is_file()
            and not (cache / f"{wanted[p.key]}.wav").is_file()]
    if todo:
        engines = sorted({"/".join(p.voice()) for p in todo})
        progress(f"rendering {len(todo)} of {len(prompts)} prompts ({', '.join(engines)})…")
        for n, p in enumerate(todo, 1):
            with tempfile.TemporaryDirectory(prefix=".gw-render-", dir=cache) as tmp:
                fresh = Path(tmp) / "new.wav"
                said = synthesize(p, fresh)
                wanted[p.key] = p.digest_for(said["engine"], said["voice"])  # a fallback is cached as such
                os.replace(fresh, cache / f"{wanted[p.key]}.wav")
            if n % 5 == 0 or n == len(todo):
                progress(f"  {n}/{len(todo)} prompts rendered")
    sources = {}
    rendered = {p.key for p in todo}
    for p in prompts.values():
        target = out_dir / f"{p.key}.wav"
        override = override_dir / f"{p.key}.wav"
        if override.is_file():
            convert_recording(override, target)
            sources[p.key] = "override"
        else:
            shutil.copyfile(cache / f"{wanted[p.key]}.wav", target)
            sources[p.key] = "new" if p.key in rendered else "cache"
    silence = out_dir / "sim" / "silence.wav"  # what a simulated caller "says" while listening
    if not silence.is_file():
        silence.parent.mkdir(parents=True, exist_ok=True)
        _run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(silence), "trim", "0.0", "10.0"])
    second = out_dir / "sim" / "silence-1s.wav"  # a simulated agent's line while it talks (media flows)
    if not second.is_file():
        _run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(second), "trim", "0.0", "1.0"])
    known = {f"{k}.wav" for k in prompts}
    for stale in out_dir.glob("*.wav"):
        if stale.name not in known:
            stale.unlink()
    progress(f"prompts ready: {len(prompts)} ({len(todo)} rendered, "
             f"{sum(v == 'override' for v in sources.values())} recorded overrides)")
    return sources


def describe(config: GatewayConfig) -> list[dict]:
    """The catalogue for the admin page: key, text, what the engine is given, who speaks it."""
    out = []
    for p in sorted(catalogue(config).values(), key=lambda p: p.key):
        engine, voice = p.voice()
        out.append({"key": p.key, "text": p.text, "spoken": p.spoken, "language": p.language,
                    "engine": engine, "voice": voice})
    return out
