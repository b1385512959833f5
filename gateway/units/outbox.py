"""A webhook outbox's life, shared by every table with :class:`gateway.ticketing.models.OutboxRow`'s
columns (the units' ``unit_hook_deliveries``, the early warnings' ``warning_deliveries``).

A delivery is queued (:func:`new`) in the transaction that made its event; it is *due* while
neither delivered nor given up and ``next_at`` has come; a sender *claims* it for :data:`CLAIM`
(``claimed_until``) so one instance sends it at a time; each attempt is recorded
(:func:`record_attempt`): a success sets ``delivered_at``, a failure ``last_error`` and the next
try after :func:`backoff` (30 s, 1, 2, 4 ... minutes, at most an hour), and after
:data:`MAX_ATTEMPTS` the delivery is given up (``failed_at``). :func:`problems` and
:func:`counts` are what supervisors see of it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

MAX_ATTEMPTS = 8
CLAIM = timedelta(seconds=60)  # a delivery being sent is not picked up by another instance meanwhile


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def new(model, now: datetime, **fields: Any):
    """A delivery of ``model`` due at once (``fields``: unit_id, event, payload and the table's own)."""
    return model(attempts=0, next_at=now, created_at=now, **fields)


def due(model, now: datetime):
    """The WHERE clause of deliveries to send now."""
    return sa.and_(model.delivered_at.is_(None), model.failed_at.is_(None), model.next_at <= now, unclaimed(model, now))


def unclaimed(model, now: datetime):
    return sa.or_(model.claimed_until.is_(None), model.claimed_until < now)


def record_attempt(row, error: str | None, now: datetime) -> str:
    """Record one attempt on ``row`` (claimed): ``delivered``, ``retry`` or ``given_up``."""
    row.claimed_until = None
    row.attempts = (row.attempts or 0) + 1
    if error is None:
        row.delivered_at = now
        return "delivered"
    row.last_error = error[:255]
    if row.attempts >= MAX_ATTEMPTS:
        row.failed_at = now
        return "given_up"
    row.next_at = now + backoff(row.attempts)
    return "retry"


async def problems(session, model, *, limit: int = 100) -> list:
    """Rows not delivered yet that failed at least once, and those given up (newest first)."""
    return list((await session.execute(sa.select(model).where(model.delivered_at.is_(None), model.attempts > 0)
                                       .order_by(model.id.desc()).limit(limit))).scalars().all())


async def counts(session, model) -> dict[str, int]:
    """How many deliveries are pending and how many were given up."""
    pending = (await session.execute(sa.select(sa.func.count()).select_from(model).where(
        model.delivered_at.is_(None), model.failed_at.is_(None)))).scalar()
    failed = (await session.execute(sa.select(sa.func.count()).select_from(model)
                                    .where(model.failed_at.is_not(None)))).scalar()
    return {"pending": pending or 0, "failed": failed or 0}
