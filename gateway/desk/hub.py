"""The screen pops' delivery: each event gets a sequence number and is kept in a bounded
per-user buffer, then delivered to every WebSocket of the user. A desk that reconnects
says the last number it saw and gets what it missed; if that is older than the buffer,
it is told to ``resync`` (reload its inbox over HTTP), so nothing sent while it was away
is lost either way."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

BUFFER = 200  # pops kept per user for reconnecting desks


class PopHub:
    """Per-user numbered events with a replay buffer, fanned out to live WebSockets."""

    def __init__(self, buffer: int = BUFFER) -> None:
        import secrets

        self.epoch = secrets.token_hex(4)  # numbers restart with the process: desks compare this
        self._seq = itertools.count(1)
        self._buffers: dict[str, deque] = {}
        self._queues: dict[str, set[asyncio.Queue]] = {}
        self.buffer = buffer

    def publish(self, username: str, event: dict) -> dict:
        event = dict(event, seq=next(self._seq))
        self._buffers.setdefault(username, deque(maxlen=self.buffer)).append(event)
        for queue in list(self._queues.get(username, ())):
            if queue.qsize() < self.buffer:
                queue.put_nowait(event)
        return event

    def missed(self, username: str, since: int) -> list[dict]:
        """Events after ``since``; a leading ``resync`` event if some were dropped from the buffer."""
        events = list(self._buffers.get(username, ()))
        out = [e for e in events if e["seq"] > since]
        if since and events and events[0]["seq"] > since + 1 and (not out or out[0] is events[0]):
            out.insert(0, {"type": "resync", "seq": since})
        return out

    def last_seq(self, username: str) -> int:
        events = self._buffers.get(username)
        return events[-1]["seq"] if events else 0

    def subscribe(self, username: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.setdefault(username, set()).add(queue)
        return queue

    def unsubscribe(self, username: str, queue: asyncio.Queue) -> None:
        self._queues.get(username, set()).discard(queue)

    def users(self) -> list[str]:
        """Users with a desk connected now."""
        return [user for user, queues in self._queues.items() if queues]

    def connections(self) -> int:
        return sum(len(q) for q in self._queues.values())
