"""Recording problems, detected: free space before a caller is recorded, the file after.

A full recordings disk used to leave tickets pointing at 4-byte files as if they held the
caller's words. Now, before the ``record`` step the free space of the recordings directory
is checked (``statvfs``, in a thread) against ``GATEWAY_RECORDINGS_MIN_FREE_MB``: when short,
the caller is not recorded and goes on to an agent, who takes the description. After a
recording its file is checked: missing, no larger than a WAV header, or holding much less
audio than Asterisk reported. Each problem flags the ticket (``recording_problem``), is
logged as a warning, and counts in ``/healthz`` → ``recordings`` (degraded while the disk is
short or a problem happened within the last ``window`` seconds, 15 minutes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

WAV_HEADER_BYTES = 44
BYTES_PER_MS = 16  # 8 kHz, 16-bit mono: what Asterisk's wav format writes
SHORT_FRACTION = 0.5  # a file with less than half the audio Asterisk reported is truncated
SHORT_MIN_MS = 1000  # below this, a reported length is too small to judge by


def free_mb(directory: Path) -> float:
    """Free space (for unprivileged writers) of the file system holding ``directory``, in MB."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize / 1_000_000


def file_problem(size: int | None, duration_ms: int) -> str | None:
    """Pure: why a recording of ``size`` bytes (None: missing) said to last ``duration_ms`` is bad."""
    if size is None:
        return "missing: no file"
    if size <= WAV_HEADER_BYTES:
        return f"empty: {size} bytes"
    audio_ms = (size - WAV_HEADER_BYTES) / BYTES_PER_MS
    if duration_ms >= SHORT_MIN_MS and audio_ms < duration_ms * SHORT_FRACTION:
        return f"truncated: {audio_ms / 1000:.1f} s of {duration_ms / 1000:.1f} s"
    return None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


class RecordingGuard:
    """Checks the recordings directory and files; keeps the recent problems for ``/healthz``."""

    def __init__(self, directory: Path, *, min_free_mb: float, window: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self.min_free_mb = min_free_mb
        self.window = window
        self.clock = clock
        self.last_free_mb: float | None = None
        self._problems: deque[float] = deque(maxlen=1000)

    async def space_problem(self) -> str | None:
        """None when a recording may start; else why not (``disk_low: ...``)."""
        try:
            free = await asyncio.to_thread(free_mb, self.directory)
        except OSError as exc:
            return self._problem(f"unavailable: {exc.strerror or exc}")
        self.last_free_mb = free
        if free < self.min_free_mb:
            return self._problem(f"disk_low: {free:.1f} MB free, {self.min_free_mb:g} MB needed")
        return None

    async def file_problem(self, path: Path, duration_ms: int) -> str | None:
        """None when the recording at ``path`` looks whole; else what is wrong with it."""
        problem = file_problem(await asyncio.to_thread(_size, Path(path)), duration_ms)
        return self._problem(problem) if problem else None

    def _problem(self, text: str) -> str:
        self._problems.append(self.clock())
        return text

    def recent(self) -> int:
        cutoff = self.clock() - self.window
        while self._problems and self._problems[0] < cutoff:
            self._problems.popleft()
        return len(self._problems)

    async def health(self) -> dict:
        try:
            self.last_free_mb = await asyncio.to_thread(free_mb, self.directory)
        except OSError:
            self.last_free_mb = None
        free = self.last_free_mb
        return {"free_mb": None if free is None else round(free, 1), "min_free_mb": self.min_free_mb,
                "problems_recent": self.recent()}

    def healthy(self, value: dict) -> bool:
        free = value.get("free_mb")
        # no directory yet (nothing rendered): only the problems count
        return value.get("problems_recent", 0) == 0 and (free is None or free >= self.min_free_mb)
