"""Which voice speaks Mandarin in this process, loaded once, and why not when it cannot.

Theory of operation: the neural voice (Kokoro) is the Mandarin engine; espeak-ng's
``cmn-latn-pinyin`` is only the fallback when Kokoro cannot load (a wheel missing, the
model file not the pinned one, onnxruntime failing). :func:`check` prepares the model file
(assembles and verifies it, no session) and is what ``gateway setup`` and the prompt
renderer call first; :func:`voice` loads the session on first use, once, under a lock,
and every thread shares it. The outcome is kept for :func:`status` (which does no I/O:
``/healthz`` and the ``make run`` banner read it on the event loop), and the fallback is
logged once with its reason.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from gateway.tts.errors import ModelError
from gateway.tts.espeak import MANDARIN_FALLBACK

log = logging.getLogger(__name__)

DEFAULT_VOICE = "zf_xiaobei"
Progress = Callable[[str], None]

_lock = threading.Lock()
_state: dict = {"engine": "kokoro", "voice": DEFAULT_VOICE, "problem": None, "loaded": False,
                "checked": False, "model": None, "load_seconds": None}
_voice = None  # the one KokoroVoice of this process
_models_dir: Path | None = None


def configure(models_dir: Path | None) -> None:
    """Where the assembled model lives (default: ``<GATEWAY_CACHE_DIR>/models``)."""
    global _models_dir, _voice
    with _lock:
        _models_dir = Path(models_dir) if models_dir else None
        _voice = None
        _state.update(engine="kokoro", problem=None, loaded=False, checked=False, model=None)


def models_dir() -> Path:
    if _models_dir is not None:
        return _models_dir
    from gateway.settings import load_settings

    return load_settings(dict(os.environ)).cache_dir / "models"


def _fail(problem: str) -> None:
    if _state["problem"] != problem:
        log.warning("Mandarin prompts fall back to espeak-ng %s: %s", MANDARIN_FALLBACK, problem)
    _state.update(engine="espeak", voice=MANDARIN_FALLBACK, problem=problem, loaded=False, checked=True)


def _check_locked(progress: Progress) -> Path | None:
    from gateway.tts import model

    try:
        for name in ("onnxruntime", "misaki", "jieba", "pypinyin", "scipy"):
            if __import__("importlib.util").util.find_spec(name) is None:
                raise ModelError(f"the Python package {name} is not installed (pip install -e '.[tts]')")
        path = model.ensure_model(models_dir(), progress)
        from gateway.tts.kokoro import load_voice, load_vocab

        load_vocab()
        load_voice(DEFAULT_VOICE)
    except ModelError as exc:
        _fail(exc.message)
        return None
    _state.update(checked=True, model=str(path))
    if _voice is None:
        _state.update(engine="kokoro", voice=DEFAULT_VOICE, problem=None)
    return path


def check(progress: Progress = lambda msg: None) -> dict:
    """Assemble/verify the model (blocking, no session); returns :func:`status`."""
    with _lock:
        if not _state["checked"]:
            _check_locked(progress)
    return status()


def voice():
    """The process's KokoroVoice, loaded on first use; None when Mandarin falls back to espeak."""
    global _voice
    with _lock:
        if _voice is not None:
            return _voice
        if _state["checked"] and _state["engine"] == "espeak":
            return None
        path = _check_locked(lambda msg: log.info("%s", msg))
        if path is None:
            return None
        from gateway.tts.kokoro import KokoroVoice

        started = time.monotonic()
        try:
            _voice = KokoroVoice(path, threads=2)
        except ModelError as exc:
            _fail(exc.message)
            return None
        _state.update(engine="kokoro", voice=DEFAULT_VOICE, problem=None, loaded=True,
                      load_seconds=round(time.monotonic() - started, 2))
        log.info("Mandarin voice: Kokoro-82M v1.0 int8 loaded in %.1f s from %s", _state["load_seconds"], path)
        return _voice


def status() -> dict:
    """``{"engine": "kokoro"|"espeak", "voice": ..., "problem": None|reason, ...}``; no I/O."""
    return dict(_state)
