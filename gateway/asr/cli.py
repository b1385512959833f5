"""``gateway transcribe FILE [--lang ko] [--json]``: one file through the real engine.

Progress lines go to stderr, the transcript to stdout (human text or JSON). Exit status 0
on success; 2 with a one-line reason for a missing or unreadable file, a bad config, an
unknown language or a language without a model; 1 if recognition itself failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import TextIO

from gateway.asr.audio import probe_wav
from gateway.asr.config import load_speech_config
from gateway.asr.engine import AudioFileError, EngineUnavailable, SpeechInputError, Transcript
from gateway.asr.vosk_engine import VoskEngine, default_cache_dir
from gateway.errors import ConfigError, GatewayError


def format_transcript(t: Transcript) -> str:
    conf = "-" if t.confidence is None else f"{t.confidence:.2f}"
    lines = [
        f"text: {t.text}",
        f"language: {t.language}  model: {t.model}  confidence: {conf}",
        f"audio: {t.audio_seconds:.2f} s  decode: {t.decode_seconds:.2f} s  RTF: {t.rtf:.2f}",
        f"words ({len(t.words)}):",
    ]
    lines += [f"  {w.start:7.2f} {w.end:7.2f}  {w.conf:4.2f}  {w.word}" for w in t.words]
    return "\n".join(lines)


async def transcribe_cli(path, language: str, config_path, *, as_json: bool = False,
                         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr

    def fail(message: str, code: int = 2) -> int:
        print(f"gateway transcribe: {message}", file=err)
        return code

    try:
        await asyncio.to_thread(probe_wav, Path(path))  # file reads: off the event loop
        config = await asyncio.to_thread(load_speech_config, Path(config_path))
    except AudioFileError as exc:
        return fail(exc.message)
    except ConfigError as exc:
        return fail(exc.message)
    if language not in config.models:
        known = ", ".join(sorted(config.models)) or "none"
        return fail(f"unknown language {language!r}; {config_path} has models for: {known}")
    # One worker is enough for one file; load only the model asked for.
    config = dataclasses.replace(config, workers=1, models={language: config.models[language]})
    engine = VoskEngine(config, cache_dir=await asyncio.to_thread(default_cache_dir), calibrate=False)
    try:
        await engine.start(progress=lambda line: print(line, file=err, flush=True))
        if not engine.available(language):
            return fail(f"no speech model for {language} is available (see above)")
        try:
            transcript = await engine.transcribe_file(Path(path), language)
        except (AudioFileError, SpeechInputError) as exc:
            return fail(exc.message)
        except EngineUnavailable as exc:
            return fail(exc.message, 1)
        except GatewayError as exc:
            return fail(exc.message, 1)
    finally:
        await engine.close()
    if as_json:
        print(json.dumps(transcript.to_json(), ensure_ascii=False, indent=2), file=out)
    else:
        print(format_transcript(transcript), file=out)
    return 0
