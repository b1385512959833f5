"""Waiting for an event in tests, instead of sleeping and hoping it happened.

``eventually`` (sync tests, harness code) and ``aeventually`` (async tests) call a
check until it returns something truthy and return that value. The wait ends as soon
as the event happens, so the default timeout is generous (a shared CI machine can be
slow): it is only ever spent when the event never comes, and then the AssertionError
says what was awaited, the check's last value and its last exception.

Both share one poller (``_Poll``); the async one also accepts checks that return an
awaitable. The sync one refuses to run on an event loop (it would block it): there,
``await aeventually(...)``.

``ws_message`` waits for the next WebSocket message of a kind (JSON with a ``type``),
keeping what arrived before it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT = 60.0  # seconds; spent only when the event never comes
INTERVAL = 0.02  # between checks; pass a longer one when a check is costly (an HTTP request)

__all__ = ["TIMEOUT", "INTERVAL", "eventually", "aeventually", "ws_message"]


class _Poll:
    """One wait: the deadline, the attempts, the last value and exception seen."""

    def __init__(self, timeout: float, interval: float, what: str | None, retry_on: tuple) -> None:
        if timeout <= 0 or interval <= 0:
            raise ValueError(f"timeout and interval must be positive (got {timeout!r}, {interval!r})")
        self.timeout, self.interval, self.what, self.retry_on = timeout, interval, what, retry_on
        self.deadline = time.monotonic() + timeout
        self.attempts = 0
        self.last: Any = None
        self.error: BaseException | None = None

    def took(self, value: Any) -> bool:
        self.attempts += 1
        self.last, self.error = value, None
        return bool(value)

    def failed(self, exc: BaseException) -> None:
        if not isinstance(exc, self.retry_on):
            raise exc
        self.attempts += 1
        self.error = exc

    def pause(self) -> float | None:
        """Seconds to wait before the next check, or None when the deadline has passed."""
        left = self.deadline - time.monotonic()
        return None if left <= 0 else min(self.interval, left)

    def give_up(self, check: Callable) -> AssertionError:
        what = self.what or getattr(check, "__qualname__", repr(check))
        detail = f"last value: {self.last!r}"
        if self.error is not None:
            detail = f"last exception: {type(self.error).__name__}: {self.error}"
        err = AssertionError(f"{what}: not within {self.timeout:g} s ({self.attempts} checks; {detail})")
        err.__cause__ = self.error
        return err


def eventually(check: Callable[[], T], *, timeout: float = TIMEOUT, interval: float = INTERVAL,
               what: str | None = None, retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Call ``check()`` until it returns a truthy value and return it.

    Exceptions of the types in ``retry_on`` count as "not yet" (a server still starting
    refuses connections); at ``timeout`` an AssertionError names ``what`` and the last
    value or exception. For synchronous code only: on an event loop use ``aeventually``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("eventually() would block the event loop: use `await aeventually(...)` there")
    poll = _Poll(timeout, interval, what, retry_on)
    while True:
        try:
            value = check()
        except BaseException as exc:  # noqa: BLE001 - _Poll.failed re-raises what is not retried
            poll.failed(exc)
        else:
            if inspect.isawaitable(value):
                if inspect.iscoroutine(value):
                    value.close()
                raise TypeError("eventually() got an awaitable from its check: use `await aeventually(...)`")
            if poll.took(value):
                return value
        pause = poll.pause()
        if pause is None:
            raise poll.give_up(check)
        time.sleep(pause)  # between checks of a synchronous wait: nothing else to do meanwhile


async def aeventually(check: Callable[[], T | Awaitable[T]], *, timeout: float = TIMEOUT,
                      interval: float = INTERVAL, what: str | None = None,
                      retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """``eventually`` for async code: ``check`` may be a plain or an async function."""
    poll = _Poll(timeout, interval, what, retry_on)
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except BaseException as exc:  # noqa: BLE001 - _Poll.failed re-raises what is not retried
            poll.failed(exc)
        else:
            if poll.took(value):
                return value
        pause = poll.pause()
        if pause is None:
            raise poll.give_up(check)
        await asyncio.sleep(pause)  # between checks: the loop runs what is awaited meanwhile


async def ws_message(ws, kind: str | None = None, *, timeout: float = TIMEOUT, seen: list | None = None,
                     what: str | None = None) -> dict:
    """The next JSON message on an aiohttp WebSocket whose ``type`` is ``kind`` (any
    message when ``kind`` is None). Every message read, the awaited one included, is
    appended to ``seen`` when given. AssertionError at ``timeout`` or when the socket closes."""
    import aiohttp

    what = what or f"a {kind or 'any'} message on the WebSocket"
    skipped: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR):
                    raise AssertionError(f"{what}: the socket closed first ({msg.type.name} {msg.data!r}; "
                                         f"before it: {skipped})")
                event = msg.json()
                if seen is not None:
                    seen.append(event)
                if kind is None or event.get("type") == kind:
                    return event
                skipped.append(event.get("type"))
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout:g} s (other messages: {skipped})") from None
