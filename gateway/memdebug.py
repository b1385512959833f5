"""GATEWAY_MEMORY_DEBUG (development only): what grows in the gateway process.

When on, ``tracemalloc`` traces every Python allocation with a few frames, and every
GATEWAY_MEMORY_DEBUG_INTERVAL seconds (and on SIGUSR2) the gateway logs, on the logger
``gateway.memdebug`` at WARNING:

* the top allocation sites by growth since the previous report (size and count deltas),
* the gc-tracked objects by type (top 15, with their change since the previous report),
* the traced Python total against VmRSS, and glibc's own view (``mallinfo2``: heap bytes in
  use vs free in the arenas, mmapped bytes), so that "Python objects grow" and "the allocator
  holds freed memory" can be told apart.

Off (the default) nothing of this is imported or runs. Tracing costs CPU and memory (the traced
total includes tracemalloc's own bookkeeping, reported separately): never in production.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import logging
import re
import signal
import threading
import time
import tracemalloc
from pathlib import Path

from gateway.tasks import cancel_and_wait

log = logging.getLogger("gateway.memdebug")

FRAMES = 4
TOP = 15


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _libc():
    try:
        return ctypes.CDLL(None)  # the symbols already loaded: libc's, without ldconfig
    except OSError:
        return None


def mallinfo() -> dict | None:
    """glibc's heap figures in kB (None where glibc or mallinfo2 is absent)."""
    libc = _libc()
    fn = getattr(libc, "mallinfo2", None) if libc is not None else None
    if fn is None:
        return None
    fn.restype = _MallInfo2
    mi = fn()
    return {"arena_kb": mi.arena // 1024, "in_use_kb": mi.uordblks // 1024, "free_kb": mi.fordblks // 1024,
            "mmap_kb": mi.hblkhd // 1024, "top_pad_kb": mi.keepcost // 1024}


def vm_status(path: Path = Path("/proc/self/status")) -> dict[str, int]:
    """VmRSS, VmHWM, VmData, RssAnon (kB) and Threads of this process."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for key in ("VmRSS", "VmHWM", "VmData", "RssAnon", "Threads"):
        m = re.search(rf"^{key}:\s+(\d+)", text, re.M)
        if m:
            out[key] = int(m.group(1))
    return out


def object_counts() -> collections.Counter:
    """gc-tracked objects by type name (module.qualname for classes outside builtins)."""
    counts: collections.Counter = collections.Counter()
    for obj in gc.get_objects():
        t = type(obj)
        mod = t.__module__
        counts[t.__qualname__ if mod == "builtins" else f"{mod}.{t.__qualname__}"] += 1
    return counts


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1048576:.1f} MB"


def _mb_kb(kb: float | None) -> str:
    return "?" if kb is None else f"{kb / 1024:.1f} MB"


def thread_summary() -> str:
    """Live Python threads by name (numbers stripped), and the highest "Thread-N" seen: how many
    unnamed threads were ever started (each new thread may take a glibc malloc arena of its own)."""
    kinds: collections.Counter = collections.Counter()
    highest = 0
    for t in threading.enumerate():
        m = re.match(r"Thread-(\d+)", t.name)
        if m:
            highest = max(highest, int(m.group(1)))
        kinds[re.sub(r"\d+", "N", t.name)] += 1
    return f"highest Thread-N {highest}; live: " + ", ".join(f"{n} x {k}" for k, n in kinds.most_common())


class MemoryDebug:
    """Periodic tracemalloc/gc reports; start() in the running loop, stop() at shutdown."""

    def __init__(self, interval: float, *, frames: int = FRAMES, top: int = TOP, logger=log, trimmer=None) -> None:
        self.interval, self.frames, self.top, self.log = interval, frames, top, logger
        self.trimmer = trimmer  # gateway.allocator.MallocTrimmer: its figures in each report
        self._prev: tracemalloc.Snapshot | None = None
        self._prev_counts: collections.Counter = collections.Counter()
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._started = time.monotonic()
        self.reports = 0

    def _filters(self) -> list[tracemalloc.Filter]:
        return [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"), tracemalloc.Filter(False, "<unknown>")]

    def start(self) -> None:
        if self.frames > 0:
            if not tracemalloc.is_tracing():
                tracemalloc.start(self.frames)
            self._prev = tracemalloc.take_snapshot().filter_traces(self._filters())
        self._prev_counts = object_counts()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGUSR2, self.trigger)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / no signals
            pass
        self._task = loop.create_task(self._every(), name="memory-debug")
        self.log.warning("memory debug on: %s, a report every %.0f s and on SIGUSR2",
                         f"tracemalloc with {self.frames} frames" if self.frames else "no tracemalloc (frames 0)",
                         self.interval)

    def trigger(self) -> None:
        asyncio.get_running_loop().create_task(self.report())

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.report()
            except Exception:  # noqa: BLE001 - a debug report never takes the gateway down
                self.log.exception("memory debug report failed")

    async def stop(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR2)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        await cancel_and_wait(self._task)
        if self.frames > 0 and tracemalloc.is_tracing():
            tracemalloc.stop()

    async def report(self) -> str:
        """One report (also returned, for tests): growth sites, object counts, traced vs RSS."""
        async with self._lock:
            text = await asyncio.to_thread(self._report)
        self.log.warning("%s", text)
        return text

    def _report(self) -> str:
        tracing = self.frames > 0 and tracemalloc.is_tracing()
        snap = tracemalloc.take_snapshot().filter_traces(self._filters()) if tracing else None
        unreachable = gc.collect()  # count the live objects only (cycles not yet collected are no growth)
        counts = object_counts()
        prev, self._prev = self._prev, snap
        prev_counts, self._prev_counts = self._prev_counts, counts
        self.reports += 1
        traced, peak = tracemalloc.get_traced_memory() if tracing else (0, 0)
        overhead = tracemalloc.get_tracemalloc_memory() if tracing else 0
        vm = vm_status()
        mi = mallinfo()
        # MB with a decimal: the log formatter masks runs of 6+ digits (phone numbers, gateway.masking)
        lines = [f"memory report {self.reports} at +{time.monotonic() - self._started:.0f} s: "
                 + (f"traced {_mb(traced)} (peak {_mb(peak)}, tracemalloc's own {_mb(overhead)}), " if tracing
                    else "not traced, ")
                 + f"VmRSS {_mb_kb(vm.get('VmRSS'))}, RssAnon {_mb_kb(vm.get('RssAnon'))}, "
                 f"VmHWM {_mb_kb(vm.get('VmHWM'))}, threads {vm.get('Threads')}"
                 + (f"; malloc arenas {_mb_kb(mi['arena_kb'])} (in use {_mb_kb(mi['in_use_kb'])}, "
                    f"free {_mb_kb(mi['free_kb'])}), mmapped {_mb_kb(mi['mmap_kb'])}" if mi else "")]
        if self.trimmer is not None:
            lines.append(f"malloc_trim: {self.trimmer.stats()}")
        lines.append(f"python threads: {thread_summary()}")
        if prev is not None and snap is not None:
            stats = snap.compare_to(prev, "traceback")
            grew = sorted(stats, key=lambda s: -s.size_diff)[: self.top]
            lines.append(f"top {len(grew)} growth sites since the previous report "
                         f"(total {sum(s.size_diff for s in stats) / 1024:+.0f} kB):")
            for s in grew:
                frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(s.traceback))  # allocation site first
                lines.append(f"  {s.size_diff / 1024:+9.1f} kB {s.count_diff:+7d} blocks "
                             f"(now {s.size / 1024:.1f} kB in {s.count}) {frames}")
        lines.append(f"gc objects by type (top {self.top}, change since the previous report):")
        for name, n in counts.most_common(self.top):
            lines.append(f"  {n:9d} {n - prev_counts.get(name, 0):+8d} {name}")
        growing = sorted(((n - prev_counts.get(name, 0), name) for name, n in counts.items()), reverse=True)
        lines.append(f"gc objects that grew most (after a full collection that freed {unreachable}): "
                     + ", ".join(f"{name} {d:+d} (now {counts[name]})" for d, name in growing[: self.top] if d > 0))
        return "\n".join(lines)
