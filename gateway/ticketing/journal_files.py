"""The journal's files (:mod:`gateway.ticketing.journal`): records, segments, the checkpoint.

A record is one line, ``<crc32 as 8 hex digits> <JSON>\\n``; segments are
``seg-<first seq, 16 digits>.log``; ``applied`` holds the checkpoint; ``lock`` is held
(``flock``) by the one process using the directory. Everything here blocks on the disk:
:class:`Journal` calls it from threads (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

CHECKPOINT = "applied"
SEGMENT = re.compile(r"seg-(\d{16})\.log")


class JournalError(GatewayError):
    """The journal could not take a write (its disk), or its directory is in use."""


# -- records ------------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"journal cannot store a {type(value).__name__}")


def _hook(obj: dict) -> Any:
    if len(obj) == 1 and "$dt" in obj:
        return datetime.fromisoformat(obj["$dt"])
    return obj


@dataclass
class Record:
    seq: int
    op: str
    call: str
    args: dict
    at: float  # wall time of the write
    n: int | None = None  # a step's index in the call's menu path
    size: int = 0
    recovered: bool = field(default=False, compare=False)  # read back at start: maybe applied already

    def encode(self) -> bytes:
        body = {"seq": self.seq, "op": self.op, "call": self.call, "args": self.args, "at": self.at}
        if self.n is not None:
            body["n"] = self.n
        payload = json.dumps(body, default=_default, ensure_ascii=False, separators=(",", ":")).encode()
        line = b"%08x %s\n" % (zlib.crc32(payload), payload)
        self.size = len(line)
        return line

    @classmethod
    def decode(cls, line: bytes) -> Record:
        """One line without its newline; ValueError if it is not a whole, intact record."""
        crc, _, payload = line.partition(b" ")
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(payload):
            raise ValueError("checksum mismatch")
        body = json.loads(payload, object_hook=_hook)
        return cls(seq=int(body["seq"]), op=str(body["op"]), call=str(body["call"]), args=dict(body["args"]),
                   at=float(body["at"]), n=body.get("n"), size=len(line) + 1, recovered=True)


class Files:
    def __init__(self, directory: Path, segment_bytes: int, *, lock_wait: float = 0.0) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.lock_wait = lock_wait  # seconds to wait for the lock (a sibling replaying this orphan)
        self.segments: list[tuple[int, Path]] = []  # (first seq, path), oldest first
        self._file = None
        self._size = 0
        self._lock = threading.Lock()  # the writer's thread appends while the replayer's deletes
        self._lock_file = None
        self._checkpointed = 0

    def load(self) -> tuple[int, list[Record], list[str]]:
        """The checkpoint, the records after it, warnings about what was skipped."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_file = open(self.directory / "lock", "a")  # noqa: SIM115 - held while the journal runs
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.1)  # in a thread: a sibling instance may be replaying this journal
                    continue
                self._lock_file.close()
                self._lock_file = None
                raise JournalError(f"another gateway process uses the journal {self.directory}: "
                                   "give each instance its own GATEWAY_INSTANCE_ID") from None
        warnings: list[str] = []
        applied = 0
        checkpoint = self.directory / CHECKPOINT
        if checkpoint.exists():
            try:
                applied = int(checkpoint.read_text().strip() or 0)
            except ValueError:
                warnings.append(f"checkpoint {checkpoint} unreadable: every record is replayed (idempotent)")
        records: list[Record] = []
        for path in sorted(self.directory.glob("seg-*.log")):
            match = SEGMENT.fullmatch(path.name)
            if not match:
                continue
            self.segments.append((int(match.group(1)), path))
            data = path.read_bytes()
            lines = data.split(b"\n")
            tail = lines.pop()  # b"" when the file ends with a newline
            if tail:
                warnings.append(f"{path.name}: torn record at the end ({len(tail)} bytes) skipped")
            for number, line in enumerate(lines, 1):
                try:
                    record = Record.decode(line)
                except (ValueError, KeyError, TypeError) as exc:
                    warnings.append(f"{path.name} line {number}: corrupt record skipped ({exc})")
                    continue
                if record.seq > applied:
                    records.append(record)
        records.sort(key=lambda r: r.seq)
        self._checkpointed = applied
        return applied, records, warnings

    def append(self, lines: list[bytes], first_seq: int) -> None:
        with self._lock:
            if self._file is None or self._size >= self.segment_bytes:
                self._rotate(first_seq)
            data = b"".join(lines)
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._size += len(data)

    def _rotate(self, first_seq: int) -> None:
        if self._file is not None:
            self._file.close()
        path = self.directory / f"seg-{first_seq:016d}.log"
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for appends
        os.chmod(path, 0o600)
        self._size = path.stat().st_size
        self.segments.append((first_seq, path))
        fsync_dir(self.directory)

    def checkpoint(self, applied: int) -> None:
        with self._lock:  # a cancelled replayer's checkpoint may still run when stop() writes its own
            if applied < self._checkpointed:
                return
            tmp = self.directory / f"{CHECKPOINT}.tmp"
            with open(tmp, "w") as f:
                f.write(f"{applied}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / CHECKPOINT)
            fsync_dir(self.directory)
            self._checkpointed = applied
            # a segment is done when the next one starts at or below applied + 1; the open one never is
            keep = []
            for i, (first, path) in enumerate(self.segments):
                following = self.segments[i + 1][0] if i + 1 < len(self.segments) else None
                if following is not None and following - 1 <= applied:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                else:
                    keep.append((first, path))
            self.segments = keep

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


