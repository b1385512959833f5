"""Shared test helpers."""

from __future__ import annotations

import asyncio
import time


async def eventually(predicate, *, timeout: float = 10.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` (sync or async) until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} did not hold within {timeout} s (last value: {last!r})")
