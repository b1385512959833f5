"""A call's time in each queue, from AMI: what the call-centre figures are measured on.

Theory of operation
-------------------
A call's row (:class:`gateway.ticketing.models.Call`) knows its queue and agent, not how long
the caller waited or talked. Asterisk says so in its queue events, each carrying the call's
``Uniqueid`` and the queue: ``QueueCallerJoin`` (a leg starts), ``AgentConnect`` (answered;
``HoldTime`` = seconds waited, counted by Asterisk), ``AgentComplete`` (``TalkTime``),
``QueueCallerAbandon`` (the caller hung up while waiting; ``HoldTime``) and
``QueueCallerLeave`` (the leg ends: answered, abandoned, or timed out to the next queue).
One row per (call, queue) keeps them (:class:`QueueLeg`, migration ``0018``).

Several gateway instances each have an AMI connection to every node, so each gets every event
and writes it. The writes are idempotent: the leg is inserted once (``ON CONFLICT DO NOTHING``
on the unique (uniqueid, queue)), and every field is only filled while it is still empty, so
the first writer wins and later copies change nothing. The seconds are Asterisk's own
(``HoldTime``/``TalkTime``), not the receiving instance's clock, so every instance writes the
same figure; only ``joined_at``/``left_at`` (the bucket a leg falls in, and the wait of a leg
that timed out) are the receiver's clock, a few milliseconds apart between instances.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.pbx.ami_events import (AgentComplete, AgentConnect, AmiEvent, QueueCallerAbandon, QueueCallerJoin,
                                    QueueCallerLeave, agent_id_of)
from gateway.tasks import cancel_and_wait
from gateway.ticketing.models import Base, RowId, UtcDateTime

log = logging.getLogger(__name__)


class QueueLeg(Base):
    """One call's stay in one queue (AMI queue events; see the module's notes)."""

    __tablename__ = "queue_legs"
    __table_args__ = (sa.UniqueConstraint("uniqueid", "queue", name="uq_queue_legs_uniqueid_queue"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    uniqueid: Mapped[str] = mapped_column(sa.String(64))
    queue: Mapped[str] = mapped_column(sa.String(64))
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    agent: Mapped[str | None] = mapped_column(sa.String(128))
    hold_s: Mapped[int | None] = mapped_column(sa.Integer)  # Asterisk's HoldTime (answered or abandoned)
    talk_s: Mapped[int | None] = mapped_column(sa.Integer)  # Asterisk's TalkTime (AgentComplete)
    abandoned: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


def _insert(dialect: str):
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(QueueLeg)


class QueueLegRecorder:
    """AMI queue events into :class:`QueueLeg` rows (an AMI handler).

    Once :meth:`start` ran, events are only queued by the handler and written in order by a
    task of their own: the AMI events' path (the call's row, the desk's screen pop) never waits
    for a figure's write, even while the database is slow or locked. A full queue drops the
    event (counted as ``dropped``). Not started (unit tests), each event is written at once.
    """

    def __init__(self, store, clock: Callable[[], datetime], *, backlog: int = 10_000) -> None:
        self.store = store
        self.clock = clock
        self.backlog = backlog
        self.counters = {"joined": 0, "answered": 0, "completed": 0, "abandoned": 0, "errors": 0, "dropped": 0}
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def __call__(self, event: AmiEvent) -> None:
        if not isinstance(event, (QueueCallerJoin, AgentConnect, AgentComplete, QueueCallerAbandon,
                                  QueueCallerLeave)):
            return
        if not event.uniqueid or not getattr(event, "queue", ""):
            return
        if self._queue is None:
            await self._safely(event, self.clock())
            return
        try:
            self._queue.put_nowait((event, self.clock()))
        except asyncio.QueueFull:
            self.counters["dropped"] += 1

    def start(self) -> None:
        self._queue = asyncio.Queue(self.backlog)
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="figures-queue-legs")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = self._queue = None

    async def idle(self) -> None:
        """Until every queued event is written (tests, shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def _drain(self) -> None:
        queue = self._queue
        while True:
            event, at = await queue.get()
            try:
                await self._safely(event, at)
            finally:
                queue.task_done()

    async def _safely(self, event: AmiEvent, at: datetime) -> None:
        try:
            await self._record(event, at)
        except Exception:  # noqa: BLE001 - a figure lost must never stop the other handlers
            self.counters["errors"] += 1
            log.exception("queue leg of %s not recorded", event.uniqueid)

    async def _record(self, event: AmiEvent, now: datetime) -> None:
        uid, queue = event.uniqueid[:64], event.queue[:64]
        if isinstance(event, QueueCallerJoin):
            await self.joined(uid, queue, now)
            self.counters["joined"] += 1
        elif isinstance(event, AgentConnect):
            await self.update(uid, queue, now, answered_at=now, hold_s=event.hold_time,
                              agent=agent_id_of(event.interface, event.member_name))
            self.counters["answered"] += 1
        elif isinstance(event, AgentComplete):
            await self.update(uid, queue, now, talk_s=event.talk_time)
            self.counters["completed"] += 1
        elif isinstance(event, QueueCallerAbandon):
            await self.update(uid, queue, now, abandoned=True, hold_s=event.hold_time, left_at=now)
            self.counters["abandoned"] += 1
        else:  # QueueCallerLeave
            await self.update(uid, queue, now, left_at=now)

    async def joined(self, uid: str, queue: str, at: datetime) -> None:
        dialect = self.store.engine.dialect.name

        async def work(session: AsyncSession) -> None:
            stmt = _insert(dialect).values(uniqueid=uid, queue=queue, joined_at=at, abandoned=False)
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["uniqueid", "queue"]))

        await self.store.run_write(work)

    async def update(self, uid: str, queue: str, at: datetime, **fields) -> None:
        """Fill the leg's empty fields (the first writer wins); a leg missed at join is made now."""
        await self.joined(uid, queue, at)

        async def work(session: AsyncSession) -> None:
            for name, value in fields.items():
                if value is None:
                    continue
                column = getattr(QueueLeg, name)
                empty = column.is_(False) if name == "abandoned" else column.is_(None)
                await session.execute(sa.update(QueueLeg).where(QueueLeg.uniqueid == uid, QueueLeg.queue == queue,
                                                                empty).values({name: value}))

        await self.store.run_write(work)
