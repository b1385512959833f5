"""Configuration versions in the database (linear history; the latest applied one is live).

"Latest" is ``applied_at``, kept in the order of application: a version applied after another is
never stamped earlier than it, even when the clock went back (an NTP step, a test clock), so the
gateway's next start takes the version that was really live.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gateway.errors import NotFound
from gateway.ticketing.models import AuditEvent, ConfigVersion
from gateway.ticketing.rows import iso
from gateway.ticketing.store import TicketStore


def version_dict(v: ConfigVersion, *, with_files: bool = False) -> dict[str, Any]:
    out = {
        "id": v.id, "content_hash": v.content_hash, "status": v.status, "parent_id": v.parent_id,
        "comment": v.comment, "created_by": v.created_by, "created_at": iso(v.created_at),
        "effective_at": iso(v.effective_at), "applied_at": iso(v.applied_at), "diff": v.diff,
        "change": v.change, "error": v.error,
    }
    if with_files:
        out["files"] = dict(v.files)
    return out


class VersionStore:
    def __init__(self, store: TicketStore) -> None:
        self.store = store

    async def current(self) -> dict | None:
        """The live version: the latest applied one."""
        stmt = (sa.select(ConfigVersion).where(ConfigVersion.status == "applied")
                .order_by(ConfigVersion.applied_at.desc().nulls_last(), ConfigVersion.id.desc()).limit(1))
        async with self.store.read_session() as session:
            row = (await session.execute(stmt)).scalar_one_or_none()
        return version_dict(row, with_files=True) if row else None

    async def get(self, version_id: int) -> dict:
        if isinstance(version_id, bool) or not isinstance(version_id, int) or not 0 < version_id < 2**31:
            raise NotFound(f"no configuration version {version_id!r}", details={"version": str(version_id)})
        async with self.store.read_session() as session:
            row = await session.get(ConfigVersion, version_id)
        if row is None:
            raise NotFound(f"no configuration version {version_id}", details={"version": version_id})
        return version_dict(row, with_files=True)

    async def list(self, *, limit: int = 100) -> list[dict]:
        stmt = sa.select(ConfigVersion).order_by(ConfigVersion.id.desc()).limit(limit)
        async with self.store.read_session() as session:
            return [version_dict(v) for v in (await session.execute(stmt)).scalars()]

    async def due(self, now: datetime) -> list[dict]:
        stmt = (sa.select(ConfigVersion).where(ConfigVersion.status == "scheduled",
                                               ConfigVersion.effective_at <= now)
                .order_by(ConfigVersion.effective_at, ConfigVersion.id))
        async with self.store.read_session() as session:
            return [version_dict(v, with_files=True) for v in (await session.execute(stmt)).scalars()]

    async def add(self, *, files: dict, content_hash: str, status: str, parent_id: int | None, diff: str,
                  comment: str, created_by: str, created_at: datetime, effective_at: datetime | None = None,
                  applied_at: datetime | None = None, change: dict | None = None, audit_action: str,
                  audit_details: dict | None = None) -> int:
        async def work(session) -> int:
            stamped = await _after_live(session, applied_at) if applied_at is not None else None
            row = ConfigVersion(files=files, content_hash=content_hash, status=status, parent_id=parent_id,
                                diff=diff, comment=comment, created_by=created_by, created_at=created_at,
                                effective_at=effective_at, applied_at=stamped, change=change)
            session.add(row)
            await session.flush()
            session.add(AuditEvent(actor=created_by, action=audit_action, object_type="config_version",
                                   object_id=str(row.id), at=created_at,
                                   details={"comment": comment, "diff": diff, "change": change,
                                            **(audit_details or {})}))
            return row.id

        return await self.store.run_write(work)

    async def mark(self, version_id: int, *, status: str, at: datetime, actor: str,
                   files: dict | None = None, content_hash: str | None = None, diff: str | None = None,
                   parent_id: int | None = None, error: str | None = None) -> None:
        async def work(session) -> None:
            row = await session.get(ConfigVersion, version_id)
            if row is None:
                raise NotFound(f"no configuration version {version_id}")
            row.status = status
            if status == "applied":
                row.applied_at = await _after_live(session, at)
            if files is not None:
                row.files, row.content_hash, row.diff, row.parent_id = files, content_hash, diff, parent_id
            row.error = error
            session.add(AuditEvent(actor=actor, action=f"config.{status}", object_type="config_version",
                                   object_id=str(version_id), at=at, details={"error": error} if error else {}))

        await self.store.run_write(work)


async def _after_live(session, at: datetime) -> datetime:
    """``at``, or the live version's ``applied_at`` if that is later (the clock went back)."""
    latest = (await session.execute(sa.select(sa.func.max(ConfigVersion.applied_at))
                                    .where(ConfigVersion.status == "applied"))).scalar()
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=at.tzinfo)
    return latest if latest is not None and latest > at else at
