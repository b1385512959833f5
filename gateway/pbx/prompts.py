"""Voice prompts: rendered from the flow and line texts with espeak-ng and sox.

Every prompt has a catalogue key (``main-greeting``, ``line-12315-greeting``);
Asterisk plays ``<prompts_dir>/<key>.wav`` (8 kHz, mono, 16-bit). Rendered
audio is cached by a hash of (voice, text) under the cache directory, so a
restart renders nothing new. A recorded file named ``<key>.wav`` placed in
the override directory (``config/prompts/``) wins over the synthetic voice.
Texts of the form ``tone:1000Hz:300ms`` are rendered as a sine tone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gateway.errors import GatewayError
from gateway.ivr_flows.engine import broadcast_key, prompt_key
from gateway.ivr_flows.model import GatewayConfig

log = logging.getLogger(__name__)
_TONE = re.compile(r"^tone:(\d{2,5})Hz:(\d{2,5})ms$")
VOICES = {"cmn": "cmn", "yue": "yue", "ko": "ko", "en": "en"}
RENDER_VERSION = "2"  # bump to invalidate every cached prompt


class PromptError(GatewayError):
    """A prompt could not be rendered."""


@dataclass(frozen=True)
class PromptText:
    key: str
    text: str
    language: str

    @property
    def digest(self) -> str:
        blob = f"{RENDER_VERSION}\0{self.language}\0{self.text}".encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:20]


def catalogue(config: GatewayConfig) -> dict[str, PromptText]:
    """Every prompt any line can play, by catalogue key."""
    out: dict[str, PromptText] = {}
    for flow in config.flows.values():
        for pid, text in flow.prompts.items():
            key = f"{flow.id}-{pid}"
            out[key] = PromptText(key, text, flow.prompt_languages.get(pid, flow.language))
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
    return out


def _run(cmd: list[str]) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except FileNotFoundError:
        raise PromptError(f"{cmd[0]} is not installed (run `make setup`)") from None
    except subprocess.TimeoutExpired:
        raise PromptError(f"{cmd[0]} took more than 60 s") from None
    if proc.returncode != 0:
        raise PromptError(f"{' '.join(cmd[:2])}... failed: {proc.stderr.decode(errors='replace')[-300:]}")


def synthesize(prompt: PromptText, target: Path) -> None:
    """Render one prompt to an 8 kHz mono 16-bit WAV at ``target`` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gw-prompt-") as tmp:
        raw = Path(tmp) / "raw.wav"
        out = Path(tmp) / "out.wav"
        tone = _TONE.match(prompt.text)
        if tone:
            hz, ms = tone.groups()
            _run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out),
                  "synth", f"{int(ms) / 1000:.3f}", "sine", hz, "vol", "0.5"])
        else:
            voice = VOICES.get(prompt.language, prompt.language)
            # The text is one argv element: never a shell, so no injection from config.
            _run(["espeak-ng", "-v", voice, "-s", "170", "-w", str(raw), "--", prompt.text])
            _run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)])
        os.replace(out, target)


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
    todo = [p for p in prompts.values() if not (override_dir / f"{p.key}.wav").is_file()
            and not (cache / f"{p.digest}.wav").is_file()]
    if todo:
        progress(f"rendering {len(todo)} of {len(prompts)} prompts with espeak-ng…")
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda p: synthesize(p, cache / f"{p.digest}.wav"), todo))
    sources = {}
    for p in prompts.values():
        target = out_dir / f"{p.key}.wav"
        override = override_dir / f"{p.key}.wav"
        if override.is_file():
            convert_recording(override, target)
            sources[p.key] = "override"
        else:
            shutil.copyfile(cache / f"{p.digest}.wav", target)
            sources[p.key] = "new" if p in todo else "cache"
    silence = out_dir / "sim" / "silence.wav"  # what a simulated caller "says" while listening
    if not silence.is_file():
        silence.parent.mkdir(parents=True, exist_ok=True)
        _run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(silence), "trim", "0.0", "10.0"])
    known = {f"{k}.wav" for k in prompts}
    for stale in out_dir.glob("*.wav"):
        if stale.name not in known:
            stale.unlink()
    progress(f"prompts ready: {len(prompts)} ({len(todo)} rendered, "
             f"{sum(v == 'override' for v in sources.values())} recorded overrides)")
    return sources
