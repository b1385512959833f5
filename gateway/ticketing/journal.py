"""A durable local journal of the call path's writes, replayed into the database in order.

Theory of operation
-------------------
The call path (the IVR's :class:`gateway.calls.handler.StoreObserver`, the AMI events of
:class:`gateway.calls.plugin.CallEvents`) never waits on the database. It writes through
:class:`JournaledStore`, which turns each write into one record, a generic
``(method name, call id, keyword arguments)``, and returns as soon as the record is on
disk (appended and fsync'd). A background *replayer* then calls the same
:class:`~gateway.ticketing.store.TicketStore` method with the same arguments, strictly
in journal order, one record at a time.

* **Files** (:mod:`gateway.ticketing.journal_files`). ``<state dir>/journal/seg-<first seq>.log`` segments of one record a line:
  ``<crc32 as 8 hex digits> <JSON>\\n``; the JSON holds ``seq`` (global, increasing),
  ``op``, ``call``, ``args`` (datetimes as ``{"$dt": iso}``), ``at`` (wall time) and, for
  a step, ``n`` (its index in the call's menu path). ``applied`` holds the highest
  sequence number the database has committed (the checkpoint). One writer task batches
  the records waiting, appends and fsyncs them in a thread (``asyncio.to_thread``: the
  event loop never blocks on the disk); a segment is closed past ``segment_bytes`` and
  deleted once every record in it is applied.
* **Start.** The directory is locked (``flock`` on ``lock``: one gateway process per
  journal, a second one refuses to start). Every segment is read (in a thread); records at or below the checkpoint are
  dropped, the others are replayed before the new ones, while calls are taken. A line
  whose CRC or JSON is wrong (power cut mid-write: the torn tail) is skipped with a
  warning, never an error; writing goes on in a fresh segment, never after a torn line.
* **Database unavailable** (:func:`unavailable`: locked, read-only, gone, timing out, on
  SQLite and PostgreSQL alike): the replayer keeps the record, retries with backoff
  (0.2 s doubling to 2 s), the backlog grows; when the database answers again it drains
  in order. Any other refusal (the ticket was decided meanwhile: ``TicketDecided``; an
  unknown call) is logged and the record is skipped, as the direct write did.
* **Idempotent replay.** The checkpoint is written (tmp file, fsync, rename) after the
  records are committed, so a crash in between replays a few records twice. Each write
  is idempotent by its call id: ``start_call`` of a recorded call (``CallExists``) is
  taken as applied; tickets, recording, transcript, emergency flag, queue, agent and
  end set values (the first end wins); a step carries its index ``n`` in the call's menu
  path and a replayed step is skipped if the path is already longer than ``n``. Only
  audit rows of a record replayed twice after a crash may appear twice.
* **Bound.** Past ``max_bytes`` of backlog the non-essential writes (steps, transcripts)
  are dropped, logged and counted (``dropped``), the essential ones (the call row, the
  ticket, the recording, the emergency flag, queue, agent, end) are still journaled;
  ``/healthz`` is degraded. If the journal cannot be written at all (disk), the write
  goes to the database directly, as before the journal, and that is logged as an error.
* **Reads of the call path.** ``start_call`` refuses a replayed or forged FastAGI session
  (``CallExists``) from the call ids it has seen (those in the journal at start, those
  started since) and, if the database answers within ``lookup_timeout``, the database.
  A journaled write returns None (``ensure_ticket``'s id is not known yet: nobody on the
  call path uses it).
* **Readers** (the desk, the API) see the rows once replayed. :meth:`Journal.when_applied`
  runs a callback once everything journaled so far for a call is in the database: the
  desk's screen pop waits for the call's ticket and agent that way.
* **Orphans** (:class:`OrphanJournals`). Gateway instances sharing a state dir keep
  their journals side by side (``journal-<instance>/``). A gateway killed for good would
  leave its unapplied writes there until it runs again; every instance therefore looks at
  its siblings periodically, and a journal whose lock nobody holds and that still has
  records is replayed by it (the same :class:`Journal`, started on that directory, stopped
  once drained or when the database refuses). A restarted owner waits for the lock
  (``lock_wait``) instead of refusing to start, then finds its journal drained.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from sqlalchemy import exc as sa_exc

from gateway.errors import CallExists, NotFound, TicketDecided
from gateway.ticketing.journal_files import Files, JournalError, Record

__all__ = ["Journal", "JournalError", "JournaledStore", "Record", "describe", "is_write", "unavailable"]

log = logging.getLogger(__name__)

NON_ESSENTIAL = frozenset({"record_step", "set_transcript"})  # dropped first when the journal is over its bound
WRITE_PREFIXES = ("start_", "record_", "ensure_", "set_", "mark_", "finish_", "flag_")  # store writes by name
RECENT_CALLS = 20000  # call ids remembered for the replayed-session check and the step index
_BACKOFF = (0.2, 2.0)
_CHECKPOINT_EVERY = 64  # records, or when the backlog is empty
# PostgreSQL SQLSTATE classes/codes that mean "not now" rather than "never"
_PG_TRANSIENT = ("08", "53", "57P", "40001", "40P01", "25006", "55P03")


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot take the write *now* (retry later)."""
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, sa_exc.OperationalError,
                        sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
        if any(str(code).startswith(prefix) for prefix in _PG_TRANSIENT):
            return True
        text = str(exc.orig).lower()
        return any(word in text for word in ("read-only", "readonly", "locked", "connection", "timeout"))
    return False


def describe(exc: BaseException) -> str:
    """A short, number-free reason for logs and /healthz."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "readonly" in text or "read-only" in text or "read only" in text:
        return "read-only"
    if "disk i/o" in text:
        return "disk I/O error"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    return f"down ({type(getattr(exc, 'orig', None) or exc).__name__})"


# -- the journal --------------------------------------------------------------------------------
class Journal:
    """The call path's writes: durable at once, in the database when it can take them."""

    def __init__(self, store, directory: Path, *, max_bytes: int = 64 * 2**20, segment_bytes: int | None = None,
                 max_age: float = 30.0, lookup_timeout: float = 0.5, apply_timeout: float = 30.0,
                 clock: Callable[[], float] = time.time, lock_wait: float = 0.0) -> None:
        self.store = store
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.lookup_timeout = lookup_timeout
        self.apply_timeout = apply_timeout
        self.clock = clock
        self._files = Files(self.directory, segment_bytes or max(4096, min(4 * 2**20, max_bytes // 8)),
                            lock_wait=lock_wait)
        self._next_seq = 1
        self._applied = 0
        self._checkpointed = 0
        self._queue: list[tuple[Record, bytes, asyncio.Future]] = []
        self._pending: collections.deque[Record] = collections.deque()
        self._pending_bytes = 0
        self._last_pending: dict[str, int] = {}  # call id -> seq of its last record not yet applied
        self._waiters: list[tuple[int, Callable[[], Awaitable[Any]]]] = []
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()  # call id -> steps journaled
        self._tasks: set[asyncio.Task] = set()
        self._writer: asyncio.Task | None = None
        self._replayer: asyncio.Task | None = None
        self._wake_writer = asyncio.Event()
        self._wake_replayer = asyncio.Event()
        self._stopping = False
        self._checkpointing: asyncio.Future | None = None
        self.applying = False
        self.database_error: str | None = None
        self.append_error: str | None = None
        self.counters = {"journaled": 0, "applied": 0, "refused": 0, "dropped": 0, "retries": 0,
                         "append_errors": 0, "recovered": 0, "skipped_at_start": 0}

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        applied, records, warnings = await asyncio.to_thread(self._files.load)
        for warning in warnings:
            log.warning("journal %s: %s", self.directory, warning)
        self.counters["skipped_at_start"] = len(warnings)
        self._applied = self._checkpointed = applied
        self._next_seq = max([applied, *(r.seq for r in records)]) + 1
        for record in records:
            self._enqueue_pending(record)
            if record.op == "start_call":
                self._remember(record.call)
        self.counters["recovered"] = len(records)
        if records:
            log.warning("journal: %d writes not yet in the database (oldest %.0f s ago): replaying them",
                        len(records), self.clock() - records[0].at)
        self._writer = asyncio.create_task(self._write_loop(), name="journal-writer")
        self._replayer = asyncio.create_task(self._replay_loop(), name="journal-replayer")

    async def stop(self) -> None:
        """Flush what is queued, stop replaying (the rest is replayed at the next start)."""
        self._stopping = True
        self._wake_writer.set()
        if self._writer is not None:
            await self._writer
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.to_thread(self._files.checkpoint, self._applied)
        await asyncio.to_thread(self._files.close)
        if self._pending:
            log.warning("journal: %d writes left for the next start", len(self._pending))

    # -- writing --------------------------------------------------------------------------------
    @property
    def over_bound(self) -> bool:
        return self._pending_bytes > self.max_bytes

    async def write(self, op: str, call: str, args: dict) -> None:
        """Journal one write (durable when this returns); JournalError if the disk refused it."""
        if self._writer is None or self._stopping:
            raise JournalError("the journal is not running")
        if op in NON_ESSENTIAL and self.over_bound:
            self.counters["dropped"] += 1
            log.error("journal over its bound (%d bytes waiting for the database): %s of call %s dropped",
                      self._pending_bytes, op, call)
            return
        n = None
        if op == "record_step":
            n = self._recent.get(call, 0)
            self._remember(call, n + 1)
        record = Record(seq=self._next_seq, op=op, call=call, args=args, at=self.clock(), n=n)
        line = record.encode()  # TypeError here (not journaled) if an argument is not JSON
        self._next_seq += 1
        future = asyncio.get_running_loop().create_future()
        self._queue.append((record, line, future))
        self._wake_writer.set()
        await future

    def _remember(self, call: str, steps: int | None = None) -> None:
        self._recent[call] = self._recent.get(call, 0) if steps is None else steps
        self._recent.move_to_end(call)
        while len(self._recent) > RECENT_CALLS:
            self._recent.popitem(last=False)

    async def _write_loop(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._append(batch)
            if self._stopping and not self._queue:
                return

    async def _append(self, batch: list[tuple[Record, bytes, asyncio.Future]]) -> None:
        try:
            await asyncio.to_thread(self._files.append, [line for _, line, _ in batch], batch[0][0].seq)
        except OSError as exc:
            self.counters["append_errors"] += 1
            self.append_error = f"{type(exc).__name__}: {exc.strerror or exc}"
            log.error("journal: cannot append %d writes to %s: %s", len(batch), self.directory, self.append_error)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(JournalError(self.append_error))
            return
        self.append_error = None
        for record, _, future in batch:
            self._enqueue_pending(record)
            self.counters["journaled"] += 1
            if not future.done():
                future.set_result(None)

    def _enqueue_pending(self, record: Record) -> None:
        self._pending.append(record)
        self._pending_bytes += record.size
        self._last_pending[record.call] = record.seq
        self._wake_replayer.set()

    # -- replaying ------------------------------------------------------------------------------
    async def _replay_loop(self) -> None:
        backoff = _BACKOFF[0]
        while True:
            if not self._pending:
                if self._checkpointed < self._applied:
                    await self._checkpoint()
                self._wake_replayer.clear()
                if not self._pending:
                    await self._wake_replayer.wait()
                continue
            record = self._pending[0]
            self.applying = True
            try:
                await asyncio.wait_for(self._apply(record), self.apply_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted below: retry later, or refused for good
                if unavailable(exc):
                    self.applying = False
                    reason = describe(exc)
                    if self.database_error is None:
                        log.warning("journal: the database cannot take writes (%s); %d writes wait, retrying",
                                    reason, len(self._pending))
                    self.database_error = reason
                    self.counters["retries"] += 1
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF[1])
                    continue
                self._refused(record, exc)
            finally:
                self.applying = False
            if self.database_error is not None:
                log.warning("journal: the database takes writes again (was %s); draining %d writes",
                            self.database_error, len(self._pending))
                self.database_error = None
            backoff = _BACKOFF[0]
            self._pending.popleft()
            self._pending_bytes -= record.size
            self._applied = record.seq
            self.counters["applied"] += 1
            if self._last_pending.get(record.call) == record.seq:
                del self._last_pending[record.call]
            self._run_waiters()
            if self._applied - self._checkpointed >= _CHECKPOINT_EVERY:
                await self._checkpoint()

    async def _apply(self, record: Record) -> None:
        store, args = self.store, dict(record.args)
        if record.op == "start_call":
            try:
                await store.start_call(uniqueid=record.call, **args)
            except CallExists:
                if not record.recovered:
                    raise
            return
        if record.op == "record_step" and record.recovered and record.n is not None:
            call = await store.get_call(record.call)
            if call is not None and len(call["menu_path"]) > record.n:
                return  # applied before the crash, checkpoint not yet written
        await getattr(store, record.op)(record.call, **args)

    def _refused(self, record: Record, exc: Exception) -> None:
        self.counters["refused"] += 1
        if isinstance(exc, TicketDecided):
            log.warning("call %s: %s; the call goes on, the ticket stays as decided", record.call, exc.message)
        elif isinstance(exc, (NotFound, CallExists)):
            log.warning("journal: %s of call %s refused by the store: %s", record.op, record.call, exc.message)
        else:
            log.error("journal: %s of call %s failed (%s: %s); skipped", record.op, record.call,
                      type(exc).__name__, exc)

    async def _checkpoint(self) -> None:
        applied = self._applied
        # shielded: a stop() cancelling the replayer waits for the file rather than leave a thread behind
        self._checkpointing = asyncio.ensure_future(asyncio.to_thread(self._files.checkpoint, applied))
        try:
            await asyncio.shield(self._checkpointing)
            self._checkpointed = applied
        except OSError as exc:
            log.error("journal: cannot write its checkpoint: %s", exc)

    # -- the call's readers ---------------------------------------------------------------------
    def pending_for(self, call: str) -> bool:
        """Whether something journaled for ``call`` is not in the database yet."""
        return call in self._last_pending or any(r.call == call for r, _, _ in self._queue)

    def when_applied(self, call: str, callback: Callable[[], Awaitable[Any]]) -> None:
        """Run ``callback()`` (a task) once every write journaled so far for ``call`` is applied."""
        last = self._last_pending.get(call)
        if last is None:
            self._spawn(callback)
        else:
            self._waiters.append((last, callback))

    def _run_waiters(self) -> None:
        if not self._waiters:
            return
        due = [cb for seq, cb in self._waiters if seq <= self._applied]
        self._waiters = [(seq, cb) for seq, cb in self._waiters if seq > self._applied]
        for callback in due:
            self._spawn(callback)

    def _spawn(self, callback: Callable[[], Awaitable[Any]]) -> None:
        async def run() -> None:
            try:
                await callback()
            except Exception:  # noqa: BLE001 - a reader's failure is logged, the journal goes on
                log.exception("journal: a callback after a replay failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def call_known(self, call: str) -> bool:
        """Whether ``call`` was started already: seen here, or (if it answers in time) in the database."""
        if call in self._recent:
            return True
        self._remember(call)  # reserved: a second session racing this one is refused
        lookup = asyncio.ensure_future(self.store.call_exists(call))
        try:
            return bool(await asyncio.wait_for(asyncio.shield(lookup), self.lookup_timeout))
        except Exception as exc:  # noqa: BLE001 - the database not answering must not stop the call
            lookup.add_done_callback(lambda t: t.cancelled() or t.exception())
            log.warning("call %s: the database did not say in time whether the call is known (%s); "
                        "taken as new", call, describe(exc))
            return False

    # -- health ---------------------------------------------------------------------------------
    def stats(self) -> dict:
        oldest = self._pending[0].at if self._pending else None
        return {
            "backlog": len(self._pending),
            "bytes": self._pending_bytes,
            "oldest_s": round(max(0.0, self.clock() - oldest), 1) if oldest is not None else 0.0,
            "applying": self.applying,
            "waiting_for_database": self.database_error,
            "over_bound": self.over_bound,
            "append_error": self.append_error,
            **self.counters,
        }

    def healthy(self, stats: dict) -> bool:
        return not stats["over_bound"] and stats["append_error"] is None and stats["oldest_s"] <= self.max_age

    def metrics(self) -> dict:
        return {k: v for k, v in self.stats().items() if isinstance(v, (int, float))}


class OrphanJournals:
    """Replays the journals of sibling instances that are not running (see *Orphans* above).

    ``own`` is this gateway's journal directory; its siblings are the ``journal`` and
    ``journal-*`` directories beside it. One :meth:`sweep` replays each orphan for at most
    ``budget`` seconds (the rest waits for the next sweep, or for its owner).
    """

    def __init__(self, store, own: Path, *, interval: float = 30.0, budget: float = 20.0) -> None:
        self.store = store
        self.own = Path(own)
        self.interval = interval
        self.budget = budget
        self.counters = {"sweeps": 0, "adopted": 0, "replayed": 0}
        self._task: asyncio.Task | None = None

    def _siblings(self) -> list[Path]:
        parent = self.own.parent
        if not parent.is_dir():
            return []
        return sorted(p for p in parent.iterdir()
                      if p.is_dir() and p != self.own and (p.name == "journal" or p.name.startswith("journal-"))
                      and any(p.glob("seg-*.log")))

    async def sweep(self) -> int:
        """Replay every orphan found now; the number of records replayed."""
        self.counters["sweeps"] += 1
        replayed = 0
        for directory in await asyncio.to_thread(self._siblings):
            journal = Journal(self.store, directory)
            try:
                await journal.start()
            except JournalError:
                continue  # its owner runs (or another instance adopts it right now)
            try:
                backlog = journal.stats()["backlog"]
                if not backlog:
                    continue
                log.warning("journal %s: its gateway is not running; replaying its %d writes", directory, backlog)
                self.counters["adopted"] += 1
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self.budget
                while journal.stats()["backlog"] and journal.database_error is None and loop.time() < deadline:
                    await asyncio.sleep(0.05)
                left = journal.stats()["backlog"]
                replayed += backlog - left
                if left:
                    log.warning("journal %s: %d writes left for later (%s)", directory, left,
                                journal.database_error or "time budget used")
            finally:
                await journal.stop()
        self.counters["replayed"] += replayed
        return replayed

    async def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="journal-orphans")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - a failed sweep is logged; the next one tries again
                log.exception("journal: looking for orphan journals failed")
            await asyncio.sleep(self.interval)


def is_write(name: str) -> bool:
    return name.startswith(WRITE_PREFIXES)


class JournaledStore:
    """The store as the call path uses it: writes (by name, :data:`WRITE_PREFIXES`) through the
    journal, everything else straight to the store."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._store = journal.store

    async def start_call(self, *, uniqueid: str, **fields: Any) -> None:
        if await self.journal.call_known(uniqueid):
            raise CallExists(f"call {uniqueid!r} is already recorded", details={"uniqueid": uniqueid})
        await self._journal_or_direct("start_call", uniqueid, fields,
                                      lambda: self._store.start_call(uniqueid=uniqueid, **fields))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not is_write(name) or not callable(attr):
            return attr
        signature = inspect.signature(attr)

        async def journaled(uniqueid: str, *args: Any, **kwargs: Any) -> None:
            bound = signature.bind(uniqueid, *args, **kwargs)
            fields: dict[str, Any] = {}
            for (param, value), kind in zip(bound.arguments.items(),
                                            (signature.parameters[p].kind for p in bound.arguments)):
                if kind is inspect.Parameter.VAR_KEYWORD:
                    fields.update(value)
                else:
                    fields[param] = value
            fields.pop(next(iter(signature.parameters)))
            await self._journal_or_direct(name, uniqueid, fields, lambda: attr(uniqueid, *args, **kwargs))

        journaled.__name__ = name
        setattr(self, name, journaled)  # built once per method
        return journaled

    async def _journal_or_direct(self, op: str, uniqueid: str, fields: dict, direct) -> None:
        try:
            await self.journal.write(op, uniqueid, fields)
        except JournalError as exc:
            log.error("call %s: %s not journaled (%s); written to the database directly", uniqueid, op, exc)
            await direct()
