"""Making, archiving and finding reports; the job that makes them on schedule.

Theory of operation
-------------------
:meth:`ReportService.generate` assembles a period's report (:mod:`.reports`), renders every
format in a worker thread (:mod:`.report_render`), writes the files into the archive directory
under fresh names (``<kind>-<start>-<random>.<ext>``, written to a temporary name and renamed),
then records them in one ``report_archive`` row per kind and period (the unique key). Generating
a period again (on demand) replaces the row's files; the old files are deleted after the row
changed. Two instances racing for the same period: one insert wins, the loser deletes its files.

The job (:meth:`ReportService.loop`, every ``interval`` s) runs only on the bus leader: for each
kind it makes the reports due (``schedule`` time passed, see :func:`.reports.due_periods`) that
are missing, up to ``catch_up`` periods back and never for a period before the first call the
database holds (a fresh installation does not make a week of empty reports), then deletes
reports older than their retention. It makes nothing while the CJK font is missing (the health
says so); the missed reports are made once it is installed.

Downloads name a row id and a format, never a file name: the file name comes from the row, and
the resolved path must lie inside the archive directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gateway.desk.catalogue import Catalogue
from gateway.errors import BadRequest, NotFound
from gateway.supervision import report_render
from gateway.supervision.report_config import DEFAULTS, ReportsConfig
from gateway.supervision.report_tables import REPORT_KINDS, ReportArchive
from gateway.supervision.reports import KIND_NAMES, Period, SectionBuilder, assemble, due_periods, period_containing
from gateway.ticketing.models import Call
from gateway.ticketing.rows import iso
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)


def row_dict(row: ReportArchive) -> dict[str, Any]:
    period = Period(row.kind, row.period_start, row.period_end, row.timezone)
    return {"id": row.id, "kind": row.kind, "kind_name": KIND_NAMES.get(row.kind, row.kind),
            "period_start": row.period_start.isoformat(), "period_end": row.period_end.isoformat(),
            "label": period.title, "timezone": row.timezone, "created_at": iso(row.created_at),
            "created_by": row.created_by, "sha256": row.sha256, "summary": row.summary or {},
            "files": [{"format": f["format"], "bytes": f["bytes"], "sha256": f["sha256"],
                       "url": f"/api/supervisor/reports/{row.id}/{f['format']}"} for f in row.files or []]}


def _manifest_digest(files: list[dict]) -> str:
    text = "\n".join(f"{f['sha256']}  {f['name']}" for f in sorted(files, key=lambda f: f["name"]))
    return hashlib.sha256(text.encode()).hexdigest()


def _write_files(directory: Path, stem: str, blobs: dict[str, bytes]) -> list[dict]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt, data in blobs.items():
        name = f"{stem}.{fmt}"
        tmp = directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / name)
        out.append({"format": fmt, "name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return out


def _inside(directory: Path, name: str) -> Path | None:
    """The archive file ``name`` (a bare file name) if it exists inside ``directory``, else None."""
    root = directory.resolve()
    path = (root / Path(name).name).resolve()
    return path if path.parent == root and path.is_file() else None


def _delete_files(directory: Path, files: list[dict]) -> None:
    for f in files:
        try:
            (directory / Path(f["name"]).name).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("reports: could not delete %s: %s", f.get("name"), exc)


@dataclass
class ReportService:
    store: TicketStore
    archive_dir: Path
    clock: Callable[[], datetime]
    timezone: Callable[[], str] = lambda: "Asia/Shanghai"
    config: ReportsConfig = DEFAULTS
    catalogue: Catalogue | None = None
    sections: list[SectionBuilder] | None = None  # None: reports.DEFAULT_SECTIONS
    leader: Callable[[], bool] = lambda: True
    interval: float = 300.0
    counters: dict = field(default_factory=lambda: {"generated": 0, "failed": 0, "deleted": 0})
    last_error: str | None = None
    font: str = "not checked yet"  # report_render.font_state(), refreshed by check_font (off the loop)

    # -- making one --------------------------------------------------------------------------
    def period_for(self, kind: str, day: date | None) -> Period:
        """The period of ``kind`` containing ``day`` (default: the last complete one); it must be over."""
        if kind not in REPORT_KINDS:
            raise BadRequest(f"kind must be one of {', '.join(REPORT_KINDS)}", details={"field": "kind"})
        tz = self.timezone()
        today = self.clock().astimezone(ZoneInfo(tz)).date()
        period = period_containing(kind, day or today, tz)
        if day is None:
            period = period.previous()
        if period.end >= today:
            raise BadRequest(f"报告期尚未结束（{period.label}） / the period is not over yet ({period.start} to {period.end})",
                             details={"field": "date"})
        return period

    async def generate(self, period: Period, *, actor: str, replace: bool = True) -> dict:
        """Make ``period``'s report and archive it; with ``replace`` False an existing one is kept."""
        if not replace:
            existing = await self.find(period)
            if existing is not None:
                return existing
        now = self.clock()
        report = await assemble(self.store, period, now=now, config=self.config, catalogue=self.catalogue,
                                sections=self.sections)
        blobs = await asyncio.to_thread(report_render.render_all, report)
        stem = f"{period.kind}-{period.start.isoformat()}-{secrets.token_hex(4)}"
        files = await asyncio.to_thread(_write_files, self.archive_dir, stem, blobs)
        digest = _manifest_digest(files)

        async def work(session) -> tuple[dict, list[dict]]:
            row = (await session.execute(sa.select(ReportArchive).where(
                ReportArchive.kind == period.kind, ReportArchive.period_start == period.start))).scalar_one_or_none()
            old: list[dict] = []
            if row is None:
                row = ReportArchive(kind=period.kind, period_start=period.start, period_end=period.end,
                                    timezone=period.tz, created_at=now, created_by=actor, files=files, sha256=digest,
                                    summary=report.headline)
                session.add(row)
            elif not replace:
                return row_dict(row), files  # another instance made it meanwhile: ours go
            else:
                old = list(row.files or [])
                row.period_end, row.timezone, row.created_at, row.created_by = period.end, period.tz, now, actor
                row.files, row.sha256, row.summary = files, digest, report.headline
            await session.flush()
            return row_dict(row), old

        try:
            out, stale = await self.store.run_write(work)
        except IntegrityError:  # the same period inserted by another instance at the same moment
            await asyncio.to_thread(_delete_files, self.archive_dir, files)
            existing = await self.find(period)
            if existing is None:
                raise
            return existing
        await asyncio.to_thread(_delete_files, self.archive_dir, stale)
        self.counters["generated"] += 1
        log.info("reports: %s %s made by %s (%s)", period.kind, period.start, actor, digest[:12])
        return out

    # -- reading -----------------------------------------------------------------------------
    async def find(self, period: Period) -> dict | None:
        async with self.store.read_session() as session:
            row = (await session.execute(sa.select(ReportArchive).where(
                ReportArchive.kind == period.kind, ReportArchive.period_start == period.start))).scalar_one_or_none()
        return row_dict(row) if row else None

    async def listing(self, *, kind: str | None = None, limit: int = 100) -> list[dict]:
        stmt = sa.select(ReportArchive).order_by(ReportArchive.period_start.desc(), ReportArchive.id.desc()).limit(limit)
        if kind:
            stmt = stmt.where(ReportArchive.kind == kind)
        async with self.store.read_session() as session:
            return [row_dict(r) for r in (await session.execute(stmt)).scalars()]

    async def file(self, report_id: int, fmt: str) -> tuple[Path, str, dict]:
        """(path, download name, row) of one archived file; 404 for anything else."""
        if fmt not in report_render.FORMATS:
            raise NotFound(f"no such report format {fmt!r}", details={"formats": list(report_render.FORMATS)})
        async with self.store.read_session() as session:
            row = await session.get(ReportArchive, report_id)
        entry = next((f for f in (row.files if row else None) or [] if f.get("format") == fmt), None)
        if row is None or entry is None:
            raise NotFound("no such report file")
        path = await asyncio.to_thread(_inside, self.archive_dir, str(entry["name"]))
        if path is None:
            raise NotFound("the report's file is not in the archive")
        download = f"12345-{row.kind}-{row.period_start.isoformat()}.{fmt}"
        return path, download, row_dict(row)

    # -- the job -----------------------------------------------------------------------------
    async def check_font(self) -> str:
        self.font = await asyncio.to_thread(report_render.font_state)
        return self.font

    def health(self) -> dict:
        return {"font": self.font, "enabled": self.config.enabled,
                "archive_dir": str(self.archive_dir), "last_error": self.last_error, **self.counters}

    async def _first_activity(self) -> datetime | None:
        async with self.store.read_session() as session:
            return (await session.execute(sa.select(sa.func.min(Call.started_at)))).scalar()

    async def run_due(self) -> list[dict]:
        """Make the reports that are due and missing; delete those past retention. Returns what was made."""
        made: list[dict] = []
        if not self.config.enabled or await self.check_font() != "ok":
            return made
        now = self.clock()
        first = await self._first_activity()
        if first is None:
            return made
        tz = self.timezone()
        for kind in REPORT_KINDS:
            periods = due_periods(kind, now, tz, self.config.schedule[kind], catch_up=self.config.catch_up[kind])
            for period in reversed(periods):  # oldest first
                if period.end_utc <= first or await self.find(period) is not None:
                    continue
                made.append(await self.generate(period, actor="schedule", replace=False))
        await self.expire(now)
        return made

    async def expire(self, now: datetime) -> int:
        gone = 0
        for kind in REPORT_KINDS:
            days = self.config.retention_days[kind]
            if not days:
                continue
            cutoff = (now - timedelta(days=days)).date()

            async def work(session, kind=kind, cutoff=cutoff) -> list[dict]:
                rows = (await session.execute(sa.select(ReportArchive).where(
                    ReportArchive.kind == kind, ReportArchive.period_end < cutoff))).scalars().all()
                files = [f for r in rows for f in r.files or []]
                for r in rows:
                    await session.delete(r)
                return files

            files = await self.store.run_write(work)
            if files:
                await asyncio.to_thread(_delete_files, self.archive_dir, files)
                gone += len(files)
        self.counters["deleted"] += gone
        return gone

    async def loop(self) -> None:
        while True:
            if self.leader():
                try:
                    await self.run_due()
                    self.last_error = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the job must survive one bad run; retried next time
                    self.counters["failed"] += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.exception("reports: the scheduled run failed")
            await asyncio.sleep(self.interval)

