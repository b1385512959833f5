"""Give glibc's freed heap memory back to the system now and then (``malloc_trim``).

The gateway frees most of what a call allocates (AGI lines, AMI events, audio frames, database
rows), but glibc keeps freed chunks in its arenas (one per thread that allocated: the event loop,
the ``asyncio.to_thread`` workers, one thread per aiosqlite connection) and returns a page only
when the free space sits at the top of a heap. Measured under steady SIP load (bench/soak.py,
bench/README.md, 2026-12-02), the arenas grew by more than what was in use in them (free space
in the arenas +5.2 MB, in use +3.1 MB in 9 minutes; 15 threads, up to 16 arenas on 2 cores).
Fewer arenas (:func:`limit_arenas`, before the threads start) let every thread reuse the same
freed chunks; ``malloc_trim(0)`` releases every whole free page of every arena
(``madvise(MADV_DONTNEED)``), so the RSS follows what is really in use.

It runs in a worker thread (it walks the arenas under their locks: 20-500 ms measured on a loaded
machine, during which other threads may wait for malloc),
every GATEWAY_MALLOC_TRIM_INTERVAL seconds (0 = never). Without glibc (musl, macOS) it does
nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from collections.abc import Callable

from gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)


def _load_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded: libc's, without ldconfig
    except OSError:
        return None
    fn = getattr(libc, "malloc_trim", None)
    if fn is None:
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


M_ARENA_MAX = -8  # glibc <malloc.h>


def limit_arenas(limit: int, environ: dict | None = None, *, mallopt: Callable[[int, int], int] | None | bool = True
                 ) -> str:
    """At most ``limit`` glibc malloc arenas for this process (``mallopt(M_ARENA_MAX)``), unless
    the operator set MALLOC_ARENA_MAX in the environment (glibc read it already). Call it before
    any thread starts: an arena is created per thread that allocates (up to 8 per core), and
    each keeps its own free memory. Returns what was done, for the log."""
    import os

    env = os.environ if environ is None else environ
    if env.get("MALLOC_ARENA_MAX"):
        return f"MALLOC_ARENA_MAX={env['MALLOC_ARENA_MAX']} (environment)"
    if limit <= 0:
        return "glibc's default arenas (GATEWAY_MALLOC_ARENA_MAX=0)"
    if mallopt is True:
        try:
            mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
        except OSError:
            mallopt = None
    if not mallopt:
        return "no glibc mallopt: arenas not limited"
    if hasattr(mallopt, "argtypes"):
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return f"at most {limit} malloc arenas" if mallopt(M_ARENA_MAX, limit) == 1 else "mallopt(M_ARENA_MAX) refused"


class MallocTrimmer:
    """Calls ``malloc_trim(0)`` every ``interval`` seconds in a worker thread; start()/stop()."""

    def __init__(self, interval: float, *, trim: Callable[[int], int] | None | bool = True) -> None:
        self.interval = interval
        self._trim = _load_trim() if trim is True else (trim or None)
        self._task: asyncio.Task | None = None
        self.runs = 0
        self.released = 0  # runs where glibc said it gave memory back
        self.last_ms: float | None = None

    @property
    def available(self) -> bool:
        return self._trim is not None

    def start(self) -> None:
        if self.interval > 0 and self._trim is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._every(), name="malloc-trim")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def trim_once(self) -> bool:
        """One ``malloc_trim(0)`` off the event loop; True when memory was given back."""
        if self._trim is None:
            return False
        t0 = time.perf_counter()
        got = await asyncio.to_thread(self._trim, 0)
        self.last_ms = round((time.perf_counter() - t0) * 1000, 1)
        self.runs += 1
        self.released += bool(got)
        return bool(got)

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.trim_once()
            except Exception:  # noqa: BLE001 - never takes the gateway down
                log.exception("malloc_trim failed")

    def stats(self) -> dict:
        return {"interval_s": self.interval, "available": self.available, "runs": self.runs,
                "released": self.released, "last_ms": self.last_ms}
