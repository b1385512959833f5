"""espeak-ng + sox: Korean prompts, and Mandarin only when the neural voice cannot load.

The text is one argv element after ``--``: never a shell, so nothing in a prompt runs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from gateway.tts.errors import TtsError

MANDARIN_FALLBACK = "cmn-latn-pinyin"  # Mandarin phonemes; `cmn` reads its pinyin in English
VOICES = {"cmn": MANDARIN_FALLBACK, "zh": MANDARIN_FALLBACK, "yue": "yue", "ko": "ko", "en": "en"}


def run(cmd: list[str], *, timeout: float = 60) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise TtsError(f"{cmd[0]} is not installed (run `make setup`)") from None
    except subprocess.TimeoutExpired:
        raise TtsError(f"{cmd[0]} took more than {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise TtsError(f"{' '.join(cmd[:2])}... failed: {proc.stderr.decode(errors='replace')[-300:]}")


def render(text: str, path: Path, voice: str) -> None:
    """``text`` spoken by espeak-ng's ``voice`` into an 8 kHz mono 16-bit WAV at ``path`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gw-espeak-", dir=path.parent) as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        run(["espeak-ng", "-v", voice, "-s", "170", "-w", str(raw), "--", text])
        run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)])
        os.replace(out, path)


def phonemes(text: str, voice: str = MANDARIN_FALLBACK) -> str:
    """What espeak-ng would say, as its phoneme mnemonics (``(en)`` marks English)."""
    proc = subprocess.run(["espeak-ng", "-v", voice, "-q", "-x", "--", text],
                          capture_output=True, timeout=30, check=True)
    return proc.stdout.decode("utf-8", errors="replace")
