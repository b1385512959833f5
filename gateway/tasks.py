"""A background task's end, said once: cancel it and wait until it has stopped.

Every feature with a job or a drain (units, reports, rates, warnings, queue legs, the speech
workers' supervisor, malloc trim, memory reports) stops it the same way, through
:func:`cancel_and_wait`, and a plugin that only runs a task while the app is up uses
:func:`running` in its ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Coroutine


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` (``None``: nothing to do) and wait for its end; the task's own
    CancelledError is expected and not raised again."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


@contextlib.asynccontextmanager
async def running(coro: Coroutine, name: str) -> AsyncIterator[asyncio.Task]:
    """``coro`` as a named task for the body of the ``async with``; cancelled and awaited at its end."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    try:
        yield task
    finally:
        await cancel_and_wait(task)
