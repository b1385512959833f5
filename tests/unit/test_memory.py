"""Issue 12 (soak): the gateway's memory under steady load.

GATEWAY_MEMORY_DEBUG (tracemalloc + gc reports, development only) and the periodic
``malloc_trim`` (gateway/allocator.py) that bounds the RSS glibc keeps after frees."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from pathlib import Path

import pytest

from gateway.allocator import MallocTrimmer
from gateway.memdebug import MemoryDebug, mallinfo, object_counts, thread_summary, vm_status
from gateway.settings import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _base(tmp_path) -> dict:
    return {"GATEWAY_STATE_DIR": str(tmp_path / "var"), "GATEWAY_CONFIG_DIR": str(CONFIG)}


def test_given_the_memory_settings_when_parsed_then_debug_is_off_and_trim_on_by_default(tmp_path):
    s = load_settings(_base(tmp_path))
    assert (s.memory_debug, s.memory_debug_interval, s.malloc_trim_interval) == (False, 60.0, 60.0)
    s = load_settings({**_base(tmp_path), "GATEWAY_MEMORY_DEBUG": "true", "GATEWAY_MEMORY_DEBUG_INTERVAL": "15",
                       "GATEWAY_MALLOC_TRIM_INTERVAL": "0"})
    assert (s.memory_debug, s.memory_debug_interval, s.malloc_trim_interval) == (True, 15.0, 0.0)
    for name, bad in (("GATEWAY_MEMORY_DEBUG", "sometimes"), ("GATEWAY_MEMORY_DEBUG_INTERVAL", "0"),
                      ("GATEWAY_MALLOC_TRIM_INTERVAL", "-1"), ("GATEWAY_MALLOC_TRIM_INTERVAL", "often")):
        with pytest.raises(Exception, match=name):
            load_settings({**_base(tmp_path), name: bad})


class Grower:
    """A type of our own, so the gc count by type shows it."""


async def test_given_memory_debug_when_objects_are_kept_then_the_report_names_their_site_and_type(caplog):
    debug = MemoryDebug(3600, frames=3)
    kept: list = []
    debug.start()
    try:
        assert tracemalloc.is_tracing()
        kept.extend(Grower() for _ in range(5000))
        kept.extend(bytearray(2000) for _ in range(500))  # ~1 MB from one line
        with caplog.at_level(logging.WARNING, logger="gateway.memdebug"):
            text = await debug.report()
    finally:
        await debug.stop()
    assert not tracemalloc.is_tracing()
    assert text in caplog.text
    growth = text.split("growth sites", 1)[1].split("gc objects", 1)[0]
    # the bytearrays' line among the top sites (after a long test session other sites may grow
    # or shrink as much in the same window: its rank is not asserted), named by its allocation site
    sites = [line for line in growth.splitlines()[1:] if ") " in line]
    ours = [line for line in sites if line.split(") ", 1)[1].startswith("test_memory.py:")]
    assert any(float(line.split()[0]) > 900 for line in ours), growth
    # gc objects by type: the change since the previous report, in the table of the most numerous
    # types (alone) or in the line of the types that grew most (after a long session, when sets and
    # cells of other tests outnumber 5000 Growers)
    table = [line for line in text.splitlines() if line.endswith(f"{__name__}.Grower")]
    assert (table and table[0].split()[1] == "+5000") or f"{__name__}.Grower +5000 " in text, text
    assert "VmRSS" in text and "MB" in text and "python threads:" in text
    assert len(kept) == 5500


async def test_given_memory_debug_when_sigusr2_arrives_then_a_report_is_logged(caplog):
    import os
    import signal

    debug = MemoryDebug(3600, frames=1)
    debug.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.memdebug"):
            os.kill(os.getpid(), signal.SIGUSR2)
            for _ in range(200):
                if debug.reports:
                    break
                await asyncio.sleep(0.05)
            async with debug._lock:  # the report in flight has been logged
                pass
            await asyncio.sleep(0)
    finally:
        await debug.stop()
    assert debug.reports == 1
    assert "memory report 1" in caplog.text


def test_given_this_process_when_read_then_the_helpers_report_real_figures():
    vm = vm_status()
    assert vm["VmRSS"] > 0 and vm["Threads"] >= 1
    mi = mallinfo()
    if mi is not None:  # glibc
        assert mi["in_use_kb"] > 0
    counts = object_counts()
    assert counts["dict"] > 0
    assert "MainThread" in thread_summary()


async def test_given_the_trimmer_when_started_then_it_trims_off_the_loop_every_interval():
    import threading

    calls: list[tuple[int, str]] = []
    loop_thread = threading.current_thread().name

    def fake_trim(pad: int) -> int:
        calls.append((pad, threading.current_thread().name))
        return 1

    trimmer = MallocTrimmer(0.01, trim=fake_trim)
    trimmer.start()
    try:
        for _ in range(400):
            if trimmer.runs >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await trimmer.stop()
    assert trimmer.runs >= 2 and trimmer.released == trimmer.runs
    assert all(pad == 0 and name != loop_thread for pad, name in calls)
    assert trimmer.stats()["available"] is True


async def test_given_interval_zero_or_no_glibc_when_started_then_nothing_runs():
    off = MallocTrimmer(0, trim=lambda pad: 1)
    off.start()
    assert off._task is None
    missing = MallocTrimmer(1, trim=None)
    missing.start()
    assert missing._task is None and await missing.trim_once() is False and not missing.available


async def test_given_glibc_when_trimmed_then_the_real_malloc_trim_runs():
    trimmer = MallocTrimmer(60)
    if not trimmer.available:
        pytest.skip("no glibc malloc_trim here")
    junk = [bytearray(4096) for _ in range(20000)]  # ~80 MB in small chunks, freed below
    del junk
    await trimmer.trim_once()
    assert trimmer.runs == 1 and trimmer.last_ms is not None


def test_given_the_arena_limit_when_applied_then_mallopt_gets_it_unless_the_environment_has_one():
    from gateway.allocator import M_ARENA_MAX, limit_arenas

    calls: list[tuple[int, int]] = []

    def mallopt(param: int, value: int) -> int:
        calls.append((param, value))
        return 1

    assert limit_arenas(2, {}, mallopt=mallopt) == "at most 2 malloc arenas"
    assert calls == [(M_ARENA_MAX, 2)]
    assert "environment" in limit_arenas(2, {"MALLOC_ARENA_MAX": "4"}, mallopt=mallopt)
    assert "default" in limit_arenas(0, {}, mallopt=mallopt)
    assert "no glibc" in limit_arenas(2, {}, mallopt=None)
    assert calls == [(M_ARENA_MAX, 2)]  # nothing more was set


def test_given_the_arena_setting_when_parsed_then_it_is_a_bounded_whole_number(tmp_path):
    assert load_settings(_base(tmp_path)).malloc_arena_max == 2
    assert load_settings({**_base(tmp_path), "GATEWAY_MALLOC_ARENA_MAX": "0"}).malloc_arena_max == 0
    for bad in ("-1", "two", "65", "1.5"):
        with pytest.raises(Exception, match="GATEWAY_MALLOC_ARENA_MAX"):
            load_settings({**_base(tmp_path), "GATEWAY_MALLOC_ARENA_MAX": bad})
    with pytest.raises(Exception, match="GATEWAY_MEMORY_DEBUG_FRAMES"):
        load_settings({**_base(tmp_path), "GATEWAY_MEMORY_DEBUG_FRAMES": "30"})


def test_given_glibc_when_the_arenas_are_limited_then_mallopt_accepts_it():
    from gateway.allocator import limit_arenas

    done = limit_arenas(8, {})  # this test process: 8 is glibc's own cap on 1 core
    assert done in ("at most 8 malloc arenas", "no glibc mallopt: arenas not limited")
