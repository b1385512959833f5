"""24 kHz float speech to the 8 kHz mono 16-bit WAV Asterisk plays (numpy/scipy, no I/O but the write)."""

from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

import numpy as np

PHONE_RATE = 8_000
_PEAK = 0.89  # about -1 dBFS: loud enough on a phone line, no clipping after G.711


def trim(audio: np.ndarray, rate: int, *, head: float = 0.05, tail: float = 0.15) -> np.ndarray:
    """Cut leading and trailing silence, keeping ``head``/``tail`` seconds around the speech."""
    level = np.abs(audio)
    peak = float(level.max()) if audio.size else 0.0
    if peak == 0.0:
        return audio
    loud = np.flatnonzero(level > 0.02 * peak)
    start = max(0, loud[0] - int(head * rate))
    end = min(audio.size, loud[-1] + int(tail * rate))
    return audio[start:end]


def to_phone(audio: np.ndarray, rate: int) -> np.ndarray:
    """Trimmed, resampled to 8 kHz (``rate`` a multiple of it), peak-normalised int16."""
    from scipy.signal import resample_poly

    if rate % PHONE_RATE:
        raise ValueError(f"{rate} Hz is not a multiple of {PHONE_RATE} Hz")
    x = resample_poly(trim(audio.astype(np.float64), rate), 1, rate // PHONE_RATE)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0:
        x = x * (_PEAK / peak)
    return (np.clip(x, -1.0, 1.0) * 32767).astype("<i2")


def write_wav(pcm: np.ndarray, path: Path, rate: int = PHONE_RATE) -> float:
    """Write mono 16-bit ``pcm`` to ``path`` atomically; returns its duration in seconds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tts-", suffix=".wav", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh, wave.open(fh, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.astype("<i2").tobytes())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return pcm.size / rate


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()
