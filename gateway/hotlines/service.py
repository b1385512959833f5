"""The hotline administration service: change, schedule, apply, roll back, dry-run.

Theory of operation
-------------------
The live configuration is the latest *applied* version in the database; the
files under ``config/`` only seed version 1. Every change is validated as a
whole configuration before anything happens (``config_from_files``); a refused
change raises and leaves configuration, dialplan and database as they were.
Applying renders Asterisk's config and prompts and reloads Asterisk through AMI
(``applier``); only when that succeeded is the version stored as applied and
swapped in for the *next* call (a call in progress keeps the config object it
started with). Every version applied here is announced to the ``on_applied``
callbacks (the bus tells the other gateway instances, which ``follow`` it: they load
the version from the database; Asterisk was reloaded by the instance that applied). A change with a future ``effective_at`` is stored as scheduled;
the scheduler applies its *operation* onto whatever is live at that time, so
two changes made in between are not undone.

Parsing, validating and diffing a configuration run in a worker thread
(``asyncio.to_thread``): a large or hostile document costs that thread, never
the event loop that answers calls and other requests.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from datetime import datetime, time, timedelta
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from gateway.errors import ConfigError, GatewayError
from gateway.hotlines import changes
from gateway.hotlines.dryrun import dry_run
from gateway.hotlines.versions import VersionStore
from gateway.ivr_flows.model import GatewayConfig
from gateway.ivr_flows.validate import config_from_files
from gateway.ticketing.store import TicketStore

log = logging.getLogger(__name__)
Applier = Callable[[GatewayConfig, GatewayConfig | None], Awaitable[None]]


class CommentRequired(GatewayError):
    status_code = 400
    error_id = "comment-required"


class NoChange(GatewayError):
    status_code = 400
    error_id = "no-change"


def make_diff(old: dict, new: dict, old_name: str, new_name: str) -> str:
    out = []
    for rel in sorted(set(old) | set(new)):
        a, b = old.get(rel, ""), new.get(rel, "")
        if a != b:
            out += difflib.unified_diff(a.splitlines(True), b.splitlines(True),
                                        f"{old_name}/{rel}", f"{new_name}/{rel}")
    return "".join(out)


def _comment(comment) -> str:
    if not isinstance(comment, str) or not comment.strip():
        raise CommentRequired("every change needs a comment saying why", details={"field": "comment"})
    if len(comment) > 500:
        raise CommentRequired("the comment is longer than 500 characters", details={"field": "comment"})
    if any(ord(c) < 0x20 and c not in "\n\t" or ord(c) == 0x7F for c in comment):
        raise CommentRequired("the comment contains control characters / 备注含有控制字符",
                              details={"field": "comment"})
    return comment.strip()


class HotlineAdmin:
    def __init__(self, *, store: TicketStore, clock: Callable[[], datetime], applier: Applier,
                 initial_files: Callable[[], dict]) -> None:
        self.store = store
        self.versions = VersionStore(store)
        self.clock = clock
        self.applier = applier
        self.initial_files = initial_files
        self.files: dict = {}
        self.config: GatewayConfig | None = None
        self.version_id: int | None = None
        self._lock = asyncio.Lock()
        self.on_applied: list[Callable[[int], Awaitable[None]]] = []  # version id, after it is live here

    # -- start --------------------------------------------------------------------------
    async def bootstrap(self) -> GatewayConfig:
        """Load the live version, seeding version 1 from ``config/`` on a new database."""
        current = await self.versions.current()
        if current is None:
            files = await asyncio.to_thread(self.initial_files)  # reads config/: off the event loop
            config = await asyncio.to_thread(config_from_files, files, origin="config")
            self.version_id = await self.versions.add(
                files=files, content_hash=config.version, status="applied", parent_id=None, diff="",
                comment="initial version from config/", created_by="config/", created_at=self.clock(),
                applied_at=self.clock(), audit_action="config.applied")
        else:
            files = current["files"]
            config = await asyncio.to_thread(config_from_files, files, origin=f"version {current['id']}")
            self.version_id = current["id"]
        self.files, self.config = files, config
        return config

    # -- changes ------------------------------------------------------------------------
    def propose(self, change: dict, *, base: dict | None = None) -> tuple[dict, GatewayConfig]:
        """The files and validated config after ``change``; raises, changing nothing, when refused."""
        base = base if base is not None else self.files
        if isinstance(change, dict) and change.get("op") == "replace_files":  # SIGHUP: config/ as it is now
            files = {k: v for k, v in (change.get("files") or {}).items()}
        elif isinstance(change, dict) and change.get("op") == "replace":
            text = change.get("hotlines_yaml")
            if not isinstance(text, str) or not text.strip():
                raise changes.ChangeError("'replace' needs the whole hotlines.yaml as 'hotlines_yaml'")
            files = {**base, "hotlines.yaml": text}
        else:
            doc = changes.apply_change(changes.parse(base["hotlines.yaml"]), change)
            files = {**base, "hotlines.yaml": changes.dump(doc)}
        config = config_from_files(files, origin="proposed")
        return files, config

    async def submit(self, change: dict, *, comment, user: str, effective_at: datetime | None = None) -> dict:
        comment = _comment(comment)
        async with self._lock:
            files, config = await asyncio.to_thread(self.propose, change, base=self.files)
            if config.version == self.config.version:
                raise NoChange("the change leaves the configuration as it is")
            now = self.clock()
            if effective_at is not None and effective_at > now:
                vid = await self.versions.add(
                    files=files, content_hash=config.version, status="scheduled", parent_id=self.version_id,
                    diff=await asyncio.to_thread(make_diff, self.files, files, f"v{self.version_id}", "scheduled"),
                    comment=comment,
                    created_by=user, created_at=now, effective_at=effective_at, change=change,
                    audit_action="config.scheduled")
                log.info("%s scheduled configuration change v%s for %s: %s", user, vid, effective_at, comment)
            else:
                vid = await self._apply(files, config, comment=comment, user=user, change=change)
        return await self.versions.get(vid)

    async def rollback(self, version_id: int, *, comment, user: str) -> dict:
        comment = _comment(comment)
        async with self._lock:
            target = await self.versions.get(version_id)
            if target["status"] not in ("applied",):
                raise changes.ChangeError(f"version {version_id} was never applied ({target['status']})")
            config = await asyncio.to_thread(config_from_files, target["files"], origin=f"version {version_id}")
            if config.version == self.config.version:
                raise NoChange(f"version {version_id} is what runs now")
            vid = await self._apply(target["files"], config, comment=comment, user=user,
                                    change={"op": "rollback", "to": version_id})
        return await self.versions.get(vid)

    async def cancel(self, version_id: int, *, comment, user: str) -> dict:
        comment = _comment(comment)
        async with self._lock:
            target = await self.versions.get(version_id)
            if target["status"] != "scheduled":
                raise changes.Conflict(f"version {version_id} is {target['status']}, not scheduled")
            await self.versions.mark(version_id, status="cancelled", at=self.clock(), actor=user, error=comment)
        return await self.versions.get(version_id)

    async def _apply(self, files: dict, config: GatewayConfig, *, comment: str, user: str, change: dict) -> int:
        await self.applier(config, self.config)  # render + reload; raises before anything is stored
        diff = await asyncio.to_thread(make_diff, self.files, files, f"v{self.version_id}", "new")
        now = self.clock()
        vid = await self.versions.add(
            files=files, content_hash=config.version, status="applied", parent_id=self.version_id,
            diff=diff, comment=comment, created_by=user,
            created_at=now, applied_at=now, change=change, audit_action="config.applied")
        self.files, self.config, self.version_id = files, config, vid
        log.info("%s applied configuration v%s (%s): %s", user, vid, config.version, comment)
        await self._announce(vid)
        return vid

    async def _announce(self, version_id: int) -> None:
        for callback in self.on_applied:
            try:
                await callback(version_id)
            except Exception:  # noqa: BLE001 - the version is applied; telling others is best effort
                log.exception("announcing configuration v%s failed", version_id)

    async def follow(self, version_id: int | None = None) -> bool:
        """Another instance applied a version (``version_id``, or None after a gap: ask the
        database): take the live version from the database if it is not the one running here.
        Asterisk is not reloaded (the applying instance did). True if the configuration changed."""
        async with self._lock:
            if version_id is not None and version_id == self.version_id:
                return False
            current = await self.versions.current()
            if current is None or current["id"] == self.version_id:
                return False
            config = await asyncio.to_thread(config_from_files, current["files"], origin=f"version {current['id']}")
            self.files, self.config, self.version_id = current["files"], config, current["id"]
        log.info("following configuration v%s (%s) applied by another gateway", current["id"], config.version)
        return True

    async def run_due(self) -> list[int]:
        """Apply every scheduled change whose time has come (called by the scheduler loop)."""
        applied = []
        for version in await self.versions.due(self.clock()):
            async with self._lock:
                try:
                    files, config = await asyncio.to_thread(self.propose, version["change"], base=self.files)
                    await self.applier(config, self.config)
                except (ConfigError, GatewayError) as exc:
                    log.error("scheduled change v%s could not be applied: %s", version["id"], exc)
                    await self.versions.mark(version["id"], status="failed", at=self.clock(), actor="scheduler",
                                             error=str(exc))
                    continue
                diff = await asyncio.to_thread(make_diff, self.files, files, f"v{self.version_id}", f"v{version['id']}")
                await self.versions.mark(version["id"], status="applied", at=self.clock(), actor="scheduler",
                                         files=files, content_hash=config.version, diff=diff,
                                         parent_id=self.version_id)
                self.files, self.config, self.version_id = files, config, version["id"]
                applied.append(version["id"])
                log.info("scheduled configuration v%s applied", version["id"])
                await self._announce(version["id"])
        return applied

    # -- reading ------------------------------------------------------------------------
    async def dry_run(self, *, number: str, at: datetime | None, digits: str = "", change: dict | None = None,
                      version_id: int | None = None) -> dict:
        if change is not None:
            _, config = await asyncio.to_thread(self.propose, change, base=self.files)
            source = "proposed change"
        elif version_id is not None:
            version = await self.versions.get(version_id)
            config = await asyncio.to_thread(config_from_files, version["files"], origin=f"version {version_id}")
            source = f"version {version_id}"
        else:
            config, source = self.config, f"version {self.version_id} (live)"
        result = await dry_run(config, number=number, at=at or self.clock(), digits=digits)
        result["configuration"] = source
        return result

    async def overview(self) -> dict:
        config, version_id = self.config, self.version_id  # one version throughout (follow() may swap it meanwhile)
        tz = ZoneInfo(config.timezone)
        today = datetime.combine(self.clock().astimezone(tz).date(), time(0), tz)
        counts = await self.store.calls_per_line(today)
        week = await self.store.calls_per_line(today - timedelta(days=7))
        lines = []
        for line in config.lines.values():
            lines.append({
                "number": line.number, "name": line.name, "mode": line.mode, "department": line.department,
                "queue": line.queue, "hours": line.hours, "after_hours": line.after_hours,
                "announce": line.announce if line.mode == "retired" else None,
                "overflow_seconds": line.overflow_seconds if line.mode == "sub_centre" else None,
                "handled_by": line.handled_by, "greeting": line.greeting, "announcement": line.announcement,
                "calls_today": counts.get(line.number, {}).get("calls", 0),
                "calls_7_days": week.get(line.number, {}).get("calls", 0),
                "last_call_at": week.get(line.number, {}).get("last_call_at"),
            })
        return {"version": version_id, "content_hash": config.version, "timezone": config.timezone,
                "lines": lines, "queues": sorted(config.queues), "schedules": sorted(config.schedules),
                "broadcasts": [{"id": b.id, "text": b.text, "start": b.start.isoformat(), "end": b.end.isoformat(),
                                "lines": list(b.lines)} for b in config.broadcasts]}
