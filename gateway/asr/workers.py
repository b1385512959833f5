"""Supervised speech worker processes, one :class:`WorkerSlot` per worker.

A slot starts ``python -m gateway.asr.worker`` with ``asyncio.create_subprocess_exec``,
waits for ``Ready``, writes requests to its stdin and reads replies from its stdout. It
remembers every request without a reply, oldest first; the worker handles them in order
and says ``Started`` before each, so when the worker dies the oldest started, unanswered
request names the stream it was decoding (the culprit). A worker killed while idle (or
before it read what was just written) blames nobody. The slot then tells its listener (the engine) who was on it and who the culprit
was, and starts a new worker after a backoff (0.2 s, growing to 30 s while it keeps dying,
back to 0.2 s once it has run for a minute). A worker that sends a broken frame, answers
out of order or does not get ready in time is killed and handled the same way. The
worker's stderr (Kaldi's log) goes to the gateway log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from gateway.asr import wire
from gateway.asr.engine import EngineUnavailable
from gateway.errors import RemoteProtocolError
from gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_SECONDS = 60.0
READY_TIMEOUT = 120.0


@dataclass
class Pending:
    seq: int
    owner: object  # the stream that sent the request
    request: type  # wire.Open, wire.Audio...
    end: int = 0  # for Audio: the stream's byte offset at the end of the chunk
    started: bool = False  # the worker said Started for it


class Listener(Protocol):
    def worker_ready(self, slot: "WorkerSlot") -> None: ...

    def worker_died(self, slot: "WorkerSlot", culprit: object | None, streams: list, reason: str) -> None: ...


@dataclass(eq=False)
class WorkerSlot:
    index: int
    argv: list
    env: dict
    listener: Listener
    ready: bool = False
    pid: int | None = None
    models: dict = field(default_factory=dict)  # language -> model name, from Ready
    problems: dict = field(default_factory=dict)
    streams: set = field(default_factory=set)  # streams attached to this worker
    pending: "OrderedDict[int, Pending]" = field(default_factory=OrderedDict)
    restarts: int = 0
    deaths: int = 0
    requests_sent: int = 0
    first_outcome: asyncio.Event = field(default_factory=asyncio.Event)  # first Ready or first death

    def __post_init__(self) -> None:
        self._seq = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    # -- sending ---------------------------------------------------------------------

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def send(self, msg, owner: object, *, end: int = 0) -> None:
        """Write one request (already validated when built) and remember it until answered."""
        proc = self._proc
        if not self.ready or proc is None or proc.stdin is None or proc.stdin.is_closing():
            raise EngineUnavailable(f"speech worker {self.index} is not running")
        frame = wire.encode(msg)
        self.pending[msg.seq] = Pending(msg.seq, owner, type(msg), end)
        proc.stdin.write(frame)
        self.requests_sent += 1

    @property
    def decoding(self) -> str | None:
        """The stream whose request the worker is handling right now, if any."""
        first = next(iter(self.pending.values()), None)
        return getattr(first.owner, "stream_id", None) if first is not None and first.started else None

    @property
    def load(self) -> tuple[int, int]:
        return (len(self.streams), len(self.pending))

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"speech-worker-{self.index}")

    async def close(self, timeout: float = 3.0) -> None:
        self._closing = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                proc.kill()
        await cancel_and_wait(self._task)

    def kill(self) -> None:
        """Kill the current worker (the supervisor restarts it)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGKILL)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._closing:
            started = loop.time()
            reason = await self._run_once()
            self.first_outcome.set()
            if self._closing:
                break
            if loop.time() - started > STABLE_SECONDS:
                attempt = 0
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            log.warning("speech worker %d %s; restarting in %.1f s", self.index, reason, delay)
            await asyncio.sleep(delay)
            self.restarts += 1

    async def _run_once(self) -> str:
        self._seq = 0
        self.pending.clear()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self.env)
        except OSError as exc:
            log.error("speech worker %d could not start: %s", self.index, exc)
            return f"could not start ({exc})"
        self._proc, self.pid = proc, proc.pid
        errors = asyncio.create_task(self._log_stderr(proc))
        reason = "exited"
        try:
            await self._read(proc)
        except RemoteProtocolError as exc:
            reason = f"broke the protocol ({exc})"
            log.error("speech worker %d (pid %s) %s", self.index, proc.pid, reason)
            proc.kill()
        except asyncio.TimeoutError:
            reason = f"was not ready within {READY_TIMEOUT:.0f} s"
            proc.kill()
        finally:
            self.ready = False
            # Usually the process has exited (its stdout ended). Let asyncio's child watcher
            # reap it first: killing it before that would make Popen.poll() steal the status.
            try:
                code = await asyncio.wait_for(asyncio.shield(proc.wait()), 2.0)
            except asyncio.TimeoutError:
                if proc.returncode is None:
                    try:
                        proc.kill()
                    except ProcessLookupError:
                        pass
                code = await proc.wait()
            await errors
        reason = f"(pid {proc.pid}) {reason} with status {code}"
        self.deaths += 1
        self._died(reason)
        return reason

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        reader = wire.FrameReader(accept=wire.REPLIES)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while True:
            if self.ready:
                data = await proc.stdout.read(1 << 16)
            else:
                data = await asyncio.wait_for(proc.stdout.read(1 << 16), max(0.0, deadline - loop.time()))
            if not data:
                reader.end_of_data()
                return
            reader.receive_data(data)
            while (msg := reader.next_message()) is not None:
                self._dispatch(msg)

    def _dispatch(self, msg) -> None:
        if isinstance(msg, wire.Ready):
            if self.ready:
                raise RemoteProtocolError("a second Ready")
            self.models, self.problems, self.ready = dict(msg.models), dict(msg.problems), True
            self.first_outcome.set()
            self.listener.worker_ready(self)
            return
        if not self.pending:
            raise RemoteProtocolError(f"a reply (seq {msg.seq}) to no request")
        seq, pending = next(iter(self.pending.items()))
        if msg.seq != seq or msg.sid != getattr(pending.owner, "sid", msg.sid):
            raise RemoteProtocolError(f"reply seq {msg.seq} sid {msg.sid} out of order (expected seq {seq})")
        if isinstance(msg, wire.Started):
            if pending.started:
                raise RemoteProtocolError(f"request {seq} started twice")
            pending.started = True
            return
        if not pending.started:
            raise RemoteProtocolError(f"a reply to request {seq} before it was started")
        del self.pending[seq]
        try:
            pending.owner.on_reply(self, msg, pending)
        except Exception:  # noqa: BLE001 - one stream's bug must not take the worker down
            log.exception("speech stream %s failed handling %s", getattr(pending.owner, "stream_id", "?"),
                          type(msg).__name__)

    def _died(self, reason: str) -> None:
        first = next(iter(self.pending.values()), None)
        culprit = first.owner if first is not None and first.started else None
        streams = list(self.streams)
        self.streams.clear()
        self.pending.clear()
        self._proc = None
        if not self._closing:
            self.listener.worker_died(self, culprit, streams, reason)

    async def _log_stderr(self, proc: asyncio.subprocess.Process) -> None:
        while True:
            line = await proc.stderr.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()[:2000]
            if not text:
                continue
            level = (logging.ERROR if ("ERROR" in text or "Traceback" in text)
                     else logging.WARNING if "WARNING" in text else logging.INFO)
            log.log(level, "speech worker %d (pid %s): %s", self.index, proc.pid, text)
