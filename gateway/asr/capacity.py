"""How many live speech streams this machine carries, from measurement (pure logic, no I/O).

At start each worker decodes a short built-in clip (``gateway/asr/calibration/<lang>.wav``)
exactly as it decodes a live caller (same chunk size, same partial results): CPU seconds
over audio seconds is the engine's real-time factor (RTF) for one live stream. One worker
is one process using one core, so the cores the recognisers can use are
``min(usable cores, workers)``; of those only ``headroom`` (default 0.6) is given to live
streams (Asterisk, the gateway itself and noisy neighbours need the rest):

    streams(language) = floor(min(cores, workers) * headroom / RTF(language))

(at least 1 while one stream decodes faster than real time: it keeps up on a core of its
own), capped by ``max_streams`` when the configuration sets one. Admission with several
languages counts cost, not heads: each live stream costs its language's RTF of a core, and
a new one is admitted while the total stays within ``min(cores, workers) * headroom``
(and the count within the cap). Before the calibration has finished, the cap (or one
stream per worker, when there is no cap) is the limit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

DEFAULT_HEADROOM = 0.6
MIN_RTF = 0.005  # a measurement below this is noise (a clip of silence): never divide by ~0


def usable_cores() -> int:
    """CPUs this process may run on (the affinity mask, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Capacity:
    cores: int  # usable CPUs on this machine
    workers: int
    headroom: float
    rtf: dict[str, float] = field(default_factory=dict)  # language -> CPU s per audio s of one live stream
    cap: int | None = None  # max_streams from the configuration, if any
    calibrated: bool = False
    # Test harnesses only (GATEWAY_SPEECH_MIN_STREAMS): live streams admitted whatever was
    # measured, so that a test placing three speaking callers at once does not depend on how
    # busy the shared machine was during calibration. Never set in production.
    floor: int = 0

    @property
    def budget(self) -> float:
        """Cores' worth of decoding given to live streams."""
        return min(self.cores, self.workers) * self.headroom

    def streams(self, language: str) -> int:
        """Live streams of ``language`` alone this machine keeps in real time."""
        if not self.calibrated or language not in self.rtf:
            return self.fallback()
        rtf = max(self.rtf[language], MIN_RTF)
        n = math.floor(self.budget / rtf + 1e-9)
        if n == 0 and rtf < 1.0:
            n = 1  # one stream still keeps up on a core of its own (a small or busy machine)
        n = max(n, self.floor)
        return n if self.cap is None else min(n, self.cap)

    def fallback(self) -> int:
        """The limit before any measurement: the configured cap, else one stream per worker."""
        return self.cap if self.cap is not None else self.workers

    def cost(self, language: str) -> float:
        """A core's share one live stream of ``language`` takes (the budget divided evenly when unmeasured)."""
        if self.calibrated and language in self.rtf:
            return max(self.rtf[language], MIN_RTF)
        return self.budget / max(1, self.fallback())

    def admits(self, live: list[str], language: str) -> bool:
        """Whether one more live stream of ``language`` fits beside the ``live`` ones (their languages)."""
        if self.cap is not None and len(live) >= self.cap:
            return False
        if len(live) < self.floor:
            return True
        if not self.calibrated or language not in self.rtf:
            return len(live) < self.fallback()
        if not live:
            return self.streams(language) >= 1
        used = sum(self.cost(lang) for lang in live)
        return used + self.cost(language) <= self.budget + 1e-9

    def to_json(self) -> dict:
        return {
            "calibrated": self.calibrated,
            "cores": self.cores,
            "workers": self.workers,
            "headroom": self.headroom,
            "rtf": {lang: round(v, 3) for lang, v in sorted(self.rtf.items())},
            "cores_over_rtf": {lang: round(min(self.cores, self.workers) / max(v, MIN_RTF), 1)
                               for lang, v in sorted(self.rtf.items())},
            "max_streams": {lang: self.streams(lang) for lang in sorted(self.rtf)} if self.calibrated else {},
            "cap": self.cap,
            **({"floor": self.floor} if self.floor else {}),
            "fallback": None if self.calibrated else self.fallback(),
        }


def combine(measurements: list[float]) -> float:
    """One RTF from the workers' measurements of the same clip: the highest (the slowest
    worker decides whether a stream on it keeps up; a noisy VM errs on the safe side)."""
    values = [m for m in measurements if m is not None and math.isfinite(m) and m >= 0]
    if not values:
        raise ValueError("no calibration measurement")
    return max(values)
