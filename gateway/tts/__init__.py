"""Speech out: the gateway's prompts, in Mandarin a caller understands.

``render_wav`` normalises a Mandarin text for the telephone (:mod:`gateway.tts.normalize`),
speaks it with Kokoro-82M (:mod:`gateway.tts.kokoro`) and writes the 8 kHz mono 16-bit WAV
Asterisk plays; espeak-ng speaks other languages (Korean) and Mandarin only when Kokoro
cannot load (:mod:`gateway.tts.engine` says why, in the log, ``/healthz`` and the banner).
Blocking: call it from a thread, never on the event loop.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gateway.tts import espeak
from gateway.tts.engine import DEFAULT_VOICE, check, configure, status
from gateway.tts.errors import ModelError, TtsError
from gateway.tts.normalize import normalize_zh

__all__ = ["render_wav", "status", "check", "configure", "spoken_text", "is_mandarin", "engine_for",
           "normalize_zh", "TtsError", "ModelError", "DEFAULT_VOICE", "MANDARIN"]

log = logging.getLogger(__name__)
MANDARIN = frozenset({"zh", "cmn", "zh-cn", "cmn-hans", "zh-cmn"})


def is_mandarin(language: str) -> bool:
    return language.lower() in MANDARIN


def spoken_text(text: str, language: str) -> str:
    """What the engine is given: Mandarin normalised for the telephone, other languages as they are."""
    return normalize_zh(text) if is_mandarin(language) else text


def engine_for(language: str, voice: str = DEFAULT_VOICE) -> tuple[str, str]:
    """(engine, voice) that would speak ``language`` now, from the last known state (no I/O)."""
    if not is_mandarin(language):
        return "espeak", espeak.VOICES.get(language, language)
    state = status()
    if state["engine"] == "espeak":
        return "espeak", espeak.MANDARIN_FALLBACK
    return "kokoro", voice


def render_wav(text: str, path: Path, *, voice: str = DEFAULT_VOICE, language: str = "zh",
               speed: float = 1.0) -> dict:
    """Speak ``text`` into ``path`` (8 kHz mono 16-bit WAV); returns engine, voice and seconds."""
    from gateway.tts import engine

    path = Path(path)
    spoken = spoken_text(text, language)
    if is_mandarin(language):
        kokoro = engine.voice()
        if kokoro is not None:
            from gateway.tts.audio import to_phone, write_wav
            from gateway.tts.kokoro import SAMPLE_RATE

            try:
                audio = kokoro.synthesize(spoken, voice=voice, speed=speed)
            except ModelError:
                raise
            except TtsError as exc:
                log.warning("Kokoro could not say %r (%s); espeak-ng says it", text[:40], exc)
            else:
                seconds = write_wav(to_phone(audio, SAMPLE_RATE), path)
                return {"engine": "kokoro", "voice": voice, "seconds": round(seconds, 3)}
        fallback = espeak.MANDARIN_FALLBACK
    else:
        fallback = espeak.VOICES.get(language, language)
    espeak.render(spoken, path, fallback)
    from gateway.tts.audio import wav_seconds

    return {"engine": "espeak", "voice": fallback, "seconds": round(wav_seconds(path), 3)}
