"""WAV files to 8 kHz mono 16-bit PCM, the only audio the recognisers take.

Reads with the stdlib ``wave`` module in blocks (so an hour-long 44.1 kHz stereo file is
never in memory twice) and converts with ``audioop`` (deprecated in 3.11 but present and
in C), falling back to plain Python (channel average, linear interpolation) where it is
gone. This is CPU work: call :func:`read_wav_8k` in a thread, not on the event loop.
"""

from __future__ import annotations

import array
import sys
import warnings
import wave
from pathlib import Path

from gateway.asr.engine import AudioFileError
from gateway.asr.wire import SAMPLE_RATE

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # type: ignore[import-not-found]
    except ImportError:  # Python 3.13+
        audioop = None

MAX_FILE_SECONDS = 3 * 3600
_BLOCK_FRAMES = 1 << 16


def read_wav_8k(path: Path) -> tuple[bytes, float]:
    """The file's audio as 8 kHz mono s16le, and its duration in seconds."""
    path = Path(path)
    try:
        handle = wave.open(str(path), "rb")
    except FileNotFoundError:
        raise AudioFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioFileError(f"{path}: is a directory, not a WAV file") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioFileError(f"{path}: not a readable WAV file ({exc or type(exc).__name__})") from None
    with handle:
        channels, width, rate, frames = (handle.getnchannels(), handle.getsampwidth(),
                                          handle.getframerate(), handle.getnframes())
        if width != 2:
            raise AudioFileError(f"{path}: {8 * width}-bit audio; only 16-bit PCM WAV is supported "
                                 f"(convert with: sox IN -r 8000 -c 1 -b 16 OUT.wav)")
        if channels < 1 or rate < 1000 or rate > 192000:
            raise AudioFileError(f"{path}: unsupported format ({channels} channels at {rate} Hz)")
        if frames / rate > MAX_FILE_SECONDS:
            raise AudioFileError(f"{path}: {frames / rate:.0f} s of audio is over the limit of {MAX_FILE_SECONDS} s")
        out = bytearray()
        state = None
        try:
            while True:
                block = handle.readframes(_BLOCK_FRAMES)
                if not block:
                    break
                block = block[: len(block) - len(block) % (2 * channels)]
                mono = _downmix(block, channels)
                if rate != SAMPLE_RATE:
                    mono, state = _resample(mono, rate, state)
                out += mono
        except (wave.Error, EOFError, OSError) as exc:
            raise AudioFileError(f"{path}: the WAV data is damaged ({exc})") from None
    return bytes(out), frames / rate


def _samples(pcm: bytes) -> array.array:
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _to_bytes(samples: array.array) -> bytes:
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def _downmix(pcm: bytes, channels: int) -> bytes:
    if channels == 1:
        return pcm
    if audioop is not None and channels == 2:
        return audioop.tomono(pcm, 2, 0.5, 0.5)
    samples = _samples(pcm)
    mono = array.array("h", (int(sum(samples[i:i + channels]) / channels)
                             for i in range(0, len(samples), channels)))
    return _to_bytes(mono)


def _resample(pcm: bytes, rate: int, state):
    if audioop is not None:
        return audioop.ratecv(pcm, 2, 1, rate, SAMPLE_RATE, state)
    # Linear interpolation, carrying the position and the last sample across blocks.
    samples = _samples(pcm)
    pos, last = state if state is not None else (0.0, samples[0] if samples else 0)
    step = rate / SAMPLE_RATE
    out = array.array("h")
    n = len(samples)
    while pos < n:
        i = int(pos)
        frac = pos - i
        left = last if i == 0 else samples[i - 1]
        right = samples[i] if i < n else left
        out.append(int(left + (right - left) * frac))
        pos += step
    return _to_bytes(out), (pos - n, samples[-1] if n else last)


def probe_wav(path: Path) -> float:
    """Check that ``path`` is a 16-bit PCM WAV we can read (header only); its duration."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with wave.open(str(path), "rb") as handle:
            width, rate, frames = handle.getsampwidth(), handle.getframerate(), handle.getnframes()
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioFileError(f"{path}: not a readable WAV file ({exc or type(exc).__name__})") from None
    if width != 2:
        raise AudioFileError(f"{path}: {8 * width}-bit audio; only 16-bit PCM WAV is supported "
                             f"(convert with: sox IN -r 8000 -c 1 -b 16 OUT.wav)")
    if rate < 1000:
        raise AudioFileError(f"{path}: unsupported sample rate {rate} Hz")
    return frames / rate


def write_wav_8k(path: Path, pcm: bytes) -> Path:
    """16-bit 8 kHz mono PCM as a WAV file (what Asterisk plays and the recognisers read)."""
    import wave

    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(pcm)
    return Path(path)
